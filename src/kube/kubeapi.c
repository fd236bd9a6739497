#include "kube/kubeapi.h"

#include <ctype.h>
#include <jansson.h>
#include <libfyaml.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "talos/pki.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/http.h"
#include "util/isolate.h"
#include "util/yaml.h"

struct kube_client {
	struct http_client *http;
	char *server;
};

static char *
scalar(struct fy_node *map, const char *key)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, -1)
				: NULL;
	const char *s;
	size_t len;

	if (!n || !fy_node_is_scalar(n) || !(s = fy_node_get_scalar(n, &len)))
		return NULL;
	return xstrndup(s, len);
}

/* The entry of a named list (clusters, users, contexts) called name; the
 * first one when name is NULL. Returns its inner mapping under `inner`. */
static struct fy_node *
named(struct fy_node *root, const char *list, const char *name,
      const char *inner)
{
	struct fy_node *seq = fy_node_mapping_lookup_by_string(root, list, -1);
	struct fy_node *item;
	void *it = NULL;

	if (!seq || !fy_node_is_sequence(seq))
		return NULL;
	while ((item = fy_node_sequence_iterate(seq, &it))) {
		char *n = scalar(item, "name");
		bool match = !name || (n && !strcmp(n, name));

		free(n);
		if (match)
			return fy_node_mapping_lookup_by_string(item, inner, -1);
	}
	return NULL;
}

static char *
pem_field(struct fy_node *map, const char *key)
{
	struct buf pem = BUF_INIT;
	char *b64 = scalar(map, key);

	if (!b64 || pki_unb64(&pem, b64) < 0 || !pem.len) {
		free(b64);
		buf_release(&pem);
		return NULL;
	}
	free(b64);
	buf_add(&pem, "", 1);
	return pem.ptr;
}

static void
wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/*
 * In a fresh process (isolate_spawn: callers may run beside other
 * threads): the kubeconfig parsed by libfyaml,
 * which frees its copies of the client key unwiped. Back come the current
 * context's name, server, CA, client certificate and key (PEM, NULL when
 * missing).
 */
static int
kc_child(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *t = ctx;
	struct fy_document *doc;
	struct fy_node *root, *cluster, *user, *cx;
	char *cur, *cname = NULL, *uname = NULL, *key;

	if (!(doc = yaml_parse(t->ptr, t->len, err)))
		return err_wrap(err, "kubeconfig");
	root = fy_document_root(doc);
	if (!root || !fy_node_is_mapping(root)) {
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "kubeconfig: not a mapping");
	}
	cur = scalar(root, "current-context");
	cx = named(root, "contexts", cur, "context");
	if (cx) {
		cname = scalar(cx, "cluster");
		uname = scalar(cx, "user");
	}
	cluster = named(root, "clusters", cname, "cluster");
	user = named(root, "users", uname, "user");
	isolate_put_str(out, cur);
	free(cur);
	cur = scalar(cluster, "server");
	isolate_put_str(out, cur);
	free(cur);
	cur = pem_field(cluster, "certificate-authority-data");
	isolate_put_str(out, cur);
	free(cur);
	cur = pem_field(user, "client-certificate-data");
	isolate_put_str(out, cur);
	free(cur);
	key = pem_field(user, "client-key-data");
	isolate_put_str(out, key);
	wipe_free(key);
	free(cname);
	free(uname);
	fy_document_destroy(doc);
	return 0;
}
ISOLATE_OP(kc_child);

