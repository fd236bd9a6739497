#include "config/config.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/decode.h"
#include "config/schema.h"
#include "config/validate.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/net.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

const char *
platform_name(enum platform p)
{
	switch (p) {
	case PLATFORM_PROXMOX:
		return "proxmox";
	case PLATFORM_VPS:
		return "vps";
	default:
		return "unset";
	}
}

/* --- freeing, driven by the schema so nothing decoded is missed --------- */

static void strlist_free(struct str_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void free_by_schema(void *base, const struct schema *s);

static void
free_field(void *base, const struct field *f)
{
	void *dst = (char *)base + f->off;

	switch (f->type) {
	case T_MAP:
		free_by_schema(dst, f->sub);
		break;
	case T_LIST: {
		char *arr = *(char **)dst;
		size_t n = *(size_t *)((char *)base + f->off2), i;

		for (i = 0; arr && i < n; i++)
			free_by_schema(arr + i * f->sub->elem_size, f->sub);
		free(arr);
		*(char **)dst = NULL;
		break;
	}
	case T_STRLIST:
	case T_STR_OR_LIST:
		strlist_free(dst);
		break;
	case T_SECRET: {
		struct secret_ref *r = dst;

		free(r->text);
		r->text = NULL;
		break;
	}
	case T_INT:
	case T_BOOL:
	case T_ENUM:
	case T_MIB:
	case T_GIB:
	case T_CUSTOM:
		break;
	default:
		free(*(char **)dst);
		*(char **)dst = NULL;
		break;
	}
}

static void
free_by_schema(void *base, const struct schema *s)
{
	const struct field *f;

	for (f = s->fields; f->key; f++)
		free_field(base, f);
}

static void
node_release(struct node *n)
{
	free(n->name);
	free(n->pool);
	free(n->ip);
	free(n->mac);
	free(n->placement);
	free(n->install_disk);
	free(n->path);
}

void
config_free(struct config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	for (i = 0; i < cfg->talos.n_patches; i++) {
		free(cfg->talos.patches[i].file);
		free(cfg->talos.patches[i].inline_yaml);
	}
	free(cfg->talos.patches);
	for (i = 0; i < cfg->n_vms; i++) {
		for (j = 0; j < cfg->vms[i].n_vars; j++) {
			free(cfg->vms[i].vars[j].key);
			free(cfg->vms[i].vars[j].value);
		}
		free(cfg->vms[i].vars);
		free(cfg->vms[i].path);
	}
	free_by_schema(cfg, &config_schema);
	for (i = 0; i < cfg->n_nodes; i++)
		node_release(&cfg->nodes[i]);
	free(cfg->nodes);
	if (cfg->doc)
		fy_document_destroy(cfg->doc);
	free(cfg->file);
	free(cfg->dir);
	free(cfg);
}

/* --- positions ---------------------------------------------------------- */

void
config_pos(const struct config *cfg, const char *path, int *line, int *col)
{
	struct buf yp = BUF_INIT;
	struct fy_node *root, *n = NULL;
	const char *p;

	*line = *col = 0;
	if (!cfg || !cfg->doc || !(root = fy_document_root(cfg->doc)))
		return;
	/* "a.b[2].c" -> "/a/b/2/c", then shorten until something exists. */
	for (p = path ? path : ""; *p; p++) {
		if (*p == '.' || *p == '[')
			buf_addch(&yp, '/');
		else if (*p != ']')
			buf_addch(&yp, *p);
	}
	for (;;) {
		char *slash;

		if (!yp.len) {
			n = root;
			break;
		}
		n = fy_node_by_path(root, yp.ptr, yp.len, FYNWF_DONT_FOLLOW);
		if (n)
			break;
		slash = strrchr(yp.ptr, '/');
		if (!slash || slash == yp.ptr) {
			n = root;
			break;
		}
		yp.len = (size_t)(slash - yp.ptr);
		yp.ptr[yp.len] = '\0';
	}
	buf_release(&yp);
	decode_node_pos(n, line, col);
}

/* --- parsing ------------------------------------------------------------ */

static void
add_parse_errors(struct diag *diag, struct fy_diag *fyd)
{
	struct fy_diag_error *e;
	void *it = NULL;
	size_t added = 0;

	while ((e = fy_diag_errors_iterate(fyd, &it))) {
		char *msg = xstrdup(e->msg ? e->msg : "syntax error");
		size_t n = strlen(msg);

		while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		if (e->type >= FYET_ERROR) {
			diag_add(diag, DIAG_ERROR, e->line + 1, e->column + 1,
				 NULL, "%s", msg);
			added++;
		}
		free(msg);
	}
	if (!added)
		diag_add(diag, DIAG_ERROR, 0, 0, NULL, "invalid YAML");
}

static struct fy_document *
parse_yaml(const char *text, size_t len, struct diag *diag)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd;
	struct fy_document *doc;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.colorize = false;
	fyd = fy_diag_create(&dcfg);
	if (!fyd) {
		diag_add(diag, DIAG_ERROR, 0, 0, NULL, "cannot set up the YAML parser");
		return NULL;
	}
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = fyd;
	doc = fy_document_build_from_string(&pcfg, text, len);
	if (!doc) {
		add_parse_errors(diag, fyd);
		if (doc)
			fy_document_destroy(doc);
		doc = NULL;
	}
	fy_diag_destroy(fyd);
	return doc;
}

