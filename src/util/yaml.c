#include "util/yaml.h"

#include <libfyaml.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

struct fy_document *
yaml_parse_each(const char *text, size_t len, yaml_error_fn fn, void *ctx,
		size_t *ndiag)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd;
	struct fy_document *doc;
	struct fy_diag_error *e;
	void *it = NULL;
	size_t n = 0;

	if (ndiag)
		*ndiag = 0;
	yaml_diag_cfg(&dcfg);
	fyd = fy_diag_create(&dcfg);
	if (!fyd) {
		fn(ctx, 0, 0, "cannot set up the YAML parser");
		if (ndiag)
			*ndiag = 1;
		return NULL;
	}
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = fyd;
	doc = fy_document_build_from_string(&pcfg, text, len);
	while (!doc && (e = fy_diag_errors_iterate(fyd, &it))) {
		char *msg = xstrdup(e->msg ? e->msg : "syntax error");
		size_t ml = strlen(msg);

		n++;
		while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
			msg[--ml] = '\0';
		if (e->type >= FYET_ERROR)
			fn(ctx, e->line + 1, e->column + 1, msg);
		free(msg);
	}
	if (ndiag)
		*ndiag = n;
	fy_diag_destroy(fyd);
	return doc;
}

static void
first_error(void *ctx, int line, int col, const char *msg)
{
	struct err *err = ctx;

	if (err->code == 0)
		err_set(err, ERR_FAIL, "%d:%d: %s", line, col, msg);
}

struct fy_document *
yaml_parse(const char *text, size_t len, struct err *err)
{
	struct fy_document *doc;

	err_clear(err);
	doc = yaml_parse_each(text, len, first_error, err, NULL);
	if (!doc && err->code == 0)
		err_set(err, ERR_FAIL, "empty or invalid YAML");
	return doc;
}

void
yaml_diag_cfg(struct fy_diag_cfg *c)
{
	memset(c, 0, sizeof(*c));   /* no fp, no output_fn: silent */
	c->level = FYET_WARNING;
	c->module_mask = ~0u;
}

static struct fy_diag *quiet_diag;

static void
quiet_diag_init(void)
{
	struct fy_diag_cfg dcfg;

	yaml_diag_cfg(&dcfg);
	quiet_diag = fy_diag_create(&dcfg);
}

struct fy_diag *
yaml_quiet_diag(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, quiet_diag_init);
	return quiet_diag;
}

struct fy_document *
yaml_new_document(void)
{
	struct fy_parse_cfg pcfg;

	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
	pcfg.diag = yaml_quiet_diag();
	return fy_document_create(&pcfg);
}

/* --- aliases and merge keys --------------------------------------------- */

#define YAML_EXPAND_MAX 20000   /* values after expanding every alias */

#define YAML_DEPTH_MAX 200

struct rctx {
	yaml_error_fn fn;
	void *ctx;
	size_t count;
	int failed;
	struct fy_node *stack[YAML_DEPTH_MAX + 1];   /* the walk's ancestors */
};

/* A node's position: its own token, else its first key or item's. */
static void
node_mark(struct fy_node *n, int *line, int *col)
{
	const struct fy_mark *m = NULL;
	void *it = NULL;
	int guard = 0;

	while (n && !m && guard++ < 64) {
		struct fy_node_pair *p;
		struct fy_token *t;

		switch (fy_node_get_type(n)) {
		case FYNT_SCALAR:
			t = fy_node_get_scalar_token(n);
			m = t ? fy_token_start_mark(t) : NULL;
			n = NULL;
			break;
		case FYNT_MAPPING:
			it = NULL;
			p = fy_node_mapping_iterate(n, &it);
			n = p ? fy_node_pair_key(p) : NULL;
			break;
		default:
			it = NULL;
			n = fy_node_sequence_iterate(n, &it);
			break;
		}
	}
	*line = m ? m->line + 1 : 0;
	*col = m ? m->column + 1 : 0;
}