int
kube_client_from_kubeconfig(struct kube_client **out, const char *text,
			    size_t len, long timeout_ms, struct err *err)
{
	struct buf res = BUF_INIT_SECRET;
	struct isolate_reader rd;
	struct http_opts o;
	char *cur = NULL, *server = NULL, *ca = NULL, *crt = NULL, *key = NULL;
	int r;

	*out = NULL;
	if ((r = isolate_spawn(kc_child, text, len, &res, err)) < 0)
		goto out;
	isolate_reader_init(&rd, &res);
	cur = isolate_get_str(&rd);
	server = isolate_get_str(&rd);
	ca = isolate_get_str(&rd);
	crt = isolate_get_str(&rd);
	key = isolate_get_str(&rd);
	if (rd.bad) {
		r = err_set(err, ERR_FAIL, "kubeconfig: malformed result of "
			    "the isolated parse");
		goto out;
	}
	if (!server || !ca || !crt || !key) {
		r = err_set(err, ERR_FAIL, "kubeconfig: the %s context lacks %s",
			    cur ? cur : "first",
			    !server ? "a cluster server" :
			    !ca ? "certificate-authority-data" :
			    !crt ? "client-certificate-data" : "client-key-data");
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.base_url = server;
	o.ca_pem = ca;
	o.client_cert_pem = crt;
	o.client_key_pem = key;
	o.timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	o.connect_timeout_ms = o.timeout_ms < 3000 ? o.timeout_ms : 3000;
	o.max_attempts = 1;
	*out = xcalloc(1, sizeof(**out));
	if ((r = http_client_new(&(*out)->http, &o, err)) < 0) {
		free(*out);
		*out = NULL;
		err_wrap(err, "kubeconfig server %s", server);
		goto out;
	}
	(*out)->server = server;
	server = NULL;
out:
	free(cur);
	free(server);
	free(ca);
	free(crt);
	wipe_free(key);
	buf_release_secret(&res);
	return r;
}

int
kube_client_load(struct kube_client **out, const char *path, long timeout_ms,
		 struct err *err)
{
	struct buf b = BUF_INIT_SECRET;
	int r;

	*out = NULL;
	if ((r = fs_read_file(&b, path, 1 << 20, err)) < 0)
		return r;
	r = kube_client_from_kubeconfig(out, b.ptr, b.len, timeout_ms, err);
	buf_release_secret(&b);
	if (r < 0)
		return err_wrap(err, "%s", path);
	return 0;
}

void
kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c->server);
	free(c);
}

const char *
kube_client_server(const struct kube_client *c)
{
	return c->server;
}

/* Append the API's causes that its message does not already quote. */
static void
add_causes(struct buf *b, json_t *causes, const char *message)
{
	json_t *cz;
	size_t i;

	json_array_foreach(causes, i, cz) {
		const char *f = json_string_value(json_object_get(cz, "field"));
		const char *m = json_string_value(json_object_get(cz, "message"));

		if (!m || (message && strstr(message, m) &&
			   (!f || strstr(message, f))))
			continue;
		buf_addf(b, "; %s%s%s", f ? f : "", f ? ": " : "", m);
	}
}

/*
 * One request. 2xx: *out gets the JSON body (if out), raw the bytes (if
 * raw). Otherwise err reads "WHAT: HTTP 409 Conflict: <the API's message>
 * [; causes]", code ERR_NOTFOUND for a 404.
 */
static int
kube_call(struct kube_client *c, const char *method, const char *path,
	  const char *ctype, const void *body, size_t len, const char *what,
	  json_t **out, struct buf *raw, struct err *err)
{
	struct http_response resp;
	json_error_t je;
	json_t *st = NULL;
	int r;

	if (out)
		*out = NULL;
	http_response_init(&resp);
	r = http_request(c->http, method, path, ctype, body, len,
			 HTTP_IDEMPOTENT, &resp, err);
	if (r < 0) {
		err_wrap(err, "%s", what);
		goto out;
	}
	if (resp.status >= 200 && resp.status < 300) {
		if (raw)
			buf_add(raw, resp.body.ptr, resp.body.len);
		if (out && !(*out = json_loadb(resp.body.ptr, resp.body.len, 0,
					       &je)))
			r = err_set(err, ERR_FAIL, "%s: not JSON (%s)", what,
				    je.text);
		goto out;
	}
	st = json_loadb(resp.body.ptr, resp.body.len, 0, &je);
	{
		const char *msg = json_string_value(json_object_get(st, "message"));
		const char *reason = json_string_value(json_object_get(st, "reason"));
		struct buf m = BUF_INIT;

		buf_addf(&m, "%s: HTTP %ld %s", what, resp.status,
			 reason ? reason : resp.reason ? resp.reason : "");
		if (msg)
			buf_addf(&m, ": %s", msg);
		add_causes(&m, json_object_get(json_object_get(st, "details"),
					       "causes"), msg);
		if (resp.status == 409 && reason && !strcmp(reason, "Conflict") &&
		    strstr(m.ptr, "Apply failed"))
			buf_adds(&m, " (strata never forces a field another "
				 "manager owns: change it there, or remove "
				 "that manager's claim)");
		err_set(err, resp.status == 404 ? ERR_NOTFOUND : ERR_FAIL,
			"%s", m.ptr);
		/* The server answered: callers read the status, not the text. */
		r = err_kind(err, ERRK_HTTP_STATUS, resp.status);
		buf_release(&m);
	}
out:
	json_decref(st);
	http_response_release(&resp);
	return r;
}

