/*
 * Phase "talos-upgrade": a changed talos.version (or schematic, or
 * talos.installer_image) rolls through the cluster with the Upgrade API
 * (FACTS-day2 §4a):
 *
 *   - every node healthy first (the gate below), else nothing starts;
 *   - control planes first, one at a time, never in a 2-member etcd (the
 *     Talos server refuses it, and losing one of two loses quorum);
 *   - per node: its boot id read, its changed nodes/<node>.yaml staged
 *     (ApplyConfiguration STAGED: it takes effect with the upgrade's
 *     reboot, so the node reboots once), Upgrade{installer image}, then
 *     waited for until it answers with a new boot id and the new version,
 *     then the gate again before the next node;
 *   - then workers, at most apply --parallel at a time (default 1 here),
 *     each cordoned and drained first and uncordoned once back.
 *
 * The gate: every node's Talos answering over mTLS with this cluster's
 * certificate, etcd Running and healthy on every control plane, and every
 * Kubernetes node that was Ready when the roll began Ready again
 * (talos/health). Bounded by apply --timeout.
 *
 * A failure stops the roll where it is: the nodes done stay upgraded, the
 * others keep their version, and the next apply continues. The live
 * version (Version) decides what is done; for a change that keeps the
 * version (a new schematic), the journal's installer image does, with the
 * boot id journaled before each Upgrade so that an apply killed after the
 * call knows whether the node rebooted since.
 *
 * Only supported paths (adjacent minors, never back). Once no node needs
 * a Talos upgrade, a changed kubernetes.version rolls (ph_k8supgrade.c);
 * both changed at once is refused (upgrade_check).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/drain.h"
#include "kube/kubeapi.h"
#include "phase/phase.h"
#include "talos/gen.h"
#include "talos/health.h"
#include "talos/upgrade.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/event.h"
#include "util/fs.h"
#include "util/grpc.h"
#include "util/out.h"

#define POLL_MS 100          /* while a node reboots: its return is the
                              * roll's critical path (bench/upgrade.sh) */
#define POLL_MAX_MS 250

struct roll {
	struct apply_ctx *c;
	char *image;                 /* installer image wanted */
	char *kcfg;                  /* ENV/kubeconfig, or NULL */
	bool all_ready;              /* every node Ready when the roll began */
	bool *need;                  /* per cfg node */
	char **live;                 /* per cfg node: version it answered with */
	size_t done, total;
	long long waited_ms;         /* time spent waiting for nodes and gates */
	long long gate_ms;           /* of which in the gates */
	/* Kubernetes clients for the whole roll (a load costs a process: the
	 * kubeconfig holds a key, parsed isolated): hkc for every pass of the
	 * gates (NULL: each pass loads its own), kc for the drains and
	 * uncordons when workers go one at a time (a client serves one thread
	 * at a time; with --parallel > 1 each worker loads its own). */
	struct kube_client *hkc;
	struct kube_client *kc;
	bool share_kc;
};

struct ujob {
	struct roll *R;
	size_t i;                    /* cfg node index */
	int rc;
	struct err err;
};

static bool
upgrade_should_run(struct apply_ctx *c)
{
	return c->cfg->n_nodes > 0;
}

/* ------------------------------------------------------------ the gate */

/*
 * Every node healthy, bounded: the cluster gate of talos/health (what
 * `talosctl health` checks: Talos on every node, etcd service and
 * members, the Kubernetes API, every node registered, Ready when it was
 * Ready as the roll began, none cordoned by us). Polled at 100 ms, then
 * up to 250 ms. after: what just happened, for messages.
 */
