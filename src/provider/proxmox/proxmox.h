/*
 * proxmox: a Proxmox VE REST client (api2/json) over util/http.
 *
 * Knows the API, not the config file: callers pass plain values. Every
 * call that starts work returns a UPID; pve_task_wait polls it to the end
 * and turns a failed task into an error carrying Proxmox's exit status and
 * the last lines of the task log.
 *
 * Errors read "METHOD PATH: HTTP 500: VM 100 already running" (the message
 * comes from the JSON body when the server sends one, else from the status
 * line; per-parameter errors are listed). The token is never in a message.
 */
#ifndef STRATA_PROVIDER_PROXMOX_H
#define STRATA_PROVIDER_PROXMOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct pve;
struct pve_conns;

struct pve_opts {
	const char *endpoint;        /* https://host:8006 */
	const char *token_id;        /* user@realm!name */
	const char *token_secret;
	const char *ca_file;
	const char *fingerprint;
	bool insecure;
	long poll_ms;                /* caps the task poll interval (0: by task kind) */
	struct pve_conns *conns;     /* connections shared by this endpoint's clients, or NULL */
};

int pve_new(struct pve **out, const struct pve_opts *o, struct err *err);
void pve_free(struct pve *p);

/*
 * Connections shared by every client made from one pve_opts (the env's
 * endpoint, token and TLS trust; never across two of them): a request
 * takes an idle connection from here, else the client's own, and gives
 * it back when done. The VM phase's 200 jobs each hold a client while
 * their tasks run, but only the requests in flight hold a connection,
 * so 200 creates open tens of connections, not 200, and a new one
 * resumes the TLS session of an earlier one (http_share): no full
 * handshake, no certificate (measured in docs/plan.md). Once
 * pve_conns_warm_for(c, n) said a phase will go n wide, a request alone
 * in flight fills the set up to min(n, width) connected clients
 * beforehand (warming, proxmox.c), so the phase finds them open; n 0
 * (the default) warms nothing. The width, the requests in flight at
 * most, is 32 unless pve_conns_width(c, n) asked for n (a command's
 * --parallel; 32 to 128). Thread-safe; free after every client made
 * with it.
 */
struct pve_conns *pve_conns_new(void);
void pve_conns_width(struct pve_conns *c, size_t n);
void pve_conns_warm_for(struct pve_conns *c, size_t n);
/* The requests clients like p may have in flight at once: its set's
 * width, or without a set the default width (32; each such client
 * then has a connection of its own). */
size_t pve_width(const struct pve *p);
void pve_conns_free(struct pve_conns *c);

