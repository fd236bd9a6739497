/*
 * Phase "talos-reboot": changed Talos configs that need a reboot, rolled
 * one node at a time.
 *
 * On a running cluster talos-install sends a changed nodes/<node>.yaml in
 * mode NO_REBOOT (ph_talos.c). Talos refuses that for a change it applies
 * only with a reboot (an installer change, machine.install.extraKernelArgs,
 * ...; which changes need one is Talos's decision, not ours), and nothing
 * changes on the node: talos-install journals the config as waiting
 * (talos.<node>.reboot_pending = its SHA-256) and goes on. Sent in mode AUTO
 * to every such node at once, the reboots would take every control plane
 * down together (etcd without quorum, the API gone). Here instead, as in a
 * rolling Talos upgrade (FACTS-day2 §4a):
 *
 *   - refused outright with exactly 2 control planes when one must reboot
 *     (while it reboots, the other alone has no etcd quorum);
 *   - the cluster health gate, and an etcd snapshot
 *     (backup.etcd_before_changes);
 *   - control planes first, then workers, one node at a time: its boot id
 *     journaled (talos.<node>.reboot_boot_id); a worker cordoned
 *     (strata.dev/cordoned: reboot) and drained; the config in mode AUTO
 *     (the reply's mode says whether Talos reboots); the node waited for
 *     until it answers with a new boot id; uncordoned; the journal written
 *     (config_sha256, the waiting mark and the boot id cleared); the gate.
 *
 * A killed apply: the node's config is still waiting (config_sha256 not
 * written), so the next talos-install sends it NO_REBOOT again; a node that
 * rebooted into it already takes it as the same config (no second reboot).
 * A worker the kill left cordoned is uncordoned here first (its
 * reboot_boot_id says strata cordoned it), before the gate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/drain.h"
#include "kube/kubeapi.h"
#include "phase/phase.h"
#include "talos/health.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/event.h"
#include "util/grpc.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

/* Looks at a rebooting node: every 100 ms at first (a Talos reboot takes
 * tens of seconds; one Version call over a fresh connection is cheap for
 * the node), then backing off to 1 s. */
#define LOOK_FIRST_MS 100
#define LOOK_MAX_MS   1000

int
reboot_defer(struct apply_ctx *c, const char *name, const char *sha,
	     const char *refused, struct err *err)
{
	char why[sizeof(err->msg)];
	struct state_kv kv[2];

	snprintf(why, sizeof(why), "%s", refused ? refused : "");
	if (refused)
		err_clear(err);
	kv[0] = (struct state_kv){ "reboot_pending", sha };
	kv[1] = (struct state_kv){ "reboot_refused", sha ? why : NULL };
	return state_talos_setv(&c->st, name, kv, 2, err);
}

/* The node's config waits for this phase: journaled as waiting, and
 * nodes/<node>.yaml is still the config that was refused. */
static bool
pending(struct apply_ctx *c, const struct node *n)
{
	char *p = state_talos_get(&c->st, n->name, "reboot_pending");
	bool yes = p != NULL;

	free(p);
	return yes;
}

static bool
leftover(struct apply_ctx *c, const struct node *n)
{
	char *b = state_talos_get(&c->st, n->name, "reboot_boot_id");
	bool yes = b != NULL;

	free(b);
	return yes;
}

static bool
reboot_should_run(struct apply_ctx *c)
{
	size_t i;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if (pending(c, &c->cfg->nodes[i]) || leftover(c, &c->cfg->nodes[i]))
			return true;
	return false;
}

struct reboot_roll {
	struct apply_ctx *c;
	char *kcfg;                  /* ENV/kubeconfig, NULL when absent */
	struct kube_client *kc;      /* through it, NULL without one */
	size_t done, total;
	long long waited_ms;
};

static int
gate(struct reboot_roll *R, const char *before, struct err *err)
{
	struct health_cluster hc;
	long long t0 = clock_mono_ms();
	int r;

	health_cluster_from_config(&hc, R->c->cfg, &R->c->creds, R->kcfg);
	hc.kc = R->kc;              /* lent: one client for every look */
	r = health_gate(&hc, R->c->wait_ms, before, err);
	health_cluster_release(&hc);
	R->waited_ms += clock_mono_ms() - t0;
	if (r < 0)
		err_wrap(err, "the rolling reboot stopped here (%zu of %zu nodes "
			 "done); fix the cause and run apply again to continue",
			 R->done, R->total);
	return r;
}

