/*
 * Phase "start": every VM of the environment that is not running is
 * started (the ones this apply created run already: ph_vms.c). The
 * start calls go out one after another (each returns at once with a task
 * id) and the tasks then run side by side on Proxmox.
 */
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "util/out.h"

static bool
wanted(const struct action *a)
{
	return a->kind != ACT_DELETE && a->kind != ACT_CONFLICT && a->want.name;
}

static int
start_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char **upids = xcalloc(pa->plan.n + 1, sizeof(char *));
	const char **names = xcalloc(pa->plan.n + 1, sizeof(char *));
	size_t i, k = 0, started = 0;
	int r = 0;

	for (i = 0; i < pa->plan.n && r == 0; i++) {
		const struct vm_spec *w = &pa->plan.v[i].want;
		char *status = NULL;

		if (!wanted(&pa->plan.v[i]))
			continue;
		/* A VM this apply created runs: its create task started it
		 * (start=1) and its job in ph_vms checked (and started it if
		 * the autostart failed). */
		if (pa->plan.v[i].kind == ACT_CREATE || pa->plan.v[i].kind == ACT_REPLACE)
			status = xstrdup("running");
		else if ((r = pve_vm_status(pa->pve, w->node, w->vmid, &status, err)) < 0) {
			err_wrap(err, "vm '%s'", w->name);
			break;
		}
		if (strcmp(status, "running")) {
			r = pve_vm_power(pa->pve, w->node, w->vmid, "start", NULL,
					 &upids[k], err);
			if (r < 0)
				err_wrap(err, "start vm '%s'", w->name);
			else
				names[k++] = w->name;
		}
		free(status);
	}
	/* Followed together: one task listing per node and tick. */
	if (r == 0 && k) {
		struct err *errs = xcalloc(k, sizeof(*errs));

		pve_tasks_wait(pa->pve, upids, k, 5 * 60 * 1000L, errs);
		for (i = 0; i < k; i++) {
			if (!errs[i].code)
				started++;
			else if (r == 0) {
				*err = errs[i];
				r = err_wrap(err, "start vm '%s'", names[i]);
			}
		}
		free(errs);
	}
	for (i = 0; i < k; i++)
		free(upids[i]);
	if (r == 0 && started)
		out_step("started %zu VM%s", started, started == 1 ? "" : "s");
	else if (r == 0)
		out_step("start VMs: all running, nothing to do");
	free(upids);
	free(names);
	return r;
}

static void
start_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++)
		if (wanted(&pa->plan.v[i]))
			fprintf(fp, "    start %s (vmid %d) unless running\n",
				pa->plan.v[i].want.name, pa->plan.v[i].want.vmid);
}

const struct phase ph_start = {
	.name = "start",
	.title = "start VMs",
	.should_run = NULL,
	.run = start_run,
	.dry_run = start_dry_run,
};