/* Form parameters, encoded as application/x-www-form-urlencoded. */
struct pve_params {
	struct buf body;
};
void pve_params_init(struct pve_params *p);
void pve_params_add(struct pve_params *p, const char *key, const char *value);
void pve_params_addf(struct pve_params *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pve_params_release(struct pve_params *p);

/*
 * Raw call: METHOD path (below /api2/json) with params in the body (POST,
 * PUT) or the query (GET, DELETE). On 2xx *data_out (may be NULL) gets the
 * envelope's "data" (a new reference; may be json_null()).
 */
int pve_call(struct pve *p, const char *method, const char *path,
	     const struct pve_params *params, json_t **data_out, struct err *err);

/* The same with a ready body of the given type (a multipart upload);
 * no query string: path is checked as a whole. */
int pve_call_body(struct pve *p, const char *method, const char *path,
		  const char *content_type, const void *body, size_t len,
		  json_t **data_out, struct err *err);

/* One entry of /cluster/resources?type=vm. */
struct pve_vm {
	int vmid;
	char *node;
	char *name;
	char *status;        /* running, stopped, unknown */
	char *tags;          /* raw ';'-separated, or NULL */
	char *lock;          /* or NULL */
	bool template;
	long long maxmem;    /* bytes */
	int maxcpu;
	long long maxdisk;   /* bytes */
};
int pve_cluster_vms(struct pve *p, struct pve_vm **out, size_t *n,
		    struct err *err);
void pve_vms_free(struct pve_vm *v, size_t n);

int pve_version(struct pve *p, char **out, struct err *err);
/* Start work; *upid_out receives the task id (caller frees). */
int pve_vm_create(struct pve *p, const char *node, const struct pve_params *params,
		  char **upid_out, struct err *err);
int pve_vm_config_post(struct pve *p, const char *node, int vmid,
		       const struct pve_params *params, char **upid_out,
		       struct err *err);
int pve_vm_config_get(struct pve *p, const char *node, int vmid, json_t **out,
		      struct err *err);
/* GET .../pending: [{key, value?, pending?, delete?}] (changes of a running
 * VM that wait for its next start; a reboot applies them, a reset does not). */
int pve_vm_pending(struct pve *p, const char *node, int vmid, json_t **out,
		   struct err *err);
/* action: start, stop, shutdown, reboot, reset */
int pve_vm_power(struct pve *p, const char *node, int vmid, const char *action,
		 const struct pve_params *params, char **upid_out,
		 struct err *err);
int pve_vm_status(struct pve *p, const char *node, int vmid, char **status_out,
		  struct err *err);
/* GET /nodes/{node}/qemu: every VM of the node the token may VM.Audit,
 * each with `status`, the QEMU process's state (stopped or running) as
 * of this call (apidata.json; unlike /cluster/resources' status, which
 * lags up to 10 s, FACTS.md §4). *out: a JSON array. */
int pve_node_vms(struct pve *p, const char *node, json_t **out, struct err *err);
/* The status of vmid in such a listing, or NULL when it is not listed. */
const char *pve_node_vms_status(json_t *list, int vmid);
int pve_vm_delete(struct pve *p, const char *node, int vmid, bool purge,
		  char **upid_out, struct err *err);
/*
 * After a destroy that failed: is the VM gone anyway? A DELETE retried
 * after its answer was lost finds the first destroy still running: the
 * VM's config then holds `lock: destroyed` while its disks are freed
 * (../shared/reference/proxmox/FACTS.md §3), and the second task fails
 * with "VM is locked (destroyed)". 0 once the VM has left
 * /cluster/resources, waiting (up to timeout_ms) while it shows that
 * lock; -1 at once for any other state, err untouched (the caller's
 * error stands); -ERR_INTR with err set when Ctrl-C stopped the wait.
 */
int pve_vm_wait_destroyed(struct pve *p, int vmid, long long timeout_ms,
			  struct err *err);

/*
 * Take a VM away for good (destroy, a replace, a delete of the plan):
 * a hard stop (`status/stop` with overrule-shutdown=1, never an ACPI
 * shutdown a guest may ignore; on a stopped VM a no-op that ends OK,
 * FACTS.md §4, so nothing is read first), then DELETE with purge and
 * destroy-unreferenced-disks; a DELETE whose retry met the first one
 * still destroying waits for that one (pve_vm_wait_destroyed). The
 * caller decided the VM is its own (docs/plan.md, Ownership).
 *
 * wait follows a task and frees upid (the phases pass their shared
 * per-node watch); step, if set, names what runs now; between, if set,
 * runs after the stop and before the DELETE (a cidata ISO that goes with
 * the VM) and may replace *pve. Errors read "stop vm 'NAME': ..." or
 * "delete vm 'NAME': ...".
 */
struct pve_vm_removal {
	int (*wait)(void *ctx, struct pve *pve, char *upid, struct err *err);
	void (*step)(void *ctx, const char *what);
	int (*between)(void *ctx, struct pve **pve, struct err *err);
	void *ctx;
	long long timeout_ms;        /* for a retried DELETE's wait */
};

int pve_vm_stop_and_delete(struct pve **pve, const char *node, int vmid,
			   const char *name, const struct pve_vm_removal *how,
			   struct err *err);
int pve_vm_resize(struct pve *p, const char *node, int vmid, const char *disk,
		  const char *size, char **upid_out, struct err *err);
/* First IPv4 (not on `lo`, not link-local) the guest agent reports,
 * optionally on the NIC with this MAC. ERR_NOTFOUND while the agent has no address yet. */
int pve_agent_ipv4(struct pve *p, const char *node, int vmid, const char *mac,
		   char **ip_out, struct err *err);
/* Does storage hold volume "storage:iso/name"? */
int pve_storage_has(struct pve *p, const char *node, const char *storage,
		    const char *content, const char *volid, bool *has,
		    struct err *err);
/* Is this storage shared between the cluster's nodes (one copy for all)? */
int pve_storage_shared(struct pve *p, const char *node, const char *storage,
		       bool *shared, struct err *err);
int pve_download_url(struct pve *p, const char *node, const char *storage,
		     const char *url, const char *content, const char *filename,
		     const char *checksum_sha256, char **upid_out,
		     struct err *err);

/*
 * Resource pools. pve_pool_exists: is pool `id` in GET /pools (which lists
 * only the pools this token has Pool.Audit on). pve_pool_create: POST
 * /pools; a pool that already exists counts as created; a refusal (403)
 * names the privilege the token lacks (Pool.Allocate on /pool/ID).
 */
int pve_pool_exists(struct pve *p, const char *id, bool *exists, struct err *err);
int pve_pool_create(struct pve *p, const char *id, const char *comment,
		    struct err *err);

/*
 * upload.c: put data into storage as content/filename (POST .../upload,
 * multipart/form-data; needs Datastore.AllocateTemplate on the storage).
 * Proxmox overwrites a file of that name; the SHA-256 is sent along and
 * checked by the task. *upid_out: the imgcopy task. The data is never put
 * in a message; callers holding secrets wipe their copy.
 */
int pve_storage_upload(struct pve *p, const char *node, const char *storage,
		       const char *content, const char *filename,
		       const void *data, size_t len, char **upid_out,
		       struct err *err);
/* The volume ids of one content type in a storage (caller frees with
 * pve_volids_free). */
int pve_storage_volids(struct pve *p, const char *node, const char *storage,
		       const char *content, char ***out, size_t *n,
		       struct err *err);
void pve_volids_free(char **v, size_t n);
/* DELETE .../content/{volid} (Datastore.Allocate); *upid_out: imgdel. */
int pve_storage_delete(struct pve *p, const char *node, const char *storage,
		       const char *volid, char **upid_out, struct err *err);

/* o[key] as a new string when it is a string or an integer, else NULL. */
char *pve_json_str(json_t *o, const char *key);

/* Poll a task until it stops; 0 on OK or WARNINGS, else the task's error. */
int pve_task_wait(struct pve *p, const char *upid, long timeout_ms,
		  struct err *err);
/* One GET of the task's status: *stopped false while it runs; once
 * stopped, 0 on OK or WARNINGS, else the task's error and log tail. */
int pve_task_check(struct pve *p, const char *upid, bool *stopped,
		   struct err *err);
/* Milliseconds before the next look at a task, by its type: 100 ms
 * rising to 500 for what takes a second, up to 5 s for a download. */
long pve_task_delay(const struct pve *p, const char *upid, unsigned tick);
/* The next look at a task after a look (a listing, or its own status
 * read) that went out at `sent` and, answered at `now`, found it
 * running. The looks are pve_task_delay's steps counted from when the
 * task was first followed, not from each reply (a reply's latency would
 * push every later look back): *sched is the next one of them and
 * *ticks how many steps are taken (the first step, before the first
 * look, included; so at least 1). The looks up to half a step after
 * `sent` count as done (a listing for another task of the node that
 * went out a little early serves this one too), and any before `now`
 * (after a slow reply no look is due at once). While `ending` (a task
 * of the node just ended) at most 50 ms from now. Returns the time of
 * the next look (monotonic ms, as the arguments). */
long pve_task_next_look(const struct pve *p, const char *upid, long *sched,
			unsigned *ticks, long sent, long now, bool ending);

/*
 * tasks.c: tasks followed together, per Proxmox node (FACTS.md §2,
 * apidata.json). Each thread waiting on a task joins its node's group;
 * one of them at a time lists the node's tasks started since the
 * group's oldest (GET /nodes/{node}/tasks?source=all&since=) for the
 * whole group, so the requests per tick do not grow with the number of
 * tasks. A task the listing shows ended OK costs nothing more; one that
 * failed, or that the listing leaves out, has its own status read (its
 * exit status and log lines). When a node's listing fails, its tasks
 * fall back to per-task polling (pve_task_wait).
 */
struct pve_watch;
struct pve_watch *pve_watch_new(void);
void pve_watch_free(struct pve_watch *w);
/* Like pve_task_wait; p is the caller's own connection (it may do the
 * group's listing with it). w NULL: pve_task_wait. */
int pve_watch_wait(struct pve_watch *w, struct pve *p, const char *upid,
		   long timeout_ms, struct err *err);
/* The same for n tasks followed by one thread on one connection (the
 * phases that start several tasks and then wait: downloads, uploads,
 * starts). upids[i] may be NULL (nothing to wait for). errs[i] gets
 * task i's failure (code 0: it ended OK). Returns 0 when all ended OK,
 * else the first failure's return. */
int pve_tasks_wait(struct pve *p, char *const *upids, size_t n,
		   long timeout_ms, struct err *errs);

/* The node field of a UPID ("UPID:pve1:..." -> "pve1"); NULL if malformed. */
char *pve_upid_node(const char *upid);
/* Its start time (epoch seconds, from hex), or -1. */
long long pve_upid_starttime(const char *upid);

/* Format an API error from a response: exported for tests. */
int pve_error_from_response(struct err *err, const char *method,
			    const char *path, long status, const char *reason,
			    const char *body, const char *token_id);

#endif