static int
get_json(struct kube_client *c, const char *path, json_t **out, struct err *err)
{
	char what[512];

	snprintf(what, sizeof(what), "GET %s", path);
	return kube_call(c, "GET", path, NULL, NULL, 0, what, out, NULL, err);
}

/* Kinds strata may touch that live outside namespaces. */
static const char *const cluster_kinds[] = {
	"Namespace", "Node", "ClusterRole", "ClusterRoleBinding",
	"CustomResourceDefinition", "StorageClass", "PersistentVolume",
	"PriorityClass", "CSIDriver", "IngressClass", "GatewayClass",
	"FlowSchema", "PriorityLevelConfiguration", "PodSecurityPolicy",
	"RuntimeClass",
	"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
	NULL
};

bool
kube_kind_namespaced(const char *kind)
{
	size_t i;

	for (i = 0; cluster_kinds[i]; i++)
		if (!strcmp(kind, cluster_kinds[i]))
			return false;
	return true;
}

/* kind -> resource: lower case, plural as the API names them
 * (GitRepository -> gitrepositories, Ingress -> ingresses). */
static void
add_resource(struct buf *b, const char *kind)
{
	size_t n = strlen(kind), i;
	char last = n ? (char)tolower((unsigned char)kind[n - 1]) : 0;

	for (i = 0; i < n; i++)
		buf_addch(b, (char)tolower((unsigned char)kind[i]));
	if (last == 'y' && n > 1 && !strchr("aeiou", tolower((unsigned char)kind[n - 2]))) {
		b->len--;
		b->ptr[b->len] = '\0';
		buf_adds(b, "ies");
	} else if (last == 's' || last == 'x') {
		buf_adds(b, "es");
	} else {
		buf_addch(b, 's');
	}
}

void
kube_path(struct buf *out, const char *api_version, const char *kind,
	  const char *ns, const char *name)
{
	buf_addf(out, "%s%s", strchr(api_version, '/') ? "/apis/" : "/api/",
		 api_version);
	if (kube_kind_namespaced(kind) && (ns || name))
		buf_addf(out, "/namespaces/%s", ns && *ns ? ns : "default");
	buf_addch(out, '/');
	add_resource(out, kind);
	if (name)
		buf_addf(out, "/%s", name);
}

static void
obj_what(char *what, size_t n, const char *verb, const char *kind,
	 const char *ns, const char *name)
{
	bool nsd = kube_kind_namespaced(kind);

	snprintf(what, n, "%s %s %s%s%s", verb, kind,
		 nsd ? (ns && *ns ? ns : "default") : "", nsd ? "/" : "",
		 name ? name : "");
}

static int
apply_raw(struct kube_client *c, const char *av, const char *kind,
	  const char *ns, const char *name, const char *body, size_t len,
	  bool force, json_t **out, struct err *err)
{
	struct buf path = BUF_INIT;
	char what[512];
	int r;

	obj_what(what, sizeof(what), "apply", kind, ns, name);
	kube_path(&path, av, kind, ns, name);
	buf_adds(&path, "?fieldManager=" KUBE_FIELD_MANAGER
		 "&fieldValidation=Strict");
	if (force)
		buf_adds(&path, "&force=true");
	r = kube_call(c, "PATCH", path.ptr, "application/apply-patch+yaml",
		      body, len, what, out, NULL, err);
	buf_release(&path);
	return r;
}

static int apply_obj(struct kube_client *c, json_t *obj, bool force,
		     json_t **out, struct err *err);

int
kube_apply(struct kube_client *c, json_t *obj, json_t **out, struct err *err)
{
	return apply_obj(c, obj, false, out, err);
}

int
kube_apply_force(struct kube_client *c, json_t *obj, json_t **out,
		 struct err *err)
{
	return apply_obj(c, obj, true, out, err);
}

static int
apply_obj(struct kube_client *c, json_t *obj, bool force, json_t **out,
	  struct err *err)
{
	json_t *md = json_object_get(obj, "metadata");
	const char *av = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	char *body;
	json_t *res = NULL;
	int r;

	if (out)
		*out = NULL;
	if (!av || !kind || !name)
		return err_set(err, ERR_FAIL, "apply: an object without "
			       "apiVersion, kind or metadata.name");
	body = json_dumps(obj, JSON_COMPACT);
	r = apply_raw(c, av, kind, ns, name, body, strlen(body), force, &res, err);
	if (!strcmp(kind, "Secret"))
		OPENSSL_cleanse(body, strlen(body));
	free(body);
	if (r == 0 && out)
		*out = res;
	else
		json_decref(res);
	return r;
}

