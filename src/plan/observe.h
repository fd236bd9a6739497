/*
 * observe: read what Proxmox holds for an environment in as few calls as
 * possible: /cluster/resources once, then the config of each VM that is a
 * candidate (in the env's id range or carrying its tag), up to 16 at a
 * time when given the connection's options. Each VM comes
 * back as a vm_spec with `owned` set by the three ownership rules, or
 * `foreign_why` saying which rule failed.
 */
#ifndef STRATA_PLAN_OBSERVE_H
#define STRATA_PLAN_OBSERVE_H

#include "plan/plan.h"
#include "provider/proxmox/proxmox.h"

int observe_proxmox(struct pve *pve, const char *env, int vmid_base,
		    int vmid_count, struct vm_spec **out, size_t *n,
		    struct err *err);
/* The same; with opts (the connection's options) the VMs' configs are
 * read by as many threads as pve's connection set carries requests at
 * once (pve_width), each on a connection of the set; flags
 * OBSERVE_NO_PENDING skips GET .../pending of owned VMs (destroy deletes
 * them whatever waits for a restart: one read per VM less). */
#define OBSERVE_NO_PENDING 1u
int observe_proxmox_flags(struct pve *pve, const struct pve_opts *opts,
			  const char *env, int vmid_base, int vmid_count,
			  unsigned flags, struct vm_spec **out, size_t *n,
			  struct err *err);

/* Set plan->pool and plan->pool_missing from GET /pools. */
int observe_pool(struct pve *pve, const char *pool, struct plan *plan,
		 struct err *err);

/*
 * From GET .../pending: the running values of cores and memory go to
 * s->cores / s->memory_mib, values waiting for a restart to s->pending_*.
 * A value that is not a number (observe_int) is an error naming it.
 */
int observe_pending(struct vm_spec *s, json_t *pending, struct err *err);

/* A count of cores or MiB as Proxmox writes it: "N", or for memory the
 * property string "current=N". 0 and *out set; -1 for anything else
 * (empty, a sign, trailing text, more than INT_MAX). */
int observe_int(const char *v, int *out);

/* Parse pieces of a VM config (exported for tests). */
int observe_disk_gib(const char *drive);          /* "...,size=32G" -> 32 */
char *observe_net_mac(const char *net);           /* "virtio=BC:..,bridge=" */

#endif
