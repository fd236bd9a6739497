#include "talos/tyaml.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

int
ydocs_parse(struct ydocs *out, const char *text, size_t len, struct err *err)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd = NULL;
	struct fy_parser *fyp = NULL;
	struct fy_document *doc;
	int r = 0;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.colorize = false;
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

/*
 * ---- emitting ----
 *
 * The output is what libfyaml's emitter writes with EMIT_FLAGS. For the
 * documents strata builds (and most patches) that is a simple layout,
 * written here directly: libfyaml's emitter walks every scalar through its
 * character iterator, ~25 ns a byte, which made emitting the biggest cost
 * of a `strata gen` with nothing to write. The direct path takes mappings
 * and sequences of any style (block mode writes them all as block), and
 * scalars whose text needs no escaping in the style they have; a document
 * with anything else (tags, anchors, aliases, literal or folded or escaped
 * scalars, keys that are not short scalars, a sequence directly in a
 * sequence, a root that is not a non-empty mapping, directives, JSON input)
 * is emitted by libfyaml, whole.
 */
#define EMIT_FLAGS (FYECF_MODE_BLOCK | FYECF_INDENT_4 | FYECF_WIDTH_INF | \
		    FYECF_DOC_START_MARK_OFF | FYECF_DOC_END_MARK_OFF | \
		    FYECF_STRIP_TAGS)
#define EMIT_INDENT 4
#define EMIT_KEY_MAX 128

enum { FORM_NONE, FORM_PLAIN, FORM_DQ, FORM_SQ };

/*
 * Text libfyaml writes plain when the node has no style of its own (built
 * here) or came from a plain scalar: starts with a letter, digit or '/',
 * then letters, digits, "._/+=:-" and single spaces, and ends with neither
 * ':' nor a space. (No indicator, no ": " or " #", nothing that reads as
 * a document marker.)
 */
static bool
ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool
plain_text_ok(const char *t, size_t len)
{
	if (len == 0 || !(ascii_alnum(t[0]) || t[0] == '/') ||
	    t[len - 1] == ':' || t[len - 1] == ' ')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];

		if (ascii_alnum(c) || (c && strchr("._/+=:-", c)))
			continue;
		if (c == ' ' && t[i + 1] != ' ' && t[i - 1] != ':')
			continue;
		return false;
	}
	return true;
}

/* Quoted text that needs no escape: printable ASCII without the quote (and
 * without a backslash for double quotes). */
static bool
quoted_text_ok(const char *t, size_t len, char q)
{
	for (size_t i = 0; i < len; i++)
		if (t[i] < 0x20 || t[i] > 0x7e || t[i] == q ||
		    (q == '"' && t[i] == '\\'))
			return false;
	return true;
}

static int
scalar_form(struct fy_node *n, const char **t, size_t *len)
{
	if (fy_node_get_tag_token(n))
		return FORM_NONE;
	if (!(*t = fy_node_get_scalar(n, len)))
		return FORM_NONE;
	switch (fy_node_get_style(n)) {
	case FYNS_ANY:
	case FYNS_PLAIN:
		return plain_text_ok(*t, *len) ? FORM_PLAIN : FORM_NONE;
	case FYNS_DOUBLE_QUOTED:
		return quoted_text_ok(*t, *len, '"') ? FORM_DQ : FORM_NONE;
	case FYNS_SINGLE_QUOTED:
		return quoted_text_ok(*t, *len, '\'') ? FORM_SQ : FORM_NONE;
	default:
		return FORM_NONE;
	}
}

static bool
emit_scalar(struct buf *o, struct fy_node *n, size_t max)
{
	const char *t;
	size_t len;
	int form = scalar_form(n, &t, &len);

	if (form == FORM_NONE || len > max)
		return false;
	if (form != FORM_PLAIN)
		buf_addch(o, form == FORM_DQ ? '"' : '\'');
	buf_add(o, t, len);
	if (form != FORM_PLAIN)
		buf_addch(o, form == FORM_DQ ? '"' : '\'');
	return true;
}

static void
emit_indent(struct buf *o, int col)
{
	static const char spaces[] = "                                ";

	for (; col > 0; col -= (int)sizeof(spaces) - 1)
		buf_add(o, spaces, col < (int)sizeof(spaces) - 1
			? (size_t)col : sizeof(spaces) - 1);
}

