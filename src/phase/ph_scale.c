/*
 * Phase "remove-nodes": Talos nodes the config no longer names leave the
 * cluster before phase vms destroys their VMs, so no etcd member, Node
 * or cordon is left behind (FACTS-day2.md §4c). One node at a time,
 * workers first, then control planes (highest VM id first); before each,
 * the health gate (talos/health.h) for the cluster as it is at that
 * moment (the node being removed may be down: a dead node is removed
 * too), and once more after the last.
 *
 * A worker:         cordon, drain (evictions that honour
 *                   PodDisruptionBudgets, bounded by --timeout), Talos
 *                   Reset (graceful, power off), the Kubernetes Node
 *                   deleted once Talos no longer answers.
 * A control plane:  refused when etcd would lose quorum; else etcd
 *                   leadership forfeited (EtcdForfeitLeadership), the node
 *                   leaves etcd (EtcdLeaveCluster; when it does not
 *                   answer, EtcdRemoveMemberByID from a surviving control
 *                   plane), the member list checked on a survivor, then
 *                   cordon, drain, Reset, Node deleted as for a worker.
 *
 * Everything is read again from the live cluster on each run (Node,
 * member list, Talos answering), so an interrupted apply resumes at the
 * step it stopped at. talosconfig's endpoints and the kubeconfig follow
 * the config: phase talos-config wrote them for the remaining control
 * planes before this phase runs. Knows Talos and Kubernetes; the VMs are
 * phase vms's business.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/drain.h"
#include "kube/kubeapi.h"
#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "talos/etcd.h"
#include "talos/health.h"
#include "talos/reset.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/out.h"

struct removal {
	const char *name;
	int vmid;
	bool controlplane;
	char *addr;            /* Node InternalIP or etcd peer URL host; may be NULL */
};

static bool
talos_role(const char *role, bool *cp)
{
	if (!role)
		return false;
	*cp = !strcmp(role, "controlplane");
	return *cp || !strcmp(role, "worker");
}

/* The removals in their order: workers, then control planes, each by VM
 * id from the highest. */
static size_t
removals_list(const struct plan *p, struct removal **out)
{
	struct removal *v = xcalloc(p->n + 1, sizeof(*v));
	size_t i, j, n = 0;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		size_t start = n;

		for (i = 0; i < p->n; i++) {
			const struct action *a = &p->v[i];
			bool cp = false;

			if (a->kind != ACT_DELETE || !a->have.owned || !a->have.name ||
			    !talos_role(a->have.role, &cp) || cp != (pass == 1))
				continue;
			v[n].name = a->have.name;
			v[n].vmid = a->have.vmid;
			v[n].controlplane = cp;
			n++;
		}
		for (i = start; i < n; i++)
			for (j = i + 1; j < n; j++)
				if (v[j].vmid > v[i].vmid) {
					struct removal t = v[i];

					v[i] = v[j];
					v[j] = t;
				}
	}
	*out = v;
	return n;
}

static void
removals_free(struct removal *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].addr);
	free(v);
}

static bool
scale_should_run(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	struct removal *v;
	size_t n = removals_list(&pa->plan, &v);

	removals_free(v, n);
	return n > 0;
}

/* Does the config's node `name` exist already (not created or replaced
 * by this apply)? */
static bool
node_exists(const struct apply_ctx *c, const char *name)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++) {
		const struct action *a = &pa->plan.v[i];

		if (a->want.name && !strcmp(a->want.name, name))
			return a->kind != ACT_CREATE && a->kind != ACT_REPLACE;
	}
	return false;
}

/* Is the config's node part of the cluster now: there before this apply,
 * or installed by it already (its journal says it boots from disk)? */
static bool
node_present(struct apply_ctx *c, const char *name)
{
	char *boot;
	bool yes;

	if (node_exists(c, name))
		return true;
	boot = state_talos_get(&c->st, name, "boot");
	yes = boot && !strcmp(boot, "disk");
	free(boot);
	return yes;
}

static struct talos_target
target(const struct apply_ctx *c, const char *addr)
{
	struct talos_target t;

	memset(&t, 0, sizeof(t));
	t.addr = addr;
	t.creds = &c->creds;
	t.timeout_ms = 10000;
	return t;
}

/* The first existing control plane of the config that answers: the
 * survivor etcd calls go to. */