/* Until the node answers with another boot id than before. */
static int
wait_back(struct apply_ctx *c, const struct node *n, const char *before,
	  long long *waited_ms, struct err *err)
{
	struct talos_target t = mtls_target(c, n->ip);
	long long t0 = clock_mono_ms(), deadline = t0 + c->wait_ms;
	long look = LOOK_FIRST_MS;
	char last[sizeof(err->msg)] = "no answer yet";

	t.timeout_ms = 3000;
	t.connect_timeout_ms = 1000;
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char boot[64];

		if (talos_boot_id(&t, boot, sizeof(boot), &st, &e) == 0) {
			if (strcmp(boot, before))
				break;
			snprintf(last, sizeof(last), "still the boot id from before");
		} else if (e.msg[0]) {
			memcpy(last, e.msg, sizeof(last));
		}
		if (st.code == GRPC_TRANSPORT && st.tls == GRPC_TLS_SERVER_UNTRUSTED)
			return err_set(err, ERR_FAIL, "%s after its reboot: %s",
				       n->name, last);
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while %s reboots",
				       n->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "%s did not come back from its "
				       "reboot in %llds (last: %s)", n->name,
				       c->wait_ms / 1000, last);
		proc_sleep_ms(look);
		look = look * 2 > LOOK_MAX_MS ? LOOK_MAX_MS : look * 2;
	}
	if (waited_ms)
		*waited_ms += clock_mono_ms() - t0;
	return 0;
}

int
reboot_node(struct apply_ctx *c, struct kube_client *kc, const struct node *n,
	    const struct buf *cfg, const char *what, long long *waited_ms,
	    struct err *err)
{
	struct talos_target t = mtls_target(c, n->ip);
	struct talos_status st = { 0 };
	bool worker = n->role != ROLE_CONTROLPLANE, reboots = false,
	     cordoned = false;
	char boot[64], *prev;
	int r;

	if ((r = talos_boot_id(&t, boot, sizeof(boot), &st, err)) < 0)
		return err_wrap(err, "%s: read its boot id", n->name);
	/* A boot id journaled by a killed apply stays: its cordon is ours. */
	prev = state_talos_get(&c->st, n->name, "reboot_boot_id");
	r = prev ? 0 : state_talos_set(&c->st, n->name, "reboot_boot_id", boot, err);
	free(prev);
	if (r < 0)
		return r;
	if (worker && kc) {
		struct kube_wait w = { .timeout_ms = c->wait_ms,
				       .interrupted = &phase_interrupted,
				       .what = "drain" };
		size_t evicted = 0;

		if ((r = kube_cordon(kc, n->name, "reboot", err)) == 0) {
			cordoned = true;
			r = kube_drain(kc, n->name, &w, &evicted, err);
		}
		if (r < 0)
			return err_wrap(err, "drain %s before its reboot (it stays "
					"cordoned; the next apply uncordons it)",
					n->name);
		out_step("%s: cordoned, drained (%zu pod%s evicted)", n->name,
			 evicted, evicted == 1 ? "" : "s");
	}
	t.timeout_ms = 30000;
	if ((r = talos_apply_configuration_reboots(&t, cfg->ptr, cfg->len,
						   &reboots, &st, err)) < 0)
		return err_wrap(err, "%s: %s (mode AUTO)", n->name, what);
	out_step("%s: %s applied (%s)", n->name, what,
		 reboots ? "Talos reboots it" : "without a reboot");
	if (reboots && (r = wait_back(c, n, boot, waited_ms, err)) < 0)
		return r;
	if (cordoned && (r = kube_uncordon(kc, n->name, err)) < 0)
		return err_wrap(err, "uncordon %s after its reboot", n->name);
	return state_talos_set(&c->st, n->name, "reboot_boot_id", NULL, err);
}

/* A worker a killed apply cordoned for its reboot: uncordoned once it
 * answers with another boot id (it rebooted); the mark cleared. */
static int
leftovers(struct reboot_roll *R, struct err *err)
{
	struct apply_ctx *c = R->c;
	size_t i;
	int r;

	for (i = 0; i < c->cfg->n_nodes; i++) {
		const struct node *n = &c->cfg->nodes[i];

		if (!leftover(c, n) || pending(c, n))
			continue;       /* still waiting: reboot_one takes it */
		if (n->role != ROLE_CONTROLPLANE && R->kc &&
		    (r = kube_uncordon(R->kc, n->name, err)) < 0)
			return err_wrap(err, "uncordon %s (cordoned for its reboot "
					"by an earlier apply)", n->name);
		if (n->role != ROLE_CONTROLPLANE && R->kc)
			out_step("%s: uncordoned (an earlier apply cordoned it for "
				 "its reboot)", n->name);
		if ((r = state_talos_set(&c->st, n->name, "reboot_boot_id", NULL,
					 err)) < 0)
			return r;
	}
	return 0;
}

