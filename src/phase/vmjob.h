/*
 * vmjob: what the jobs of the two Proxmox VM phases (ph_vms.c, ph_civm.c)
 * share: a task followed on the phase's shared per-node watch, and a VM
 * taken away (pve_vm_stop_and_delete with its steps on the job's progress
 * line, then forgotten by the journal).
 */
#ifndef STRATA_PHASE_VMJOB_H
#define STRATA_PHASE_VMJOB_H

#include <stddef.h>

#include "phase/phase.h"
#include "plan/plan.h"
#include "provider/proxmox/proxmox.h"
#include "util/err.h"

struct progress;

/* How long one task of a VM job may take. */
#define VMJOB_TASK_TIMEOUT_MS (10 * 60 * 1000L)

/* Follow task upid (NULL: nothing to follow) on watch; frees upid. */
int vmjob_wait(struct pve_watch *watch, struct pve *pve, char *upid,
	       struct err *err);

/*
 * The job's side of a removal: its tasks go on watch, its steps on line
 * idx of pr; between, if set, is called with ctx after the stop and before
 * the DELETE (struct pve_vm_removal's between).
 */
struct vmjob_removal {
	struct pve_watch *watch;
	struct progress *pr;
	size_t idx;
	int (*between)(void *ctx, struct pve **pve, struct err *err);
	void *ctx;
};

/* Hard stop and delete with purge of VM h (pve_vm_stop_and_delete). */
int vmjob_stop_and_delete(struct pve **pve, const struct vm_spec *h,
			  const struct vmjob_removal *how, struct err *err);

/* The journal forgets the VM name; a delete (kind ACT_DELETE) also its
 * chosen MAC, a replace keeps it for the VM that follows. */
int vmjob_forget(struct apply_ctx *c, enum action_kind kind, const char *name,
		 struct err *err);

#endif
