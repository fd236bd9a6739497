/*
 * Phase "restart": VMs whose changes (cores, memory) wait in Proxmox for a
 * restart are rebooted, as proxmox.restart says:
 *
 *   rolling (default)  one VM at a time, in config order (control planes
 *                      first): a Proxmox reboot (a shutdown and a start,
 *                      which applies the pending values), then the VM is
 *                      waited for until it is back and healthy (talos/health:
 *                      Talos up over mTLS, etcd healthy on a control plane,
 *                      the Kubernetes node Ready again if it was Ready)
 *                      before the next one starts. So two control planes are
 *                      never down at once. Once the cluster is bootstrapped,
 *                      the cluster health gate (talos/health.h: every node,
 *                      etcd members and quorum, Kubernetes) runs before each
 *                      Talos VM's reboot and once after the last, as a roll
 *                      between nodes wants it (FACTS-day2.md 4a): no node is
 *                      rebooted while the cluster is not healthy.
 *   never              nothing is restarted; plan and status keep showing
 *                      the pending values.
 *
 * What needs a restart is read again from Proxmox (GET .../pending) right
 * before each reboot, and checked once more after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "plan/observe.h"
#include "provider/proxmox/apply.h"
#include "talos/health.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/out.h"

#define TASK_TIMEOUT_MS (10 * 60 * 1000L)

static bool
restart_wanted(const struct action *a)
{
	return a->kind == ACT_UPDATE && a->restart;
}

static bool
restart_should_run(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++)
		if (restart_wanted(&pa->plan.v[i]))
			return true;
	return false;
}

/* What Proxmox holds pending for this VM now: "cores 2 -> 4, memory ..." */
static int
pending_now(struct apply_ctx *c, const struct vm_spec *w, char *what,
	    size_t len, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	struct vm_spec s;
	json_t *pend = NULL;
	int r;

	memset(&s, 0, sizeof(s));
	what[0] = 0;
	if ((r = pve_vm_pending(pa->pve, w->node, w->vmid, &pend, err)) < 0)
		return r;
	r = observe_pending(&s, pend, err);
	json_decref(pend);
	if (r < 0)
		return err_wrap(err, "vm '%s'", w->name);
	if (s.pending_cores && s.pending_cores != s.cores)
		snprintf(what, len, "cores %d -> %d", s.cores, s.pending_cores);
	if (s.pending_memory_mib && s.pending_memory_mib != s.memory_mib)
		snprintf(what + strlen(what), len - strlen(what), "%smemory %d -> %d MiB",
			 what[0] ? ", " : "", s.memory_mib, s.pending_memory_mib);
	return 0;
}

static int
wait_healthy(struct apply_ctx *c, const struct health_target *t, struct err *err)
{
	long long deadline = clock_mono_ms() + c->wait_ms;
	long backoff = 100;
	char why[512] = "";
	int r;

	for (;;) {
		struct err e = ERR_INIT;

		if ((r = health_check(t, why, sizeof(why), &e)) == 0)
			return 0;
		if (r < 0) {
			*err = e;
			return -1;
		}
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while waiting for %s", t->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "%s did not come back healthy "
				       "after its restart: %s; the other VMs were "
				       "not restarted", t->name, why);
		clock_sleep_ms(backoff);
		backoff = backoff * 3 / 2 > 2000 ? 2000 : backoff * 3 / 2;
	}
}

/* The cluster gate, once etcd was bootstrapped and the kubeconfig is
 * there (before that, a node's own check is all there is to wait for). */
static int
cluster_gate(struct apply_ctx *c, const char *before, struct err *err)
{
	char *kcfg = fs_join(c->env_dir, "kubeconfig");
	struct health_cluster hc;
	int r = 0;

	if (state_phase_done(&c->st, "bootstrap") && fs_exists(kcfg)) {
		health_cluster_from_config(&hc, c->cfg, &c->creds, kcfg);
		r = health_gate(&hc, c->wait_ms, before, err);
		health_cluster_release(&hc);
	}
	free(kcfg);
	return r;
}

