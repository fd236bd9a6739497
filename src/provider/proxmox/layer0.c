/*
 * layer0: the nodes, bridges, storages and privileges of a Proxmox
 * cluster, read with as few calls as the checks need (layer0.h).
 */
#include "provider/proxmox/layer0.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/num.h"

static long long
jnum(json_t *o, const char *key, bool *present)
{
	json_t *v = json_object_get(o, key);

	if (present)
		*present = v && !json_is_null(v);
	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

/* Proxmox booleans arrive as 1/0, true/false or "1"/"0". */
static bool
jbool(json_t *o, const char *key, bool dflt)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return dflt;
	if (json_is_boolean(v))
		return json_is_true(v);
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v))
		return strcmp(json_string_value(v), "0") != 0 &&
		       strcmp(json_string_value(v), "") != 0;
	return dflt;
}

void
layer0_set_nodes(struct layer0 *l0, json_t *nodes)
{
	json_t *e;
	size_t i, k = 0;

	if (!json_is_array(nodes))
		return;
	l0->nodes = xcalloc(json_array_size(nodes) + 1, sizeof(*l0->nodes));
	json_array_foreach(nodes, i, e) {
		struct l0_node *n = &l0->nodes[k];
		bool has_cpu, has_mem;

		n->name = pve_json_str(e, "node");
		if (!n->name)
			continue;
		n->status = pve_json_str(e, "status");
		if (!n->status)
			n->status = xstrdup("unknown");
		n->maxcpu = (int)jnum(e, "maxcpu", &has_cpu);
		n->maxmem = jnum(e, "maxmem", &has_mem);
		n->has_stats = has_cpu && has_mem;
		n->mem = jnum(e, "mem", NULL);
		n->uptime = jnum(e, "uptime", NULL);
		if (json_is_number(json_object_get(e, "cpu")))
			n->cpu = json_number_value(json_object_get(e, "cpu"));
		n->has_iso = -1;
		k++;
	}
	l0->n_nodes = k;
}

void
layer0_set_network(struct l0_node *n, json_t *list)
{
	json_t *e;
	size_t i, k = 0;

	n->read = true;
	if (!json_is_array(list))
		return;
	n->bridges = xcalloc(json_array_size(list) + 1, sizeof(*n->bridges));
	json_array_foreach(list, i, e) {
		struct l0_bridge *b = &n->bridges[k];
		char *type = pve_json_str(e, "type");

		if (!type || (strcmp(type, "bridge") && strcmp(type, "OVSBridge"))) {
			free(type);
			continue;
		}
		b->type = type;
		b->iface = pve_json_str(e, "iface");
		if (!b->iface) {
			free(type);
			b->type = NULL;
			continue;
		}
		b->ports = pve_json_str(e, "bridge_ports");
		b->vlan_aware = jbool(e, "bridge_vlan_aware", false);
		b->active = jbool(e, "active", false);
		k++;
	}
	n->n_bridges = k;
}

void
layer0_set_storage(struct l0_node *n, json_t *list)
{
	json_t *e;
	size_t i, k = 0;

	n->read = true;
	if (!json_is_array(list))
		return;
	n->storages = xcalloc(json_array_size(list) + 1, sizeof(*n->storages));
	json_array_foreach(list, i, e) {
		struct l0_storage *s = &n->storages[k];
		bool has_total, has_avail;

		s->storage = pve_json_str(e, "storage");
		if (!s->storage)
			continue;
		s->type = pve_json_str(e, "type");
		s->content = pve_json_str(e, "content");
		s->enabled = jbool(e, "enabled", true);
		s->active = jbool(e, "active", false);
		s->shared = jbool(e, "shared", false);
		s->total = jnum(e, "total", &has_total);
		s->used = jnum(e, "used", NULL);
		s->avail = jnum(e, "avail", &has_avail);
		s->has_space = has_total && has_avail;
		k++;
	}
	n->n_storages = k;
}

void
layer0_add_perm(struct layer0 *l0, const char *path, json_t *answer)
{
	struct l0_perm *pm;
	json_t *privs = json_object_get(answer, path);

	l0->perms = xrealloc(l0->perms, (l0->n_perms + 1) * sizeof(*l0->perms));
	pm = &l0->perms[l0->n_perms++];
	pm->path = xstrdup(path);
	pm->privs = json_is_object(privs) ? json_incref(privs) : json_object();
}

static int
get(struct pve *p, const char *path, const char *key, const char *value,
    json_t **data, struct err *err)
{
	struct pve_params q;
	int r;

	pve_params_init(&q);
	if (key)
		pve_params_add(&q, key, value);
	r = pve_call(p, "GET", path, key ? &q : NULL, data, err);
	pve_params_release(&q);
	return r;
}

