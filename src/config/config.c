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
#include "util/yaml.h"

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
	free(cfg->kubernetes.cni_values);
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

/* "a.b[2].c" -> "/a/b/2/c" */
static void
yaml_path(struct buf *yp, const char *path)
{
	const char *p;

	for (p = path ? path : ""; *p; p++) {
		if (*p == '.' || *p == '[' || p == path)
			buf_addch(yp, '/');
		if (*p != '.' && *p != '[' && *p != ']')
			buf_addch(yp, *p);
	}
}

struct fy_node *
config_node_at(const struct config *cfg, const char *path)
{
	struct buf yp = BUF_INIT;
	struct fy_node *root, *n;

	if (!cfg || !cfg->doc || !(root = fy_document_root(cfg->doc)))
		return NULL;
	yaml_path(&yp, path);
	n = yp.len ? fy_node_by_path(root, yp.ptr, yp.len, FYNWF_DONT_FOLLOW)
		   : root;
	buf_release(&yp);
	return n;
}

void
config_pos(const struct config *cfg, const char *path, int *line, int *col)
{
	struct buf yp = BUF_INIT;
	struct fy_node *root, *n = NULL;

	*line = *col = 0;
	if (!cfg || !cfg->doc || !(root = fy_document_root(cfg->doc)))
		return;
	/* Shorten the path until something exists. */
	yaml_path(&yp, path);
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
	/* An empty list or mapping has no token of its own: use its key. */
	if (*line == 0 && n != root) {
		struct fy_node *parent = fy_node_get_parent(n);
		struct fy_node_pair *p;
		void *it = NULL;

		while (parent && fy_node_get_type(parent) == FYNT_MAPPING &&
		       (p = fy_node_mapping_iterate(parent, &it)))
			if (fy_node_pair_value(p) == n) {
				decode_node_pos(fy_node_pair_key(p), line, col);
				break;
			}
	}
}

/* --- parsing ------------------------------------------------------------ */

struct parse_ctx {
	struct diag *diag;
	size_t errors;
};

static void
on_parse_error(void *ctx, int line, int col, const char *msg)
{
	struct parse_ctx *pc = ctx;

	diag_add(pc->diag, DIAG_ERROR, line, col, NULL, "%s", msg);
	pc->errors++;
}

static struct fy_document *
parse_yaml(const char *text, size_t len, struct diag *diag)
{
	struct parse_ctx pc = { diag, 0 };
	struct fy_document *doc;
	size_t ndiag;

	doc = yaml_parse_each(text, len, on_parse_error, &pc, &ndiag);
	if (!doc && ndiag == 0)
		diag_add(diag, DIAG_ERROR, 0, 0, NULL,
			 "file holds no settings; start from 'strata init'");
	else if (!doc && pc.errors == 0)
		diag_add(diag, DIAG_ERROR, 0, 0, NULL, "invalid YAML");
	/* Anchors, aliases and merge keys are expanded here, so every
	 * subtree (a talos patch copied out, a pool) stands on its own. */
	if (doc && yaml_resolve(doc, on_parse_error, &pc) < 0) {
		fy_document_destroy(doc);
		doc = NULL;
	}
	return doc;
}

/*
 * Binary garbage, NUL bytes and invalid UTF-8 get a clear message before
 * the parser sees them (libfyaml 0.7.12 can loop forever on a directive
 * line holding invalid UTF-8; the fuzzer found it).
 */