static char *
path_scalar(struct fy_node *root, const char *path)
{
	struct fy_node *n = fy_node_by_path(root, path, -1, FYNWF_DONT_FOLLOW);
	const char *s;
	size_t len;

	if (!n || !fy_node_is_scalar(n) || !(s = fy_node_get_scalar(n, &len)))
		return NULL;
	return xstrndup(s, len);
}

int
kube_apply_yaml(struct kube_client *c, const char *text, size_t len,
		size_t *applied, struct err *err)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *diag;
	struct fy_parser *fyp;
	struct fy_document *doc;
	size_t k = 0, ndoc = 0;
	int r = 0;

	if (applied)
		*applied = 0;
	yaml_diag_cfg(&dcfg);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = diag = fy_diag_create(&dcfg);
	if (!diag || !(fyp = fy_parser_create(&pcfg))) {
		fy_diag_destroy(diag);
		return err_set(err, ERR_FAIL, "cannot set up the YAML parser");
	}
	if (fy_parser_set_string(fyp, text, len) != 0) {
		r = err_set(err, ERR_FAIL, "cannot read the YAML text");
		goto out;
	}
	while ((doc = fy_parse_load_document(fyp))) {
		struct fy_node *root = fy_document_root(doc);
		char *av, *kind, *name, *ns, *body;
		size_t sl = 0;

		ndoc++;
		if (!root || (fy_node_is_scalar(root) &&
			      (!fy_node_get_scalar(root, &sl) || !sl))) {
			fy_parse_document_destroy(fyp, doc);
			continue;
		}
		av = path_scalar(root, "/apiVersion");
		kind = path_scalar(root, "/kind");
		name = path_scalar(root, "/metadata/name");
		ns = path_scalar(root, "/metadata/namespace");
		body = fy_emit_document_to_string(doc, FYECF_MODE_BLOCK |
						  FYECF_WIDTH_INF);
		if (!av || !kind || !name || !body)
			r = err_set(err, ERR_FAIL, "document %zu: no apiVersion, "
				    "kind or metadata.name", ndoc);
		else
			r = apply_raw(c, av, kind, ns, name, body,
				      strlen(body), false, NULL, err);
		free(av);
		free(kind);
		free(name);
		free(ns);
		free(body);
		fy_parse_document_destroy(fyp, doc);
		if (r < 0)
			goto out;
		k++;
	}
	if (fy_parser_get_stream_error(fyp))
		r = err_set(err, ERR_FAIL, "document %zu: invalid YAML",
			    ndoc + 1);
out:
	if (applied)
		*applied = k;
	fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	return r;
}

int
kube_apply_items(struct kube_client *c, const char *text, size_t len,
		 bool force, size_t *applied, struct err *err)
{
	struct fy_document *doc;
	struct fy_node *root, *item;
	void *it = NULL;
	size_t k = 0;
	int r = 0;

	if (applied)
		*applied = 0;
	if (!len)                       /* no spec: no objects */
		return 0;
	if (!(doc = yaml_parse(text, len, err)))
		return err_wrap(err, "the manifest's YAML");
	root = fy_document_root(doc);
	if (root && fy_node_is_mapping(root) &&
	    !(root = fy_node_mapping_lookup_by_string(root, "items", -1))) {
		r = err_set(err, ERR_FAIL, "the manifest is not a list of objects");
		goto out;
	}
	if (root && !fy_node_is_sequence(root)) {
		r = err_set(err, ERR_FAIL, "the manifest is not a list of objects");
		goto out;
	}
	while (root && (item = fy_node_sequence_iterate(root, &it))) {
		char *av = path_scalar(item, "/apiVersion");
		char *kind = path_scalar(item, "/kind");
		char *name = path_scalar(item, "/metadata/name");
		char *ns = path_scalar(item, "/metadata/namespace");
		char *body = fy_emit_node_to_string(item, FYECF_MODE_BLOCK |
						    FYECF_WIDTH_INF);

		if (!av || !kind || !name || !body)
			r = err_set(err, ERR_FAIL, "object %zu: no apiVersion, kind "
				    "or metadata.name", k + 1);
		else
			r = apply_raw(c, av, kind, ns, name, body, strlen(body),
				      force, NULL, err);
		if (body) {
			OPENSSL_cleanse(body, strlen(body));   /* a Secret's data */
			free(body);
		}
		free(av);
		free(kind);
		free(name);
		free(ns);
		if (r < 0)
			goto out;
		k++;
	}
out:
	if (applied)
		*applied = k;
	fy_document_destroy(doc);
	return r;
}

