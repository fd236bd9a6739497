#include "phase/manifest_prune.h"

#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "util/buf.h"
#include "util/yaml.h"

/* The API group of an apiVersion: "apps/v1" -> "apps", "v1" -> "". */
static size_t
group_len(const char *av)
{
	const char *sl = strchr(av, '/');

	return sl ? (size_t)(sl - av) : 0;
}

static int
group_cmp(const char *a, const char *b)
{
	size_t la = group_len(a), lb = group_len(b);
	int r = strncmp(a, b, la < lb ? la : lb);

	return r ? r : (la > lb) - (la < lb);
}

static int
obj_cmp(const struct mp_obj *a, const struct mp_obj *b)
{
	int r;

	if ((r = group_cmp(a->api_version, b->api_version)) ||
	    (r = strcmp(a->kind, b->kind)) || (r = strcmp(a->ns, b->ns)))
		return r;
	return strcmp(a->name, b->name);
}

static int
obj_qcmp(const void *a, const void *b)
{
	return obj_cmp(a, b);
}

bool
mp_set_has(const struct mp_set *s, const struct mp_obj *o)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!obj_cmp(&s->v[i], o))
			return true;
	return false;
}

void
mp_set_add(struct mp_set *s, const char *api_version, const char *kind,
	   const char *ns, const char *name)
{
	struct mp_obj o;
	size_t i;

	o.api_version = (char *)api_version;
	o.kind = (char *)kind;
	o.ns = (char *)(!kube_kind_namespaced(kind) ? "" : ns && *ns ? ns
			: "default");
	o.name = (char *)name;
	for (i = 0; i < s->n; i++)
		if (!obj_cmp(&s->v[i], &o)) {
			free(s->v[i].api_version);
			s->v[i].api_version = xstrdup(api_version);
			return;
		}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 8;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n].api_version = xstrdup(o.api_version);
	s->v[s->n].kind = xstrdup(o.kind);
	s->v[s->n].ns = xstrdup(o.ns);
	s->v[s->n].name = xstrdup(o.name);
	s->n++;
}

void
mp_set_release(struct mp_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].api_version);
		free(s->v[i].kind);
		free(s->v[i].ns);
		free(s->v[i].name);
	}
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

void
mp_set_sort(struct mp_set *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), obj_qcmp);
}

static char *
scalar_at(struct fy_node *root, const char *path)
{
	struct fy_node *n = fy_node_by_path(root, path, -1, FYNWF_DONT_FOLLOW);
	const char *s;
	size_t len;

	if (!n || !fy_node_is_scalar(n) || !(s = fy_node_get_scalar(n, &len)) ||
	    !len)
		return NULL;
	return xstrndup(s, len);
}

int
mp_set_add_yaml(struct mp_set *s, const char *text, size_t len,
		struct err *err)
{
	struct fy_document *doc;
	struct fy_node *root, *item;
	void *it = NULL;
	size_t k = 0;
	int r = 0;

	if (!len)                       /* no spec: no objects */
		return 0;
	if (!(doc = yaml_parse(text, len, err)))
		return err_wrap(err, "the manifest's YAML");
	root = fy_document_root(doc);
	if (root && fy_node_is_mapping(root))
		root = fy_node_mapping_lookup_by_string(root, "items", -1);
	if (!root || !fy_node_is_sequence(root)) {
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "the manifest is not a list of "
			       "objects");
	}
	while (r == 0 && (item = fy_node_sequence_iterate(root, &it))) {
		char *av = scalar_at(item, "/apiVersion");
		char *kind = scalar_at(item, "/kind");
		char *name = scalar_at(item, "/metadata/name");
		char *ns = scalar_at(item, "/metadata/namespace");

		k++;
		if (!av || !kind || !name)
			r = err_set(err, ERR_FAIL, "object %zu: no apiVersion, kind "
				    "or metadata.name", k);
		else
			mp_set_add(s, av, kind, ns, name);
		free(av);
		free(kind);
		free(name);
		free(ns);
	}
	fy_document_destroy(doc);
	return r;
}

json_t *
mp_set_to_json(const struct mp_set *s)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < s->n; i++) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "apiVersion",
				      s->v[i].api_version, "kind", s->v[i].kind,
				      "name", s->v[i].name);

		if (*s->v[i].ns)
			json_object_set_new(o, "namespace", json_string(s->v[i].ns));
		json_array_append_new(a, o);
	}
	return a;
}

int
mp_set_from_json(struct mp_set *s, const json_t *a, struct err *err)
{
	size_t i;
	json_t *o;

	if (!a)
		return 0;
	if (!json_is_array(a))
		return err_set(err, ERR_FAIL, "the journal's %s is not a list",
			       STATE_KEY_MANIFESTS_APPLIED);
	json_array_foreach(a, i, o) {
		const char *av = json_string_value(json_object_get(o, "apiVersion"));
		const char *kind = json_string_value(json_object_get(o, "kind"));
		const char *name = json_string_value(json_object_get(o, "name"));
		json_t *ns = json_object_get(o, "namespace");

		if (!av || !*av || !kind || !*kind || !name || !*name ||
		    (ns && !json_is_string(ns)))
			return err_set(err, ERR_FAIL, "the journal's %s[%zu] is not "
				       "an object with apiVersion, kind and name "
				       "strings", STATE_KEY_MANIFESTS_APPLIED, i);
		mp_set_add(s, av, kind, json_string_value(ns), name);
	}
	return 0;
}

void
mp_set_stale(const struct mp_set *old, const struct mp_set *now,
	     struct mp_set *out)
{
	size_t i;

	for (i = 0; i < old->n; i++)
		if (!mp_set_has(now, &old->v[i]))
			mp_set_add(out, old->v[i].api_version, old->v[i].kind,
				   old->v[i].ns, old->v[i].name);
	mp_set_sort(out);
}

bool
mp_prune_refused(const struct mp_obj *o)
{
	return (!group_len(o->api_version) && !strcmp(o->kind, "Namespace")) ||
	       (!strncmp(o->api_version, "apiextensions.k8s.io/", 21) &&
		!strcmp(o->kind, "CustomResourceDefinition"));
}

void
mp_obj_what(const struct mp_obj *o, char *out, size_t n)
{
	snprintf(out, n, "%s %s%s%s", o->kind, o->ns, *o->ns ? "/" : "",
		 o->name);
}