static int
gate(struct roll *R, const char *after, struct err *err)
{
	struct apply_ctx *c = R->c;
	struct health_cluster hc;
	struct health_report rep;
	long long t0 = clock_mono_ms(), deadline = t0 + c->wait_ms;
	long backoff = POLL_MS;
	size_t i, cps = 0;
	int r = 0;

	health_cluster_from_config(&hc, c->cfg, &c->creds, R->kcfg);
	hc.kc = R->hkc;
	hc.want_ready = hc.want_ready && R->kcfg && R->all_ready;
	for (;;) {
		memset(&rep, 0, sizeof(rep));
		if ((r = health_cluster_check(&hc, &rep, err)) < 0) {
			err_wrap(err, "health gate %s", after);
			goto out;
		}
		if (rep.healthy)
			break;
		if (phase_interrupted) {
			r = err_set(err, ERR_INTR, "interrupted in the health gate %s",
				    after);
			goto out;
		}
		if (clock_mono_ms() >= deadline) {
			r = err_set(err, ERR_FAIL, "health gate %s: not healthy "
				    "after %llds: %s%s%s; the roll stopped here (%zu of "
				    "%zu nodes upgraded); fix the node and run apply "
				    "again to continue", after, c->wait_ms / 1000,
				    rep.first_check ? rep.first_check : "",
				    rep.first_check ? ": " : "",
				    rep.first_fail ? rep.first_fail : "?", R->done,
				    R->total);
			goto out;
		}
		proc_sleep_ms(backoff);
		backoff = backoff * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : backoff * 3 / 2;
	}
	for (i = 0; i < c->cfg->n_nodes; i++)
		cps += c->cfg->nodes[i].role == ROLE_CONTROLPLANE;
	R->gate_ms += clock_mono_ms() - t0;
	R->waited_ms += clock_mono_ms() - t0;
	if (hc.want_ready)
		out_step("health gate %s: %zu nodes up over mTLS, etcd healthy on "
			 "%zu control plane%s, %zu Kubernetes nodes Ready", after,
			 c->cfg->n_nodes, cps, cps == 1 ? "" : "s", c->cfg->n_nodes);
	else
		out_step("health gate %s: %zu nodes up over mTLS, etcd healthy on "
			 "%zu control plane%s", after, c->cfg->n_nodes, cps,
			 cps == 1 ? "" : "s");
out:
	health_cluster_release(&hc);
	return r;
}

/* -------------------------------------------------------------- one node */

static int
wait_back(struct roll *R, const struct node *n, const char *boot_before,
	  struct err *err)
{
	struct apply_ctx *c = R->c;
	struct talos_target t = mtls_target(c, n->ip);
	long long t0 = clock_mono_ms(), deadline = t0 + c->wait_ms;
	char last[sizeof(((struct err *)0)->msg)] = "no answer yet";

	t.timeout_ms = 3000;
	t.connect_timeout_ms = 1000;
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char boot[64], *tag = NULL;

		if (talos_boot_id(&t, boot, sizeof(boot), &st, &e) == 0) {
			if (!strcmp(boot, boot_before)) {
				snprintf(last, sizeof(last), "still the boot id "
					 "from before the upgrade");
			} else if (talos_version(&t, &tag, &st, &e) == 0) {
				int r = 0;

				if (strcmp(tag, c->cfg->talos.version))
					/* rebooted, not into the new version:
					 * the installer failed, Talos kept
					 * the old one */
					r = err_set(err, ERR_FAIL, "%s rebooted "
						    "(new boot id) but runs Talos "
						    "%s, not %s: the upgrade did "
						    "not take (see `talosctl -n %s "
						    "dmesg`); the roll stopped here",
						    n->name, tag,
						    c->cfg->talos.version, n->ip);
				free(tag);
				R->waited_ms += clock_mono_ms() - t0;
				return r;
			}
		}
		if (e.msg[0])
			memcpy(last, e.msg, sizeof(last));
		if (st.code == GRPC_TRANSPORT && st.tls == GRPC_TLS_SERVER_UNTRUSTED)
			/* a certificate that is not this cluster's. (A hang-up
			 * right after the handshake, which looks like our
			 * client certificate refused, is also what a node
			 * going down for its reboot does: waited through.) */
			return err_set(err, ERR_FAIL, "%s after its upgrade: %s",
				       n->name, last);
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while %s "
				       "upgrades", n->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "%s did not come back from "
				       "its upgrade in %llds (last: %s); the roll "
				       "stopped here", n->name, c->wait_ms / 1000,
				       last);
		proc_sleep_ms(POLL_MS);
	}
}

/*
 * A worker is cordoned (strata.dev/cordoned: upgrade) and drained
 * (evictions honouring PodDisruptionBudgets, bounded by --timeout) before
 * its Upgrade, and uncordoned once it is back, as talosctl upgrade does
 * from the client (FACTS-day2 §4a, v1.13). Without a kubeconfig (no
 * Kubernetes yet) there is nothing to drain.
 */
static int
drain(struct roll *R, const struct node *n, struct kube_client *kc,
      struct err *err)
{
	struct kube_wait w = { .timeout_ms = R->c->wait_ms,
			       .interrupted = &phase_interrupted, .what = "drain" };
	size_t evicted = 0;
	int r;

	if (!kc)
		return 0;
	if ((r = kube_cordon(kc, n->name, "upgrade", err)) == 0)
		r = kube_drain(kc, n->name, &w, &evicted, err);
	if (r < 0)
		return err_wrap(err, "drain %s before its upgrade (it stays "
				"cordoned and was not upgraded; the roll stopped "
				"here)", n->name);
	out_step("%s: cordoned, drained (%zu pod%s evicted)", n->name, evicted,
		 evicted == 1 ? "" : "s");
	return 0;
}

