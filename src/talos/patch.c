#include "talos/patch.h"
#include "util/yaml.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Remove key from map and free its key and value. */
static void
map_del(struct fy_node *map, const char *key)
{
	struct fy_node *k = y_str(fy_node_document(map), key);

	/* libfyaml frees the lookup key itself. */
	fy_node_free(fy_node_mapping_remove_by_key(map, k));
}

static bool
scalar_is(struct fy_node *n, const char *s)
{
	const char *t;
	size_t len;

	if (!n || fy_node_get_type(n) != FYNT_SCALAR)
		return false;
	t = fy_node_get_scalar(n, &len);
	return t && len == strlen(s) && memcmp(t, s, len) == 0;
}

static bool
is_delete(struct fy_node *n)
{
	struct fy_node_pair *p;
	void *it = NULL;
	char *v;
	bool del;

	/*
	 * The lookup below parses "$patch" into a document each time. It can
	 * only find a key whose text is "$patch", and nearly every mapping
	 * has none: look for one first.
	 */
	if (!n || fy_node_get_type(n) != FYNT_MAPPING)
		return false;
	while ((p = fy_node_mapping_iterate(n, &it)) != NULL)
		if (scalar_is(fy_node_pair_key(p), "$patch"))
			break;
	if (!p)
		return false;
	v = y_get_str(n, "$patch");
	del = v && strcmp(v, "delete") == 0;
	free(v);
	return del;
}

static bool
is_zero(struct fy_node *n)
{
	const char *t;
	size_t len;

	if (!n)
		return true;
	if (fy_node_get_type(n) != FYNT_SCALAR)
		return false;
	t = fy_node_get_scalar(n, &len);
	return !t || len == 0 ||
	       (fy_node_get_style(n) == FYNS_PLAIN &&
		((len == 4 && memcmp(t, "null", 4) == 0) ||
		 (len == 1 && t[0] == '~')));
}

/* Copy src into doc without "$patch" keys. */
static struct fy_node *
copy_clean(struct fy_document *doc, struct fy_node *src)
{
	struct fy_node *n = fy_node_copy(doc, src);
	struct fy_node_pair *p;
	void *it = NULL;

	if (!n)
		abort();
	if (fy_node_get_type(n) == FYNT_MAPPING) {
		bool del = false;

		while ((p = fy_node_mapping_iterate(n, &it)) != NULL)
			if (scalar_is(fy_node_pair_key(p), "$patch"))
				del = true;
		if (del)
			map_del(n, "$patch");
	}
	return n;
}

static const char *
merge_key(const char *path)
{
	if (strcmp(path, "machine.network.interfaces") == 0)
		return "interface";
	if (strstr(path, ".vlans") && strcmp(strrchr(path, '.'), ".vlans") == 0)
		return "vlanId";
	if (strcmp(path, "cluster.apiServer.admissionControl") == 0)
		return "name";
	if (strcmp(path, "configFiles") == 0)  /* ExtensionServiceConfig */
		return "mountPath";
	return NULL;
}

static bool
replaces(const char *path)
{
	return strcmp(path, "cluster.network.podSubnets") == 0 ||
	       strcmp(path, "cluster.network.serviceSubnets") == 0 ||
	       strcmp(path, "cluster.apiServer.auditPolicy") == 0;
}