static const struct node *
survivor(struct apply_ctx *c)
{
	size_t i;

	for (i = 0; i < c->cfg->n_nodes; i++) {
		const struct node *nd = &c->cfg->nodes[i];
		struct talos_target t;
		struct talos_status ts;
		struct err e = ERR_INIT;
		char *tag = NULL;
		int up;

		if (nd->role != ROLE_CONTROLPLANE || !node_present(c, nd->name))
			continue;
		t = target(c, nd->ip);
		up = talos_probe(&t, &tag, &ts, &e);
		free(tag);
		if (up == TALOS_UP)
			return nd;
	}
	return NULL;
}

/* "https://127.0.0.13:2380" -> "127.0.0.13" */
static char *
url_host(const char *url)
{
	const char *h = strstr(url, "://"), *end;

	h = h ? h + 3 : url;
	end = strchr(h, ':');
	if (!end)
		end = strchr(h, '/');
	return end ? xstrndup(h, (size_t)(end - h)) : xstrdup(h);
}

/* Addresses of the nodes to remove: the Node's InternalIP, else (control
 * planes) the etcd member's peer URL. */
static void
find_addrs(struct apply_ctx *c, struct kube_client *kc, struct removal *v, size_t n)
{
	struct kube_node *kn = NULL;
	struct etcd_members m = { 0 };
	const struct node *s = NULL;
	struct err e = ERR_INIT;
	size_t nk = 0, i, j;
	bool have_members = false;

	if (kc)
		(void)kube_nodes(kc, &kn, &nk, &e);
	for (i = 0; i < n; i++) {
		for (j = 0; j < nk && !v[i].addr; j++)
			if (kn[j].address && !strcmp(kn[j].name, v[i].name))
				v[i].addr = xstrdup(kn[j].address);
		if (v[i].addr || !v[i].controlplane)
			continue;
		if (!have_members && (s = survivor(c))) {
			struct talos_target t = target(c, s->ip);

			err_clear(&e);
			have_members = talos_etcd_members(&t, false, &m, NULL, &e) == 0;
		}
		if (have_members) {
			const struct etcd_member *mb = etcd_members_find(&m, v[i].name);

			if (mb && mb->n_peer_urls)
				v[i].addr = url_host(mb->peer_urls[0]);
		}
	}
	etcd_members_release(&m);
	kube_nodes_free(kn, nk);
}

/* The gate for the cluster as it is before removing v[k]: the config's
 * existing nodes and the removals not yet done; v[k] itself may be down,
 * nodes this apply creates later are not there yet. */
static int
gate(struct apply_ctx *c, const char *kubeconfig, struct removal *v, size_t n,
     size_t k, const char *before, struct err *err)
{
	struct health_cluster hc;
	struct health_node *nodes = xcalloc(c->cfg->n_nodes + n + 1, sizeof(*nodes));
	const char **away = xcalloc(c->cfg->n_nodes + 2, sizeof(*away));
	size_t i, nn = 0, na = 0;
	int r;

	health_cluster_from_config(&hc, c->cfg, &c->creds, kubeconfig);
	for (i = 0; i < c->cfg->n_nodes; i++) {
		nodes[nn++] = hc.nodes[i];
		if (!node_present(c, c->cfg->nodes[i].name))
			away[na++] = c->cfg->nodes[i].name;
	}
	for (i = k; i < n; i++) {
		nodes[nn].name = v[i].name;
		nodes[nn].addr = v[i].addr ? v[i].addr : "";
		nodes[nn].controlplane = v[i].controlplane;
		nodes[nn].leaving = true;
		nn++;
		if (!v[i].addr && i != k)
			away[na++] = v[i].name;   /* no address known: cannot be asked */
	}
	if (k < n)
		away[na++] = v[k].name;
	health_cluster_release(&hc);
	hc.nodes = nodes;
	hc.n = nn;
	hc.creds = &c->creds;
	hc.kubeconfig = kubeconfig;
	hc.want_ready = c->cfg->kubernetes.cni != CNI_NONE;
	hc.away = away;
	hc.n_away = na;
	r = health_gate(&hc, c->wait_ms, before, err);
	free(nodes);
	free(away);
	return r;
}

static bool
talos_up(const struct apply_ctx *c, const char *addr)
{
	struct talos_target t;
	struct talos_status ts;
	struct err e = ERR_INIT;
	char *tag = NULL;
	int up;

	if (!addr)
		return false;
	t = target(c, addr);
	t.timeout_ms = 5000;
	up = talos_probe(&t, &tag, &ts, &e);
	free(tag);
	return up == TALOS_UP;
}