/* kc NULL: a client of its own (decide, for a cordon a killed apply left). */
static int
uncordon(struct roll *R, const struct node *n, struct kube_client *kc,
	 struct err *err)
{
	struct kube_client *own = NULL;
	int r = 0;

	if (!R->kcfg)
		return 0;
	if (!kc && (r = kube_client_load(&own, R->kcfg, 10000, err)) == 0)
		kc = own;
	if (r == 0)
		r = kube_uncordon(kc, n->name, err);
	kube_client_free(own);
	return r < 0 ? err_wrap(err, "uncordon %s after its upgrade", n->name) : 0;
}

/* Stage nodes/<node>.yaml if it changed: it takes effect at the reboot.
 * staged[] gets its sha256 when it was staged ("" when not): journaled by
 * the caller with the boot id, in one save, before the Upgrade. */
static int
stage_config(struct roll *R, const struct node *n, char staged[65],
	     struct err *err)
{
	struct apply_ctx *c = R->c;
	struct talos_target t = mtls_target(c, n->ip);
	struct trust_node tn = { .name = n->name, .env_dir = c->env_dir,
				 .installed = true };
	struct talos_status st = { 0 };
	struct buf cfg = BUF_INIT_SECRET;
	char sha[65], *done = NULL, *details = NULL;
	int r;

	staged[0] = 0;
	if ((r = read_node_config(c, n->name, &cfg, sha, err)) < 0)
		return r;
	done = state_talos_get(&c->st, n->name, "config_sha256");
	if (done && !strcmp(done, sha))
		goto out;
	if ((r = trust_config_send(&tn, n->ip, TALOS_API_PORT,
				   TRUST_ADDR_CONFIG, TRUST_PEER_CLUSTER, err)) < 0)
		goto out;
	t.timeout_ms = 30000;
	if ((r = talos_apply_configuration_mode(&t, cfg.ptr, cfg.len,
						TALOS_APPLY_STAGED, &details,
						&st, err)) < 0) {
		err_wrap(err, "stage nodes/%s.yaml", n->name);
		goto out;
	}
	memcpy(staged, sha, 65);
out:
	free(details);
	free(done);
	buf_release_secret(&cfg);
	return r;
}

/*
 * The images of the config staged on node n (journaled as k8s_images once
 * it runs it), or NULL when none is staged or nodes/<node>.yaml is no
 * longer what was staged. A parse in a child process: upgrade_node asks
 * while the node reboots, off the roll's critical path.
 */
static char *
staged_images(struct roll *R, const struct node *n)
{
	char *staged = state_talos_get(&R->c->st, n->name, "staged_sha256");
	char *imgs = NULL;

	if (staged) {
		/* the staged config is what it runs now: its images too */
		struct buf b = BUF_INIT_SECRET;
		struct err e = ERR_INIT;
		char sha[65];

		if (read_node_config(R->c, n->name, &b, sha, &e) == 0 &&
		    !strcmp(sha, staged)) {
			struct k8s_images im;

			k8s_images_of(&im, b.ptr, b.len);
			imgs = k8s_images_format(&im);
			k8s_images_free(&im);
		}
		buf_release_secret(&b);
	}
	free(staged);
	return imgs;
}

/* After the node is back: the journal says what it runs now (one save).
 * imgs: staged_images() of the node, asked before it came back. */
static int
journal_done(struct roll *R, const struct node *n, const char *imgs,
	     struct err *err)
{
	struct state *st = &R->c->st;
	char *staged = state_talos_get(st, n->name, "staged_sha256");
	struct state_kv kv[] = {
		{ "talos_version", R->c->cfg->talos.version },
		{ "installer", R->image },
		{ staged ? "config_sha256" : "staged_sha256", staged },
		{ "staged_sha256", NULL },
		{ "upgrade_boot_id", NULL },
		{ "k8s_images", NULL },
	};
	size_t nkv = sizeof(kv) / sizeof(kv[0]) - 1;
	int r;

	if (staged && imgs)
		kv[nkv++].val = imgs;
	r = state_talos_setv(st, n->name, kv, nkv, err);
	free(staged);
	return r;
}

/* A node's upgrade as an event of apply -o json (docs/json.md). */
static void
talos_event(const struct roll *R, const struct node *n, const char *state,
	    const char *text)
{
	event_step_with(n->name, state, text,
			json_pack("{s:s, s:s, s:s}", "roll", "talos_upgrade",
				  "component", "talos", "image", R->image));
}

/*
 * Before the Upgrade, two calls to the node at once: its boot id read
 * (k 0) and its changed config staged (k 1). Neither changes what it
 * runs (a staged config waits for the reboot) and the Upgrade waits for
 * both, so their order does not matter; one round trip is saved.
 */