static int
reboot_one(struct reboot_roll *R, const struct node *n, struct err *err)
{
	struct apply_ctx *c = R->c;
	struct trust_node tn = { .name = n->name, .env_dir = c->env_dir,
				 .installed = true };
	struct buf cfg = BUF_INIT_SECRET;
	char sha[65], *refused = NULL;
	int r;

	if ((r = read_node_config(c, n->name, &cfg, sha, err)) < 0)
		goto out;
	if ((r = trust_config_send(&tn, n->ip, TALOS_API_PORT, TRUST_ADDR_CONFIG,
				   TRUST_PEER_CLUSTER, err)) < 0)
		goto out;
	refused = state_talos_get(&c->st, n->name, "reboot_refused");
	out_step("%s: Talos refused its changed config NO_REBOOT (%s): applied "
		 "alone, in mode AUTO (Talos reboots it)", n->name,
		 refused && *refused ? refused : "needs a reboot");
	if ((r = reboot_node(c, R->kc, n, &cfg, "config", &R->waited_ms,
			     err)) < 0)
		goto out;
	{
		struct state_kv kv[] = { { "config_sha256", sha },
					 { "reboot_pending", NULL },
					 { "reboot_refused", NULL } };

		if ((r = state_talos_setv(&c->st, n->name, kv, 3, err)) < 0 ||
		    (r = upgrade_journal_applied(c, n->name, NULL, false, &cfg,
						 err)) < 0)
			goto out;
	}
	R->done++;
	event_step(n->name, "ok", "changed config applied alone (mode AUTO)");
out:
	if (r < 0)
		err_wrap(err, "%s: the rolling reboot stopped here (%zu of %zu "
			 "nodes done)", n->name, R->done, R->total);
	buf_release_secret(&cfg);
	free(refused);
	return r;
}

static int
reboot_run(struct apply_ctx *c, struct err *err)
{
	struct reboot_roll R;
	size_t i, cps = 0;
	long long t0 = clock_mono_ms();
	int pass, r = 0;

	memset(&R, 0, sizeof(R));
	R.c = c;
	R.kcfg = fs_join(c->env_dir, "kubeconfig");
	if (!fs_exists(R.kcfg)) {
		free(R.kcfg);
		R.kcfg = NULL;
	}
	if (R.kcfg && (r = kube_client_load(&R.kc, R.kcfg, 10000, err)) < 0) {
		err_wrap(err, "the kubeconfig, to drain and uncordon workers");
		goto out;
	}
	for (i = 0; i < c->cfg->n_nodes; i++)
		if (pending(c, &c->cfg->nodes[i])) {
			R.total++;
			cps += c->cfg->nodes[i].role == ROLE_CONTROLPLANE;
		}
	if (cps && c->cfg->n_controlplanes == 2) {
		r = err_set(err, ERR_USAGE, "Talos refused a changed config "
			    "NO_REBOOT on %zu control plane%s: the change needs "
			    "a reboot, and rebooting a control plane of a "
			    "2-member etcd leaves the other without quorum. "
			    "Nothing was changed on them: scale the control "
			    "planes to 3 first, or take the change that needs "
			    "a reboot out of the edit", cps, cps == 1 ? "" : "s");
		goto out;
	}
	if ((r = leftovers(&R, err)) < 0)
		goto out;
	if (!R.total)
		goto out;
	if ((r = gate(&R, "the rolling reboot", err)) < 0 ||
	    (r = etcd_snapshot_before(c, "the rolling reboot", err)) < 0)
		goto out;
	/* control planes first, then workers; one node at a time */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < c->cfg->n_nodes; i++) {
			const struct node *n = &c->cfg->nodes[i];
			char after[200];

			if ((n->role == ROLE_CONTROLPLANE) != (pass == 0) ||
			    !pending(c, n))
				continue;
			if (phase_interrupted) {
				r = err_set(err, ERR_INTR, "interrupted before the "
					    "reboot of %s", n->name);
				goto out;
			}
			if ((r = reboot_one(&R, n, err)) < 0)
				goto out;
			snprintf(after, sizeof(after), "the next step, after %s",
				 n->name);
			if ((r = gate(&R, after, err)) < 0)
				goto out;
		}
	}
	out_step("Talos: %zu changed config%s that need%s a reboot applied one "
		 "node at a time in %.1fs, the health gate after each", R.total,
		 R.total == 1 ? "" : "s", R.total == 1 ? "s" : "",
		 (clock_mono_ms() - t0) / 1000.0);
out:
	kube_client_free(R.kc);
	free(R.kcfg);
	return r;
}

static void
reboot_dry_run(struct apply_ctx *c, FILE *fp)
{
	size_t i;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if (pending(c, &c->cfg->nodes[i]))
			fprintf(fp, "    %s: its changed config needs a reboot "
				"(Talos refused it NO_REBOOT): applied alone, a "
				"worker drained first, then the health gate\n",
				c->cfg->nodes[i].name);
}

const struct phase ph_talos_reboot = {
	.name = "talos-reboot",
	.title = "changed Talos configs that need a reboot, one node at a time",
	.should_run = reboot_should_run,
	.run = reboot_run,
	.dry_run = reboot_dry_run,
	.quiet_skip = true,
};
