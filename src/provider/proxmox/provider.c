/*
 * The Proxmox provider of the phase engine (phase/provider.h): its apply
 * and destroy phase lists, and the machine hooks of the shared Talos
 * phases. A machine is the VM the plan made for a node; each one opens
 * its own API client on its talos-install worker thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "cmd/machines.h"
#include "phase/phase.h"
#include "phase/provider.h"
#include "provider/proxmox/apply.h"
#include "provider/proxmox/proxmox.h"
#include "util/progress.h"

struct machine {
	const struct node *nd;
	const struct vm_spec *vm;
	struct pve *pve;            /* made on first use, on this thread */
	char label[32];
};

struct pve_apply *
pve_apply_of(const struct apply_ctx *c)
{
	return c->pstate;
}

/* The client and its options are the environment's (env_open). */
static int
pm_ctx_open(struct apply_ctx *c, struct env *e, struct err *err)
{
	struct pve_apply *pa = xcalloc(1, sizeof(*pa));

	(void)err;
	pa->pve = e->pve;
	if (e->pve_opts)
		pa->pve_opts = *e->pve_opts;
	c->pstate = pa;
	return 0;
}

static void
pm_ctx_close(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);

	if (!pa)
		return;
	plan_release(&pa->plan);
	free(pa->iso_volid);
	free(pa->iso_url);
	cidata_release(c);
	free(pa);
	c->pstate = NULL;
}

/* The VM the plan made for a node (by name). */
static const struct vm_spec *
node_vm(const struct apply_ctx *c, const char *name)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++) {
		const struct action *a = &pa->plan.v[i];

		if (a->kind != ACT_DELETE && a->kind != ACT_CONFLICT &&
		    a->want.name && !strcmp(a->want.name, name))
			return &a->want;
	}
	return NULL;
}

static int
pm_open(struct apply_ctx *c, const struct node *nd, struct machine **out,
	struct err *err)
{
	const struct vm_spec *vm = node_vm(c, nd->name);
	struct machine *m;

	*out = NULL;
	if (!vm)
		return err_set(err, ERR_FAIL, "node '%s' has no VM in the plan",
			       nd->name);
	m = xcalloc(1, sizeof(*m));
	m->nd = nd;
	m->vm = vm;
	snprintf(m->label, sizeof(m->label), "vm %d", vm->vmid);
	*out = m;
	return 0;
}

static void
pm_close(struct machine *m)
{
	pve_free(m->pve);
	free(m);
}

static const char *
pm_label(const struct machine *m)
{
	return m->label;
}

static int
pm_discover(struct apply_ctx *c, struct machine *m, char **ip,
	    enum trust_addr *src, struct err *err)
{
	if (c->cfg->network.discovery != DISCOVERY_GUEST_AGENT) {
		/* dhcp-lease: the lease keyed by the node's MAC hands out its
		 * own address; static: the address is already configured. */
		*ip = xstrdup(m->nd->ip);
		*src = TRUST_ADDR_CONFIG;
		return 0;
	}
	if (!m->pve && pve_new(&m->pve, &pve_apply_of(c)->pve_opts, err) < 0)
		return -1;
	/* Over the authenticated API, the interface with the VM's MAC. */
	if (pve_agent_ipv4(m->pve, m->vm->node, m->vm->vmid, m->vm->mac, ip,
			   err) < 0)
		return -1;
	*src = TRUST_ADDR_AGENT;
	return 0;
}

static int
pm_stuck(const struct apply_ctx *c, struct machine *m, const char *took,
	 const struct err *last, struct err *err)
{
	return cidata_stuck_error(c, m->nd->name, m->vm, m->nd->ip, took, last,
				  err);
}

/* After the install: boot from the disk, the ISO out of the drive. */
static int
fix_boot(struct apply_ctx *c, struct machine *m, struct progress *pr,
	 size_t idx, struct err *err)
{
	const struct vm_spec *vm = m->vm;
	struct pve_params p;
	char *done, *upid = NULL;
	bool need;
	int r;

	done = state_talos_get(&c->st, m->nd->name, "boot");
	need = !done || strcmp(done, "disk");
	free(done);
	if (!need)
		return 0;
	if (!m->pve && pve_new(&m->pve, &pve_apply_of(c)->pve_opts, err) < 0)
		return -1;
	/* Setting both is idempotent: no need to read the config first. */
	progress_step(pr, idx, "boot from disk, detach the ISO");
	pve_params_init(&p);
	pve_params_add(&p, "boot", "order=scsi0");
	pve_params_add(&p, "ide2", "none,media=cdrom");
	if (cidata_pending(c, m->nd->name))   /* and the cidata drive */
		pve_params_add(&p, "delete", "ide3");
	r = pve_vm_config_post(m->pve, vm->node, vm->vmid, &p, &upid, err);
	pve_params_release(&p);
	if (r == 0 && upid)
		r = pve_task_wait(m->pve, upid, 60000, err);
	free(upid);
	if (r < 0)
		return err_wrap(err, "vm %d: set boot order", vm->vmid);
	return state_talos_set(&c->st, m->nd->name, "boot", "disk", err);
}

static int
pm_after_install(struct apply_ctx *c, struct machine *m, struct progress *pr,
		 size_t idx, struct err *err)
{
	int r = fix_boot(c, m, pr, idx, err);

	if (r == 0)
		r = cidata_cleanup(c, &m->pve, m->nd->name, m->vm, err);
	return r;
}

static const struct phase *const apply_phases[] = {
	&ph_talos_gen,
	&ph_iso,
	&ph_cidata,
	&ph_scale,
	&ph_vms,
	&ph_civm,
	&ph_start,
	&ph_talos_install,
	&ph_cidata_sweep,
	&ph_talos_bootstrap,
	&ph_kubernetes,
	&ph_cni,
	&ph_gitops,
	&ph_restart,
	&ph_talos_reboot,
	&ph_talos_upgrade,
};

/* destroy runs these on a plan whose every owned VM is a delete. */
static const struct phase *const destroy_phases[] = {
	&ph_vms,
	&ph_civm,
	&ph_cidata_sweep,
};

const struct provider provider_proxmox = {
	.name = "proxmox",
	.vm_plan = true,
	.ctx_open = pm_ctx_open,
	.ctx_close = pm_ctx_close,
	.apply = apply_phases,
	.n_apply = sizeof(apply_phases) / sizeof(apply_phases[0]),
	.destroy = destroy_phases,
	.n_destroy = sizeof(destroy_phases) / sizeof(destroy_phases[0]),
	.machine_open = pm_open,
	.machine_close = pm_close,
	.machine_label = pm_label,
	.discover = pm_discover,
	.config_at_boot = cidata_mode,
	.boot_config_pending = cidata_pending,
	.boot_stuck_error = pm_stuck,
	.after_install = pm_after_install,
	.plan_machines = plan_vms,        /* cmd_plan.c: the VM plan */
	.status_machines = status_vms,    /* cmd_status.c: the VM table */
};