struct prep {
	struct roll *R;
	const struct node *n;
	char boot[64], staged[65];
	int rc[2];
	struct err err[2];
};

static void
prep_run(void *ctx, size_t k)
{
	struct prep *p = ctx;
	struct talos_target t = mtls_target(p->R->c, p->n->ip);
	struct talos_status st = { 0 };

	p->err[k] = (struct err)ERR_INIT;
	if (k == 0 && (p->rc[0] = talos_boot_id(&t, p->boot, sizeof(p->boot),
						&st, &p->err[0])) < 0)
		err_wrap(&p->err[0], "%s: read its boot id", p->n->name);
	if (k == 1)
		p->rc[1] = stage_config(p->R, p->n, p->staged, &p->err[1]);
}

static int
upgrade_node(struct roll *R, size_t i, struct err *err)
{
	struct apply_ctx *c = R->c;
	const struct node *n = &c->cfg->nodes[i];
	struct talos_target t = mtls_target(c, n->ip);
	struct talos_status st = { 0 };
	struct prep pr = { .R = R, .n = n, .rc = { -1, -1 } };
	char *boot = pr.boot, *staged = pr.staged, *actor = NULL, *imgs = NULL;
	struct kube_client *kc = NULL, *own = NULL;
	long long t0 = clock_mono_ms();
	int r, k;

	for (k = 0; k < 2; k++)
		err_set(&pr.err[k], ERR_INTR, "interrupted before upgrading %s",
			n->name);     /* what an item not started says */
	phase_parallel(2, 2, prep_run, &pr);
	if (pr.rc[0] < 0 && pr.rc[1] == 0 && staged[0])
		/* staged, but no Upgrade follows: the journal still says what
		 * waits on the node for its next reboot */
		(void)state_talos_set(&c->st, n->name, "staged_sha256", staged,
				      &(struct err)ERR_INIT);
	for (k = 0; k < 2; k++)
		if (pr.rc[k] < 0) {
			*err = pr.err[k];
			return pr.rc[k];
		}
	/* Journaled before the call, with the config staged (one save): a
	 * killed apply can tell afterwards whether this node rebooted into
	 * it. */
	{
		struct state_kv kv[] = { { "upgrade_boot_id", boot },
					 { "upgrade_image", R->image },
					 { "staged_sha256", staged } };

		if ((r = state_talos_setv(&c->st, n->name, kv,
					  staged[0] ? 3 : 2, err)) < 0)
			return r;
	}
	/* One Kubernetes client for the worker's drain and uncordon: the
	 * roll's when workers go one at a time, else its own. */
	if (n->role != ROLE_CONTROLPLANE && R->kcfg) {
		if (R->share_kc && !R->kc &&
		    (r = kube_client_load(&R->kc, R->kcfg, 10000, err)) < 0)
			return err_wrap(err, "drain %s", n->name);
		if (!R->share_kc &&
		    (r = kube_client_load(&own, R->kcfg, 10000, err)) < 0)
			return err_wrap(err, "drain %s", n->name);
		kc = R->share_kc ? R->kc : own;
	}
	if (n->role != ROLE_CONTROLPLANE && (r = drain(R, n, kc, err)) < 0)
		goto out;
	out_step("upgrading %s: Talos %s -> %s (%s)", n->name,
		 R->live[i] ? R->live[i] : "?", c->cfg->talos.version, R->image);
	talos_event(R, n, "running", "Upgrade");
	t.timeout_ms = 10 * 60 * 1000L;   /* it pulls the image before replying */
	if ((r = talos_upgrade(&t, R->image, &actor, &st, err)) < 0) {
		err_wrap(err, "upgrade %s (%zu of %zu nodes done; the "
			 "others were not touched; fix the cause and run "
			 "apply again to continue)", n->name, R->done,
			 R->total);
		goto out;
	}
	free(actor);
	/* while it reboots (seconds at least): what the journal will say */
	imgs = staged_images(R, n);
	if ((r = wait_back(R, n, boot, err)) < 0)
		goto out;
	if (n->role != ROLE_CONTROLPLANE && (r = uncordon(R, n, kc, err)) < 0)
		goto out;
	if ((r = journal_done(R, n, imgs, err)) < 0)
		goto out;
	out_step("%s is back: new boot id, Talos %s (%.1fs)", n->name,
		 c->cfg->talos.version, (clock_mono_ms() - t0) / 1000.0);
out:
	talos_event(R, n, r < 0 ? "failed" : "ok", r < 0 ? err->msg
		    : "back with a new boot id at the new version");
	kube_client_free(own);
	free(imgs);
	return r;
}

