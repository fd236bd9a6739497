/*
 * apply: what the Proxmox phases of an apply or destroy share (the VM
 * plan, the API client, the Talos ISO, the cidata ISOs), kept out of the
 * shared struct apply_ctx (phase/phase.h): the provider's ctx_open makes
 * a struct pve_apply for c->pstate and its ctx_close frees it. Only the
 * Proxmox phases (src/phase/ph_iso.c, ph_cidata.c, ph_scale.c, ph_vms.c,
 * ph_civm.c, ph_start.c, ph_restart.c), this provider and the commands
 * that build the VM plan include this header (docs/architecture.md, "One
 * phase engine, two platforms").
 */
#ifndef STRATA_PROVIDER_PROXMOX_APPLY_H
#define STRATA_PROVIDER_PROXMOX_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"
#include "phase/phase.h"
#include "plan/plan.h"
#include "provider/proxmox/proxmox.h"
#include "state/state.h"
#include "util/err.h"

struct cidata_item;

struct pve_apply {
	struct pve_opts pve_opts;   /* each worker thread makes its own client */
	struct pve *pve;            /* the environment's (not owned) */
	struct plan plan;
	char *iso_volid;            /* "local:iso/talos-....iso", or NULL */
	char *iso_url;
	/* cidata ISOs uploaded by this apply for VMs it creates (ph_cidata.c) */
	struct cidata_item *cidata;
	size_t n_cidata;
};

/* c->pstate of a Proxmox apply or destroy (provider.c). */
struct pve_apply *pve_apply_of(const struct apply_ctx *c);

/*
 * Set pve_apply's iso_url and iso_volid for the environment's Talos
 * version and Image Factory schematic (ph_iso.c).
 */
int apply_iso_target(struct apply_ctx *c, struct err *err);

/* The Proxmox phases (src/phase/ph_*.c). */
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
/*
 * ph_civm.c: phase "cloud-init-vms", the plan's actions on `vms[]` (role
 * vm; ph_vms leaves them alone: civm_action). civm_adopt (before the
 * diff) takes as ours a clone strata journaled and was killed in before it
 * had our tag; civm_plan_check (plan and apply, before anything is
 * created) refuses a template that has no cloud-init drive or agent.
 */
extern const struct phase ph_civm;
bool civm_action(const struct action *a);
void civm_adopt(struct state *st, const struct config *cfg, struct vm_spec *have,
		size_t nhave);
/* After the diff: a cloud-init VM that is there and unchanged but not in
 * the journal (an apply stopped before its agent reported the address) is
 * an update that waits for the address. */
void civm_unconfirmed(struct state *st, struct plan *plan);
int civm_plan_check(struct pve *pve, const struct config *cfg,
		    const struct plan *plan, struct err *err);
extern const struct phase ph_start;
/* Reboots VMs with changes pending in Proxmox, per proxmox.restart (ph_restart.c). */
extern const struct phase ph_restart;
/* ph_scale.c: Talos nodes the config no longer names leave the cluster
 * (etcd, Kubernetes) one at a time with the health gate between, before
 * phase vms destroys their VMs; scale_plan_print says how, for plan. */
extern const struct phase ph_scale;
void scale_plan_print(const struct plan *p, const struct config *cfg, FILE *fp);
/* The same as JSON for plan -o json ("node_removals", docs/plan.md):
 * [{"name", "role", "vmid", "steps": ["health-gate", "cordon", ...]}]. */
struct json_t;
struct json_t *scale_plan_json(const struct plan *p);

#endif
