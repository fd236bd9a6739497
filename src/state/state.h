/*
 * state: ENV/state.json, the journal of what strata did: the machines it
 * made or installed (machines.<name>, each with its provider: a Proxmox
 * VM's id, MAC and properties last applied; a VPS's rescue install), the
 * MACs chosen, per-node Talos facts, and which phases completed
 * (docs/state.md; older journals are read and brought up to date). Written
 * atomically (0600) after every step, so an interrupted apply resumes from
 * what really happened. The live hypervisor stays the authority on what
 * exists; the journal says what strata applied (drift detection) and
 * which one-time phases are done.
 */
#ifndef STRATA_STATE_STATE_H
#define STRATA_STATE_STATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "plan/plan.h"
#include "util/err.h"

struct state {
	char *path;
	json_t *root;
	pthread_mutex_t mu;   /* phases record from worker threads */
	/* Group commit (state_save): changes made while a save is being
	 * written go out together in the next one. */
	pthread_cond_t cv;
	unsigned long changed, saved, failed;
	bool saving;
	struct err fail;      /* the save that covered up to `failed` */
};

/* Read ENV/state.json (an absent file is an empty journal). */
int state_load(struct state *st, const char *env_dir, struct err *err);
/* Write the journal (atomically, fsynced); called with st->mu held.
 * Returns once a write that holds this caller's change is on disk:
 * callers that change the state while another write is in flight wait
 * for one write that holds all their changes (group commit; 200 VM
 * jobs recording at once cost a few writes, not 200). */
int state_save(struct state *st, struct err *err);
void state_release(struct state *st);

/* Proxmox VMs as last applied: machines.<name> with provider "proxmox". */
int state_vm_record(struct state *st, const struct vm_spec *applied,
		    struct err *err);   /* records and saves */
int state_vm_forget(struct state *st, const char *name, struct err *err);
void state_vms(struct state *st, struct vm_spec **out, size_t *n);

/* A key and its value (NULL: delete), for the *_setv calls. */
struct state_kv {
	const char *key, *val;
};

/*
 * A machine's own facts, machines.<name>.<key> (string values; NULL
 * deletes), for a provider without VMs: vps journals its rescue install
 * ("rescue": writing, verified, rebooted; "image_sha256"). Setting one
 * records the machine's provider too. Forgetting a VM forgets its record.
 */
char *state_machine_get(struct state *st, const char *name, const char *key);
int state_machine_set(struct state *st, const char *name, const char *provider,
		      const char *key, const char *val, struct err *err);
int state_machine_setv(struct state *st, const char *name, const char *provider,
		       const struct state_kv *kv, size_t n, struct err *err);

/*
 * Per-node Talos journal: string values under talos.<node>.<key>
 * ("config_sha256": the nodes/<node>.yaml last applied). Forgetting a VM
 * forgets its node too: a new VM starts from maintenance mode.
 */
char *state_talos_get(struct state *st, const char *node, const char *key);
int state_talos_set(struct state *st, const char *node, const char *key,
		    const char *val, struct err *err);
/* Several keys at once (val NULL deletes), one save; no save when nothing
 * changes (state_talos_set and state_addon_set skip it too). */
int state_talos_setv(struct state *st, const char *node,
		     const struct state_kv *kv, size_t n, struct err *err);
/*
 * Per-addon journal: addons.<addon>.<key> ("cni".config_sha256: the
 * values, chart and image of the release last installed); NULL deletes.
 */
/* The nodes the journal has a Talos record for (free each and *out). */
void state_talos_nodes(struct state *st, char ***out, size_t *n);
char *state_addon_get(struct state *st, const char *addon, const char *key);
int state_addon_set(struct state *st, const char *addon, const char *key,
		    const char *val, struct err *err);
/* Forget every node, the addons and the one-time cluster phases (after a
 * destroy). */
int state_cluster_forget(struct state *st, struct err *err);

/*
 * MAC addresses strata chose for VMs it is about to create, under
 * macs.<vm name>, journaled before the create (plan/mac.h): a resumed
 * apply sends the same one, and the Talos configs link by it from the
 * start. NULL deletes (the VM deleted for good).
 */
char *state_mac_get(struct state *st, const char *name);
int state_mac_set(struct state *st, const char *name, const char *mac,
		  struct err *err);
/* Every journaled MAC (reserved and applied), for collision checks;
 * free each and the array. */
void state_macs_all(struct state *st, char ***out, size_t *n);

/*
 * Per cloud-init VM journal (ph_civm.c): civms.<vm name>.<key>, e.g.
 * "clone" = the vmid a clone was started for (before its POST), so a
 * resumed apply adopts that half-made VM instead of calling it foreign
 * (a clone keeps the template's tags until strata sets its own). NULL
 * deletes. Forgetting a VM forgets this too.
 */
char *state_civm_get(struct state *st, const char *vm, const char *key);
int state_civm_set(struct state *st, const char *vm, const char *key,
		   const char *val, struct err *err);

/*
 * A top-level record of its own, any JSON value (docs/state.md), e.g.
 * bootstrap_manifests_applied (phase/manifest_prune.h). state_record_get
 * returns a copy (json_decref it), NULL when absent; state_record_set
 * replaces it (val is taken; NULL deletes) with one save, none when it
 * is unchanged. Forgotten with the cluster (state_cluster_forget).
 */
#define STATE_KEY_MANIFESTS_APPLIED "bootstrap_manifests_applied"
json_t *state_record_get(struct state *st, const char *key);
int state_record_set(struct state *st, const char *key, json_t *val,
		     struct err *err);

bool state_phase_done(struct state *st, const char *phase);
int state_phase_mark(struct state *st, const char *phase, bool done,
		     struct err *err);  /* marks and saves */

#endif