static void
ujob_run(void *ctx, size_t k)
{
	struct ujob *j = &((struct ujob *)ctx)[k];

	j->rc = upgrade_node(j->R, j->i, &j->err);
}

static const struct err *
ujob_failed(void *ctx, size_t k)
{
	const struct ujob *j = &((struct ujob *)ctx)[k];

	return j->rc < 0 ? &j->err : NULL;
}

/* ------------------------------------------------------------ the roll */

/* Every node's version at once before decide (one round trip, not one per
 * node in turn): R->live[i], left NULL where it fails. */
static void
version_run(void *ctx, size_t i)
{
	struct roll *R = ctx;
	struct talos_target t = mtls_target(R->c, R->c->cfg->nodes[i].ip);
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;

	if (talos_version(&t, &R->live[i], &st, &e) < 0)
		R->live[i] = NULL;
}

#define VERSION_PARALLEL 8   /* nodes asked at once; one call each */

/*
 * Does node i need the upgrade? From what it runs (Version), else for a
 * change of installer at the same version from the journal. A node an
 * earlier, killed apply upgraded (the journaled boot id differs from its
 * boot id now) only gets its journal written.
 */
static int
decide(struct roll *R, size_t i, struct err *err)
{
	struct apply_ctx *c = R->c;
	const struct node *n = &c->cfg->nodes[i];
	struct talos_target t = mtls_target(c, n->ip);
	struct talos_status st = { 0 };
	char *inst = NULL, *pend = NULL, *pend_img = NULL, boot[64];
	char why[400];
	int r = 0, path;

	/* the version prefetched for every node at once (upgrade_run), else
	 * asked here (the prefetch failed: asked again for its error) */
	if (!R->live[i] && (r = talos_version(&t, &R->live[i], &st, err)) < 0)
		return err_wrap(err, "%s", n->name);
	path = upgrade_path("Talos", R->live[i], c->cfg->talos.version, why,
			    sizeof(why));
	if (path < 0)
		return err_set(err, ERR_USAGE, "%s: %s", n->name, why);
	inst = state_talos_get(&c->st, n->name, "installer");
	pend = state_talos_get(&c->st, n->name, "upgrade_boot_id");
	pend_img = state_talos_get(&c->st, n->name, "upgrade_image");
	R->need[i] = path == 1 || (inst && strcmp(inst, R->image));
	if (R->need[i] && path == 0 && pend && pend_img &&
	    !strcmp(pend_img, R->image) &&
	    talos_boot_id(&t, boot, sizeof(boot), &st, err) == 0 &&
	    strcmp(boot, pend)) {
		out_step("%s was upgraded to %s by an earlier apply", n->name,
			 R->image);
		R->need[i] = false;
	}
	err_clear(err);
	if (pend && n->role != ROLE_CONTROLPLANE && R->kcfg &&
	    (r = uncordon(R, n, NULL, err)) < 0)
		goto out;
	if (!R->need[i] && (!inst || strcmp(inst, R->image) ||
			    (pend && path == 0))) {
		char *imgs = staged_images(R, n);

		r = journal_done(R, n, imgs, err);
		free(imgs);
	}
out:
	free(inst);
	free(pend);
	free(pend_img);
	return r;
}