/* Binary garbage and NUL bytes get a clear message before the parser. */
static int
check_text(const char *t, size_t len, struct diag *diag)
{
	size_t i;
	int line = 1, col = 1;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)t[i];

		if (ch == 0 || (ch < 0x20 && ch != '\n' && ch != '\r' &&
				ch != '\t')) {
			diag_add(diag, DIAG_ERROR, line, col, NULL,
				 "control character 0x%02x: this is not a "
				 "text file", ch);
			return -1;
		}
		if (ch == '\n') {
			line++;
			col = 1;
		} else if ((ch & 0xc0) != 0x80) {
			col++;
		}
	}
	return 0;
}

static void
init_unset(struct config *cfg)
{
	cfg->platform = PLATFORM_UNSET;
	cfg->network.discovery = DISCOVERY_UNSET;
	cfg->kubernetes.cni = CNI_UNSET;
	cfg->cp_pool.count = -1;
	cfg->worker_pool.count = -1;
}

int
config_load_opts(struct config **out, const char *path, struct diag *diag,
		 unsigned flags)
{
	struct buf text = BUF_INIT;
	struct err err = ERR_INIT;
	struct config *cfg = NULL;
	struct fy_document *doc;
	struct fy_node *root;
	struct dctx c;
	const char *slash;
	int r;

	*out = NULL;
	r = fs_read_file(&text, path, CONFIG_MAX_BYTES, &err);
	if (r < 0) {
		if (err.code == ERR_NOTFOUND)
			diag_add(diag, DIAG_ERROR, 0, 0, NULL,
				 "no such file; create it with 'strata init'");
		else if (strstr(err.msg, "larger than"))
			diag_add(diag, DIAG_ERROR, 0, 0, NULL,
				 "file is larger than 1 MiB; a config is a few "
				 "kilobytes");
		else
			diag_add(diag, DIAG_ERROR, 0, 0, NULL, "%s", err.msg);
		goto fail;
	}
	if (check_text(text.ptr, text.len, diag) < 0)
		goto fail;
	if (text.len == 0 || strspn(text.ptr, " \t\r\n") == text.len) {
		diag_add(diag, DIAG_ERROR, 0, 0, NULL,
			 "file is empty; start from 'strata init'");
		goto fail;
	}
	doc = parse_yaml(text.ptr, text.len, diag);
	if (!doc)
		goto fail;
	root = fy_document_root(doc);
	if (!root || fy_node_is_null(root)) {
		diag_add(diag, DIAG_ERROR, 1, 1, NULL,
			 "file holds no settings; start from 'strata init'");
		fy_document_destroy(doc);
		goto fail;
	}

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->doc = doc;
	cfg->file = xstrdup(path);
	slash = strrchr(path, '/');
	cfg->dir = slash ? xstrndup(path, (size_t)(slash - path))
			 : xstrdup(".");
	if (!cfg->dir[0]) {
		free(cfg->dir);
		cfg->dir = xstrdup("/");
	}
	init_unset(cfg);
	c.cfg = cfg;
	c.diag = diag;
	if (fy_node_get_type(root) != FYNT_MAPPING) {
		decode_error(&c, root, NULL,
			     "the top level must be a mapping of settings "
			     "(name:, platform:, ...)");
	} else {
		decode_map(&c, root, cfg, &config_schema, "");
		config_validate(cfg, diag, flags);
	}
	buf_release(&text);
	*out = cfg;
	return diag->errors ? -1 : 0;
fail:
	buf_release(&text);
	return -1;
}

int
config_load(struct config **out, const char *path, struct diag *diag)
{
	return config_load_opts(out, path, diag, 0);
}

int
config_load_env(struct config **out, const char *env_dir, struct diag *diag)
{
	char *path = fs_join(env_dir, "config.yml");
	int r;

	free(diag->file);
	diag->file = xstrdup(path);
	r = config_load(out, path, diag);
	free(path);
	return r;
}

const struct node *
config_node(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_nodes; i++)
		if (!strcmp(cfg->nodes[i].name, name))
			return &cfg->nodes[i];
	return NULL;
}

int
config_secret_resolve(char **out, const struct config *cfg,
		      const struct secret_ref *ref, const char *what,
		      struct err *err)
{
	struct buf b = BUF_INIT;
	const char *v;
	char *path;
	int r;

	*out = NULL;
	switch (ref->kind) {
	case SECRET_LITERAL:
		*out = xstrdup(ref->text);
		return 0;
	case SECRET_ENV:
		v = getenv(ref->text);
		if (!v || !*v)
			return err_set(err, ERR_USAGE,
				       "%s: environment variable '%s' is not set",
				       what, ref->text);
		*out = xstrdup(v);
		return 0;
	case SECRET_FILE:
		path = ref->text[0] == '/' ? xstrdup(ref->text)
					   : fs_join(cfg->dir, ref->text);
		r = fs_read_file(&b, path, 64 * 1024, err);
		free(path);
		if (r < 0) {
			buf_release(&b);
			return err_wrap(err, "%s", what);
		}
		while (b.len && (b.ptr[b.len - 1] == '\n' ||
				 b.ptr[b.len - 1] == '\r' ||
				 b.ptr[b.len - 1] == ' '))
			b.ptr[--b.len] = '\0';
		if (!b.len) {
			buf_release(&b);
			return err_set(err, ERR_USAGE, "%s: file '%s' is empty",
				       what, ref->text);
		}
		*out = buf_detach(&b, NULL);
		return 0;
	default:
		return err_set(err, ERR_USAGE, "%s is not configured", what);
	}
}
