/*
 * phase: the apply engine. An apply is an ordered list of phases; each has
 * a title, a should_run check against live state and the journal, a run,
 * and a dry_run that says what it would do. phase_run_list runs them in
 * order, stops at the first failure (the error chain names the phase), and
 * checks for Ctrl-C between phases: an interrupted apply exits 3 and the
 * next apply resumes, because every phase re-reads what really exists.
 */
#ifndef STRATA_PHASE_PHASE_H
#define STRATA_PHASE_PHASE_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"
#include "plan/plan.h"
#include "provider/proxmox/proxmox.h"
#include "state/state.h"
#include "talos/api.h"
#include "util/err.h"
#include "util/proc.h"

struct apply_ctx {
	struct config *cfg;
	struct pve_opts pve_opts;   /* each worker thread makes its own client */
	struct pve *pve;
	struct state st;
	struct plan plan;
	char *iso_volid;            /* "local:iso/talos-....iso", or NULL */
	char *iso_url;
	bool dry_run;
	int max_parallel;
	/* Talos phases */
	const char *env_dir;
	struct talos_creds creds;   /* from ENV/talosconfig, after gen */
	long long wait_ms;          /* bound on each wait for nodes and APIs */
	bool bootstrapped_now;      /* this apply ran Bootstrap */
	/* cidata ISOs uploaded by this apply for VMs it creates (ph_cidata.c) */
	struct cidata_item *cidata;
	size_t n_cidata;
	/* --reinstall NODE: these nodes may get their config in maintenance
	 * mode although the journal records them installed (trust.h). */
	char **reinstall;
	size_t n_reinstall;
};

struct phase {
	const char *name;           /* journal key, e.g. "create-vms" */
	const char *title;
	bool (*should_run)(struct apply_ctx *c);
	int (*run)(struct apply_ctx *c, struct err *err);
	void (*dry_run)(struct apply_ctx *c, FILE *fp);
	bool quiet_skip;            /* no "nothing to do" line when skipped */
};

/* Set by the first SIGINT/SIGTERM (the second one kills, the default
 * action): the flag is util/proc's, so providers and transfers see it. */
#define phase_interrupted proc_interrupted
void phase_install_signals(void);

int phase_run_list(const struct phase *const *list, size_t n,
		   struct apply_ctx *c, struct err *err);

/*
 * Run fn(ctx, i) for every i < n on at most max_parallel threads. No new
 * item starts once the apply is interrupted.
 */
void phase_parallel(size_t n, int max_parallel,
		    void (*fn)(void *ctx, size_t i), void *ctx);
/*
 * After phase_parallel: failed(ctx, i) gives item i's error or NULL. The
 * first error goes into err (prefixed "N <noun> failed; the first" when
 * there are more), the others are printed. Returns 0, or -1; an
 * interrupted run without failures is ERR_INTR.
 */
int phase_collect(size_t n, const struct err *(*failed)(void *ctx, size_t i),
		  void *ctx, const char *noun, struct err *err);

/*
 * Set c->iso_url and c->iso_volid for the environment's Talos version and
 * Image Factory schematic (ph_iso.c).
 */
int apply_iso_target(struct apply_ctx *c, struct err *err);

/* The Proxmox phases (ph_*.c). */
extern const struct phase ph_iso;
/*
 * ph_cidata.c, proxmox.first_boot: cidata. Phase "cidata" builds, for each
 * Talos node whose VM is about to be created, an ISO labelled cidata with
 * nodes/<node>.yaml as user-data (in memory, wiped after) and uploads it
 * to the ISO storage of the VM's Proxmox node; the VM gets it as ide3.
 */
extern const struct phase ph_cidata;
/* Phase "cidata-sweep" (after talos-install, and in destroy): any
 * strata.<env>.*.cidata.iso in the ISO storage that no node's journal
 * points at is deleted: it still holds a machine config. */
extern const struct phase ph_cidata_sweep;
struct cidata_item {
	char *name;                 /* node */
	char *volid;                /* "local:iso/strata.<env>.<node>.cidata.iso" */
	char sha[65];               /* of the config on it */
};
bool cidata_mode(const struct apply_ctx *c);
/* The cidata ISO this apply uploaded for node name, or NULL (ph_vms). */
const char *cidata_volid(const struct apply_ctx *c, const char *name);
/* After the VM of node name was created with it: journal the ISO and the
 * config on it (talos.<node>.cidata, config_sha256). */
int cidata_created(struct apply_ctx *c, const char *name, struct err *err);
/* The journal has a cidata ISO for this node not yet deleted. */
bool cidata_pending(struct apply_ctx *c, const char *name);
/* The node answers over mTLS: detach (ide3) and delete its cidata ISO;
 * journaled, so a resumed apply finishes it. *pve is made if NULL. */
int cidata_cleanup(struct apply_ctx *c, struct pve **pve, const char *name,
		   const struct vm_spec *vm, struct err *err);
/* Before its VM is deleted: the same, unless this apply uploaded that very
 * ISO for the VM that replaces it. */
int cidata_forget(struct apply_ctx *c, struct pve **pve, const char *name,
		  const struct vm_spec *vm, struct err *err);
/* Why a node in cidata mode never came up (after the wait ran out). */
int cidata_stuck_error(const struct apply_ctx *c, const char *name,
		       const struct vm_spec *vm, const char *ip,
		       const char *took, const struct err *last,
		       struct err *err);
void cidata_release(struct apply_ctx *c);
extern const struct phase ph_vms;
/* Before anything is generated: give every VM the plan creates without a
 * MAC in the config one (journaled in state macs.<name>), so the create
 * sends it and the Talos configs link by it from the start (ph_vms.c). */
int vms_choose_macs(struct apply_ctx *c, struct err *err);
extern const struct phase ph_start;
/* Reboots VMs with changes pending in Proxmox, per proxmox.restart (ph_restart.c). */
extern const struct phase ph_restart;
/* The Talos phases (ph_talos.c): configs generated, every node installed
 * from maintenance mode and confirmed over mTLS (then booting from disk),
 * etcd bootstrapped once, kubeconfig fetched and every node registered. */
extern const struct phase ph_talos_gen;
/* What phase talos-config runs: gen, then the admin credentials. */
int talos_gen_for_apply(struct apply_ctx *c, struct err *err);
/* List (on fp) the nodes whose nodes/<node>.yaml differs from what was
 * last applied to them; returns how many. */
size_t talos_config_changes(struct apply_ctx *c, FILE *fp);
/* nodes/<name>.yaml into b, its SHA-256 in hex. */
int read_node_config(const struct apply_ctx *c, const char *name,
		     struct buf *b, char hex[65], struct err *err);
extern const struct phase ph_talos_install;
extern const struct phase ph_talos_bootstrap;
extern const struct phase ph_kubernetes;
/* The addon phases (ph_cni.c, ph_gitops.c; docs/addons.md). */
extern const struct phase ph_cni;
extern const struct phase ph_gitops;

#endif