int
kube_get(struct kube_client *c, const char *api_version, const char *kind,
	 const char *ns, const char *name, json_t **out, struct err *err)
{
	struct buf path = BUF_INIT;
	char what[512];
	int r;

	obj_what(what, sizeof(what), "get", kind, ns, name);
	kube_path(&path, api_version, kind, ns, name);
	r = kube_call(c, "GET", path.ptr, NULL, NULL, 0, what, out, NULL, err);
	buf_release(&path);
	return r;
}

int
kube_list(struct kube_client *c, const char *api_version, const char *kind,
	  const char *ns, const char *label_selector, json_t **items,
	  struct err *err)
{
	struct buf path = BUF_INIT;
	json_t *list = NULL;
	char what[512];
	int r;

	*items = NULL;
	snprintf(what, sizeof(what), "list %s%s%s", kind, ns ? " in " : "",
		 ns ? ns : "");
	if (ns) {
		kube_path(&path, api_version, kind, ns, "");
		path.ptr[--path.len] = '\0';   /* the collection, not "/" */
	} else {
		kube_path(&path, api_version, kind, NULL, NULL);
	}
	if (label_selector) {
		buf_adds(&path, "?labelSelector=");
		http_urlencode(&path, label_selector);
	}
	r = kube_call(c, "GET", path.ptr, NULL, NULL, 0, what, &list, NULL, err);
	if (r == 0) {
		*items = json_incref(json_object_get(list, "items"));
		if (!json_is_array(*items)) {
			json_decref(*items);
			*items = json_array();
		}
	}
	json_decref(list);
	buf_release(&path);
	return r;
}

int
kube_delete(struct kube_client *c, const char *api_version, const char *kind,
	    const char *ns, const char *name, struct err *err)
{
	struct buf path = BUF_INIT;
	json_t *res = NULL;
	char what[512];
	int r;

	obj_what(what, sizeof(what), "delete", kind, ns, name);
	kube_path(&path, api_version, kind, ns, name);
	buf_adds(&path, "?propagationPolicy=Background");
	r = kube_call(c, "DELETE", path.ptr, NULL, NULL, 0, what, &res, NULL,
		      err);
	if (r < 0 && err->code == ERR_NOTFOUND) {
		err_clear(err);
		r = 0;
	}
	json_decref(res);
	buf_release(&path);
	return r;
}

int
kube_pod_log(struct kube_client *c, const char *ns, const char *pod, int tail,
	     struct buf *out, struct err *err)
{
	struct buf path = BUF_INIT;
	char what[512];
	int r;

	snprintf(what, sizeof(what), "log of pod %s/%s", ns, pod);
	buf_addf(&path, "/api/v1/namespaces/%s/pods/%s/log?tailLines=%d", ns,
		 pod, tail);
	r = kube_call(c, "GET", path.ptr, NULL, NULL, 0, what, NULL, out, err);
	buf_release(&path);
	return r;
}

const char *
kube_condition(json_t *obj, const char *type, const char **message)
{
	json_t *conds = json_object_get(json_object_get(obj, "status"),
					"conditions"), *e;
	size_t i;

	if (message)
		*message = NULL;
	json_array_foreach(conds, i, e) {
		const char *t = json_string_value(json_object_get(e, "type"));

		if (t && !strcmp(t, type)) {
			if (message)
				*message = json_string_value(
					json_object_get(e, "message"));
			return json_string_value(json_object_get(e, "status"));
		}
	}
	return NULL;
}

char *
kube_job_pod(struct kube_client *c, const char *ns, const char *job,
	     struct err *err)
{
	char sel[300];
	json_t *items, *p, *best = NULL;
	const char *bt = NULL;
	char *name = NULL;
	size_t i;

	snprintf(sel, sizeof(sel), "job-name=%s", job);
	if (kube_list(c, "v1", "Pod", ns, sel, &items, err) < 0)
		return NULL;
	json_array_foreach(items, i, p) {
		const char *t = json_string_value(json_object_get(
			json_object_get(p, "metadata"), "creationTimestamp"));

		if (!best || (t && bt && strcmp(t, bt) >= 0)) {
			best = p;
			bt = t;
		}
	}
	if (best)
		name = xstrdup(json_string_value(json_object_get(
			json_object_get(best, "metadata"), "name")));
	json_decref(items);
	return name;
}