/* Every field of pat (but $patch) is present and equal in item. */
static bool
item_matches(struct fy_node *item, struct fy_node *pat)
{
	struct fy_node_pair *p;
	void *it = NULL;
	bool any = false;

	if (fy_node_get_type(pat) != FYNT_MAPPING)
		return fy_node_compare(item, pat);
	if (fy_node_get_type(item) != FYNT_MAPPING)
		return false;
	while ((p = fy_node_mapping_iterate(pat, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(p), *o;

		if (scalar_is(k, "$patch"))
			continue;
		o = fy_node_mapping_lookup_by_string(item,
			fy_node_get_scalar0(k), (size_t)-1);
		if (!o || !fy_node_compare(o, fy_node_pair_value(p)))
			return false;
		any = true;
	}
	return any;
}

static struct fy_node *
find_keyed(struct fy_node *seq, struct fy_node *pat, const char *key)
{
	struct fy_node *want = y_get(pat, key), *item;
	void *it = NULL;

	if (!want && strcmp(key, "interface") == 0) {
		key = "deviceSelector";
		want = y_get(pat, key);
	}
	if (!want)
		return NULL;
	while ((item = fy_node_sequence_iterate(seq, &it)) != NULL) {
		struct fy_node *have = y_get(item, key);

		if (have && fy_node_compare(have, want))
			return item;
	}
	return NULL;
}

static int merge_map(struct fy_node *dst, struct fy_node *src,
		     const char *path, const char *docname, struct err *err);

static int
merge_seq(struct fy_node *dst, struct fy_node *src, const char *path,
	  const char *docname, struct err *err)
{
	struct fy_document *doc = fy_node_document(dst);
	const char *key = merge_key(path);
	struct fy_node *item;
	void *it = NULL;
	int r;

	while ((item = fy_node_sequence_iterate(src, &it)) != NULL) {
		struct fy_node *match = NULL;

		if (is_delete(item)) {
			struct fy_node *cand;
			void *jt = NULL;

			if (key)
				match = find_keyed(dst, item, key);
			while (!match &&
			       (cand = fy_node_sequence_iterate(dst, &jt)) != NULL)
				if (item_matches(cand, item))
					match = cand;
			if (match)
				fy_node_free(fy_node_sequence_remove(dst, match));
			continue;
		}
		if (key && fy_node_get_type(item) == FYNT_MAPPING &&
		    (match = find_keyed(dst, item, key)) != NULL) {
			if ((r = merge_map(match, item, path, docname, err)) < 0)
				return r;
			continue;
		}
		fy_node_sequence_append(dst, copy_clean(doc, item));
	}
	return 0;
}

static int
merge_map(struct fy_node *dst, struct fy_node *src, const char *path,
	  const char *docname, struct err *err)
{
	struct fy_document *doc = fy_node_document(dst);
	struct fy_node_pair *p;
	void *it = NULL;
	int r;

	while ((p = fy_node_mapping_iterate(src, &it)) != NULL) {
		struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
		struct fy_node_pair *dp;
		struct fy_node *d;
		const char *ks = fy_node_get_scalar0(k);
		char sub[512];

		if (!ks || strcmp(ks, "$patch") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", ks);
		dp = fy_node_mapping_lookup_pair_by_string(dst, ks, (size_t)-1);
		d = dp ? fy_node_pair_value(dp) : NULL;
		if (v && fy_node_get_type(v) == FYNT_MAPPING && is_delete(v)) {
			if (!dp)
				return err_set(err, ERR_FAIL, "patch delete: path '%s' in document '%s': failed to delete path '%s': lookup failed",
					       sub, docname, sub);
			map_del(dst, ks);
			continue;
		}
		if (!dp && v && fy_node_get_type(v) == FYNT_MAPPING) {
			/* Merge into a new map so deletes below still fail. */
			struct fy_node *m = y_map(doc);

			y_put(dst, ks, m);
			if ((r = merge_map(m, v, sub, docname, err)) < 0)
				return r;
			continue;
		}
		if (!dp) {
			y_put(dst, ks, v ? copy_clean(doc, v) : y_str(doc, ""));
			continue;
		}
		if (replaces(sub) || !d || !v ||
		    fy_node_get_type(d) != fy_node_get_type(v)) {
			if (!is_zero(v))
				fy_node_pair_set_value(dp, copy_clean(doc, v));
			continue;
		}
		switch (fy_node_get_type(v)) {
		case FYNT_MAPPING:
			if ((r = merge_map(d, v, sub, docname, err)) < 0)
				return r;
			break;
		case FYNT_SEQUENCE:
			if ((r = merge_seq(d, v, sub, docname, err)) < 0)
				return r;
			break;
		default:
			if (!is_zero(v))
				fy_node_pair_set_value(dp, copy_clean(doc, v));
		}
	}
	return 0;
}

/* "apiVersion/kind[/name]", or "/v1alpha1" for the main document. */
static void
doc_id(char *out, size_t n, struct fy_node *root)
{
	char *api = y_get_str(root, "apiVersion"), *kind = y_get_str(root, "kind");
	char *name = y_get_str(root, "name");

	if (!kind)
		snprintf(out, n, "/v1alpha1");
	else
		snprintf(out, n, "%s/%s%s%s", api ? api : "", kind,
			 name ? "/" : "", name ? name : "");
	free(api);
	free(kind);
	free(name);
}


/* ---- JSON6902 (single-document configs only) ---- */

/* Decode one JSON-pointer token (~1 -> /, ~0 -> ~) into out. */
static void
ptr_token(char *out, size_t n, const char *s, size_t len)
{
	size_t j = 0;

	for (size_t i = 0; i < len && j + 1 < n; i++) {
		if (s[i] == '~' && i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
			out[j++] = s[i + 1] == '0' ? '~' : '/';
			i++;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
}

static bool
seq_index(struct fy_node *seq, const char *tok, int *idx, bool allow_end)
{
	int n = fy_node_sequence_item_count(seq);
	char *end;
	long v;

	if (allow_end && strcmp(tok, "-") == 0) {
		*idx = n;
		return true;
	}
	if (!*tok || (tok[0] == '0' && tok[1]) || strspn(tok, "0123456789") != strlen(tok))
		return false;
	v = strtol(tok, &end, 10);
	if (v > n || (!allow_end && v == n))
		return false;
	*idx = (int)v;
	return true;
}

/* Walk to the parent of the last token; *last gets that token. */
static struct fy_node *
ptr_parent(struct fy_node *root, const char *path, char *last, size_t n)
{
	struct fy_node *cur = root;
	const char *p = path, *slash;
	char tok[256];

	if (*p != '/')
		return NULL;
	for (;;) {
		p++;
		slash = strchr(p, '/');
		if (!slash) {
			ptr_token(last, n, p, strlen(p));
			return cur;
		}
		ptr_token(tok, sizeof(tok), p, (size_t)(slash - p));
		if (fy_node_get_type(cur) == FYNT_MAPPING) {
			cur = y_get(cur, tok);
		} else if (fy_node_get_type(cur) == FYNT_SEQUENCE) {
			int i;

			if (!seq_index(cur, tok, &i, false))
				return NULL;
			cur = fy_node_sequence_get_by_index(cur, i);
		} else {
			return NULL;
		}
		if (!cur)
			return NULL;
		p = slash;
	}
}

static struct fy_node *
ptr_get(struct fy_node *root, const char *path)
{
	struct fy_node *parent;
	char last[256];
	int i;

	if (!*path)
		return root;
	if (!(parent = ptr_parent(root, path, last, sizeof(last))))
		return NULL;
	if (fy_node_get_type(parent) == FYNT_MAPPING)
		return y_get(parent, last);
	if (fy_node_get_type(parent) == FYNT_SEQUENCE && seq_index(parent, last, &i, false))
		return fy_node_sequence_get_by_index(parent, i);
	return NULL;
}

static int
ptr_remove(struct fy_node *root, const char *path, struct err *err)
{
	struct fy_node *parent;
	char last[256];
	int i;

	parent = ptr_parent(root, path, last, sizeof(last));
	if (parent && fy_node_get_type(parent) == FYNT_MAPPING && y_get(parent, last)) {
		map_del(parent, last);
		return 0;
	}
	if (parent && fy_node_get_type(parent) == FYNT_SEQUENCE &&
	    seq_index(parent, last, &i, false)) {
		fy_node_free(fy_node_sequence_remove(parent,
			fy_node_sequence_get_by_index(parent, i)));
		return 0;
	}
	return err_set(err, ERR_FAIL, "json patch: path '%s' not found", path);
}

/* Add (or, with must_exist, replace) value at path; value is owned. */
static int
ptr_add(struct fy_node *root, const char *path, struct fy_node *value,
	bool must_exist, struct err *err)
{
	struct fy_node *parent;
	char last[256];
	int i;

	parent = ptr_parent(root, path, last, sizeof(last));
	if (parent && fy_node_get_type(parent) == FYNT_MAPPING) {
		struct fy_node_pair *p = fy_node_mapping_lookup_pair_by_string(parent, last, (size_t)-1);

		if (p) {
			fy_node_pair_set_value(p, value);
			return 0;
		}
		if (!must_exist) {
			y_put(parent, last, value);
			return 0;
		}
	} else if (parent && fy_node_get_type(parent) == FYNT_SEQUENCE &&
		   seq_index(parent, last, &i, !must_exist)) {
		int n = fy_node_sequence_item_count(parent);
		struct fy_node *at = i < n ? fy_node_sequence_get_by_index(parent, i) : NULL;

		if (!at)
			fy_node_sequence_append(parent, value);
		else
			fy_node_sequence_insert_before(parent, at, value);
		if (must_exist)
			fy_node_free(fy_node_sequence_remove(parent, at));
		return 0;
	}
	fy_node_free(value);
	return err_set(err, ERR_FAIL, "json patch: path '%s' not found", path);
}

static int
json6902_apply(struct fy_document *doc, struct fy_node *ops, struct err *err)
{
	struct fy_node *root = fy_document_root(doc), *op;
	void *it = NULL;
	int r = 0;

	while (r == 0 && (op = fy_node_sequence_iterate(ops, &it)) != NULL) {
		char *name = y_get_str(op, "op"), *path = y_get_str(op, "path");
		char *from = y_get_str(op, "from");
		struct fy_node *value = y_get(op, "value"), *src;

		if (!name || !path) {
			r = err_set(err, ERR_FAIL, "json patch: operation without op or path");
		} else if (!strcmp(name, "add") || !strcmp(name, "replace")) {
			r = value ? ptr_add(root, path, fy_node_copy(doc, value),
					    !strcmp(name, "replace"), err)
				  : err_set(err, ERR_FAIL, "json patch: %s '%s' without a value", name, path);
		} else if (!strcmp(name, "remove")) {
			r = ptr_remove(root, path, err);
		} else if (!strcmp(name, "test")) {
			src = ptr_get(root, path);
			if (!src || !value || !fy_node_compare(src, value))
				r = err_set(err, ERR_FAIL, "json patch: test '%s' failed", path);
		} else if ((!strcmp(name, "copy") || !strcmp(name, "move")) && from) {
			src = ptr_get(root, from);
			if (!src) {
				r = err_set(err, ERR_FAIL, "json patch: from '%s' not found", from);
			} else {
				struct fy_node *c = fy_node_copy(doc, src);

				if (!strcmp(name, "move"))
					r = ptr_remove(root, from, err);
				if (r == 0)
					r = ptr_add(root, path, c, false, err);
				else
					fy_node_free(c);
			}
		} else {
			r = err_set(err, ERR_FAIL, "json patch: unknown op '%s'", name);
		}
		free(name);
		free(path);
		free(from);
	}
	return r;
}

int
talos_patch_is_json6902(const struct ydocs *patch)
{
	return patch->n == 1 &&
	       fy_node_get_type(fy_document_root(patch->v[0])) == FYNT_SEQUENCE;
}

int
talos_patch_apply(struct ydocs *cfg, const struct ydocs *patch,
		  struct err *err)
{
	char (*ids)[256];
	int r;

	if (talos_patch_is_json6902(patch)) {
		if (cfg->n != 1)
			return err_set(err, ERR_FAIL, "JSON6902 patches are not supported for multi-document machine configuration");
		return json6902_apply(cfg->v[0], fy_document_root(patch->v[0]), err);
	}
	/*
	 * The id of every config document, kept in step with cfg: computed
	 * once, and again only for a document a patch changed.
	 */
	ids = xcalloc(cfg->n + patch->n + 1, sizeof(*ids));
	for (size_t j = 0; j < cfg->n; j++)
		doc_id(ids[j], sizeof(ids[j]), fy_document_root(cfg->v[j]));
	r = 0;
	for (size_t i = 0; i < patch->n; i++) {
		struct fy_node *src = fy_document_root(patch->v[i]);
		char id[256];
		size_t j;

		if (!src || fy_node_get_type(src) != FYNT_MAPPING) {
			r = err_set(err, ERR_FAIL, "patch document %zu is not a mapping", i + 1);
			break;
		}
		doc_id(id, sizeof(id), src);
		for (j = 0; j < cfg->n; j++)
			if (strcmp(id, ids[j]) == 0)
				break;
		if (is_delete(src)) {
			if (j == cfg->n) {
				r = err_set(err, ERR_FAIL, "patch delete: document '%s' not found", id);
				break;
			}
			fy_document_destroy(cfg->v[j]);
			memmove(&cfg->v[j], &cfg->v[j + 1],
				(cfg->n - j - 1) * sizeof(*cfg->v));
			memmove(&ids[j], &ids[j + 1],
				(cfg->n - j - 1) * sizeof(*ids));
			cfg->n--;
			continue;
		}
		if (j == cfg->n) {
			struct fy_document *d = yaml_new_document();

			if (!d)
				abort();
			fy_document_set_root(d, copy_clean(d, src));
			ydocs_push(cfg, d);
			doc_id(ids[j], sizeof(ids[j]), fy_document_root(d));
			continue;
		}
		if ((r = merge_map(fy_document_root(cfg->v[j]), src, "", id, err)) < 0)
			break;
		doc_id(ids[j], sizeof(ids[j]), fy_document_root(cfg->v[j]));
	}
	free(ids);
	return r;
}