static int
read_node(struct pve *p, struct l0_node *n, unsigned flags, struct err *err)
{
	json_t *data = NULL;
	char *path;
	int r;

	path = xasprintf("/nodes/%s/network", n->name);
	r = get(p, path, "type", "any_bridge", &data, err);
	free(path);
	if (r < 0)
		return r;
	layer0_set_network(n, data);
	json_decref(data);
	data = NULL;

	path = xasprintf("/nodes/%s/storage", n->name);
	r = get(p, path, NULL, NULL, &data, err);
	free(path);
	if (r < 0)
		return r;
	layer0_set_storage(n, data);
	json_decref(data);
	data = NULL;

	if (flags & L0_NODE_STATUS) {
		struct err e2 = ERR_INIT;

		/* Sys.Audit on /nodes/N: without it the view says so */
		path = xasprintf("/nodes/%s/status", n->name);
		if (get(p, path, NULL, NULL, &data, &e2) == 0 && json_is_object(data)) {
			n->status_json = data;
			data = NULL;
		} else {
			n->status_error = xstrdup(e2.msg[0] ? e2.msg : "no status in answer");
		}
		free(path);
		json_decref(data);
	}
	return 0;
}

int
layer0_parse_major(const char *version, int *major, struct err *err)
{
	/* "8.4.1": the digits before the first dot */
	if (num_parse_int_n(version, strcspn(version, "."), 1, 999, major) < 0)
		return err_set(err, ERR_FAIL, "GET /version: version '%s' does not "
			       "start with a major number (is the endpoint a "
			       "Proxmox VE API?)", version);
	return 0;
}

int
layer0_read(struct pve *p, struct layer0 *out, const char *const *nodes,
	    size_t n_nodes, const char *const *paths, size_t n_paths,
	    unsigned flags, struct err *err)
{
	json_t *data = NULL;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = pve_version(p, &out->version, err)) < 0)
		return r;
	if ((r = layer0_parse_major(out->version, &out->major, err)) < 0)
		return r;
	if ((r = get(p, "/nodes", NULL, NULL, &data, err)) < 0)
		return r;
	layer0_set_nodes(out, data);
	json_decref(data);
	if ((r = pve_cluster_vms(p, &out->vms, &out->n_vms, err)) < 0)
		return r;
	for (i = 0; i < (nodes ? n_nodes : out->n_nodes); i++) {
		struct l0_node *n = nodes ? layer0_node(out, nodes[i]) : &out->nodes[i];

		if (!n || n->read || strcmp(n->status, "online"))
			continue;
		if ((r = read_node(p, n, flags, err)) < 0)
			return err_wrap(err, "read node '%s'", n->name);
	}
	for (i = 0; i < n_paths; i++) {
		size_t k;
		bool seen = false;

		for (k = 0; k < out->n_perms; k++)
			if (!strcmp(out->perms[k].path, paths[i]))
				seen = true;
		if (seen)
			continue;
		data = NULL;
		if ((r = get(p, "/access/permissions", "path", paths[i], &data, err)) < 0)
			return err_wrap(err, "read the token's privileges on '%s'", paths[i]);
		layer0_add_perm(out, paths[i], data);
		json_decref(data);
	}
	return 0;
}

void
layer0_release(struct layer0 *l0)
{
	size_t i, k;

	for (i = 0; l0->nodes && i < l0->n_nodes; i++) {
		struct l0_node *n = &l0->nodes[i];

		for (k = 0; k < n->n_bridges; k++) {
			free(n->bridges[k].iface);
			free(n->bridges[k].type);
			free(n->bridges[k].ports);
		}
		free(n->bridges);
		for (k = 0; k < n->n_storages; k++) {
			free(n->storages[k].storage);
			free(n->storages[k].type);
			free(n->storages[k].content);
		}
		free(n->storages);
		json_decref(n->status_json);
		free(n->status_error);
		free(n->name);
		free(n->status);
	}
	free(l0->nodes);
	for (i = 0; i < l0->n_perms; i++) {
		free(l0->perms[i].path);
		json_decref(l0->perms[i].privs);
	}
	free(l0->perms);
	pve_vms_free(l0->vms, l0->n_vms);
	free(l0->version);
	memset(l0, 0, sizeof(*l0));
}

struct l0_node *
layer0_node(const struct layer0 *l0, const char *name)
{
	size_t i;

	for (i = 0; i < l0->n_nodes; i++)
		if (!strcmp(l0->nodes[i].name, name))
			return &l0->nodes[i];
	return NULL;
}

const struct l0_bridge *
layer0_bridge(const struct l0_node *n, const char *iface)
{
	size_t i;

	for (i = 0; n && i < n->n_bridges; i++)
		if (!strcmp(n->bridges[i].iface, iface))
			return &n->bridges[i];
	return NULL;
}

