/*
 * vmjob: the parts of a VM job that phase vms and phase cloud-init-vms
 * have alike (vmjob.h). What differs stays with each phase: what goes
 * with a VM besides its disks (phase vms: the cidata ISO, between the
 * stop and the DELETE; cloud-init-vms: the seed ISOs, after the DELETE).
 */
#include <stdlib.h>

#include "phase/vmjob.h"
#include "state/state.h"
#include "util/progress.h"

int
vmjob_wait(struct pve_watch *watch, struct pve *pve, char *upid,
	   struct err *err)
{
	int r = 0;

	if (upid)
		r = pve_watch_wait(watch, pve, upid, VMJOB_TASK_TIMEOUT_MS, err);
	free(upid);
	return r;
}

static int
removal_wait(void *ctx, struct pve *pve, char *upid, struct err *err)
{
	const struct vmjob_removal *how = ctx;

	return vmjob_wait(how->watch, pve, upid, err);
}

static void
removal_step(void *ctx, const char *what)
{
	const struct vmjob_removal *how = ctx;

	progress_step(how->pr, how->idx, "%s", what);
}

static int
removal_between(void *ctx, struct pve **pve, struct err *err)
{
	const struct vmjob_removal *how = ctx;

	return how->between(how->ctx, pve, err);
}

int
vmjob_stop_and_delete(struct pve **pve, const struct vm_spec *h,
		      const struct vmjob_removal *how, struct err *err)
{
	struct vmjob_removal job = *how;   /* the callbacks' ctx, for this call */
	const struct pve_vm_removal removal = {
		.wait = removal_wait, .step = removal_step,
		.between = how->between ? removal_between : NULL,
		.ctx = &job, .timeout_ms = VMJOB_TASK_TIMEOUT_MS,
	};

	return pve_vm_stop_and_delete(pve, h->node, h->vmid, h->name, &removal,
				      err);
}

int
vmjob_forget(struct apply_ctx *c, enum action_kind kind, const char *name,
	     struct err *err)
{
	int r;

	if (kind == ACT_DELETE && (r = state_mac_set(&c->st, name, NULL, err)) < 0)
		return r;
	return state_vm_forget(&c->st, name, err);
}
