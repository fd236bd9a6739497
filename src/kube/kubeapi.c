#include "kube/kubeapi.h"

#include <jansson.h>
#include <libfyaml.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "talos/pki.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/http.h"
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

int
kube_client_from_kubeconfig(struct kube_client **out, const char *text,
			    size_t len, long timeout_ms, struct err *err)
{
	struct fy_document *doc;
	struct fy_node *root, *cluster, *user, *ctx;
	struct http_opts o;
	char *cur, *cname = NULL, *uname = NULL, *server = NULL;
	char *ca = NULL, *crt = NULL, *key = NULL;
	int r = 0;

	*out = NULL;
	if (!(doc = yaml_parse(text, len, err)))
		return err_wrap(err, "kubeconfig");
	root = fy_document_root(doc);
	if (!root || !fy_node_is_mapping(root)) {
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "kubeconfig: not a mapping");
	}
	cur = scalar(root, "current-context");
	ctx = named(root, "contexts", cur, "context");
	if (ctx) {
		cname = scalar(ctx, "cluster");
		uname = scalar(ctx, "user");
	}
	cluster = named(root, "clusters", cname, "cluster");
	user = named(root, "users", uname, "user");
	server = scalar(cluster, "server");
	ca = pem_field(cluster, "certificate-authority-data");
	crt = pem_field(user, "client-certificate-data");
	key = pem_field(user, "client-key-data");
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
	free(cname);
	free(uname);
	free(server);
	free(ca);
	free(crt);
	wipe_free(key);
	fy_document_destroy(doc);
	return r;
}

int
kube_client_load(struct kube_client **out, const char *path, long timeout_ms,
		 struct err *err)
{
	struct buf b = BUF_INIT;
	int r;

	*out = NULL;
	if ((r = fs_read_file(&b, path, 1 << 20, err)) < 0)
		return r;
	r = kube_client_from_kubeconfig(out, b.ptr, b.len, timeout_ms, err);
	OPENSSL_cleanse(b.ptr, b.len);
	buf_release(&b);
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

static int
get_json(struct kube_client *c, const char *path, json_t **out, struct err *err)
{
	struct http_response resp;
	json_error_t je;
	int r;

	*out = NULL;
	http_response_init(&resp);
	r = http_request(c->http, "GET", path, NULL, NULL, 0, HTTP_IDEMPOTENT,
			 &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		err_set(err, ERR_FAIL, "GET %s: HTTP %ld%s%s", path,
			resp.status, resp.reason ? " " : "",
			resp.reason ? resp.reason : "");
		r = err_kind(err, ERRK_HTTP_STATUS, resp.status);
		goto out;
	}
	*out = json_loadb(resp.body.ptr, resp.body.len, 0, &je);
	if (!*out)
		r = err_set(err, ERR_FAIL, "GET %s: not JSON (%s)", path, je.text);
out:
	http_response_release(&resp);
	return r;
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

			if (t && s && !strcmp(t, "Ready"))
				kn->ready = !strcmp(s, "True");
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
	}
	free(v);
}