static int
upgrade_run(struct apply_ctx *c, struct err *err)
{
	struct roll R;
	struct err ignore = ERR_INIT;
	size_t i, n = c->cfg->n_nodes, cps_need = 0, w_need = 0;
	int r = 0, par = c->upgrade_parallel > 0 ? c->upgrade_parallel : 1;
	long long t0 = clock_mono_ms();

	memset(&R, 0, sizeof(R));
	R.c = c;
	R.need = xcalloc(n + 1, sizeof(bool));
	R.live = xcalloc(n + 1, sizeof(char *));
	if (!(R.image = upgrade_installer(c->cfg, err))) {
		r = -1;
		goto out;
	}
	R.kcfg = fs_join(c->env_dir, "kubeconfig");
	if (!fs_exists(R.kcfg)) {
		free(R.kcfg);
		R.kcfg = NULL;
	}
	R.share_kc = par == 1;
	R.all_ready = false;
	if (R.kcfg) {
		const char **names = xcalloc(n + 1, sizeof(char *));

		for (i = 0; i < n; i++)
			names[i] = c->cfg->nodes[i].name;
		/* the gates' client; without one each pass loads its own
		 * (and says why it cannot) */
		if (kube_client_load(&R.hkc, R.kcfg, 5000, &ignore) < 0)
			R.hkc = NULL;
		if (health_k8s_all_ready(R.kcfg, R.hkc, names, n,
					 &R.all_ready, &ignore) < 0)
			R.all_ready = false;
		free(names);
	}
	phase_parallel(n, VERSION_PARALLEL, version_run, &R);
	/* Nothing starts unless every node is healthy (a node an earlier,
	 * killed apply left rebooting is waited for here). */
	for (i = 0; i < n; i++) {
		if ((r = decide(&R, i, err)) < 0)
			goto out;
		if (R.need[i])
			c->cfg->nodes[i].role == ROLE_CONTROLPLANE ? cps_need++ : w_need++;
	}
	R.total = cps_need + w_need;
	if (!R.total) {
		out_step("Talos: all %zu nodes run %s, nothing to upgrade", n,
			 c->cfg->talos.version);
		/* a changed kubernetes.version rolls now (never together with
		 * a Talos upgrade: upgrade_check refuses both at once) */
		r = k8s_upgrade_run(c, err);
		/* then images a talos patch changes, rolled the same way */
		if (r == 0)
			r = image_roll_run(c, err);
		goto out;
	}
	if (cps_need && c->cfg->n_controlplanes == 2) {
		r = err_set(err, ERR_USAGE, "refusing to upgrade a control plane "
			    "of a 2-member etcd: while one reboots the other "
			    "alone has no quorum (Talos refuses it too); scale "
			    "the control planes to 3 first");
		goto out;
	}
	if ((r = gate(&R, "before the upgrade", err)) < 0)
		goto out;
	/* backup.etcd_before_changes: a snapshot before the first reboot */
	if ((r = etcd_snapshot_before(c, "the Talos upgrade", err)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		char after[200];

		if (!R.need[i] || c->cfg->nodes[i].role != ROLE_CONTROLPLANE)
			continue;
		if (phase_interrupted) {
			r = err_set(err, ERR_INTR, "interrupted before upgrading %s",
				    c->cfg->nodes[i].name);
			goto out;
		}
		if ((r = upgrade_node(&R, i, err)) < 0)
			goto out;
		R.done++;
		snprintf(after, sizeof(after), "after %s", c->cfg->nodes[i].name);
		if ((r = gate(&R, after, err)) < 0)
			goto out;
	}
	for (i = 0; i < n;) {
		struct ujob jobs[256];
		char after[300] = "after";
		size_t k = 0, m;

		for (; i < n && k < (size_t)par; i++)
			if (R.need[i] && c->cfg->nodes[i].role != ROLE_CONTROLPLANE) {
				jobs[k].R = &R;
				jobs[k].i = i;
				jobs[k].rc = 0;
				jobs[k].err = (struct err)ERR_INIT;
				k++;
			}
		if (!k)
			break;
		if (phase_interrupted) {
			r = err_set(err, ERR_INTR, "interrupted before upgrading %s",
				    c->cfg->nodes[jobs[0].i].name);
			goto out;
		}
		phase_parallel(k, (int)k, ujob_run, jobs);
		for (m = 0; m < k; m++)
			R.done += jobs[m].rc == 0;
		if ((r = phase_collect(k, ujob_failed, jobs, "worker upgrades", err)) < 0)
			goto out;
		for (m = 0; m < k; m++)
			snprintf(after + strlen(after), sizeof(after) - strlen(after),
				 "%s %s", m ? "," : "", c->cfg->nodes[jobs[m].i].name);
		if ((r = gate(&R, after, err)) < 0)
			goto out;
	}
	{
		long long wall = clock_mono_ms() - t0;

		out_step("Talos: %zu node%s upgraded to %s one at a time (workers "
			 "%d at a time) in %.1fs (gates %.1fs); strata's own time "
			 "%.0f ms a node", R.total, R.total == 1 ? "" : "s",
			 c->cfg->talos.version, par, wall / 1000.0,
			 R.gate_ms / 1000.0,
			 (double)(wall - R.waited_ms) / (double)R.total);
	}
out:
	for (i = 0; i < n; i++)
		free(R.live[i]);
	free(R.live);
	free(R.need);
	free(R.image);
	free(R.kcfg);
	kube_client_free(R.hkc);
	kube_client_free(R.kc);
	return r;
}

static void
upgrade_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    nodes not at Talos %s: control planes one at a time, "
		"then workers (%d at a time); each back with a new boot id and "
		"the version, then the health gate\n", c->cfg->talos.version,
		c->upgrade_parallel > 0 ? c->upgrade_parallel : 1);
	fprintf(fp, "    then nodes not at Kubernetes %s: API server, controller "
		"manager, scheduler, kube-proxy on each control plane, then the "
		"kubelets, each NO_REBOOT and waited for, the gate between\n",
		c->cfg->kubernetes.version ? c->cfg->kubernetes.version : "?");
}