int
kube_version(struct kube_client *c, char **git_version, struct err *err)
{
	json_t *v;
	const char *s;

	*git_version = NULL;
	if (get_json(c, "/version", &v, err) < 0)
		return -1;
	s = json_string_value(json_object_get(v, "gitVersion"));
	*git_version = xstrdup(s ? s : "");
	json_decref(v);
	return 0;
}

int
kube_nodes(struct kube_client *c, struct kube_node **out, size_t *n,
	   struct err *err)
{
	json_t *list, *items, *item;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	if (get_json(c, "/api/v1/nodes", &list, err) < 0)
		return -1;
	items = json_object_get(list, "items");
	*out = xcalloc(json_array_size(items) + 1, sizeof(**out));
	json_array_foreach(items, i, item) {
		json_t *st = json_object_get(item, "status"), *e;
		const char *name = json_string_value(
			json_object_get(json_object_get(item, "metadata"), "name"));
		struct kube_node *kn;
		size_t j;

		if (!name)
			continue;
		kn = &(*out)[k++];
		kn->name = xstrdup(name);
		json_array_foreach(json_object_get(st, "conditions"), j, e) {
			const char *t = json_string_value(json_object_get(e, "type"));
			const char *s = json_string_value(json_object_get(e, "status"));

			const char *m = json_string_value(json_object_get(e, "message"));

			if (t && s && !strcmp(t, "Ready")) {
				kn->ready = !strcmp(s, "True");
				free(kn->ready_message);
				kn->ready_message = m ? xstrdup(m) : NULL;
			}
		}
		json_array_foreach(json_object_get(st, "addresses"), j, e) {
			const char *t = json_string_value(json_object_get(e, "type"));
			const char *a = json_string_value(json_object_get(e, "address"));

			if (t && a && !strcmp(t, "InternalIP") && !kn->address)
				kn->address = xstrdup(a);
		}
		e = json_object_get(json_object_get(st, "nodeInfo"), "kubeletVersion");
		if (json_string_value(e))
			kn->kubelet_version = xstrdup(json_string_value(e));
	}
	*n = k;
	json_decref(list);
	return 0;
}

void
kube_nodes_free(struct kube_node *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].address);
		free(v[i].kubelet_version);
		free(v[i].ready_message);
	}
	free(v);
}

int
kube_pods_on_node(struct kube_client *c, const char *node, json_t **items,
		  struct err *err)
{
	struct buf path = BUF_INIT, sel = BUF_INIT;
	json_t *list = NULL;
	char what[512];
	int r;

	*items = NULL;
	snprintf(what, sizeof(what), "list the pods on node %s", node);
	buf_addf(&sel, "spec.nodeName=%s", node);
	buf_adds(&path, "/api/v1/pods?fieldSelector=");
	http_urlencode(&path, sel.ptr);
	r = kube_call(c, "GET", path.ptr, NULL, NULL, 0, what, &list, NULL, err);
	if (r == 0) {
		*items = json_incref(json_object_get(list, "items"));
		if (!json_is_array(*items)) {
			json_decref(*items);
			*items = json_array();
		}
	}
	json_decref(list);
	buf_release(&sel);
	buf_release(&path);
	return r;
}

int
kube_evict(struct kube_client *c, const char *ns, const char *pod,
	   struct err *err)
{
	struct buf path = BUF_INIT;
	json_t *body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1",
				 "kind", "Eviction", "metadata", "name", pod,
				 "namespace", ns);
	char *text = json_dumps(body, JSON_COMPACT);
	json_t *res = NULL;
	char what[512];
	int r;

	snprintf(what, sizeof(what), "evict pod %s/%s", ns, pod);
	kube_path(&path, "v1", "Pod", ns, pod);
	buf_adds(&path, "/eviction");
	r = kube_call(c, "POST", path.ptr, "application/json", text, strlen(text),
		      what, &res, NULL, err);
	if (r < 0 && err->code == ERR_NOTFOUND) {
		err_clear(err);
		r = 0;
	} else if (r < 0 && err->kind == ERRK_HTTP_STATUS && err->status == 429) {
		r = 1;   /* a PodDisruptionBudget says not now; err says which */
	}
	json_decref(res);
	json_decref(body);
	free(text);
	buf_release(&path);
	return r;
}