static int
restart_one(struct apply_ctx *c, const struct vm_spec *w, bool *talos,
	    struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	const struct node *n = config_node(c->cfg, w->name);
	char *kcfg = fs_join(c->env_dir, "kubeconfig"), *upid = NULL;
	char what[256], after[256];
	struct health_target t;
	struct err ignore = ERR_INIT;
	bool was_ready = false;
	int r;

	if ((r = pending_now(c, w, what, sizeof(what), err)) < 0)
		goto out;
	if (!what[0]) {
		out_step("restart %s: nothing pending any more", w->name);
		goto out;
	}
	memset(&t, 0, sizeof(t));
	/* Talos nodes are waited for until healthy; other VMs until running */
	if (n && n->ip && w->role && (!strcmp(w->role, "controlplane") ||
				     !strcmp(w->role, "worker"))) {
		t.name = n->name;
		t.addr = n->ip;
		t.controlplane = n->role == ROLE_CONTROLPLANE;
		t.creds = &c->creds;
		t.kubeconfig = kcfg;
		if (fs_exists(kcfg) &&
		    health_k8s_ready(kcfg, n->name, &was_ready, &ignore) == 0)
			t.want_ready = was_ready;
	}
	if (t.addr) {
		char why[160];

		snprintf(why, sizeof(why), "the restart of %s", w->name);
		if ((r = cluster_gate(c, why, err)) < 0 ||
		    (r = etcd_snapshot_before(c, why, err)) < 0)
			goto out;
		*talos = true;
	}
	out_step("restarting %s (vmid %d) for %s", w->name, w->vmid, what);
	if ((r = pve_vm_power(pa->pve, w->node, w->vmid, "reboot", NULL, &upid, err)) < 0 ||
	    (r = pve_task_wait(pa->pve, upid, TASK_TIMEOUT_MS, err)) < 0) {
		err_wrap(err, "reboot vm '%s'", w->name);
		goto out;
	}
	if ((r = pending_now(c, w, after, sizeof(after), err)) < 0)
		goto out;
	if (after[0]) {
		r = err_set(err, ERR_FAIL, "vm '%s' was rebooted but Proxmox still "
			    "holds %s pending", w->name, after);
		goto out;
	}
	if (t.addr) {
		if ((r = wait_healthy(c, &t, err)) < 0)
			goto out;
		out_step("%s is back: Talos up%s%s", w->name,
			 t.controlplane ? ", etcd healthy" : "",
			 t.want_ready ? ", Kubernetes node Ready" : "");
	} else {
		out_step("%s restarted", w->name);
	}
out:
	free(upid);
	free(kcfg);
	return r;
}

static int
restart_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i, k = 0;
	bool talos = false;
	int r;

	if (c->cfg->proxmox.restart == RESTART_NEVER) {
		for (i = 0; i < pa->plan.n; i++)
			if (restart_wanted(&pa->plan.v[i]))
				k++;
		out_note("%zu VM%s keep%s changes pending until restarted "
			 "(proxmox.restart: never)", k, k == 1 ? "" : "s",
			 k == 1 ? "s" : "");
		return 0;
	}
	for (i = 0; i < pa->plan.n; i++) {
		const struct action *a = &pa->plan.v[i];

		if (!restart_wanted(a))
			continue;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted before restarting '%s'",
				       a->want.name);
		if ((r = restart_one(c, &a->want, &talos, err)) < 0)
			return err_wrap(err, "restart '%s'", a->want.name);
		k++;
	}
	if (talos && (r = cluster_gate(c, "the phases after the restarts",
				       err)) < 0)
		return r;
	out_step("restarted %zu VM%s one at a time", k, k == 1 ? "" : "s");
	return 0;
}

static void
restart_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++)
		if (restart_wanted(&pa->plan.v[i]))
			fprintf(fp, "    %s %s (vmid %d)%s\n",
				c->cfg->proxmox.restart == RESTART_NEVER ? "leave pending:" : "reboot, then wait until healthy:",
				pa->plan.v[i].want.name, pa->plan.v[i].want.vmid, "");
}

const struct phase ph_restart = {
	.name = "restart",
	.title = "restart VMs whose changes wait for a restart",
	.should_run = restart_should_run,
	.run = restart_run,
	.dry_run = restart_dry_run,
	.quiet_skip = true,
};