const struct phase ph_talos_upgrade = {
	.name = "talos-upgrade",
	.title = "roll a Talos upgrade",
	.should_run = upgrade_should_run,
	.run = upgrade_run,
	.dry_run = upgrade_dry_run,
	.quiet_skip = true,
};

/* --------------------------------------------------- hooks for the others */

const char *
upgrade_defers_config(struct apply_ctx *c, const char *name,
		      const char *live_version)
{
	char *inst, *img, *kv;
	bool defer;

	if (!live_version || !c->cfg->talos.version)
		return NULL;
	if (strcmp(live_version, c->cfg->talos.version))
		return "config change left to the rolling Talos upgrade";
	/* A changed kubernetes.version: the new images go in step by step,
	 * node by node (ph_k8supgrade.c), never all at once. */
	kv = state_talos_get(&c->st, name, "kubernetes_version");
	defer = kv && c->cfg->kubernetes.version &&
		strcmp(kv, c->cfg->kubernetes.version);
	free(kv);
	if (defer)
		return "config change left to the rolling Kubernetes upgrade";
	inst = state_talos_get(&c->st, name, "installer");
	img = inst ? upgrade_installer(c->cfg, &(struct err)ERR_INIT) : NULL;
	defer = inst && img && strcmp(inst, img);
	free(inst);
	free(img);
	if (defer)
		return "config change left to the rolling Talos upgrade";
	/* Images a talos patch changes: rolled step by step (image_roll_run). */
	for (size_t i = 0; i < c->cfg->n_nodes; i++)
		if (!strcmp(c->cfg->nodes[i].name, name) &&
		    image_roll_pending(c, &c->cfg->nodes[i]))
			return "config change left to the image roll (images "
			       "changed by a talos patch)";
	return NULL;
}

int
upgrade_journal_applied(struct apply_ctx *c, const char *name,
			const char *live_version, bool installed_now,
			const struct buf *applied, struct err *err)
{
	char *cur, *imgs = NULL;
	int r = 0;

	/* The Kubernetes version its config carries now, and its images. */
	if (applied) {
		struct k8s_images im;

		k8s_images_of(&im, applied->ptr, applied->len);
		imgs = k8s_images_format(&im);
		k8s_images_free(&im);
	}
	{
		/* a node that joined during a roll: the version it got */
		char *join = k8s_join_version(&c->st, c->cfg, name);
		struct state_kv kv[] = { { "kubernetes_version",
					   join ? join : c->cfg->kubernetes.version },
					 { "k8s_images", imgs } };

		r = state_talos_setv(&c->st, name, kv, imgs ? 2 : 1, err);
		free(imgs);
		free(join);
		if (r < 0)
			return r;
	}
	cur = state_talos_get(&c->st, name, "talos_version");
	if (installed_now || (!cur && live_version &&
			      !strcmp(live_version, c->cfg->talos.version))) {
		char *img = upgrade_installer(c->cfg, err);

		if (!img)
			r = -1;
		if (r == 0)
			r = state_talos_set(&c->st, name, "talos_version",
					    c->cfg->talos.version, err);
		if (r == 0)
			r = state_talos_set(&c->st, name, "installer", img, err);
		free(img);
	} else if (!cur && live_version && live_version[0]) {
		r = state_talos_set(&c->st, name, "talos_version", live_version, err);
	}
	free(cur);
	return r;
}

/* The image roll plan: what a check-only gen says the configs will carry. */
static int
image_check(const struct config *cfg, struct state *st, const char *env_dir,
	    FILE *fp, bool show, json_t **json, struct err *err)
{
	struct gen_result res;
	struct err e = ERR_INIT;
	int r = 0;

	if (!env_dir || !cfg->n_nodes)
		return 0;
	memset(&res, 0, sizeof(res));
	res.check_only = true;
	/* a gen that fails here fails again, with its message, in apply */
	if (talos_gen(cfg, env_dir, &res, &e) == 0 && res.images)
		r = image_roll_plan(cfg, st, res.images, res.installer_image, fp,
				    show, json, err);
	gen_result_release(&res);
	return r;
}