static bool
collection_ok(struct fy_node *n)
{
	return !fy_node_get_tag_token(n);
}

static bool emit_seq(struct buf *o, struct fy_node *seq, int col, int depth);

/* The pairs of a non-empty mapping, keys at col; the first one right where
 * the output is when inline (after a sequence's "-   "). */
static bool
emit_map(struct buf *o, struct fy_node *map, int col, bool inline_first,
	 int depth)
{
	struct fy_node_pair *p;
	void *it = NULL;
	bool first = true;

	if (depth > 64 || !collection_ok(map))
		return false;
	while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);

		if (!k || !v || fy_node_get_type(k) != FYNT_SCALAR)
			return false;
		if (!first || !inline_first)
			emit_indent(o, col);
		first = false;
		if (!emit_scalar(o, k, EMIT_KEY_MAX))
			return false;
		buf_addch(o, ':');
		switch (fy_node_get_type(v)) {
		case FYNT_SCALAR:
			buf_addch(o, ' ');
			if (!emit_scalar(o, v, (size_t)-1))
				return false;
			buf_addch(o, '\n');
			break;
		case FYNT_MAPPING:
			if (fy_node_mapping_is_empty(v)) {
				if (!collection_ok(v))
					return false;
				buf_adds(o, " {}\n");
			} else {
				buf_addch(o, '\n');
				if (!emit_map(o, v, col + EMIT_INDENT, false, depth + 1))
					return false;
			}
			break;
		case FYNT_SEQUENCE:
			if (fy_node_sequence_is_empty(v)) {
				if (!collection_ok(v))
					return false;
				buf_adds(o, " []\n");
			} else {
				buf_addch(o, '\n');
				if (!emit_seq(o, v, col, depth + 1))
					return false;
			}
			break;
		default:
			return false;
		}
	}
	return !first;
}

/* The items of a non-empty sequence, "-" at col. */
static bool
emit_seq(struct buf *o, struct fy_node *seq, int col, int depth)
{
	struct fy_node *item;
	void *it = NULL;

	if (depth > 64 || !collection_ok(seq))
		return false;
	while ((item = fy_node_sequence_iterate(seq, &it)) != NULL) {
		emit_indent(o, col);
		switch (fy_node_get_type(item)) {
		case FYNT_SCALAR:
			buf_adds(o, "- ");
			if (!emit_scalar(o, item, (size_t)-1))
				return false;
			buf_addch(o, '\n');
			break;
		case FYNT_MAPPING:
			if (fy_node_mapping_is_empty(item)) {
				if (!collection_ok(item))
					return false;
				buf_adds(o, "- {}\n");
			} else {
				buf_adds(o, "-   ");
				if (!emit_map(o, item, col + EMIT_INDENT, true, depth + 1))
					return false;
			}
			break;
		default:
			return false;
		}
	}
	return true;
}

/* Appends doc's text to o, or returns false with o as it was. */
static bool
emit_direct(struct buf *o, struct fy_document *doc)
{
	struct fy_document_state *st = fy_document_get_document_state(doc);
	struct fy_node *root = fy_document_root(doc);
	size_t mark = o->len;
	void *it = NULL;

	if (!st || fy_document_state_version_explicit(st) ||
	    fy_document_state_tags_explicit(st) ||
	    fy_document_state_json_mode(st) ||
	    fy_document_anchor_iterate(doc, &it) ||
	    !root || fy_node_get_type(root) != FYNT_MAPPING)
		return false;
	if (emit_map(o, root, 0, false, 0))
		return true;
	if (o->cap) {
		memset(o->ptr + mark, 0, o->len - mark);
		o->len = mark;
	}
	return false;
}

int
ydocs_emit(struct buf *out, const struct ydocs *d, struct err *err)
{
	for (size_t i = 0; i < d->n; i++) {
		char *s;

		if (i > 0)
			buf_adds(out, "---\n");
		if (emit_direct(out, d->v[i]))
			continue;
		s = fy_emit_document_to_string(d->v[i], EMIT_FLAGS);
		if (!s)
			return err_set(err, ERR_FAIL, "cannot emit YAML");
		buf_adds(out, s);
		if (out->len && out->ptr[out->len - 1] != '\n')
			buf_addch(out, '\n');
		free(s);
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
