#include "config/decode.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/net.h"

void
decode_node_pos(struct fy_node *n, int *line, int *col)
{
	*line = 0;
	*col = 0;
	while (n) {
		struct fy_token *t;
		void *it = NULL;

		switch (fy_node_get_type(n)) {
		case FYNT_SCALAR:
			t = fy_node_get_scalar_token(n);
			if (t) {
				const struct fy_mark *m = fy_token_start_mark(t);

				if (m) {
					*line = m->line + 1;
					*col = m->column + 1;
				}
			}
			return;
		case FYNT_MAPPING: {
			struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);

			n = p ? fy_node_pair_key(p) : NULL;
			break;
		}
		case FYNT_SEQUENCE:
			n = fy_node_sequence_iterate(n, &it);
			break;
		default:
			return;
		}
	}
}

static void
vreport(struct dctx *c, enum diag_level lvl, struct fy_node *n,
	const char *path, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;
	int line, col;

	decode_node_pos(n, &line, &col);
	buf_vaddf(&b, fmt, ap);
	diag_add(c->diag, lvl, line, col, path, "%s", b.ptr);
	buf_release(&b);
}

void
decode_error(struct dctx *c, struct fy_node *n, const char *path,
	     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, DIAG_ERROR, n, path, fmt, ap);
	va_end(ap);
}

void
decode_warn(struct dctx *c, struct fy_node *n, const char *path,
	    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, DIAG_WARNING, n, path, fmt, ap);
	va_end(ap);
}

int
decode_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	int row[64], prev, tmp;

	if (la >= 63 || lb >= 63)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			int cost = tolower((unsigned char)a[i - 1]) !=
				   tolower((unsigned char)b[j - 1]);
			int best = prev + cost;

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

const char *
decode_suggest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	int bestd = 99;
	size_t i;
	int limit = (int)strlen(word) / 3 + 1;

	if (limit > 3)
		limit = 3;
	for (i = 0; i < n; i++) {
		int d = decode_distance(word, cands[i]);

		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return bestd <= limit ? best : NULL;
}

const char *
decode_kind_name(struct fy_node *n)
{
	if (!n || fy_node_is_null(n))
		return "nothing";
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		return "a mapping";
	case FYNT_SEQUENCE:
		return "a list";
	default:
		return "a scalar";
	}
}

const char *
decode_scalar(struct dctx *c, struct fy_node *n, const char *path,
	      const char *want)
{
	const char *s;

	if (!n || fy_node_get_type(n) != FYNT_SCALAR) {
		decode_error(c, n, path, "expected %s, got %s", want,
			     decode_kind_name(n));
		return NULL;
	}
	s = fy_node_get_scalar0(n);
	if (!s)
		decode_error(c, n, path, "expected %s", want);
	return s;
}

/* A plain (unquoted) scalar: the only kind that can be a number or bool. */
static int
is_plain(struct fy_node *n)
{
	return fy_node_get_style(n) == FYNS_PLAIN;
}

static int
parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!*s || (!isdigit((unsigned char)*s) && *s != '-'))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end)
		return -1;
	if (errno == ERANGE)
		return -2;   /* digits, but past what a long holds */
	if (errno)
		return -1;
	*out = v;
	return 0;
}

/* "4096", "4GiB", "512MiB", "1TiB", "8G": value in units of 1024^unit_exp. */
static int
parse_size(const char *s, int in_gib, long *out)
{
	char *end;
	double v;
	long mib;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno == ERANGE || v > 1e9) {
		*out = LONG_MAX;   /* a number, far out of any range */
		return *end && !strchr("MGT", *end) ? -1 : 0;
	}
	if (errno || v < 0)
		return -1;
	if (!*end) {
		if (end != s + strspn(s, "0123456789"))
			return -1;
		*out = (long)v;
		return 0;
	}
	if (!strcmp(end, "MiB") || !strcmp(end, "M") || !strcmp(end, "Mi"))
		mib = (long)v;
	else if (!strcmp(end, "GiB") || !strcmp(end, "G") || !strcmp(end, "Gi"))
		mib = (long)(v * 1024);
	else if (!strcmp(end, "TiB") || !strcmp(end, "T") || !strcmp(end, "Ti"))
		mib = (long)(v * 1024 * 1024);
	else
		return -1;
	if (in_gib) {
		if (mib % 1024)
			return -1;
		*out = mib / 1024;
	} else {
		*out = mib;
	}
	return 0;
}

