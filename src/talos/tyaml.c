#include "talos/tyaml.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

#include "util/yaml.h"

static void
first_resolve_error(void *ctx, int line, int col, const char *msg)
{
	struct err *err = ctx;

	if (err->code == 0)
		err_set(err, ERR_FAIL, "%d:%d: %s", line, col, msg);
}

int
ydocs_parse(struct ydocs *out, const char *text, size_t len, struct err *err)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd = NULL;
	struct fy_parser *fyp = NULL;
	struct fy_document *doc;
	int r = 0;

	yaml_diag_cfg(&dcfg);
	fyd = fy_diag_create(&dcfg);
	if (!fyd)
		return err_set(err, ERR_FAIL, "cannot set up the YAML parser");
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
	pcfg.diag = fyd;
	fyp = fy_parser_create(&pcfg);
	/*
	 * Documents (and nodes copied from them) point into the input;
	 * libfyaml frees a malloc'd input when its last user goes.
	 */
	if (!fyp || fy_parser_set_malloc_string(fyp, xstrndup(text, len), len) != 0) {
		r = err_set(err, ERR_FAIL, "cannot set up the YAML parser");
		goto out;
	}
	while ((doc = fy_parse_load_document(fyp)) != NULL) {
		if (!fy_document_root(doc)) {
			fy_parse_document_destroy(fyp, doc);
			continue;
		}
		ydocs_push(out, doc);
		if (r == 0 && yaml_resolve(doc, first_resolve_error, err) < 0)
			r = -err->code;
	}
	if (fy_parser_get_stream_error(fyp)) {
		struct fy_diag_error *e;
		void *it = NULL;

		e = fy_diag_errors_iterate(fyd, &it);
		if (e)
			r = err_set(err, ERR_FAIL, "%d:%d: %.*s", e->line + 1,
				    e->column + 1, (int)strcspn(e->msg, "\n"),
				    e->msg);
		else
			r = err_set(err, ERR_FAIL, "invalid YAML");
		ydocs_release(out);
	} else if (r < 0) {
		ydocs_release(out);
	}
out:
	if (fyp)
		fy_parser_destroy(fyp);
	fy_diag_destroy(fyd);
	return r;
}

void
ydocs_push(struct ydocs *d, struct fy_document *doc)
{
	d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
	d->v[d->n++] = doc;
}

void
ydocs_release(struct ydocs *d)
{
	for (size_t i = 0; i < d->n; i++)
		fy_document_destroy(d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;

}

void
ydocs_clone(struct ydocs *out, const struct ydocs *src)
{
	for (size_t i = 0; i < src->n; i++) {
		struct fy_document *doc = fy_document_clone(src->v[i]);

		if (!doc)
			abort();
		ydocs_push(out, doc);
	}
}

static int
emit_out(struct fy_emitter *emit, enum fy_emitter_write_type type,
	 const char *str, int len, void *userdata)
{
	(void)emit;
	(void)type;
	buf_add(userdata, str, (size_t)len);
	return len;
}

int
ydocs_emit(struct buf *out, const struct ydocs *d, struct err *err)
{
	for (size_t i = 0; i < d->n; i++) {
		/* Our own emitter config: libfyaml's default one would set
		 * up diagnostics that ask whether stderr is a terminal. */
		struct fy_emitter_cfg ecfg = {
			.flags = FYECF_MODE_BLOCK | FYECF_INDENT_4 |
				 FYECF_WIDTH_INF | FYECF_DOC_START_MARK_OFF |
				 FYECF_DOC_END_MARK_OFF | FYECF_STRIP_TAGS,
			.output = emit_out,
			.diag = yaml_quiet_diag(),
		};
		struct fy_emitter *em;
		int r;

		if (i > 0)
			buf_adds(out, "---\n");
		ecfg.userdata = out;
		if (!(em = fy_emitter_create(&ecfg)))
			return err_set(err, ERR_FAIL, "cannot emit YAML");
		r = fy_emit_document(em, d->v[i]);
		fy_emitter_destroy(em);
		if (r != 0)
			return err_set(err, ERR_FAIL, "cannot emit YAML");
		if (out->len && out->ptr[out->len - 1] != '\n')
			buf_addch(out, '\n');
	}
	return 0;
}

/* YAML 1.2 core-schema kind of a scalar: 0 string, 1 null, 2 bool, 3 number. */
static int
scalar_kind(struct fy_node *n)
{
	size_t len;
	const char *t = fy_node_get_scalar(n, &len);
	char buf[64];

	if (fy_node_get_style(n) != FYNS_PLAIN)
		return 0;
	if (!t || len == 0)
		return 1;
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, t, len);
	buf[len] = '\0';
	if (!strcmp(buf, "~") || !strcmp(buf, "null") || !strcmp(buf, "Null") ||
	    !strcmp(buf, "NULL"))
		return 1;
	if (!strcmp(buf, "true") || !strcmp(buf, "false") ||
	    !strcmp(buf, "True") || !strcmp(buf, "False") ||
	    !strcmp(buf, "TRUE") || !strcmp(buf, "FALSE"))
		return 2;
	if (strspn(buf, "0123456789+-.eE") == len && strpbrk(buf, "0123456789"))
		return 3;
	return 0;
}

