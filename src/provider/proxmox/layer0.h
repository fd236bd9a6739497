/*
 * layer0: what a Proxmox cluster offers before any VM exists (issue 17):
 * its nodes (status, CPUs, memory), each node's bridges (VLAN-aware,
 * ports) and storages (type, content, enabled, shared, free space), and
 * the token's effective privileges on the paths asked for
 * (GET /access/permissions?path=). Read-only; knows the API, not the
 * config: callers name the nodes and paths.
 *
 * Calls: GET /version, GET /nodes, GET /cluster/resources?type=vm, then
 * per node asked for GET /nodes/N/network?type=any_bridge and
 * GET /nodes/N/storage, per path GET /access/permissions?path=P, and with
 * L0_NODE_STATUS GET /nodes/N/status (needs Sys.Audit; a 403 is kept as
 * the node's status_error, not a failure).
 */
#ifndef STRATA_PROVIDER_PROXMOX_LAYER0_H
#define STRATA_PROVIDER_PROXMOX_LAYER0_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "provider/proxmox/proxmox.h"
#include "util/err.h"

struct l0_bridge {
	char *iface;
	char *type;           /* bridge, OVSBridge */
	char *ports;          /* bridge_ports, or NULL */
	bool vlan_aware;
	bool active;
};

struct l0_storage {
	char *storage;
	char *type;           /* dir, lvmthin, zfspool, nfs, ... */
	char *content;        /* "images,rootdir" */
	bool enabled, active, shared;
	bool has_space;       /* total/used/avail were reported */
	long long total, used, avail;   /* bytes */
};

struct l0_node {
	char *name;
	char *status;         /* online, offline, unknown */
	bool has_stats;       /* maxcpu/maxmem reported (Sys.Audit on /nodes/N) */
	int maxcpu;
	long long maxmem, mem, uptime;
	double cpu;
	bool read;            /* bridges and storages were read */
	struct l0_bridge *bridges;
	size_t n_bridges;
	struct l0_storage *storages;
	size_t n_storages;
	json_t *status_json;  /* GET /nodes/N/status with L0_NODE_STATUS */
	char *status_error;   /* why status_json is NULL */
	int has_iso;          /* set by the caller: -1 unknown, 0, 1 */
};

struct l0_perm {
	char *path;
	json_t *privs;        /* {"Priv.Name": propagate 1|0} */
};

struct layer0 {
	char *version;        /* "8.4.1" */
	int major;            /* 8 */
	struct l0_node *nodes;
	size_t n_nodes;
	struct l0_perm *perms;
	size_t n_perms;
	struct pve_vm *vms;   /* every VM of the cluster (committed memory) */
	size_t n_vms;
};

#define L0_NODE_STATUS 0x1

/*
 * Read Layer 0. nodes: the node names whose bridges and storages to read
 * (NULL: every node; only those /nodes lists as online are read); paths: where to
 * read the token's privileges. Fails only on a failed call, never on what
 * it finds, except a version that does not start with a major number.
 */
int layer0_read(struct pve *p, struct layer0 *out, const char *const *nodes,
		size_t n_nodes, const char *const *paths, size_t n_paths,
		unsigned flags, struct err *err);
void layer0_release(struct layer0 *l0);

/* Lookups (NULL when absent). */
struct l0_node *layer0_node(const struct layer0 *l0, const char *name);
const struct l0_bridge *layer0_bridge(const struct l0_node *n, const char *iface);
const struct l0_storage *layer0_storage(const struct l0_node *n, const char *storage);
/* Does the token hold priv on path? -1 when the path was not read. */
int layer0_has_priv(const struct layer0 *l0, const char *path, const char *priv);
/* Is content (iso, images, import) in the storage's content list? */
bool layer0_storage_has_content(const struct l0_storage *s, const char *content);
/* Thin provisioned (lvmthin, zfspool, rbd): disks take space as written. */
bool layer0_storage_thin(const struct l0_storage *s);

/* The JSON object of 'strata hypervisor -o json' (docs/preflight.md). */
json_t *layer0_to_json(const struct layer0 *l0);

/* Fill from already-decoded answers (the same shapes the API returns):
 * used by layer0_read and by the unit tests. */
void layer0_set_nodes(struct layer0 *l0, json_t *nodes);
void layer0_set_network(struct l0_node *n, json_t *list);
void layer0_set_storage(struct l0_node *n, json_t *list);
void layer0_add_perm(struct layer0 *l0, const char *path, json_t *answer);
/* The major number of a /version answer ("8.4.1": 8); an error when the
 * text does not start with one (once read as 0: "needs 8.0 or later"). */
int layer0_parse_major(const char *version, int *major, struct err *err);

#endif
