#include "config/talos_schema.h"

#include <ctype.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/decode.h"
#include "util/buf.h"

struct tctx {
	const struct talos_schema *s;
	enum diag_level level;
	const char *note;      /* appended to findings: which schema */
	ts_report_fn fn;
	void *ctx;
	int findings;          /* counted even when fn is NULL (dry run) */
};

static void __attribute__((format(printf, 5, 6)))
report(struct tctx *t, enum diag_level lvl, struct fy_node *n,
       const char *path, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	t->findings++;
	if (!t->fn)
		return;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	buf_adds(&b, t->note);
	t->fn(t->ctx, lvl, n, path, b.ptr);
	buf_release(&b);
}

static const char *
got(struct fy_node *n)
{
	if (fy_node_get_type(n) == FYNT_SCALAR && fy_node_get_style(n) != FYNS_PLAIN)
		return "a quoted string";
	return decode_kind_name(n);
}

static bool
plain_scalar(struct fy_node *n, const char **s)
{
	if (fy_node_get_type(n) != FYNT_SCALAR ||
	    fy_node_get_style(n) != FYNS_PLAIN)
		return false;
	*s = fy_node_get_scalar0(n);
	return *s != NULL;
}

/* What Go's YAML decoder takes for an int: decimal, 0x, 0o, 0b, a sign. */
static bool
is_int(const char *s)
{
	const char *digits = "0123456789";

	if (*s == '-' || *s == '+')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		digits = "0123456789abcdefABCDEF", s += 2;
	else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
		digits = "01234567", s += 2;
	else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
		digits = "01", s += 2;
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(digits, *s) && *s != '_')
			return false;
	return true;
}