static size_t
utf8_len(const unsigned char *p, size_t left)
{
	size_t n, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

int
config_check_text(const char *t, size_t len, struct diag *diag,
		  const char *file)
{
	const unsigned char *p = (const unsigned char *)t;
	size_t i = 0, n;
	int line = 1, col = 1;

	while (i < len) {
		unsigned char ch = p[i];

		if (ch == 0 || (ch < 0x20 && ch != '\n' && ch != '\r' &&
				ch != '\t') || ch == 0x7f) {
			diag_add_file(diag, file, DIAG_ERROR, line, col, NULL,
				      "control character 0x%02x: this is not a "
				      "text file", ch);
			return -1;
		}
		n = utf8_len(p + i, len - i);
		if (!n) {
			diag_add_file(diag, file, DIAG_ERROR, line, col, NULL,
				      "invalid UTF-8 byte 0x%02x: this is not a "
				      "text file", ch);
			return -1;
		}
		if (ch == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
		i += n;
	}
	return 0;
}

/* Bounded: data need not be NUL-terminated. */
static bool
is_blank(const char *data, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!strchr(" \t\r\n", data[i]) || !data[i])
			return false;
	return true;
}

static void
init_unset(struct config *cfg)
{
	cfg->platform = PLATFORM_UNSET;
	cfg->network.discovery = DISCOVERY_UNSET;
	cfg->proxmox.first_boot = FIRST_BOOT_UNSET;
	cfg->kubernetes.cni = CNI_UNSET;
	cfg->cp_pool.count = -1;
	cfg->worker_pool.count = -1;
}

int
config_load_mem(struct config **out, const char *path, const char *data,
		size_t len, struct diag *diag, unsigned flags)
{
	struct config *cfg = NULL;
	struct fy_document *doc;
	struct fy_node *root;
	struct dctx c;
	const char *slash;

	*out = NULL;
	if (len > CONFIG_MAX_BYTES) {
		diag_add(diag, DIAG_ERROR, 0, 0, NULL,
			 "file is larger than 1 MiB; a config is a few kilobytes");
		return -1;
	}
	if (config_check_text(data, len, diag, NULL) < 0)
		return -1;
	if (is_blank(data, len)) {
		diag_add(diag, DIAG_ERROR, 0, 0, NULL,
			 "file is empty; start from 'strata init'");
		return -1;
	}
	doc = parse_yaml(data, len, diag);
	if (!doc)
		return -1;
	root = fy_document_root(doc);
	if (!root || fy_node_is_null(root)) {
		diag_add(diag, DIAG_ERROR, 1, 1, NULL,
			 "file holds no settings; start from 'strata init'");
		fy_document_destroy(doc);
		return -1;
	}

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->backup.etcd_before_changes = true;   /* default on */
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
	*out = cfg;
	return diag->errors ? -1 : 0;
}

int
config_load_opts(struct config **out, const char *path, struct diag *diag,
		 unsigned flags)
{
	struct buf text = BUF_INIT;
	struct err err = ERR_INIT;
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
		buf_release(&text);
		return -1;
	}
	r = config_load_mem(out, path, text.ptr, text.len, diag, flags);
	buf_release(&text);
	return r;
}

int
config_load(struct config **out, const char *path, struct diag *diag)
{
	return config_load_opts(out, path, diag, 0);
}

int
config_load_env_opts(struct config **out, const char *env_dir,
		     struct diag *diag, unsigned flags)
{
	char *path = fs_join(env_dir, "config.yml");
	int r;

	free(diag->file);
	diag->file = xstrdup(path);
	r = config_load_opts(out, path, diag, flags);
	free(path);
	return r;
}

int
config_load_env(struct config **out, const char *env_dir, struct diag *diag)
{
	return config_load_env_opts(out, env_dir, diag, 0);
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
	struct buf b = BUF_INIT_SECRET;   /* growth leaves no copy of the token */
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
			/* A missing secret is a config problem, like an unset
			 * variable: both exit 2. */
			buf_release_secret(&b);
			if (err->code == ERR_NOTFOUND)
				return err_set(err, ERR_USAGE,
					       "%s: secret file '%s' does not exist",
					       what, ref->text);
			return err_wrap(err, "%s", what);
		}
		while (b.len && (b.ptr[b.len - 1] == '\n' ||
				 b.ptr[b.len - 1] == '\r' ||
				 b.ptr[b.len - 1] == ' '))
			b.ptr[--b.len] = '\0';
		if (!b.len) {
			buf_release_secret(&b);
			return err_set(err, ERR_USAGE, "%s: file '%s' is empty",
				       what, ref->text);
		}
		*out = buf_detach(&b, NULL);
		return 0;
	default:
		return err_set(err, ERR_USAGE, "%s is not configured", what);
	}
}