const struct l0_storage *
layer0_storage(const struct l0_node *n, const char *storage)
{
	size_t i;

	for (i = 0; n && i < n->n_storages; i++)
		if (!strcmp(n->storages[i].storage, storage))
			return &n->storages[i];
	return NULL;
}

int
layer0_has_priv(const struct layer0 *l0, const char *path, const char *priv)
{
	size_t i;

	for (i = 0; i < l0->n_perms; i++)
		if (!strcmp(l0->perms[i].path, path))
			return json_object_get(l0->perms[i].privs, priv) != NULL;
	return -1;
}

bool
layer0_storage_has_content(const struct l0_storage *s, const char *content)
{
	const char *c = s->content;
	size_t len = strlen(content);

	while (c && *c) {
		const char *end = strchr(c, ',');
		size_t n = end ? (size_t)(end - c) : strlen(c);

		if (n == len && !strncmp(c, content, len))
			return true;
		c = end ? end + 1 : NULL;
	}
	return false;
}

bool
layer0_storage_thin(const struct l0_storage *s)
{
	static const char *const thin[] = { "lvmthin", "zfspool", "rbd", NULL };
	size_t i;

	for (i = 0; s->type && thin[i]; i++)
		if (!strcmp(s->type, thin[i]))
			return true;
	return false;
}

json_t *
layer0_to_json(const struct layer0 *l0)
{
	json_t *o = json_object(), *nodes = json_array(), *perms = json_object();
	size_t i, k;

	json_object_set_new(o, "version", l0->version ? json_string(l0->version) : json_null());
	for (i = 0; i < l0->n_nodes; i++) {
		const struct l0_node *n = &l0->nodes[i];
		json_t *jn = json_object(), *br = json_array(), *st = json_array();
		long long committed = 0;
		size_t vms = 0;

		json_object_set_new(jn, "name", json_string(n->name));
		json_object_set_new(jn, "status", json_string(n->status));
		json_object_set_new(jn, "cpus", n->has_stats ? json_integer(n->maxcpu) : json_null());
		json_object_set_new(jn, "memory", n->has_stats ? json_integer(n->maxmem) : json_null());
		json_object_set_new(jn, "memory_used", n->has_stats ? json_integer(n->mem) : json_null());
		json_object_set_new(jn, "cpu_load", n->has_stats ? json_real(n->cpu) : json_null());
		for (k = 0; k < l0->n_vms; k++)
			if (l0->vms[k].node && !strcmp(l0->vms[k].node, n->name)) {
				committed += l0->vms[k].maxmem;
				vms++;
			}
		json_object_set_new(jn, "vms", json_integer((json_int_t)vms));
		json_object_set_new(jn, "memory_committed", json_integer(committed));
		if (n->status_json) {
			json_t *v = json_object_get(n->status_json, "pveversion");
			json_t *la = json_object_get(n->status_json, "loadavg");

			json_object_set(jn, "pveversion", v ? v : json_null());
			json_object_set(jn, "loadavg", la ? la : json_null());
		} else if (n->status_error) {
			json_object_set_new(jn, "status_error", json_string(n->status_error));
		}
		for (k = 0; k < n->n_bridges; k++) {
			const struct l0_bridge *b = &n->bridges[k];

			json_array_append_new(br, json_pack("{s:s, s:s, s:b, s:s?, s:b}",
				"iface", b->iface, "type", b->type, "vlan_aware", b->vlan_aware,
				"ports", b->ports && *b->ports ? b->ports : NULL, "active", b->active));
		}
		for (k = 0; k < n->n_storages; k++) {
			const struct l0_storage *s = &n->storages[k];
			json_t *js = json_pack("{s:s, s:s?, s:s?, s:b, s:b, s:b, s:b}",
				"storage", s->storage, "type", s->type, "content", s->content,
				"enabled", s->enabled, "active", s->active, "shared", s->shared,
				"thin", layer0_storage_thin(s));

			json_object_set_new(js, "total", s->has_space ? json_integer(s->total) : json_null());
			json_object_set_new(js, "avail", s->has_space ? json_integer(s->avail) : json_null());
			json_array_append_new(st, js);
		}
		json_object_set_new(jn, "read", json_boolean(n->read));
		json_object_set_new(jn, "bridges", br);
		json_object_set_new(jn, "storages", st);
		json_array_append_new(nodes, jn);
	}
	json_object_set_new(o, "nodes", nodes);
	for (i = 0; i < l0->n_perms; i++) {
		json_t *list = json_array();
		const char *priv;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(l0->perms[i].privs, tmp, priv, v)
			json_array_append_new(list, json_string(priv));
		json_object_set_new(perms, l0->perms[i].path, list);
	}
	json_object_set_new(o, "privileges", perms);
	return o;
}