/* YAML 1.2 booleans plus the 1.1 words Go's decoder accepts for a bool. */
static bool
is_bool(const char *s)
{
	static const char *const words[] = {
		"true", "True", "TRUE", "false", "False", "FALSE",
		"yes", "Yes", "YES", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF", NULL
	};
	size_t i;

	for (i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return true;
	return false;
}

static bool
is_null(struct fy_node *n)
{
	const char *s;

	if (fy_node_is_null(n))
		return true;
	if (!plain_scalar(n, &s))
		return false;
	return !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL") ||
	       !strcmp(s, "~");
}

static void check(struct tctx *t, unsigned idx, struct fy_node *n,
		  const char *path);

static void
check_obj(struct tctx *t, const struct ts_node *sn, struct fy_node *n,
	  const char *path)
{
	const struct ts_prop *props = t->s->props + sn->a;
	const char *names[512];
	struct fy_node_pair *p;
	struct buf kp = BUF_INIT;
	void *it = NULL;
	size_t i, nn = sn->n < 512 ? sn->n : 512;

	for (i = 0; i < nn; i++)
		names[i] = props[i].name;
	while ((p = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *k = fy_node_pair_key(p);
		struct fy_node *v = fy_node_pair_value(p);
		const char *key = k && fy_node_get_type(k) == FYNT_SCALAR
					  ? fy_node_get_scalar0(k) : NULL;

		if (!key)
			continue;
		buf_reset(&kp);
		buf_addf(&kp, "%s%s%s", path, *path ? "." : "", key);
		/* Strategic merge: "$patch: delete" may stand in any mapping. */
		if (!strcmp(key, "$patch"))
			continue;
		for (i = 0; i < nn; i++)
			if (!strcmp(props[i].name, key))
				break;
		if (i == nn) {
			const char *sug = decode_suggest(key, names, nn);

			if (sug)
				report(t, t->level, k, kp.ptr,
				       "unknown key in the Talos config; did you "
				       "mean '%s'?", sug);
			else
				report(t, t->level, k, kp.ptr,
				       "unknown key in the Talos config");
			continue;
		}
		if (props[i].legacy)
			report(t, DIAG_WARNING, k, kp.ptr,
			       "deprecated: Talos v1.12 still reads this key "
			       "but its schema no longer has it (v1.11 did)");
		if (v)
			check(t, props[i].node, v, kp.ptr);
	}
	buf_release(&kp);
}

static void
kind_error(struct tctx *t, struct fy_node *n, const char *path,
	   const char *want)
{
	report(t, t->level, n, path, "expected %s, got %s", want, got(n));
}

static void
check(struct tctx *t, unsigned idx, struct fy_node *n, const char *path)
{
	const struct ts_node *sn = &t->s->nodes[idx];
	struct buf ip = BUF_INIT;
	struct fy_node *item;
	struct fy_node_pair *p;
	const char *s;
	void *it = NULL;
	size_t i = 0;

	if (!n || is_null(n))
		return;   /* `key:` with nothing, or null: left as it is */
	/* Strategic merge: {$patch: delete} may replace any value. */
	if (fy_node_get_type(n) == FYNT_MAPPING &&
	    fy_node_mapping_lookup_by_string(n, "$patch", (size_t)-1))
		return;
	switch (sn->kind) {
	case TS_ANY:
		return;
	case TS_STR:
		if (fy_node_get_type(n) != FYNT_SCALAR)
			kind_error(t, n, path, "a string");
		return;
	case TS_INT:
		if (!plain_scalar(n, &s) || !is_int(s))
			kind_error(t, n, path, fy_node_get_type(n) == FYNT_SCALAR &&
				   fy_node_get_style(n) != FYNS_PLAIN
					   ? "an integer (without quotes)"
					   : "an integer");
		return;
	case TS_BOOL:
		if (!plain_scalar(n, &s) || !is_bool(s))
			kind_error(t, n, path, "true or false");
		return;
	case TS_ENUM: {
		const char *const *vals = t->s->enums + sn->a;
		struct buf all = BUF_INIT;

		s = fy_node_get_type(n) == FYNT_SCALAR ? fy_node_get_scalar0(n)
						       : NULL;
		if (s && !*s)
			return;   /* "": the zero value, i.e. unset */
		for (i = 0; s && i < sn->n; i++)
			if (!strcmp(s, vals[i]))
				return;
		for (i = 0; i < sn->n; i++)
			buf_addf(&all, "%s%s", i ? ", " : "", vals[i]);
		report(t, t->level, n, path, "expected one of %s", all.ptr);
		buf_release(&all);
		return;
	}
	case TS_OBJ:
	case TS_OPEN:
	case TS_MAP:
		if (fy_node_get_type(n) != FYNT_MAPPING) {
			kind_error(t, n, path, "a mapping");
			return;
		}
		if (sn->kind == TS_OBJ)
			check_obj(t, sn, n, path);
		else if (sn->kind == TS_MAP)
			while ((p = fy_node_mapping_iterate(n, &it))) {
				struct fy_node *k = fy_node_pair_key(p);

				buf_reset(&ip);
				buf_addf(&ip, "%s%s%s", path, *path ? "." : "",
					 k && fy_node_get_type(k) == FYNT_SCALAR
						 ? fy_node_get_scalar0(k) : "?");
				check(t, sn->a, fy_node_pair_value(p), ip.ptr);
			}
		buf_release(&ip);
		return;
	case TS_ARR:
		if (fy_node_get_type(n) != FYNT_SEQUENCE) {
			kind_error(t, n, path, "a list");
			return;
		}
		while ((item = fy_node_sequence_iterate(n, &it))) {
			buf_reset(&ip);
			buf_addf(&ip, "%s[%zu]", path, i++);
			check(t, sn->a, item, ip.ptr);
		}
		buf_release(&ip);
		return;
	case TS_ONEOF:
		for (i = 0; i < sn->n; i++) {
			struct tctx dry = *t;

			dry.fn = NULL;
			dry.findings = 0;
			check(&dry, t->s->alts[sn->a + i], n, path);
			if (!dry.findings)
				return;
		}
		kind_error(t, n, path, "a value of another kind");
		return;
	}
}

static const struct talos_schema *
schema_for(int minor)
{
	(void)minor;
	return &talos_schema_v1_12;   /* the only table; newer minors warn */
}

void
talos_schema_check(struct fy_node *root, int minor, const char *path,
		   ts_report_fn fn, void *ctx)
{
	struct tctx t = { 0 };
	struct fy_node *kn;
	const char *kind = NULL;
	const char *kinds[64];
	size_t i, nk = 0;
	char note[96];

	t.s = schema_for(minor);
	t.fn = fn;
	t.ctx = ctx;
	if (minor == t.s->minor) {
		t.level = DIAG_ERROR;
		t.note = "";
	} else {
		/* The table is v1.12's: a newer minor may have added keys. */
		t.level = DIAG_WARNING;
		snprintf(note, sizeof(note), " (checked against Talos v1.%d; "
			 "strata has no v1.%d schema)", t.s->minor, minor);
		t.note = note;
	}
	if (!root || fy_node_is_null(root))
		return;
	if (fy_node_get_type(root) != FYNT_MAPPING) {
		kind_error(&t, root, path, "a mapping (a strategic merge patch)");
		return;
	}
	kn = fy_node_mapping_lookup_by_string(root, "kind", (size_t)-1);
	if (kn && fy_node_get_type(kn) == FYNT_SCALAR)
		kind = fy_node_get_scalar0(kn);
	for (i = 0; i < t.s->n_docs; i++) {
		const char *dk = t.s->docs[i].kind;

		if (dk && nk < 64)
			kinds[nk++] = dk;
		if ((!dk && !kind) || (dk && kind && !strcmp(dk, kind))) {
			check(&t, t.s->docs[i].node, root, path);
			return;
		}
	}
	if (kind) {
		const char *sug = decode_suggest(kind, kinds, nk);
		struct buf b = BUF_INIT;

		buf_addf(&b, "'%s' is not a Talos config document kind", kind);
		if (sug)
			buf_addf(&b, "; did you mean '%s'?", sug);
		report(&t, t.level, kn, path, "%s", b.ptr);
		buf_release(&b);
	}
}