/* Refused when removing x's member would cost etcd its quorum: a
 * member removal is a change etcd must commit with the quorum of the
 * current membership, and the others must be able to carry on. */
static int
etcd_may_remove(struct apply_ctx *c, const struct removal *x, bool up,
		struct err *err)
{
	const struct node *s = survivor(c);
	struct etcd_members m = { 0 };
	struct talos_target st;
	size_t quorum, avail;
	int r;

	if (!s)
		return err_set(err, ERR_FAIL, "no control plane that stays in the "
			       "config answers over mTLS, so none can check or "
			       "change etcd's members; %s was not removed", x->name);
	st = target(c, s->ip);
	if ((r = talos_etcd_members(&st, false, &m, NULL, err)) < 0)
		return err_wrap(err, "etcd members (asked %s)", s->name);
	r = 0;
	if (etcd_members_find(&m, x->name)) {
		/* the others answer (the gate passed); x counts when it is up */
		quorum = m.n / 2 + 1;
		avail = m.n - (up ? 0 : 1);
		if (m.n < 2)
			r = err_set(err, ERR_FAIL, "refusing to remove control plane %s: "
				    "it is etcd's only member; nothing was changed", x->name);
		else if (avail < quorum)
			r = err_set(err, ERR_FAIL, "refusing to remove control plane %s: "
				    "etcd has %zu members and %s does not answer, so only "
				    "%zu can vote, fewer than the quorum of %zu the removal "
				    "needs; nothing was changed: bring %s back, or recover "
				    "etcd from a snapshot (strata restore)", x->name, m.n,
				    x->name, avail, quorum, x->name);
	}
	etcd_members_release(&m);
	return r;
}

/* The control plane's member leaves etcd (checked by etcd_may_remove). */
static int
leave_etcd(struct apply_ctx *c, const struct removal *x, bool up, struct err *err)
{
	const struct node *s = survivor(c);
	struct etcd_members m = { 0 };
	const struct etcd_member *mb;
	struct talos_target st;
	char hex[17];
	int r;

	if (!s)
		return err_set(err, ERR_FAIL, "no control plane that stays in the "
			       "config answers over mTLS; %s was not removed", x->name);
	st = target(c, s->ip);
	if ((r = talos_etcd_members(&st, false, &m, NULL, err)) < 0)
		return err_wrap(err, "etcd members (asked %s)", s->name);
	if (!(mb = etcd_members_find(&m, x->name))) {
		out_step("remove %s: not an etcd member (any more); %zu member%s left",
			 x->name, m.n, m.n == 1 ? "" : "s");
		etcd_members_release(&m);
		return 0;
	}
	etcd_member_id_format(mb->id, hex);
	if (up) {
		struct talos_target t = target(c, x->addr);
		char *leader = NULL;

		if ((r = talos_etcd_forfeit_leadership(&t, &leader, NULL, err)) < 0) {
			etcd_members_release(&m);
			return err_wrap(err, "remove %s: forfeit etcd leadership", x->name);
		}
		if (leader && leader[0])
			out_step("remove %s: etcd leadership handed to %s", x->name, leader);
		free(leader);
		if ((r = talos_etcd_leave(&t, NULL, err)) < 0) {
			etcd_members_release(&m);
			return err_wrap(err, "remove %s: leave etcd", x->name);
		}
		out_step("remove %s: left etcd (EtcdLeaveCluster, member %s)", x->name, hex);
	} else {
		bool gone = false;

		if ((r = talos_etcd_remove_member(&st, mb->id, &gone, NULL, err)) < 0) {
			etcd_members_release(&m);
			return err_wrap(err, "remove %s: remove etcd member %s on %s",
					x->name, hex, s->name);
		}
		out_step("remove %s: does not answer; etcd member %s removed by id on %s",
			 x->name, hex, s->name);
	}
	etcd_members_release(&m);
	/* checked on the survivor */
	if ((r = talos_etcd_members(&st, false, &m, NULL, err)) < 0)
		return err_wrap(err, "etcd members after removing %s (asked %s)",
				x->name, s->name);
	if (etcd_members_find(&m, x->name)) {
		etcd_members_release(&m);
		return err_set(err, ERR_FAIL, "%s is still an etcd member on %s after "
			       "it left; run apply again", x->name, s->name);
	}
	out_step("remove %s: etcd has %zu member%s now", x->name, m.n, m.n == 1 ? "" : "s");
	etcd_members_release(&m);
	return 0;
}

