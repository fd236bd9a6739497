/*
 * Phase "start": every VM of the environment that is not running is
 * started. What runs is read once per Proxmox node (GET /nodes/{node}/qemu,
 * pve_node_vms), not per VM, and not taken from the plan's observation:
 *
 * - A VM's state can change between the plan and this phase (someone
 *   stops it; a create's autostart fails, FACTS.md §4: the create task
 *   still ends OK). The listing is read here, after the vms phase, so it
 *   is as current as a per-VM `status/current` would be; the list's
 *   `status` is the QEMU process's (apidata.json), not the RRD status of
 *   /cluster/resources that lags up to 10 s (FACTS.md §4).
 * - What the listing cannot tell is asked per VM: a VM it leaves out (a
 *   token without VM.Audit on it, or one made since) gets its own
 *   `status/current`, whose error then says why.
 * - A VM stopped after the listing was read stays stopped until the next
 *   apply, exactly as after a per-VM read; one started meanwhile makes
 *   its start task fail "already running" (FACTS.md §4), which is
 *   reported: nothing is assumed.
 *
 * So the VMs this apply created (started by their create task, start=1)
 * cost nothing here but their share of the node's listing. The start
 * calls go out one after another (each returns at once with a task id)
 * and the tasks are followed together (pve_tasks_wait).
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

/* The listing of each node with a wanted VM, read side by side (one
 * connection each): lists[k] for nodes[k]. */
struct lister {
	struct pve_apply *pa;
	const char **nodes;
	json_t **lists;
	struct err *errs;
};

static void
list_one(void *ctx, size_t k)
{
	struct lister *l = ctx;
	struct pve *pve = NULL;

	if (pve_new(&pve, &l->pa->pve_opts, &l->errs[k]) == 0 &&
	    pve_node_vms(pve, l->nodes[k], &l->lists[k], &l->errs[k]) < 0)
		err_wrap(&l->errs[k], "list the VMs of node '%s'", l->nodes[k]);
	pve_free(pve);
}

/* The index of node in nodes[0..nn), or nn. */
static size_t
node_at(const char **nodes, size_t nn, const char *node)
{
	size_t k;

	for (k = 0; k < nn && strcmp(nodes[k], node); k++)
		;
	return k;
}

static int
start_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char **upids = xcalloc(pa->plan.n + 1, sizeof(char *));
	const char **names = xcalloc(pa->plan.n + 1, sizeof(char *));
	const char **nodes = xcalloc(pa->plan.n + 1, sizeof(char *));
	json_t **lists = xcalloc(pa->plan.n + 1, sizeof(json_t *));
	struct err *lerrs = xcalloc(pa->plan.n + 1, sizeof(struct err));
	size_t i, k = 0, nn = 0, started = 0;
	int r = 0;

	for (i = 0; i < pa->plan.n; i++)
		if (wanted(&pa->plan.v[i]) &&
		    node_at(nodes, nn, pa->plan.v[i].want.node) == nn)
			nodes[nn++] = pa->plan.v[i].want.node;
	{
		struct lister l = { pa, nodes, lists, lerrs };

		phase_parallel(nn, c->max_parallel, list_one, &l);
	}
	for (i = 0; i < nn && r == 0; i++)
		if (!lists[i]) {
			*err = lerrs[i];
			r = -1;
		}
	for (i = 0; i < pa->plan.n && r == 0; i++) {
		const struct vm_spec *w = &pa->plan.v[i].want;
		const char *listed;
		char *status = NULL;
		json_t *list;

		if (!wanted(&pa->plan.v[i]))
			continue;
		list = lists[node_at(nodes, nn, w->node)];
		if ((listed = pve_node_vms_status(list, w->vmid)))
			status = xstrdup(listed);
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
	for (i = 0; i < nn; i++)
		json_decref(lists[i]);
	free(lists);
	free(nodes);
	free(lerrs);
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