static int
valid_duration(const char *s)
{
	int units = 0;

	if (!*s)
		return 0;
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
		if (*s == 'h' || *s == 's')
			s++;
		else if (*s == 'm')
			s += (s[1] == 's') ? 2 : 1;
		else
			return 0;
		units++;
	}
	return units > 0;
}

static int
valid_dns_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) ||
		      s[i] == '-'))
			return 0;
	return 1;
}

static void
store_strlist(struct str_list *l, struct dctx *c, struct fy_node *n,
	      const char *path, int allow_single)
{
	struct buf p = BUF_INIT;
	struct fy_node *item;
	void *it = NULL;
	size_t i = 0;

	if (allow_single && n && fy_node_get_type(n) == FYNT_SCALAR) {
		const char *s = fy_node_get_scalar0(n);

		l->v = xcalloc(1, sizeof(char *));
		l->v[0] = xstrdup(s ? s : "");
		l->n = 1;
		return;
	}
	if (!n || fy_node_get_type(n) != FYNT_SEQUENCE) {
		decode_error(c, n, path, "expected a list of strings, got %s",
			     decode_kind_name(n));
		return;
	}
	l->v = xcalloc((size_t)fy_node_sequence_item_count(n) + 1,
		       sizeof(char *));
	while ((item = fy_node_sequence_iterate(n, &it))) {
		const char *s;

		buf_reset(&p);
		buf_addf(&p, "%s[%zu]", path, i);
		s = decode_scalar(c, item, p.ptr, "a string");
		if (s)
			l->v[l->n++] = xstrdup(s);
		i++;
	}
	buf_release(&p);
}

static bool
is_env_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/*
 * "${VAR}", "file:PATH" or a literal. Messages never quote the text: a
 * malformed reference may be the secret itself pasted in the wrong place.
 * A reference that cannot be used keeps kind SECRET_ENV with text NULL, so
 * the validator neither calls it missing nor looks it up.
 */
static void
decode_secret(struct dctx *c, struct fy_node *n, struct secret_ref *r,
	      const char *s, const char *path)
{
	size_t len = strlen(s);

	if (!strncmp(s, "${", 2)) {
		r->kind = SECRET_ENV;
		if (s[len - 1] != '}')
			decode_error(c, n, path,
				     "a reference starts with '${' but has no "
				     "closing '}'");
		else if (!is_env_name(s + 2, len - 3))
			decode_error(c, n, path,
				     "not a valid environment variable "
				     "reference: write ${NAME}, a name of "
				     "letters, digits and '_' not starting "
				     "with a digit");
		else
			r->text = xstrndup(s + 2, len - 3);
	} else if (s[0] == '$' && is_env_name(s + 1, len - 1)) {
		/* A shell-style reference would be sent as the secret. */
		r->kind = SECRET_ENV;
		decode_error(c, n, path,
			     "'%s' would be taken as the secret itself; did you "
			     "mean '${%s}'?", s, s + 1);
	} else if (!strncmp(s, "file:", 5)) {
		r->kind = SECRET_FILE;
		if (!s[5])
			decode_error(c, n, path, "file: needs a path (file:PATH, "
				     "relative to the env folder)");
		else
			r->text = xstrdup(s + 5);
	} else if (len == 0) {
		decode_error(c, n, path, "secret is empty");
	} else {
		r->kind = SECRET_LITERAL;
		r->text = xstrdup(s);
	}
}