static bool
node_registered(struct kube_client *kc, const char *name, struct err *err)
{
	json_t *o = NULL;
	bool yes = kube_get(kc, "v1", "Node", NULL, name, &o, err) == 0;

	json_decref(o);
	return yes;
}

static int
remove_one(struct apply_ctx *c, struct kube_client *kc, const struct removal *x,
	   struct err *err)
{
	struct kube_wait w = { .timeout_ms = c->wait_ms, .interrupted = &phase_interrupted,
			       .what = "drain" };
	struct err e = ERR_INIT;
	bool up = talos_up(c, x->addr), reg;
	long long deadline;
	int r;

	reg = kc && node_registered(kc, x->name, &e);
	if (x->controlplane && (r = etcd_may_remove(c, x, up, err)) < 0)
		return r;
	if (reg && up) {
		if ((r = kube_cordon(kc, x->name, "removal", err)) < 0)
			return r;
		out_step("remove %s: cordoned", x->name);
		if ((r = kube_drain(kc, x->name, &w, NULL, err)) < 0)
			return r;
	}
	if (x->controlplane && (r = leave_etcd(c, x, up, err)) < 0)
		return r;
	if (up) {
		struct talos_target t = target(c, x->addr);

		if ((r = talos_reset(&t, true, false, NULL, 0, NULL, err)) < 0)
			return err_wrap(err, "remove %s: Talos Reset", x->name);
		out_step("remove %s: Talos Reset sent (graceful, power off); waiting "
			 "until it no longer answers", x->name);
		deadline = clock_mono_ms() + c->wait_ms;
		while (talos_up(c, x->addr)) {
			if (phase_interrupted)
				return err_set(err, ERR_INTR, "interrupted while %s resets",
					       x->name);
			if (clock_mono_ms() >= deadline)
				return err_set(err, ERR_FAIL, "remove %s: Talos still answers "
					       "at %s after the Reset; see its console, then "
					       "run apply again", x->name, x->addr);
			clock_sleep_ms(200);
		}
		if ((r = state_talos_set(&c->st, x->name, "removal", "reset", err)) < 0)
			return r;
	} else {
		out_step("remove %s: Talos does not answer%s%s; nothing to reset",
			 x->name, x->addr ? " at " : "", x->addr ? x->addr : "");
	}
	if (kc) {
		if ((r = kube_delete(kc, "v1", "Node", NULL, x->name, err)) < 0)
			return err_wrap(err, "remove %s", x->name);
		err_clear(&e);
		if (node_registered(kc, x->name, &e))
			return err_set(err, ERR_FAIL, "remove %s: the Node registered "
				       "again after its delete: its kubelet still runs; "
				       "run apply again", x->name);
		out_step("remove %s: Kubernetes Node deleted", x->name);
	}
	out_step("removed %s from the cluster; its VM %d is destroyed next", x->name,
		 x->vmid);
	return 0;
}

static int
scale_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	struct removal *v;
	struct kube_client *kc = NULL;
	char *kcfg = fs_join(c->env_dir, "kubeconfig");
	size_t n = removals_list(&pa->plan, &v), i;
	int r = 0;

	if (!fs_exists(kcfg)) {
		out_step("no kubeconfig yet (the cluster was never bootstrapped): "
			 "%zu node%s go with their VMs", n, n == 1 ? "" : "s");
		goto out;
	}
	if ((r = kube_client_load(&kc, kcfg, 10000, err)) < 0)
		goto out;
	find_addrs(c, kc, v, n);
	for (i = 0; i < n; i++) {
		char before[160];

		if (phase_interrupted) {
			r = err_set(err, ERR_INTR, "interrupted before removing %s", v[i].name);
			goto out;
		}
		snprintf(before, sizeof(before), "removing %s", v[i].name);
		if ((r = gate(c, kcfg, v, n, i, before, err)) < 0 ||
		    (r = etcd_snapshot_before(c, before, err)) < 0)
			goto out;
		/* an address not found before the gate (the API and etcd
		 * could not answer yet: no quorum) is looked up again now
		 * that the cluster is healthy */
		if (!v[i].addr)
			find_addrs(c, kc, &v[i], 1);
		if ((r = remove_one(c, kc, &v[i], err)) < 0)
			goto out;
	}
	r = gate(c, kcfg, v, n, n, "destroying the removed VMs", err);