int
upgrade_check(const struct config *cfg, struct state *st, const char *env_dir,
	      int parallel, FILE *fp, json_t **rolls, struct err *err)
{
	size_t i, k = 0;
	char why[400];
	int printed = 0;
	json_t *tnodes = rolls ? json_array() : NULL, *kj = NULL, *ij = NULL;
	bool k8s_change = false;
	int r = 0;

	for (i = 0; i < cfg->n_nodes && r == 0; i++) {
		char *kv = state_talos_get(st, cfg->nodes[i].name, "kubernetes_version");

		if (kv && cfg->kubernetes.version && strcmp(kv, cfg->kubernetes.version)) {
			int p = upgrade_path("Kubernetes", kv, cfg->kubernetes.version,
					     why, sizeof(why));

			if (p < 0)
				r = err_set(err, ERR_USAGE, "kubernetes.version %s -> "
					    "%s (node %s runs %s): %s", kv,
					    cfg->kubernetes.version,
					    cfg->nodes[i].name, kv, why);
			k8s_change = true;
		}
		free(kv);
	}
	for (i = 0; r == 0 && k8s_change && i < cfg->n_nodes; i++) {
		char *tv = state_talos_get(st, cfg->nodes[i].name, "talos_version");
		bool differs = tv && cfg->talos.version && strcmp(tv, cfg->talos.version);

		free(tv);
		if (differs)
			r = err_set(err, ERR_USAGE, "talos.version and "
				    "kubernetes.version both changed: strata "
				    "rolls one upgrade at a time; set "
				    "kubernetes.version back, apply the Talos "
				    "upgrade, then change kubernetes.version");
	}
	for (i = 0; r == 0 && i < cfg->n_nodes; i++) {
		char *tv = state_talos_get(st, cfg->nodes[i].name, "talos_version");
		bool cp = cfg->nodes[i].role == ROLE_CONTROLPLANE;
		int p;

		if (!tv)
			continue;
		p = upgrade_path("Talos", tv, cfg->talos.version, why, sizeof(why));
		if (p < 0) {
			r = err_set(err, ERR_USAGE, "talos.version: %s runs %s: %s",
				    cfg->nodes[i].name, tv, why);
		} else if (p == 1 && cp && cfg->n_controlplanes == 2) {
			r = err_set(err, ERR_USAGE, "talos.version %s: refusing "
				    "to upgrade a control plane of a 2-member "
				    "etcd: while one reboots the other alone "
				    "has no quorum (Talos refuses it too); "
				    "scale the control planes to 3 first",
				    cfg->talos.version);
		} else if (p == 1) {
			if (!printed++)
				fprintf(fp, "\nTalos upgrade to %s, rolling (Upgrade API, "
					"installer image as in machine.install.image):\n",
					cfg->talos.version);
			fprintf(fp, "  ^ %-20s %s -> %s%s\n", cfg->nodes[i].name, tv,
				cfg->talos.version, cp
				? "  (control plane: alone, then the gate)" : "");
			if (tnodes)
				json_array_append_new(tnodes, json_pack(
					"{s:s, s:s, s:s, s:s}", "name",
					cfg->nodes[i].name, "role",
					cp ? "controlplane" : "worker", "from", tv,
					"to", cfg->talos.version));
			k++;
		}
		free(tv);
	}
	if (r == 0 && k8s_change)
		k8s_upgrade_plan(cfg, st, fp, rolls ? &kj : NULL);
	if (r == 0 && k8s_change)
		r = k8s_removed_plan(cfg, st, env_dir, fp, err);
	if (r == 0 && !k8s_change) {
		/* a roll whose apply stopped after the kubelets */
		char *pending = state_addon_get(st, K8S_MANIFESTS_JOURNAL, "pending");

		if (pending)
			fprintf(fp, "\nKubernetes %s: the bootstrap manifests are still to "
				"be applied again from a control plane's Talos (an "
				"earlier apply stopped after the kubelets)\n", pending);
		if (pending)
			manifests_prune_plan(cfg, st, fp);
		free(pending);
	}
	if (r == 0 && k)
		fprintf(fp, "  control planes one at a time, then workers %d at a "
			"time; each node back with a new boot id and %s, then every "
			"node healthy, before the next\n", parallel > 0 ? parallel : 1,
			cfg->talos.version);
	/* the image roll goes after the others: shown when it is next */
	if (r == 0) {
		int ir = image_check(cfg, st, env_dir, fp, !k && !k8s_change,
				     rolls && !k && !k8s_change ? &ij : NULL, err);

		if (ir < 0)
			r = ir;
		else if (!k && !k8s_change)
			k += (size_t)ir;
	}
	if (r == 0 && rolls) {
		json_t *tj = json_array_size(tnodes)
			? json_pack("{s:s, s:s, s:i, s:O}", "to", cfg->talos.version,
				    "order", "controlplanes-then-workers", "parallel",
				    parallel > 0 ? parallel : 1, "nodes", tnodes)
			: json_null();

		*rolls = json_pack("{s:o, s:o, s:o}", "talos_upgrade", tj,
				   "kubernetes_upgrade", kj ? kj : json_null(),
				   "image_roll", ij ? ij : json_null());
		kj = ij = NULL;
	}
	json_decref(tnodes);
	json_decref(kj);
	json_decref(ij);
	return r < 0 ? r : (int)k;
}