static void
decode_field(struct dctx *c, const struct field *f, struct fy_node *n,
	     void *base, const char *path)
{
	void *dst = (char *)base + f->off;
	const char *s = NULL;
	long v;
	int r;

	/* `key:` with no value means "not set", as in most YAML configs. */
	if (fy_node_is_null(n) && f->type != T_CUSTOM)
		return;
	switch (f->type) {
	case T_MAP:
		decode_map(c, n, dst, f->sub, path);
		return;
	case T_LIST: {
		struct buf p = BUF_INIT;
		struct fy_node *item;
		void *it = NULL;
		size_t count, i = 0;
		char *arr;

		if (fy_node_get_type(n) != FYNT_SEQUENCE) {
			decode_error(c, n, path, "expected a list, got %s",
				     decode_kind_name(n));
			return;
		}
		count = (size_t)fy_node_sequence_item_count(n);
		arr = xcalloc(count + 1, f->sub->elem_size);
		*(void **)dst = arr;
		*(size_t *)((char *)base + f->off2) = count;
		while ((item = fy_node_sequence_iterate(n, &it))) {
			buf_reset(&p);
			buf_addf(&p, "%s[%zu]", path, i);
			decode_map(c, item, arr + i * f->sub->elem_size, f->sub,
				   p.ptr);
			i++;
		}
		buf_release(&p);
		return;
	}
	case T_STRLIST:
	case T_STR_OR_LIST:
		store_strlist(dst, c, n, path, f->type == T_STR_OR_LIST);
		return;
	case T_CUSTOM:
		f->fn(c, n, dst, path);
		return;
	default:
		break;
	}

	switch (f->type) {
	case T_INT:
		s = decode_scalar(c, n, path, "an integer");
		if (!s)
			return;
		if ((r = parse_long(s, &v)) == -2) {
			decode_error(c, n, path, "%s is out of range (%ld..%ld)",
				     s, f->min, f->max);
			return;
		}
		if (r < 0) {
			decode_error(c, n, path, "expected an integer, got '%s'",
				     s);
			return;
		}
		if (!is_plain(n)) {
			decode_error(c, n, path,
				     "expected an integer, got the string '%s'; "
				     "remove the quotes", s);
			return;
		}
		if (v < f->min || v > f->max) {
			decode_error(c, n, path,
				     "%ld is out of range (%ld..%ld)", v,
				     f->min, f->max);
			return;
		}
		*(int *)dst = (int)v;
		return;
	case T_MIB:
	case T_GIB:
		s = decode_scalar(c, n, path, "a size");
		if (!s)
			return;
		if (parse_size(s, f->type == T_GIB, &v) < 0) {
			decode_error(c, n, path,
				     "'%s' is not a size (a number of %s, or "
				     "a number with MiB, GiB or TiB)", s,
				     f->type == T_GIB ? "GiB" : "MiB");
			return;
		}
		if (v < f->min || v > f->max) {
			decode_error(c, n, path,
				     "%s is out of range (%ld..%ld %s)", s,
				     f->min, f->max,
				     f->type == T_GIB ? "GiB" : "MiB");
			return;
		}
		*(int *)dst = (int)v;
		return;
	case T_BOOL:
		s = decode_scalar(c, n, path, "true or false");
		if (!s)
			return;
		if (is_plain(n) && (!strcmp(s, "true") || !strcmp(s, "True") ||
				    !strcmp(s, "TRUE")))
			*(bool *)dst = true;
		else if (is_plain(n) &&
			 (!strcmp(s, "false") || !strcmp(s, "False") ||
			  !strcmp(s, "FALSE")))
			*(bool *)dst = false;
		else
			decode_error(c, n, path,
				     "expected true or false, got '%s'", s);
		return;
	case T_ENUM: {
		size_t i, ne = 0;
		const char *sug;
		struct buf all = BUF_INIT;

		s = decode_scalar(c, n, path, "a string");
		if (!s)
			return;
		for (i = 0; f->enums[i]; i++) {
			if (!strcmp(s, f->enums[i])) {
				*(int *)dst = (int)i;
				return;
			}
			ne++;
		}
		for (i = 0; i < ne; i++)
			buf_addf(&all, "%s%s", i ? ", " : "", f->enums[i]);
		sug = decode_suggest(s, f->enums, ne);
		if (sug)
			decode_error(c, n, path,
				     "'%s' is not one of %s; did you mean '%s'?",
				     s, all.ptr, sug);
		else
			decode_error(c, n, path, "'%s' is not one of %s", s,
				     all.ptr);
		buf_release(&all);
		return;
	}
	default:
		break;
	}

	s = decode_scalar(c, n, path, "a string");
	if (!s)
		return;
	switch (f->type) {
	case T_NAME:
		if (!valid_dns_name(s)) {
			decode_error(c, n, path,
				     "'%s' is not a valid name (lowercase "
				     "letters, digits and '-', at most 63, "
				     "starting and ending with a letter or "
				     "digit)", s);
			return;
		}
		break;
	case T_IPV4:
		if (!net_ipv4_parse(s, NULL)) {
			decode_error(c, n, path, "'%s' is not an IPv4 address",
				     s);
			return;
		}
		break;
	case T_CIDR: {
		uint32_t a;
		int p;
		char nb[16];

		if (net_cidr_parse(s, &a, &p))
			break;
		if (net_ifaddr_parse(s, &a, &p)) {
			decode_error(c, n, path,
				     "'%s' has host bits set; did you mean "
				     "'%s/%d'?", s,
				     net_ipv4_str(a & net_mask(p), nb), p);
			return;
		}
		decode_error(c, n, path,
			     "'%s' is not an IPv4 network in CIDR notation "
			     "(like 10.0.0.0/24)", s);
		return;
	}
	case T_MAC: {
		char mac[18];

		if (!net_mac_parse(s, mac)) {
			decode_error(c, n, path,
				     "'%s' is not a MAC address (six hex "
				     "pairs separated by ':')", s);
			return;
		}
		if (strtol((char[]){ mac[0], mac[1], 0 }, NULL, 16) & 1) {
			decode_error(c, n, path,
				     "'%s' is a multicast MAC address; the "
				     "first byte must be even", s);
			return;
		}
		*(char **)dst = xstrdup(mac);
		return;
	}
	case T_URL:
		if (strncmp(s, "https://", 8) && strncmp(s, "http://", 7) &&
		    strncmp(s, "ssh://", 6) && strncmp(s, "git@", 4)) {
			decode_error(c, n, path, "'%s' is not a URL", s);
			return;
		}
		break;
	case T_DURATION:
		if (!valid_duration(s)) {
			decode_error(c, n, path,
				     "'%s' is not a duration (like 30s, 10m, "
				     "1h30m)", s);
			return;
		}
		break;
	case T_SECRET:
		decode_secret(c, n, dst, s, path);
		return;
	default:
		break;
	}
	*(char **)dst = xstrdup(s);
}