out:
	kube_client_free(kc);
	free(kcfg);
	removals_free(v, n);
	return r;
}

bool
scale_joins_later(const struct apply_ctx *c, const struct node *nd)
{
	struct apply_ctx *cc = (struct apply_ctx *)c;   /* the journal is read only */

	/* A control plane joins a running cluster when etcd was bootstrapped
	 * by an earlier apply, and it is not yet installed (the journal), or
	 * it is reinstalled while another control plane keeps etcd (when all
	 * are, etcd is bootstrapped again: no cluster to join). */
	if (nd->role != ROLE_CONTROLPLANE || c->etcd_recover ||
	    !state_phase_done(&cc->st, "bootstrap"))
		return false;
	if (apply_reinstall_asked(c, nd->name))
		return !apply_reinstalls_all_controlplanes(c);
	return !trust_journal_installed(&cc->st, nd->name);
}

int
scale_join(struct apply_ctx *c, const struct node *nd, bool before, struct err *err)
{
	char *kcfg = fs_join(c->env_dir, "kubeconfig");
	char what[160];
	int r;

	if (before)
		snprintf(what, sizeof(what), "adding control plane %s", nd->name);
	else
		snprintf(what, sizeof(what), "the next step (%s joined etcd)", nd->name);
	r = gate(c, fs_exists(kcfg) ? kcfg : NULL, NULL, 0, 0, what, err);
	free(kcfg);
	return r;
}

void
scale_plan_print(const struct plan *p, const struct config *cfg, FILE *fp)
{
	struct removal *v;
	size_t n = removals_list(p, &v), i;

	if (n) {
		fprintf(fp, "\nNodes leave the cluster one at a time before their VMs "
			"are destroyed, each after the health gate passes%s:\n",
			cfg && cfg->backup.etcd_before_changes ?
			" (an etcd snapshot is taken before the first: "
			"backup.etcd_before_changes)" : "");
		for (i = 0; i < n; i++) {
			if (v[i].controlplane)
				fprintf(fp, "  %zu. %s (control plane): refused if etcd would "
					"lose quorum; cordon, drain (evictions honour "
					"PodDisruptionBudgets), forfeit etcd leadership, leave "
					"etcd (EtcdLeaveCluster, or EtcdRemoveMemberByID from a "
					"remaining control plane if it does not answer), Talos "
					"Reset (graceful, power off), delete Kubernetes Node %s\n",
					i + 1, v[i].name, v[i].name);
			else
				fprintf(fp, "  %zu. %s (worker): cordon, drain (evictions "
					"honour PodDisruptionBudgets), Talos Reset (graceful, "
					"power off), delete Kubernetes Node %s\n", i + 1,
					v[i].name, v[i].name);
		}
		fprintf(fp, "  then the health gate once more, and VM%s %s destroyed\n",
			n == 1 ? "" : "s", n == 1 ? "is" : "are");
	}
	removals_free(v, n);
}

json_t *
scale_plan_json(const struct plan *p)
{
	static const char *const worker[] = {
		"health-gate", "cordon", "drain", "talos-reset", "delete-node", NULL };
	static const char *const cp[] = {
		"health-gate", "etcd-quorum-check", "cordon", "drain",
		"etcd-forfeit-leadership", "etcd-leave", "talos-reset",
		"delete-node", NULL };
	struct removal *v;
	size_t n = removals_list(p, &v), i, j;
	json_t *a = json_array();

	for (i = 0; i < n; i++) {
		const char *const *st = v[i].controlplane ? cp : worker;
		json_t *steps = json_array();

		for (j = 0; st[j]; j++)
			json_array_append_new(steps, json_string(st[j]));
		json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:o}",
			"name", v[i].name,
			"role", v[i].controlplane ? "controlplane" : "worker",
			"vmid", v[i].vmid, "steps", steps));
	}
	removals_free(v, n);
	return a;
}

static void
scale_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	scale_plan_print(&pa->plan, c->cfg, fp);
}

const struct phase ph_scale = {
	.name = "remove-nodes",
	.title = "take removed nodes out of the cluster",
	.should_run = scale_should_run,
	.run = scale_run,
	.dry_run = scale_dry_run,
	.quiet_skip = true,
};