static void __attribute__((format(printf, 3, 4)))
rfail(struct rctx *r, struct fy_node *n, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int line, col;

	r->failed = 1;
	node_mark(n, &line, &col);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	r->fn(r->ctx, line, col, b.ptr);
	buf_release(&b);
}

static bool
is_merge_key(struct fy_node *k)
{
	const char *s;

	if (!k || fy_node_get_type(k) != FYNT_SCALAR || fy_node_is_alias(k) ||
	    fy_node_get_style(k) != FYNS_PLAIN)
		return false;
	s = fy_node_get_scalar0(k);
	return s && !strcmp(s, "<<");
}

/* The merge forms libfyaml resolves: <<: *map and <<: [*map, *map]. */
static void
check_merge(struct rctx *r, struct fy_node *v)
{
	struct fy_node *item, *t;
	void *it = NULL;

	if (v && fy_node_is_alias(v)) {
		t = fy_node_resolve_alias(v);
		if (t && fy_node_get_type(t) != FYNT_MAPPING)
			rfail(r, v, "merge key '<<' takes an alias of a mapping; "
			      "'*%s' is not a mapping", fy_node_get_scalar0(v));
		return;
	}
	if (v && fy_node_get_type(v) == FYNT_SEQUENCE) {
		while ((item = fy_node_sequence_iterate(v, &it))) {
			if (!fy_node_is_alias(item)) {
				rfail(r, item, "merge key '<<' takes aliases "
				      "(<<: *name or <<: [*a, *b]); write "
				      "these keys in the mapping itself");
				return;
			}
			check_merge(r, item);
		}
		return;
	}
	rfail(r, v, "merge key '<<' takes aliases (<<: *name or "
	      "<<: [*a, *b]); write these keys in the mapping itself");
}

static void
walk(struct rctx *r, struct fy_node *n, int depth)
{
	struct fy_node_pair *p;
	struct fy_node *item;
	void *it = NULL;

	if (!n || r->failed || depth > YAML_DEPTH_MAX)
		return;
	r->stack[depth] = n;
	if (++r->count > YAML_EXPAND_MAX) {
		rfail(r, n, "aliases expand to more than %d values; this is "
		      "not a config", YAML_EXPAND_MAX);
		return;
	}
	if (fy_node_is_alias(n)) {
		struct fy_node *t = fy_node_resolve_alias(n);

		int i;

		for (i = 0; t && i < depth; i++)
			if (r->stack[i] == t) {
				rfail(r, n, "alias '*%s' is inside what it "
				      "refers to, so it never ends",
				      fy_node_get_scalar0(n));
				return;
			}
		if (!t)
			rfail(r, n, "alias '*%s' has no anchor '&%s' before it",
			      fy_node_get_scalar0(n), fy_node_get_scalar0(n));
		else
			walk(r, t, depth + 1);
		return;
	}
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		while (!r->failed && (p = fy_node_mapping_iterate(n, &it))) {
			struct fy_node *k = fy_node_pair_key(p);

			if (is_merge_key(k))
				check_merge(r, fy_node_pair_value(p));
			walk(r, k, depth + 1);
			walk(r, fy_node_pair_value(p), depth + 1);
		}
		break;
	case FYNT_SEQUENCE:
		while (!r->failed && (item = fy_node_sequence_iterate(n, &it)))
			walk(r, item, depth + 1);
		break;
	default:
		break;
	}
}

int
yaml_resolve(struct fy_document *doc, yaml_error_fn fn, void *ctx)
{
	struct rctx r = { .fn = fn, .ctx = ctx };

	walk(&r, fy_document_root(doc), 0);
	if (r.failed)
		return -1;
	if (fy_document_resolve(doc) != 0) {
		fn(ctx, 0, 0, "cannot resolve the aliases and merge keys");
		return -1;
	}
	return 0;
}