static bool
node_equal(struct fy_node *a, struct fy_node *b)
{
	struct fy_node_pair *p;
	void *it = NULL;

	if (!a || !b)
		return a == b;
	if (fy_node_get_type(a) != fy_node_get_type(b))
		return false;
	switch (fy_node_get_type(a)) {
	case FYNT_SCALAR: {
		size_t la, lb;
		const char *ta = fy_node_get_scalar(a, &la);
		const char *tb = fy_node_get_scalar(b, &lb);

		if (scalar_kind(a) != scalar_kind(b))
			return false;
		if (scalar_kind(a) == 1)
			return true;
		return la == lb && (la == 0 || memcmp(ta, tb, la) == 0);
	}
	case FYNT_SEQUENCE: {
		int n = fy_node_sequence_item_count(a);

		if (n != fy_node_sequence_item_count(b))
			return false;
		for (int i = 0; i < n; i++)
			if (!node_equal(fy_node_sequence_get_by_index(a, i),
					fy_node_sequence_get_by_index(b, i)))
				return false;
		return true;
	}
	case FYNT_MAPPING:
		if (fy_node_mapping_item_count(a) != fy_node_mapping_item_count(b))
			return false;
		while ((p = fy_node_mapping_iterate(a, &it)) != NULL) {
			struct fy_node_pair *q = fy_node_mapping_lookup_pair(b,
				fy_node_pair_key(p));

			if (!q || !node_equal(fy_node_pair_value(p),
					      fy_node_pair_value(q)))
				return false;
		}
		return true;
	}
	return false;
}

bool
ydocs_equal(const struct ydocs *a, const struct ydocs *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!node_equal(fy_document_root(a->v[i]),
				fy_document_root(b->v[i])))
			return false;
	return true;
}

struct fy_node *
y_str(struct fy_document *doc, const char *s)
{
	struct fy_node *n;

	/* An empty plain scalar would read back as null: quote it. */
	if (!*s)
		n = fy_node_build_from_string(doc, "\"\"", 2);
	else
		n = fy_node_create_scalar_copy(doc, s, strlen(s));
	if (!n)
		abort();
	return n;
}

struct fy_node *
y_map(struct fy_document *doc)
{
	struct fy_node *n = fy_node_create_mapping(doc);

	if (!n)
		abort();
	return n;
}

struct fy_node *
y_seq(struct fy_document *doc)
{
	struct fy_node *n = fy_node_create_sequence(doc);

	if (!n)
		abort();
	return n;
}

void
y_put(struct fy_node *map, const char *key, struct fy_node *val)
{
	struct fy_document *doc = fy_node_document(map);

	if (fy_node_mapping_append(map, y_str(doc, key), val) != 0)
		abort();
}

void
y_puts(struct fy_node *map, const char *key, const char *val)
{
	y_put(map, key, y_str(fy_node_document(map), val));
}

void
y_puts_secret(struct fy_node *map, const char *key, const char *val)
{
	struct fy_node *n;

	if (!*val) {
		y_puts(map, key, val);
		return;
	}
	if (!(n = fy_node_create_scalar(fy_node_document(map), val, strlen(val))))
		abort();
	y_put(map, key, n);
}

struct fy_node *
y_get(struct fy_node *map, const char *key)
{
	if (!map || fy_node_get_type(map) != FYNT_MAPPING)
		return NULL;
	return fy_node_mapping_lookup_by_string(map, key, strlen(key));
}

char *
y_get_str(struct fy_node *map, const char *key)
{
	struct fy_node *n = y_get(map, key);
	const char *s;
	size_t len;

	if (!n || fy_node_get_type(n) != FYNT_SCALAR)
		return NULL;
	s = fy_node_get_scalar(n, &len);
	if (!s)
		return NULL;
	return xstrndup(s, len);
}