void
decode_map(struct dctx *c, struct fy_node *n, void *base,
	   const struct schema *s, const char *path)
{
	const char *keys[64];
	size_t nkeys = 0, i;
	const struct field *f;
	struct fy_node_pair *pair;
	struct buf p = BUF_INIT;
	unsigned char seen[64] = { 0 };
	void *it = NULL;

	if (!n || fy_node_get_type(n) != FYNT_MAPPING) {
		decode_error(c, n, path, "expected a mapping, got %s",
			     decode_kind_name(n));
		return;
	}
	for (f = s->fields; f->key && nkeys < 64; f++)
		keys[nkeys++] = f->key;
	while ((pair = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *k = fy_node_pair_key(pair);
		struct fy_node *v = fy_node_pair_value(pair);
		const char *key;

		buf_reset(&p);
		key = k && fy_node_get_type(k) == FYNT_SCALAR ?
			      fy_node_get_scalar0(k) : NULL;
		if (!key) {
			decode_error(c, k, path, "keys must be plain strings");
			continue;
		}
		buf_addf(&p, "%s%s%s", path, *path ? "." : "", key);
		for (i = 0; i < nkeys; i++)
			if (!strcmp(keys[i], key))
				break;
		if (i == nkeys) {
			const char *sug = decode_suggest(key, keys, nkeys);

			if (sug) {
				decode_error(c, k, p.ptr,
					     "unknown key; did you mean '%s'?",
					     sug);
				/* Don't also call the real key missing. */
				for (i = 0; i < nkeys; i++)
					if (!strcmp(keys[i], sug))
						seen[i] = 1;
			}
			else
				decode_error(c, k, p.ptr, "unknown key");
			continue;
		}
		seen[i] = 1;
		decode_field(c, &s->fields[i], v ? v : k, base, p.ptr);
	}
	for (i = 0; i < nkeys; i++) {
		if (!(s->fields[i].flags & F_REQUIRED) || seen[i])
			continue;
		buf_reset(&p);
		buf_addf(&p, "%s%s%s", path, *path ? "." : "",
			 s->fields[i].key);
		decode_error(c, n, path[0] ? path : NULL,
			     "missing required key '%s'", s->fields[i].key);
	}
	buf_release(&p);
}
