/*
 * The rolling Kubernetes upgrade, run by phase talos-upgrade after the
 * Talos roll (a changed kubernetes.version; docs/upgrade.md). The order of
 * talosctl upgrade-k8s (FACTS-day2 4b):
 *
 *   1. kube-apiserver, then kube-controller-manager, then kube-scheduler,
 *      each over every control plane one at a time: the node's config with
 *      that image at the new version (nodes/<node>.yaml with the later
 *      images still at the old one) applied NO_REBOOT, then waited for
 *      until the node's mirror pod (kube-system, label k8s-app) runs the
 *      new image and is Ready;
 *   2. the kube-proxy image on each control plane (NO_REBOOT);
 *   3. the kubelet, control planes then workers, one at a time: the whole
 *      new config (NO_REBOOT), waited for until the Node reports
 *      status.nodeInfo.kubeletVersion v<new> (and Ready when a CNI runs).
 *
 * The health gate (talos/health) before the roll and after every node's
 * step. The journal (state.json) records per node the steps done
 * ("k8s_step": "<version>:<n>") and at the end its kubernetes_version, so
 * an apply killed mid-roll continues with the step it was in (applying a
 * config again is a no-op for Talos). A step that fails or times out stops
 * the roll there with the message naming the node and the component.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "config/validate.h"
#include "kube/drain.h"
#include "kube/kubeapi.h"
#include "kube/removed.h"
#include "phase/manifest_prune.h"
#include "phase/phase.h"
#include "talos/health.h"
#include "talos/upgrade.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/event.h"
#include "util/grpc.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

#define POLL_MS 100

struct kroll {
	struct apply_ctx *c;
	struct kube_client *kc;
	char *kcfg;
	const char *to;              /* cfg kubernetes.version */
	char **from;                 /* per cfg node: journaled version */
	int *done;                   /* per cfg node: steps done */
	size_t steps, total;         /* node steps done in this apply / to do */
	long long waited_ms;
	const char *what;            /* "the Kubernetes upgrade", "the image roll" */
	struct inode *in;            /* the image roll: per cfg node */
};

/* The image roll, per node: what it runs, what its file wants, the steps
 * that change. */
struct inode {
	struct k8s_images old, want;
	bool chg[K8S_NSTEPS];
};

/* ------------------------------------------------------------- journal */

static int
steps_done(struct state *st, const char *name, const char *to)
{
	char *j = state_talos_get(st, name, "k8s_step");
	size_t tl = strlen(to);
	int n = 0;

	if (j && !strncmp(j, to, tl) && j[tl] == ':')
		n = atoi(j + tl + 1);
	free(j);
	return n < 0 || n > K8S_NSTEPS ? 0 : n;
}

static int
journal_step(struct kroll *K, size_t i, int n, const char *sha,
	     const char *images, struct err *err)
{
	struct apply_ctx *c = K->c;
	const char *name = c->cfg->nodes[i].name;
	char v[80];

	K->done[i] = n;
	if (n < K8S_NSTEPS) {
		snprintf(v, sizeof(v), "%s:%d", K->to, n);
		return state_talos_set(&c->st, name, "k8s_step", v, err);
	}
	{
		struct state_kv kv[] = { { "kubernetes_version", K->to },
					 { "config_sha256", sha },
					 { "k8s_images", images },
					 { "k8s_step", NULL } };

		return state_talos_setv(&c->st, name, kv, 4, err);
	}
}

/* --------------------------------------------------------------- waits */

/* kube-system's mirror pod of comp on node: its image and readiness. */
static int
static_pod(struct kroll *K, const char *comp, const char *node, char **image,
	   bool *ready, char *why, size_t whylen, struct err *err)
{
	json_t *pods = NULL, *o;
	char sel[128];
	size_t j;
	int found = 0;

	*image = NULL;
	*ready = false;
	snprintf(sel, sizeof(sel), "k8s-app=%s", comp);
	if (kube_list(K->kc, "v1", "Pod", "kube-system", sel, &pods, err) < 0)
		return -1;
	json_array_foreach(pods, j, o) {
		const char *on = json_string_value(json_object_get(
			json_object_get(o, "spec"), "nodeName"));
		const char *img = json_string_value(json_object_get(json_array_get(
			json_object_get(json_object_get(o, "spec"), "containers"), 0),
			"image"));
		const char *rd = kube_condition(o, "Ready", NULL);
		json_t *cs = json_array_get(json_object_get(json_object_get(o, "status"),
							    "containerStatuses"), 0);
		const char *wr = json_string_value(json_object_get(json_object_get(
			json_object_get(cs, "state"), "waiting"), "reason"));

		if (!on || strcmp(on, node))
			continue;
		found = 1;
		*image = img ? xstrdup(img) : NULL;
		*ready = rd && !strcmp(rd, "True");
		snprintf(why, whylen, "%s", wr ? wr : *ready ? "Ready" : "not Ready");
	}
	json_decref(pods);
	return found;
}

static int
wait_static_pod(struct kroll *K, const struct node *n, enum k8s_step s,
		const char *want, struct err *err)
{
	long long t0 = clock_mono_ms(), deadline = t0 + K->c->wait_ms;
	char last[1200] = "no answer yet";
	const char *comp = k8s_step_name(s);

	for (;;) {
		struct err e = ERR_INIT;
		char *img = NULL, why[64] = "";
		bool ready = false;
		int f = static_pod(K, comp, n->name, &img, &ready, why, sizeof(why), &e);

		bool ok = false;

		if (f < 0)
			snprintf(last, sizeof(last), "%s", e.msg);
		else if (!f)
			snprintf(last, sizeof(last), "no %s mirror pod on %s", comp, n->name);
		else if (!img || strcmp(img, want))
			snprintf(last, sizeof(last), "%s on %s still runs %s", comp,
				 n->name, img ? img : "no image");
		else if (!ready)
			snprintf(last, sizeof(last), "%s on %s runs %s but is not "
				 "Ready (%s)", comp, n->name, img, why);
		else
			ok = true;
		free(img);
		if (ok)
			break;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while %s on %s "
				       "restarts", comp, n->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "%s on %s did not come up with "
				       "%s in %llds (last: %s); %s "
				       "stopped here (%zu of %zu node steps done): see "
				       "`kubectl -n kube-system describe pod %s-%s`, fix "
				       "it and run apply again to continue", comp, n->name,
				       want, K->c->wait_ms / 1000, last, K->what, K->steps,
				       K->total, comp, n->name);
		proc_sleep_ms(POLL_MS);
	}
	K->waited_ms += clock_mono_ms() - t0;
	return 0;
}

/* want: the kubeletVersion to wait for ("v1.36.0"), or NULL (an image
 * whose tag is not a version: the Node registered, and Ready if asked). */
static int
wait_kubelet(struct kroll *K, const struct node *n, const char *want,
	     bool want_ready, struct err *err)
{
	long long t0 = clock_mono_ms(), deadline = t0 + K->c->wait_ms;
	char last[1200] = "no answer yet";

	for (;;) {
		struct err e = ERR_INIT;
		struct kube_node *v = NULL;
		size_t nv = 0, i;
		bool ok = false;

		if (kube_nodes(K->kc, &v, &nv, &e) < 0) {
			snprintf(last, sizeof(last), "%s", e.msg);
		} else {
			snprintf(last, sizeof(last), "Node %s is not registered", n->name);
			for (i = 0; i < nv; i++) {
				if (!v[i].name || strcmp(v[i].name, n->name))
					continue;
				if (want && (!v[i].kubelet_version ||
					     strcmp(v[i].kubelet_version, want)))
					snprintf(last, sizeof(last), "Node %s reports kubelet %s",
						 n->name, v[i].kubelet_version ?
						 v[i].kubelet_version : "(none)");
				else if (want_ready && !v[i].ready)
					snprintf(last, sizeof(last), "Node %s reports kubelet "
						 "%s but is not Ready", n->name,
						 v[i].kubelet_version ? v[i].kubelet_version : "?");
				else
					ok = true;
			}
		}
		kube_nodes_free(v, nv);
		if (ok)
			break;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while the kubelet "
				       "of %s restarts", n->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "the kubelet of %s did not report "
				       "%s in %llds (last: %s); %s stopped here (%zu of "
				       "%zu node steps done); fix it and run apply again "
				       "to continue", n->name, want ? want : "Ready",
				       K->c->wait_ms / 1000, last, K->what, K->steps,
				       K->total);
		proc_sleep_ms(POLL_MS);
	}
	K->waited_ms += clock_mono_ms() - t0;
	return 0;
}

/* The kubelet service Running and healthy before its image changes
 * (talosctl upgrade-k8s checks it first, FACTS-day2 4b step 5). */
static int
wait_kubelet_service(struct kroll *K, const struct node *n, struct err *err)
{
	struct talos_target t = mtls_target(K->c, n->ip);
	long long t0 = clock_mono_ms(), deadline = t0 + K->c->wait_ms;
	char last[1200] = "no answer yet";

	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char *state = NULL;
		bool healthy = false, ok = false;

		if (talos_service(&t, "kubelet", &state, &healthy, &st, &e) < 0)
			snprintf(last, sizeof(last), "%s", e.msg);
		else if (!state || strcmp(state, "Running") || !healthy)
			snprintf(last, sizeof(last), "the kubelet service is %s%s",
				 state ? state : "not running",
				 state && !strcmp(state, "Running") ? " but not healthy" : "");
		else
			ok = true;
		free(state);
		if (ok)
			break;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted waiting for the "
				       "kubelet of %s", n->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "%s: %s after %llds, so its kubelet "
				       "image was not changed; %s stopped here (%zu of "
				       "%zu node steps done)", n->name, last,
				       K->c->wait_ms / 1000, K->what, K->steps, K->total);
		proc_sleep_ms(POLL_MS);
	}
	K->waited_ms += clock_mono_ms() - t0;
	return 0;
}

/* ------------------------------------------------------------ one step */

static int
gate(struct kroll *K, const char *before, struct err *err)
{
	struct health_cluster hc;
	long long t0 = clock_mono_ms();
	int r;

	health_cluster_from_config(&hc, K->c->cfg, &K->c->creds, K->kcfg);
	r = health_gate(&hc, K->c->wait_ms, before, err);
	health_cluster_release(&hc);
	K->waited_ms += clock_mono_ms() - t0;
	if (r < 0)
		err_wrap(err, "%s stopped (%zu of %zu node steps done)", K->what,
			 K->steps, K->total);
	return r;
}

/*
 * A node step as an event of apply -o json (docs/json.md): a "step" of
 * phase talos-upgrade with the node as item and the roll, the component
 * and the image it moves to.
 */
static void
roll_event(const struct kroll *K, const struct node *n, enum k8s_step s,
	   const char *state, const char *text, const char *image)
{
	event_step_with(n->name, state, text,
			json_pack("{s:s, s:s, s:o}", "roll",
				  K->in ? "image_roll" : "kubernetes_upgrade",
				  "component", k8s_step_name(s), "image",
				  image ? json_string(image) : json_null()));
}

/*
 * An edit that changes images and also something Talos applies only with a
 * reboot (a patched machine.install, say): the step's config is refused
 * NO_REBOOT, and sending it again never passes. So the node gets the
 * edit's other changes first, alone, with every image of this step on as
 * it runs (nothing of the roll moves early), in mode AUTO: Talos reboots it
 * if they need it (the reply's mode says so). Like a Talos upgrade, one
 * node at a time: a worker cordoned and drained first, the node waited for
 * until it answers with a new boot id, uncordoned, then the gate. The boot
 * id before is journaled ("reboot_boot_id") so that a killed apply's cordon
 * is lifted by the next one (reboot_leftovers). Then the step is sent again.
 */
static int
reboot_first(struct kroll *K, size_t i, enum k8s_step s, const char *refused,
	     struct err *err)
{
	struct apply_ctx *c = K->c;
	const struct node *n = &c->cfg->nodes[i];
	struct buf file = BUF_INIT_SECRET, base = BUF_INIT_SECRET;
	bool worker = n->role != ROLE_CONTROLPLANE;
	char sha[65], after[200];
	int r;

	if ((r = read_node_config(c, n->name, &file, sha, err)) < 0)
		return r;
	if (K->in) {
		struct k8s_images hold;

		memset(&hold, 0, sizeof(hold));
		for (int k = (int)s; k < K8S_NSTEPS; k++)
			if (K->in[i].chg[k])
				hold.v[k] = K->in[i].old.v[k];      /* borrowed */
		r = upgrade_k8s_config_old_before(file.ptr, file.len, s, &hold,
						  &base, err);
	} else {
		r = upgrade_k8s_config_before(file.ptr, file.len, s, K->from[i],
					      K->to, &base, err);
	}
	if (r < 0)
		goto out;
	/* FACTS-day2 4a: a 2-member etcd loses quorum while one reboots
	 * (Talos refuses to upgrade one; the Talos roll refuses too). */
	if (!worker && c->cfg->n_controlplanes == 2) {
		r = err_set(err, ERR_USAGE, "Talos refused the config NO_REBOOT "
			    "(%s): the edit changes images and also something "
			    "Talos applies only with a reboot, and rebooting a "
			    "control plane of a 2-member etcd leaves the other "
			    "without quorum. Nothing was changed on %s: scale the "
			    "control planes to 3 first, or take the change that "
			    "needs a reboot out of this edit", refused, n->name);
		goto out;
	}
	out_note("%s on %s: Talos refused it NO_REBOOT (%s): the same edit "
		 "changes more than images. %s gets the other changes first, "
		 "alone, with its images as they run (mode AUTO: Talos reboots "
		 "it if they need it), then the step", k8s_step_name(s),
		 n->name, refused, n->name);
	if ((r = reboot_node(c, K->kc, n, &base, "the edit's other changes",
			     &K->waited_ms, err)) < 0)
		goto out;
	snprintf(after, sizeof(after), "%s on %s (after its reboot)",
		 k8s_step_name(s), n->name);
	r = gate(K, after, err);
out:
	if (r < 0)
		err_wrap(err, "%s on %s: %s stopped here (%zu of %zu node steps "
			 "done)", k8s_step_name(s), n->name, K->what, K->steps,
			 K->total);
	buf_release_secret(&file);
	buf_release_secret(&base);
	return r;
}

/* A worker a killed apply cordoned for its reboot_first: uncordoned (the
 * gate refuses a node cordoned by us), the journal cleared. */
static int
reboot_leftovers(struct kroll *K, struct err *err)
{
	struct apply_ctx *c = K->c;
	int r = 0;

	for (size_t i = 0; r == 0 && i < c->cfg->n_nodes; i++) {
		const struct node *n = &c->cfg->nodes[i];
		char *pend = state_talos_get(&c->st, n->name, "reboot_boot_id");

		if (pend && n->role != ROLE_CONTROLPLANE &&
		    (r = kube_uncordon(K->kc, n->name, err)) < 0)
			err_wrap(err, "uncordon %s (cordoned for its reboot by an "
				 "earlier apply)", n->name);
		if (pend && r == 0 && n->role != ROLE_CONTROLPLANE)
			out_step("%s: uncordoned (an earlier apply cordoned it for "
				 "its reboot)", n->name);
		if (pend && r == 0)
			r = state_talos_set(&c->st, n->name, "reboot_boot_id", NULL,
					    err);
		free(pend);
	}
	return r;
}

/*
 * One node step's config sent NO_REBOOT (announced by `says` once the node
 * is known to be ours) and waited for: the static pod Ready at image want,
 * or the kubelet back (at kubelet_ver when known). K->what names the roll
 * in the error. Refused by Talos: reboot_first, then sent again.
 */
static int
send_step(struct kroll *K, size_t i, enum k8s_step s, const struct buf *send,
	  const char *says, const char *want, const char *kubelet_ver,
	  struct err *err)
{
	struct apply_ctx *c = K->c;
	const struct node *n = &c->cfg->nodes[i];
	struct talos_target t = mtls_target(c, n->ip);
	struct trust_node tn = { .name = n->name, .env_dir = c->env_dir,
				 .installed = true };
	struct talos_status st = { 0 };
	char *details = NULL;
	int r;

	if ((r = trust_config_send(&tn, n->ip, TALOS_API_PORT, TRUST_ADDR_CONFIG,
				   TRUST_PEER_CLUSTER, err)) < 0)
		return r;
	t.timeout_ms = 30000;
	out_step("%s", says);
	roll_event(K, n, s, "running", says, want);
	r = talos_apply_configuration_mode(&t, send->ptr, send->len,
					   TALOS_APPLY_NO_REBOOT, &details, &st,
					   err);
	free(details);
	details = NULL;
	if (r < 0 && err->kind == ERRK_GRPC_STATUS) {
		/* Talos answered no, nothing changed: a change in the same
		 * edit that needs a reboot? (reboot_first) */
		char refused[sizeof(err->msg)];

		memcpy(refused, err->msg, sizeof(refused));
		err_clear(err);
		if ((r = reboot_first(K, i, s, refused, err)) == 0) {
			r = talos_apply_configuration_mode(&t, send->ptr, send->len,
							   TALOS_APPLY_NO_REBOOT,
							   &details, &st, err);
			free(details);
		} else {
			goto out;
		}
	}
	if (r < 0) {
		err_wrap(err, "%s on %s: apply %s (NO_REBOOT); %s stopped "
			 "here (%zu of %zu node steps done)",
			 k8s_step_name(s), n->name, k8s_step_field(s),
			 K->what, K->steps, K->total);
		goto out;
	}
	if (s < K8S_PROXY && want)
		r = wait_static_pod(K, n, s, want, err);
	else if (s == K8S_KUBELET)
		r = wait_kubelet(K, n, kubelet_ver,
				 c->cfg->kubernetes.cni != CNI_NONE, err);
out:
	roll_event(K, n, s, r < 0 ? "failed" : "ok", r < 0 ? err->msg
		   : s == K8S_KUBELET ? "the kubelet is back with the new image"
		   : s == K8S_PROXY ? "applied" : "its static pod runs the new "
		   "image and is Ready", want);
	return r;
}

static int
do_step(struct kroll *K, size_t i, enum k8s_step s, struct err *err)
{
	struct apply_ctx *c = K->c;
	const struct node *n = &c->cfg->nodes[i];
	struct buf file = BUF_INIT_SECRET, send = BUF_INIT_SECRET;
	struct k8s_images im;
	char sha[65], *want, *imgs = NULL;
	long long t0 = clock_mono_ms();
	int r;

	if ((r = read_node_config(c, n->name, &file, sha, err)) < 0)
		return r;
	k8s_images_of(&im, file.ptr, file.len);     /* one parse, in a child */
	want = im.v[s];
	if (s == K8S_KUBELET) {
		buf_add(&send, file.ptr, file.len);
	} else {
		r = upgrade_k8s_config(file.ptr, file.len, s, K->from[i], K->to,
				       &send, err);
	}
	if (r < 0)
		goto out;
	if (s == K8S_KUBELET && (r = wait_kubelet_service(K, n, err)) < 0)
		goto out;
	{
		char says[400], v[80];

		snprintf(says, sizeof(says), "Kubernetes %s -> %s: %s on %s (%s, "
			 "NO_REBOOT)", K->from[i], K->to, k8s_step_name(s), n->name,
			 want ? want : k8s_step_field(s));
		snprintf(v, sizeof(v), "v%s", K->to);
		r = send_step(K, i, s, &send, says, want, v, err);
	}
	if (r < 0)
		goto out;
	if (s == K8S_KUBELET)
		imgs = k8s_images_format(&im);
	r = journal_step(K, i, (int)s + 1, s == K8S_KUBELET ? sha : NULL, imgs,
			 err);
	K->steps++;
	if (r == 0 && s != K8S_PROXY)
		out_step("%s on %s: %s (%.1fs)", k8s_step_name(s), n->name,
			 s == K8S_KUBELET ? "the Node reports the new kubelet"
			 : "its static pod runs the new image and is Ready",
			 (clock_mono_ms() - t0) / 1000.0);
out:
	k8s_images_free(&im);
	free(imgs);
	buf_release_secret(&file);
	buf_release_secret(&send);
	return r;
}

/*
 * The kube-proxy DaemonSet (kube-system/kube-proxy) to the new image: Talos
 * created it from its bootstrap manifests and does not update those
 * (talosctl upgrade-k8s re-applies them, FACTS-day2 4b step 6), so the
 * image field is applied here, taken from its other manager, and the
 * rollout waited for. Absent (a CNI replaces kube-proxy): nothing to do.
 */
static int
update_kube_proxy(struct kroll *K, const char *image, struct err *err)
{
	struct kube_wait w = { .timeout_ms = K->c->wait_ms,
			       .interrupted = &phase_interrupted,
			       .what = "kube-proxy" };
	json_t *o = NULL, *obj;
	const char *cur;
	long long t0 = clock_mono_ms();
	int r;

	if (kube_get(K->kc, "apps/v1", "DaemonSet", "kube-system", "kube-proxy",
		     &o, err) < 0) {
		if (err->code != ERR_NOTFOUND)
			return err_wrap(err, "kube-proxy DaemonSet");
		err_clear(err);
		out_step("kube-proxy: no DaemonSet (replaced by the CNI), its "
			 "image only set in the control planes' configs");
		return 0;
	}
	cur = json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(json_object_get(json_object_get(o, "spec"),
						"template"), "spec"), "containers"), 0),
		"image"));
	if (cur && !strcmp(cur, image)) {
		json_decref(o);
		return 0;
	}
	json_decref(o);
	obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:{s:[{s:s, s:s}]}}}}",
			"apiVersion", "apps/v1", "kind", "DaemonSet",
			"metadata", "name", "kube-proxy", "namespace", "kube-system",
			"spec", "template", "spec", "containers", "name", "kube-proxy",
			"image", image);
	r = kube_apply_force(K->kc, obj, NULL, err);
	json_decref(obj);
	if (r == 0)
		r = kube_wait_rollout(K->kc, "DaemonSet", "kube-system", "kube-proxy",
				      &w, err);
	K->waited_ms += clock_mono_ms() - t0;
	if (r < 0)
		return err_wrap(err, "kube-proxy DaemonSet to %s (the Kubernetes "
				"upgrade stopped before the kubelets)", image);
	out_step("kube-proxy DaemonSet rolled out with %s (%.1fs)", image,
		 (clock_mono_ms() - t0) / 1000.0);
	return 0;
}

/* ------------------------------------------------ bootstrap manifests */

/*
 * talosctl upgrade-k8s step 6 (FACTS-day2 4b): the manifests Talos renders
 * from a control plane's machine config (COSI resources
 * Manifests.kubernetes.talos.dev in namespace controlplane: the bootstrap
 * token, the CSR role bindings, flannel, kube-proxy, CoreDNS, and the
 * config's extraManifests and inlineManifests) applied to Kubernetes
 * again. Talos applies them once, at bootstrap, and never updates them
 * (../shared/reference/kubernetes/FACTS.md §2), so after an upgrade the
 * cluster would keep running what the first config rendered. Server-side
 * apply as strata, forced: what Talos renders now is the truth, as with
 * talosctl. The objects applied are journaled (bootstrap_manifests_applied,
 * manifest_prune.h); with Talos v1.13 and later (talosctl v1.13 prunes,
 * v1.12 does not) those of that record no longer rendered are deleted,
 * unless kubernetes.manifests_prune is false (talosctl's
 * --manifests-no-prune). Nothing outside strata's own record is touched.
 * The journal's addons.bootstrap-manifests.pending, set when the roll
 * starts and cleared here, makes a killed apply do this on its re-run.
 */
#define MANIFESTS_NS "controlplane"
#define MANIFESTS_TYPE "Manifests.kubernetes.talos.dev"

static int
by_id(const void *a, const void *b)
{
	return strcmp(((const struct talos_resource *)a)->id,
		      ((const struct talos_resource *)b)->id);
}

/* Why nothing is pruned now, or NULL when it is (Talos v1.13+ and
 * kubernetes.manifests_prune). */
static const char *
no_prune_reason(const struct config *cfg)
{
	if (cfg->talos.minor < 13)
		return "Talos v1.12: talosctl v1.12 does not prune";
	if (!cfg->kubernetes.manifests_prune)
		return "kubernetes.manifests_prune is false";
	return NULL;
}

/*
 * What strata applied before (the journal's record) and the manifests no
 * longer render (now): deleted when pruning is on, with propagation
 * Background (kube_delete), what kubectl's delete and prune use by
 * default: the object leaves the API at once and the garbage collector
 * removes its dependents (a Deployment's ReplicaSets and Pods) after it,
 * as after a Foreground delete, without holding the re-apply until they
 * are gone. One already gone (404) counts as done. A Namespace or a CRD
 * is left, with a warning: deleting it would delete objects strata never
 * applied. On a failure the record stays as it was, so the re-run (the
 * manifests still pending) prunes again.
 */
static int
prune_manifests(struct apply_ctx *c, struct kube_client *kc, const char *from,
		const struct mp_set *now, struct err *err)
{
	struct mp_set old = MP_SET_INIT, stale = MP_SET_INIT;
	json_t *rec = state_record_get(&c->st, STATE_KEY_MANIFESTS_APPLIED);
	const char *why = no_prune_reason(c->cfg);
	struct err e = ERR_INIT;
	size_t i;
	int r = 0;

	if (mp_set_from_json(&old, rec, &e) < 0) {
		out_warn("bootstrap manifests: %s: nothing pruned; the record is "
			 "replaced by what was applied now", e.msg);
		goto out;
	}
	mp_set_stale(&old, now, &stale);
	if (!stale.n)
		goto out;
	if (why) {
		out_step("bootstrap manifests: %zu objects strata applied before "
			 "are no longer rendered by %s's Talos, left in place (%s)",
			 stale.n, from, why);
		goto out;
	}
	for (i = 0; i < stale.n; i++) {
		const struct mp_obj *o = &stale.v[i];
		char what[512];

		mp_obj_what(o, what, sizeof(what));
		if (mp_prune_refused(o)) {
			out_warn("bootstrap manifests: %s is no longer rendered by "
				 "%s's Talos; not pruned: deleting a %s deletes "
				 "objects strata never applied (delete it by hand "
				 "when nothing uses it)", what, from, o->kind);
			continue;
		}
		if ((r = kube_delete(kc, o->api_version, o->kind, o->ns, o->name,
				     err)) < 0) {
			err_wrap(err, "pruning %s (strata applied it from the "
				 "bootstrap manifests before, %s's Talos no longer "
				 "renders it; kubernetes.manifests_prune: false "
				 "leaves it)", what, from);
			goto out;
		}
		out_step("bootstrap manifests: pruned %s (%s): applied by strata "
			 "before, no longer rendered by %s's Talos", what,
			 o->api_version, from);
	}
out:
	json_decref(rec);
	mp_set_release(&old);
	mp_set_release(&stale);
	return r;
}

static int
reapply_manifests(struct apply_ctx *c, struct kube_client *kc, struct err *err)
{
	struct talos_resource *v = NULL;
	struct mp_set now = MP_SET_INIT;
	struct err e = ERR_INIT;
	const char *from = NULL;
	long long t0 = clock_mono_ms();
	size_t n = 0, i, objs = 0;
	int r = -1;

	/* from the first control plane that answers */
	for (i = 0; i < c->cfg->n_nodes && r < 0; i++) {
		const struct node *nd = &c->cfg->nodes[i];
		struct talos_target t = mtls_target(c, nd->ip);
		struct talos_status st = { 0 };

		if (nd->role != ROLE_CONTROLPLANE)
			continue;
		err_clear(&e);
		if ((r = talos_resource_list(&t, MANIFESTS_NS, MANIFESTS_TYPE, &v, &n,
					     &st, &e)) == 0)
			from = nd->name;
		else
			err_wrap(&e, "%s", nd->name);
	}
	if (r < 0) {
		*err = e;
		return err_wrap(err, "bootstrap manifests (talosctl upgrade-k8s "
				"step 6): no control plane listed them; the node "
				"steps are done, run apply again to re-apply the "
				"manifests");
	}
	if (!n)
		out_warn("bootstrap manifests: %s's Talos lists no %s in namespace "
			 "%s: nothing applied again (talosctl upgrade-k8s would "
			 "find none either)", from, MANIFESTS_TYPE, MANIFESTS_NS);
	qsort(v, n, sizeof(*v), by_id);
	for (i = 0; i < n && r == 0; i++) {
		size_t k = 0;

		r = kube_apply_items(kc, v[i].yaml, strlen(v[i].yaml), true, &k, err);
		objs += k;
		if (r == 0)
			r = mp_set_add_yaml(&now, v[i].yaml, strlen(v[i].yaml), err);
		if (r < 0)
			err_wrap(err, "bootstrap manifest %s (from %s's Talos)", v[i].id,
				 from);
	}
	talos_resources_free(v, n);
	/* none listed: no rendering to compare with, nothing pruned and the
	 * record kept (a Talos that lists nothing deletes nothing) */
	if (r == 0 && n && (r = prune_manifests(c, kc, from, &now, err)) == 0) {
		mp_set_sort(&now);
		r = state_record_set(&c->st, STATE_KEY_MANIFESTS_APPLIED,
				     mp_set_to_json(&now), err);
	}
	mp_set_release(&now);
	if (r < 0)
		return err_wrap(err, "re-applying the bootstrap manifests after the "
				"Kubernetes upgrade (its node steps are done): fix "
				"it and run apply again");
	if ((r = state_addon_set(&c->st, K8S_MANIFESTS_JOURNAL, "pending", NULL,
				 err)) < 0)
		return r;
	if (n)
		out_step("bootstrap manifests: %zu objects of %zu manifests "
			 "rendered by %s's Talos applied again (server-side "
			 "apply) (%.1fs)", objs, n, from,
			 (clock_mono_ms() - t0) / 1000.0);
	return 0;
}

/* The new kube-proxy image, from a control plane's nodes/<node>.yaml. */
static char *
proxy_image(struct kroll *K, struct err *err)
{
	size_t i;

	for (i = 0; i < K->c->cfg->n_nodes; i++) {
		struct buf b = BUF_INIT_SECRET;
		char sha[65], *img = NULL;

		if (K->c->cfg->nodes[i].role != ROLE_CONTROLPLANE)
			continue;
		if (read_node_config(K->c, K->c->cfg->nodes[i].name, &b, sha, err) == 0)
			img = upgrade_k8s_image(b.ptr, b.len, K8S_PROXY);
		buf_release_secret(&b);
		return img;
	}
	return NULL;
}

/* ------------------------------------------------------------ pre-pull */

/*
 * talosctl upgrade-k8s step 2 (FACTS-day2 4b): the new images pulled
 * before anything changes, with MachineService/ImagePull: the control-plane
 * images into NS_CRI on the control planes, the kubelet image into
 * NS_SYSTEM on every node. A node without the method (Unimplemented) is
 * skipped, any other failure stops the roll with nothing changed.
 * pull[s]: the images node n gets (NULL: none for that step).
 */
static int
prepull(struct kroll *K, const struct node *n, char *const pull[K8S_NSTEPS],
	struct err *err)
{
	struct talos_target t = mtls_target(K->c, n->ip);
	long long t0 = clock_mono_ms();
	size_t k = 0;
	int s, r = 0;

	t.timeout_ms = 10 * 60 * 1000L;   /* a pull of a large image */
	for (s = 0; s < K8S_NSTEPS && r == 0; s++) {
		struct talos_status st = { 0 };
		bool cp_img = s < K8S_PROXY;

		if (!pull[s] || s == K8S_PROXY ||
		    (cp_img && n->role != ROLE_CONTROLPLANE))
			continue;
		r = talos_image_pull(&t, cp_img ? TALOS_NS_CRI : TALOS_NS_SYSTEM,
				     pull[s], &st, err);
		if (r < 0 && st.code == GRPC_UNIMPLEMENTED) {
			err_clear(err);
			out_step("pre-pull on %s: ImagePull not implemented there, "
				 "skipped", n->name);
			return 0;
		}
		if (r < 0)
			return err_wrap(err, "pre-pull of %s on %s (%s): %s did "
					"not start, nothing was changed; fix it and "
					"run apply again", pull[s], n->name,
					cp_img ? "NS_CRI" : "NS_SYSTEM", K->what);
		k++;
	}
	K->waited_ms += clock_mono_ms() - t0;
	if (k)
		out_step("pre-pull on %s: %zu image%s (%.1fs)", n->name, k,
			 k == 1 ? "" : "s", (clock_mono_ms() - t0) / 1000.0);
	return 0;
}

/* The version roll's pre-pull: every step a node has still to do. */
static int
prepull_version(struct kroll *K, struct err *err)
{
	size_t i;
	int r = 0, s;

	for (i = 0; i < K->c->cfg->n_nodes && r == 0; i++) {
		struct buf b = BUF_INIT_SECRET;
		char sha[65];
		struct k8s_images pull;

		if (!K->from[i] || K->done[i] >= K8S_NSTEPS)
			continue;
		if ((r = read_node_config(K->c, K->c->cfg->nodes[i].name, &b, sha,
					  err)) < 0)
			break;
		k8s_images_of(&pull, b.ptr, b.len);
		buf_release_secret(&b);
		for (s = 0; s < K->done[i]; s++) {      /* steps already done */
			free(pull.v[s]);
			pull.v[s] = NULL;
		}
		r = prepull(K, &K->c->cfg->nodes[i], pull.v, err);
		k8s_images_free(&pull);
	}
	return r;
}

/* ------------------------------------------------------------- the roll */

static bool
needs(struct kroll *K, size_t i)
{
	return K->from[i] != NULL;
}

static size_t
count_steps(struct kroll *K)
{
	size_t i, k = 0;
	int s;

	for (i = 0; i < K->c->cfg->n_nodes; i++) {
		if (!needs(K, i))
			continue;
		for (s = K->done[i]; s < K8S_NSTEPS; s++)
			if (K->c->cfg->nodes[i].role == ROLE_CONTROLPLANE || s == K8S_KUBELET)
				k++;
	}
	return k;
}

/* Every node's live Talos must support the new version (talosctl's first
 * check), the path from its journaled version must be supported. */
static int
precheck(struct kroll *K, size_t i, struct err *err)
{
	struct apply_ctx *c = K->c;
	const struct node *n = &c->cfg->nodes[i];
	struct talos_target t = mtls_target(c, n->ip);
	struct talos_status st = { 0 };
	const struct talos_compat *tc;
	struct semver tv, kv;
	char *tag = NULL, why[400];
	int r = 0;

	if (upgrade_path("Kubernetes", K->from[i], K->to, why, sizeof(why)) < 0)
		return err_set(err, ERR_USAGE, "%s: %s", n->name, why);
	if ((r = talos_version(&t, &tag, &st, err)) < 0)
		return err_wrap(err, "%s", n->name);
	if (semver_parse(&tv, tag) == 0 && semver_parse(&kv, K->to) == 0 &&
	    (tc = config_talos_compat(tv.minor)) &&
	    (kv.minor < tc->k8s_min_minor || kv.minor > tc->k8s_max_minor))
		r = err_set(err, ERR_USAGE, "%s runs Talos %s, which supports "
			    "Kubernetes 1.%d to 1.%d, not %s: upgrade Talos first",
			    n->name, tag, tc->k8s_min_minor, tc->k8s_max_minor, K->to);
	free(tag);
	return r;
}

/*
 * The upgrade-k8s order (FACTS-day2 4b), shared by the Kubernetes upgrade
 * and the image roll, which differ in which node steps are to do (todo)
 * and how one is carried out (step): the control-plane components one at
 * a time, node by node, with the gate after each (kube-proxy's image has
 * no pod to gate on); then, after the caller's kube-proxy DaemonSet, the
 * kubelets of the control planes, then the workers', gated the same way.
 */
struct roll_ops {
	bool (*todo)(struct kroll *K, size_t i, enum k8s_step s);
	int (*step)(struct kroll *K, size_t i, enum k8s_step s, struct err *err);
};

static int
roll_step_gated(struct kroll *K, const struct roll_ops *ops, size_t i,
		enum k8s_step s, struct err *err)
{
	const char *name = K->c->cfg->nodes[i].name;
	char before[200];
	int r;

	if (phase_interrupted) {
		if (s == K8S_KUBELET)
			return err_set(err, ERR_INTR, "interrupted before the kubelet "
				       "of %s", name);
		return err_set(err, ERR_INTR, "interrupted before %s on %s",
			       k8s_step_name(s), name);
	}
	if ((r = ops->step(K, i, s, err)) < 0 || s == K8S_PROXY)
		return r;
	if (s == K8S_KUBELET)
		snprintf(before, sizeof(before), "the next step (after the kubelet "
			 "of %s)", name);
	else
		snprintf(before, sizeof(before), "the next step (after %s on %s)",
			 k8s_step_name(s), name);
	return gate(K, before, err);
}

static int
roll_controlplanes(struct kroll *K, const struct roll_ops *ops, struct err *err)
{
	size_t i;
	int r, s;

	for (s = K8S_APISERVER; s < K8S_KUBELET; s++)
		for (i = 0; i < K->c->cfg->n_nodes; i++)
			if (ops->todo(K, i, (enum k8s_step)s) &&
			    (r = roll_step_gated(K, ops, i, (enum k8s_step)s, err)) < 0)
				return r;
	return 0;
}

static int
roll_kubelets(struct kroll *K, const struct roll_ops *ops, struct err *err)
{
	size_t i;
	int r;

	for (int pass = 0; pass < 2; pass++)
		for (i = 0; i < K->c->cfg->n_nodes; i++) {
			bool cp = K->c->cfg->nodes[i].role == ROLE_CONTROLPLANE;

			if (cp == (pass == 0) && ops->todo(K, i, K8S_KUBELET) &&
			    (r = roll_step_gated(K, ops, i, K8S_KUBELET, err)) < 0)
				return r;
		}
	return 0;
}

/* The Kubernetes upgrade: a node whose journaled version differs, from
 * the step it reached; control-plane components on control planes only. */
static bool
upgrade_todo(struct kroll *K, size_t i, enum k8s_step s)
{
	return needs(K, i) && K->done[i] <= (int)s &&
	       (s == K8S_KUBELET ||
		K->c->cfg->nodes[i].role == ROLE_CONTROLPLANE);
}

static const struct roll_ops upgrade_ops = { upgrade_todo, do_step };

/* The oldest of the versions a roll starts from (NULL entries: none). */
static const char *
lowest_from(char *const *from, size_t n)
{
	const char *low = NULL;
	struct semver a, b;
	size_t i;

	for (i = 0; i < n; i++)
		if (from[i] && (!low || (semver_parse(&a, from[i]) == 0 &&
					 semver_parse(&b, low) == 0 &&
					 semver_cmp(&a, &b) < 0)))
			low = from[i];
	return low;
}

/*
 * For plan and the start of apply: the removed-API check against the live
 * API server (ENV/kubeconfig), from the oldest journaled version. Objects
 * found are a refusal (negative, err); a server that does not answer is a
 * note on fp (the roll checks again before its first step).
 */
int
k8s_removed_plan(const struct config *cfg, struct state *st,
		 const char *env_dir, FILE *fp, struct err *err)
{
	struct kube_client *kc = NULL;
	struct err e = ERR_INIT;
	char **from, *kcfg;
	size_t i, n = cfg->n_nodes;
	int r = 0;

	if (!env_dir || !cfg->kubernetes.version)
		return 0;
	kcfg = fs_join(env_dir, "kubeconfig");
	if (!fs_exists(kcfg)) {
		free(kcfg);
		return 0;
	}
	from = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		from[i] = state_talos_get(st, cfg->nodes[i].name, "kubernetes_version");
		if (from[i] && !strcmp(from[i], cfg->kubernetes.version)) {
			free(from[i]);
			from[i] = NULL;
		}
	}
	if (lowest_from(from, n)) {
		if (kube_client_load(&kc, kcfg, 5000, &e) < 0 ||
		    (r = kube_removed_check(kc, lowest_from(from, n),
					    cfg->kubernetes.version, &e)) < 0) {
			if (e.code == ERR_USAGE) {
				*err = e;
				r = -ERR_USAGE;
			} else {
				fprintf(fp, "  (removed-API check not run now: %s; "
					"apply runs it before the first step)\n", e.msg);
				r = 0;
			}
		}
	}
	kube_client_free(kc);
	for (i = 0; i < n; i++)
		free(from[i]);
	free(from);
	free(kcfg);
	return r;
}

int
k8s_upgrade_run(struct apply_ctx *c, struct err *err)
{
	struct kroll K;
	size_t i, n = c->cfg->n_nodes;
	long long t0 = clock_mono_ms();
	char *pending = NULL;
	int r = 0;

	memset(&K, 0, sizeof(K));
	K.c = c;
	K.to = c->cfg->kubernetes.version;
	K.what = "the Kubernetes upgrade";
	K.from = xcalloc(n + 1, sizeof(char *));
	K.done = xcalloc(n + 1, sizeof(int));
	for (i = 0; K.to && i < n; i++) {
		char *kv = state_talos_get(&c->st, c->cfg->nodes[i].name,
					   "kubernetes_version");

		if (kv && strcmp(kv, K.to)) {
			K.from[i] = kv;
			K.done[i] = steps_done(&c->st, c->cfg->nodes[i].name, K.to);
		} else {
			free(kv);
		}
	}
	pending = state_addon_get(&c->st, K8S_MANIFESTS_JOURNAL, "pending");
	if (!(K.total = count_steps(&K)) && !pending)
		goto out;
	K.kcfg = fs_join(c->env_dir, "kubeconfig");
	if (!fs_exists(K.kcfg)) {
		r = err_set(err, ERR_FAIL, "kubernetes.version changed but there is "
			    "no ENV/kubeconfig: the cluster's Kubernetes cannot be "
			    "watched through the upgrade");
		goto out;
	}
	if (!K.total) {
		/* a killed apply: every node step done, the manifests not */
		if ((r = kube_client_load(&K.kc, K.kcfg, 10000, err)) == 0)
			r = reapply_manifests(c, K.kc, err);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (needs(&K, i) && (r = precheck(&K, i, err)) < 0)
			goto out;
	if ((r = kube_client_load(&K.kc, K.kcfg, 10000, err)) < 0)
		goto out;
	/* talosctl upgrade-k8s step 1: nothing may use an API the new
	 * version no longer serves (read-only, before any node changes) */
	if ((r = kube_removed_check(K.kc, lowest_from(K.from, n), K.to, err)) < 0)
		goto out;
	if ((r = reboot_leftovers(&K, err)) < 0 ||
	    (r = gate(&K, "the Kubernetes upgrade", err)) < 0)
		goto out;
	if ((r = prepull_version(&K, err)) < 0)
		goto out;
	if ((r = etcd_snapshot_before(c, "the Kubernetes upgrade", err)) < 0)
		goto out;
	if ((r = state_addon_set(&c->st, K8S_MANIFESTS_JOURNAL, "pending", K.to,
				 err)) < 0)
		goto out;
	/* control planes: one component at a time, node by node */
	if ((r = roll_controlplanes(&K, &upgrade_ops, err)) < 0)
		goto out;
	/* the kube-proxy DaemonSet, once every control plane has its image */
	{
		char *img = proxy_image(&K, err);
		bool any_left = false;

		for (i = 0; i < n; i++)
			any_left |= needs(&K, i);
		if (img && any_left)
			r = update_kube_proxy(&K, img, err);
		free(img);
		if (r < 0)
			goto out;
	}
	/* kubelets: control planes, then workers, one at a time */
	if ((r = roll_kubelets(&K, &upgrade_ops, err)) < 0)
		goto out;
	/* what Talos renders from the new configs, into the cluster */
	if ((r = reapply_manifests(c, K.kc, err)) < 0)
		goto out;
	{
		long long wall = clock_mono_ms() - t0;

		out_step("Kubernetes: %zu node steps to %s in %.1fs; strata's own time "
			 "%.0f ms a step", K.steps, K.to, wall / 1000.0,
			 K.steps ? (double)(wall - K.waited_ms) / (double)K.steps : 0.0);
	}
out:
	free(pending);
	for (i = 0; i < n; i++)
		free(K.from[i]);
	free(K.from);
	free(K.done);
	free(K.kcfg);
	kube_client_free(K.kc);
	return r;
}

/* The plan's line for the prune after the re-apply, when there is one:
 * Talos v1.13+, kubernetes.manifests_prune, and a record to prune from
 * (what is stale is known only once Talos lists its manifests). */
void
manifests_prune_plan(const struct config *cfg, struct state *st, FILE *fp)
{
	json_t *rec = state_record_get(st, STATE_KEY_MANIFESTS_APPLIED);

	if (!no_prune_reason(cfg) && json_array_size(rec))
		fprintf(fp, "  ^ %-24s then deleted: those of the %zu objects strata "
			"applied from them last time that Talos no longer renders "
			"(kubernetes.manifests_prune)\n", "manifests prune",
			json_array_size(rec));
	json_decref(rec);
}

void
k8s_upgrade_plan(const struct config *cfg, struct state *st, FILE *fp,
		 json_t **json)
{
	json_t *steps = NULL;
	size_t i;
	int s;
	char *from = NULL;

	for (i = 0; i < cfg->n_nodes && !from; i++) {
		char *kv = state_talos_get(st, cfg->nodes[i].name, "kubernetes_version");

		if (kv && cfg->kubernetes.version && strcmp(kv, cfg->kubernetes.version))
			from = kv;
		else
			free(kv);
	}
	if (!from)
		return;
	if (json)
		steps = json_array();
	fprintf(fp, "\nKubernetes upgrade %s -> %s, rolling in the upgrade-k8s order "
		"(each step the node's machine config applied NO_REBOOT, no reboot):\n",
		from, cfg->kubernetes.version);
	for (s = K8S_APISERVER; s < K8S_NSTEPS; s++) {
		json_t *names = json_array();
		bool first = true;

		fprintf(fp, "  ^ %-24s", k8s_step_name(s));
		for (i = 0; i < cfg->n_nodes; i++) {
			char *kv = state_talos_get(st, cfg->nodes[i].name, "kubernetes_version");
			bool cp = cfg->nodes[i].role == ROLE_CONTROLPLANE;

			if (!kv)        /* joins at from, then rolls with the others */
				kv = xstrdup(from);
			if (kv && strcmp(kv, cfg->kubernetes.version) &&
			    (cp || s == K8S_KUBELET) &&
			    steps_done(st, cfg->nodes[i].name,
				       cfg->kubernetes.version) <= s) {
				fprintf(fp, "%s%s", first ? " " : ", ", cfg->nodes[i].name);
				json_array_append_new(names, json_string(cfg->nodes[i].name));
				first = false;
			}
			free(kv);
		}
		fprintf(fp, "%s\n", first ? " (done)" :
			s < K8S_PROXY ? "  (each: its static pod Ready at the new image, then the gate)"
			: s == K8S_PROXY ? "  (cluster.proxy.image)"
			: "  (control planes, then workers; each: the Node reports the new kubelet, then the gate)");
		if (steps)
			json_array_append_new(steps, json_pack(
				"{s:s, s:s, s:o, s:s}", "component", k8s_step_name(s),
				"field", k8s_step_field(s), "nodes", names, "wait",
				s < K8S_PROXY ? "static-pod-ready" : s == K8S_PROXY
				? "none" : "kubelet-version"));
		else
			json_decref(names);
	}
	fprintf(fp, "  ^ %-24s then applied again from a control plane's Talos "
		"(COSI Manifests: CoreDNS, kube-proxy, the token, extra manifests; "
		"server-side apply)\n", "bootstrap manifests");
	manifests_prune_plan(cfg, st, fp);
	{
		json_t *join = json ? json_array() : NULL;
		bool first = true;

		for (i = 0; i < cfg->n_nodes; i++) {
			char *kv = state_talos_get(st, cfg->nodes[i].name,
						   "kubernetes_version");

			if (!kv) {
				fprintf(fp, "%s%s", first ? "  + joining at Kubernetes " : ", ",
					first ? from : cfg->nodes[i].name);
				if (first)
					fprintf(fp, ": %s", cfg->nodes[i].name);
				first = false;
				if (join)
					json_array_append_new(join, json_string(cfg->nodes[i].name));
			}
			free(kv);
		}
		if (!first)
			fprintf(fp, "  (new nodes get the images the others run, then "
				"roll with them: no kubelet newer than an API server)\n");
		if (json)
			*json = json_pack("{s:s, s:s, s:s, s:o, s:o}", "from", from, "to",
					  cfg->kubernetes.version, "mode", "NO_REBOOT",
					  "steps", steps, "joining", join);
	}
	free(from);
}

/* ------------------------------------------------ a node that joins */

/*
 * A node the journal has no Kubernetes version for (new in the config)
 * while the others roll from one version to kubernetes.version joins at
 * the version they run now, the roll's from: its kubelet never newer than
 * an API server not upgraded yet (the skew Kubernetes allows, FACTS-day2
 * 4b's order), its static pods those of the others. The roll then moves
 * it with them. The oldest journaled version that differs, or NULL.
 */
char *
k8s_join_version(struct state *st, const struct config *cfg, const char *name)
{
	char *mine = state_talos_get(st, name, "kubernetes_version"), *from = NULL;
	struct semver a, b;
	size_t i;

	if (mine || !cfg->kubernetes.version) {
		free(mine);
		return NULL;
	}
	for (i = 0; i < cfg->n_nodes; i++) {
		char *kv = state_talos_get(st, cfg->nodes[i].name, "kubernetes_version");

		if (kv && strcmp(kv, cfg->kubernetes.version) &&
		    (!from || (semver_parse(&a, kv) == 0 &&
			       semver_parse(&b, from) == 0 && semver_cmp(&a, &b) < 0))) {
			free(from);
			from = kv;
		} else {
			free(kv);
		}
	}
	return from;
}

int
read_join_config(struct apply_ctx *c, const char *name, struct buf *b,
		 char hex[65], struct err *err)
{
	char *from;
	struct buf out = BUF_INIT_SECRET;
	int r;

	if ((r = read_node_config(c, name, b, hex, err)) < 0)
		return r;
	if (!(from = k8s_join_version(&c->st, c->cfg, name)))
		return 0;
	r = upgrade_k8s_config_join(b->ptr, b->len, from, c->cfg->kubernetes.version,
				    &out, err);
	if (r == 0) {
		unsigned char md[32];
		unsigned int mdlen = 0;

		buf_release_secret(b);
		*b = out;
		out = (struct buf)BUF_INIT_SECRET;
		if (EVP_Digest(b->ptr, b->len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
		    mdlen != 32)
			r = err_set(err, ERR_FAIL, "nodes/%s.yaml: cannot compute its "
				    "SHA-256 (OpenSSL)", name);
		for (int i = 0; r == 0 && i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
	}
	if (r < 0)
		err_wrap(err, "nodes/%s.yaml at Kubernetes %s (it joins while the "
			 "cluster rolls to %s)", name, from, c->cfg->kubernetes.version);
	buf_release_secret(&out);
	free(from);
	return r;
}

/* =========================================================== image rolls */

/*
 * An image change a user's Talos patch makes (talos.patches: a mirror
 * registry, a pinned patch release) rolls like a Kubernetes upgrade, not
 * applied everywhere at once: kube-apiserver, kube-controller-manager,
 * kube-scheduler, kube-proxy over the control planes one at a time, then
 * the kubelets (control planes, then workers), each step the node's config
 * with the images not rolled yet kept as they run, applied NO_REBOOT and
 * waited for, the health gate between. Only the steps whose image changes.
 * What a node runs is journaled ("k8s_images") after every step, so a
 * killed apply continues with the step it was in; without that record,
 * what gen writes for its journaled kubernetes_version.
 */

void
image_roll_journaled(struct state *st, const struct node *n,
		     struct k8s_images *im)
{
	char *j = state_talos_get(st, n->name, "k8s_images");

	if (j) {
		k8s_images_parse(im, j);
	} else {
		char *kv = state_talos_get(st, n->name, "kubernetes_version");

		k8s_images_default(im, kv, n->role == ROLE_CONTROLPLANE);
		free(kv);
	}
	free(j);
}

int
image_roll_changes(const struct config *cfg, struct state *st,
		   const struct node *n, const struct k8s_images *want,
		   struct k8s_images *old, bool chg[K8S_NSTEPS])
{
	char *done = state_talos_get(st, n->name, "config_sha256");
	char *kv = state_talos_get(st, n->name, "kubernetes_version");
	int s, k = 0;

	memset(old, 0, sizeof(*old));
	for (s = 0; s < K8S_NSTEPS; s++)
		chg[s] = false;
	/* installed, at the config's Kubernetes version (else the version
	 * roll owns its images) */
	if (done && kv && cfg->kubernetes.version &&
	    !strcmp(kv, cfg->kubernetes.version)) {
		image_roll_journaled(st, n, old);
		for (s = 0; s < K8S_NSTEPS; s++) {
			if (s != K8S_KUBELET && n->role != ROLE_CONTROLPLANE)
				continue;
			chg[s] = want->v[s] && old->v[s] && strcmp(want->v[s], old->v[s]);
			k += chg[s];
		}
	}
	free(done);
	free(kv);
	return k;
}

/* The kubeletVersion a kubelet image reports ("v1.35.5" from
 * ghcr.io/siderolabs/kubelet:v1.35.5-fat), or 0 when its tag is no version. */
static int
kubelet_version_of(const char *img, char *out, size_t len)
{
	const char *slash = strrchr(img, '/'), *colon = strrchr(img, ':');
	struct semver v;

	if (!colon || (slash && colon < slash) || semver_parse(&v, colon + 1) < 0)
		return 0;
	snprintf(out, len, "v%d.%d.%d", v.major, v.minor, v.patch);
	return 1;
}

/* A patched image is another Kubernetes minor than kubernetes.version: a
 * minor moves through kubernetes.version (its path and Talos checks). */
int
image_roll_check(const struct config *cfg, const struct node *n,
		 const struct k8s_images *want, const char *install,
		 const char *installer, struct err *err)
{
	struct semver kv, iv;
	int s;

	if (install && installer && strcmp(install, installer))
		return err_set(err, ERR_USAGE, "nodes/%s.yaml: machine.install.image "
			       "is %s, not the installer strata rolls (%s): a talos "
			       "patch sets it. The installer changes only through "
			       "the rolling Talos upgrade (Upgrade API, one node at "
			       "a time): remove it from the patch and change "
			       "talos.version, talos.schematic or talos.installer_image "
			       "instead", n->name, install, installer);
	if (semver_parse(&kv, cfg->kubernetes.version) < 0)
		return 0;
	for (s = 0; s < K8S_NSTEPS; s++) {
		const char *img = want->v[s];
		char ver[64];

		if (!img || !kubelet_version_of(img, ver, sizeof(ver)) ||
		    semver_parse(&iv, ver) < 0)
			continue;
		if (iv.major != kv.major || iv.minor != kv.minor)
			return err_set(err, ERR_USAGE, "nodes/%s.yaml: %s is %s "
				       "(Kubernetes %d.%d) but kubernetes.version is "
				       "%s: a talos patch may change the registry or "
				       "the patch release of an image, a minor version "
				       "moves through kubernetes.version (the rolling "
				       "Kubernetes upgrade checks its path and Talos's "
				       "support)", n->name, k8s_step_field(s), img,
				       iv.major, iv.minor, cfg->kubernetes.version);
	}
	return 0;
}

bool
image_roll_pending(struct apply_ctx *c, const struct node *n)
{
	struct buf b = BUF_INIT_SECRET;
	struct k8s_images want, old;
	struct err e = ERR_INIT;
	bool chg[K8S_NSTEPS];
	char sha[65];
	int k = 0;

	if (read_node_config(c, n->name, &b, sha, &e) < 0)
		return false;
	k8s_images_of(&want, b.ptr, b.len);
	k = image_roll_changes(c->cfg, &c->st, n, &want, &old, chg);
	k8s_images_free(&want);
	k8s_images_free(&old);
	buf_release_secret(&b);
	return k > 0;
}

static int
do_istep(struct kroll *K, size_t i, enum k8s_step s, struct inode *in,
	 struct err *err)
{
	struct apply_ctx *c = K->c;
	const struct node *n = &c->cfg->nodes[i];
	struct buf file = BUF_INIT_SECRET, send = BUF_INIT_SECRET;
	struct k8s_images hold;
	char sha[65], *imgs = NULL, ver[64];
	const char *want = in->want.v[s];
	long long t0 = clock_mono_ms();
	bool last = true;
	int r, k;

	memset(&hold, 0, sizeof(hold));
	for (k = (int)s + 1; k < K8S_NSTEPS; k++)
		if (in->chg[k]) {
			hold.v[k] = in->old.v[k];      /* borrowed */
			last = false;
		}
	if ((r = read_node_config(c, n->name, &file, sha, err)) < 0)
		return r;
	if ((r = upgrade_k8s_config_old(file.ptr, file.len, s, &hold, &send,
					err)) < 0)
		goto out;
	if (s == K8S_KUBELET && (r = wait_kubelet_service(K, n, err)) < 0)
		goto out;
	{
		char says[400];

		snprintf(says, sizeof(says), "image roll: %s on %s: %s -> %s "
			 "(NO_REBOOT)", k8s_step_name(s), n->name, in->old.v[s],
			 want);
		/* want: never NULL here (the step changes to it) */
		r = send_step(K, i, s, &send, says, want,
			      kubelet_version_of(want, ver, sizeof(ver)) ? ver : NULL,
			      err);
	}
	if (r < 0)
		goto out;
	free(in->old.v[s]);
	in->old.v[s] = xstrdup(want);
	in->chg[s] = false;
	if (last) {
		/* its whole new config is on: its images are those of the
		 * file, read at the roll's start (in->want) */
		struct state_kv kv[] = { { "k8s_images", NULL },
					 { "config_sha256", sha } };

		kv[0].val = imgs = k8s_images_format(&in->want);
		r = state_talos_setv(&c->st, n->name, kv, 2, err);
	} else {
		imgs = k8s_images_format(&in->old);
		r = state_talos_set(&c->st, n->name, "k8s_images", imgs, err);
	}
	K->steps++;
	if (r == 0 && s != K8S_PROXY)
		out_step("%s on %s: %s (%.1fs)", k8s_step_name(s), n->name,
			 s == K8S_KUBELET ? "the kubelet is back with the new image"
			 : "its static pod runs the new image and is Ready",
			 (clock_mono_ms() - t0) / 1000.0);
out:
	free(imgs);
	buf_release_secret(&file);
	buf_release_secret(&send);
	return r;
}

/* The image roll: the steps whose image a talos patch changed. */
static bool
image_todo(struct kroll *K, size_t i, enum k8s_step s)
{
	return K->in[i].chg[s];
}

static int
image_step(struct kroll *K, size_t i, enum k8s_step s, struct err *err)
{
	return do_istep(K, i, s, &K->in[i], err);
}

static const struct roll_ops image_ops = { image_todo, image_step };

int
image_roll_run(struct apply_ctx *c, struct err *err)
{
	struct kroll K;
	struct inode *in;
	size_t i, n = c->cfg->n_nodes;
	long long t0 = clock_mono_ms();
	char *proxy = NULL;
	int r = 0, s;

	memset(&K, 0, sizeof(K));
	K.c = c;
	K.to = c->cfg->kubernetes.version;
	K.what = "the image roll";
	in = K.in = xcalloc(n + 1, sizeof(*in));
	for (i = 0; i < n; i++) {
		struct buf b = BUF_INIT_SECRET;
		char sha[65];
		struct err e = ERR_INIT;

		if (read_node_config(c, c->cfg->nodes[i].name, &b, sha, &e) < 0)
			continue;
		k8s_images_of(&in[i].want, b.ptr, b.len);
		buf_release_secret(&b);
		K.total += (size_t)image_roll_changes(c->cfg, &c->st, &c->cfg->nodes[i],
						      &in[i].want, &in[i].old,
						      in[i].chg);
		if (in[i].chg[K8S_PROXY] && !proxy)
			proxy = xstrdup(in[i].want.v[K8S_PROXY]);
	}
	if (!K.total)
		goto out;
	K.kcfg = fs_join(c->env_dir, "kubeconfig");
	if (!fs_exists(K.kcfg)) {
		r = err_set(err, ERR_FAIL, "a talos patch changes Kubernetes images "
			    "but there is no ENV/kubeconfig: the roll cannot be "
			    "watched");
		goto out;
	}
	if ((r = kube_client_load(&K.kc, K.kcfg, 10000, err)) < 0)
		goto out;
	out_step("image roll: %zu node steps (images changed by the talos "
		 "patches), one at a time", K.total);
	if ((r = reboot_leftovers(&K, err)) < 0 ||
	    (r = gate(&K, "the image roll", err)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		char *pull[K8S_NSTEPS] = { 0 };

		for (s = 0; s < K8S_NSTEPS; s++)
			if (in[i].chg[s])
				pull[s] = in[i].want.v[s];    /* borrowed */
		if ((r = prepull(&K, &c->cfg->nodes[i], pull, err)) < 0)
			goto out;
	}
	if ((r = etcd_snapshot_before(c, "the image roll", err)) < 0)
		goto out;
	if ((r = roll_controlplanes(&K, &image_ops, err)) < 0)
		goto out;
	if (proxy && (r = update_kube_proxy(&K, proxy, err)) < 0)
		goto out;
	if ((r = roll_kubelets(&K, &image_ops, err)) < 0)
		goto out;
	{
		long long wall = clock_mono_ms() - t0;

		out_step("image roll: %zu node steps in %.1fs; strata's own time "
			 "%.0f ms a step", K.steps, wall / 1000.0,
			 K.steps ? (double)(wall - K.waited_ms) / (double)K.steps : 0.0);
	}
out:
	for (i = 0; i < n; i++) {
		k8s_images_free(&in[i].old);
		k8s_images_free(&in[i].want);
	}
	free(in);
	free(proxy);
	free(K.kcfg);
	kube_client_free(K.kc);
	return r;
}

/*
 * For plan and apply: the image roll the configs gen is about to write
 * mean (images: gen.h's lines), printed when show; refusals (a patched
 * installer, another minor) in err.
 */
int
image_roll_plan(const struct config *cfg, struct state *st, const char *images,
		const char *installer, FILE *fp, bool show, json_t **json,
		struct err *err)
{
	struct inode *in;
	size_t i, n = cfg->n_nodes, total = 0, ln = 0;
	int r = 0, s;

	in = xcalloc(n + 1, sizeof(*in));
	for (i = 0; i < n && r == 0; i++) {
		const char *p = images;
		char *install = NULL;

		while (p && *p) {
			const char *nl = strchr(p, '\n');
			size_t len = nl ? (size_t)(nl - p) : strlen(p);
			char *line = xasprintf("%.*s", (int)len, p), *a, *b;

			a = strchr(line, ' ');
			b = a ? strchr(a + 1, ' ') : NULL;
			if (a && b) {
				*a = *b = '\0';
				if (!strcmp(line, cfg->nodes[i].name)) {
					if (!strcmp(a + 1, "install")) {
						free(install);
						install = xstrdup(b + 1);
					}
					for (s = 0; s < K8S_NSTEPS; s++)
						if (!strcmp(a + 1, k8s_step_name(s))) {
							free(in[i].want.v[s]);
							in[i].want.v[s] = xstrdup(b + 1);
						}
				}
			}
			free(line);
			p = nl ? nl + 1 : NULL;
		}
		r = image_roll_check(cfg, &cfg->nodes[i], &in[i].want, install,
				     installer, err);
		free(install);
		if (r == 0)
			total += (size_t)image_roll_changes(cfg, st, &cfg->nodes[i],
							    &in[i].want, &in[i].old,
							    in[i].chg);
	}
	if (r < 0 || !total)
		goto out;
	if (show)
		fprintf(fp, "\nImages changed by the talos patches, rolled in the "
			"upgrade-k8s order (each step the node's machine config "
			"applied NO_REBOOT, no reboot; the gate between):\n");
	if (json)
		*json = json_pack("{s:s, s:I, s:[]}", "mode", "NO_REBOOT",
				  "node_steps", (json_int_t)total, "steps");
	for (s = K8S_APISERVER; s < K8S_NSTEPS; s++) {
		json_t *nodes = json ? json_array() : NULL;
		size_t k = 0;

		for (int pass = 0; pass < 2; pass++)
			for (i = 0; i < n; i++) {
				bool cp = cfg->nodes[i].role == ROLE_CONTROLPLANE;

				if (!in[i].chg[s] || (s == K8S_KUBELET && cp != (pass == 0)) ||
				    (s != K8S_KUBELET && pass))
					continue;
				if (show && !k++)
					fprintf(fp, "  ^ %-24s %s", k8s_step_name(s),
						cfg->nodes[i].name);
				else if (show)
					fprintf(fp, ", %s", cfg->nodes[i].name);
				else
					k++;
				ln = i;
				if (nodes)
					json_array_append_new(nodes, json_pack(
						"{s:s, s:s, s:s}", "name",
						cfg->nodes[i].name, "from",
						in[i].old.v[s], "to", in[i].want.v[s]));
			}
		if (show && k)
			fprintf(fp, "  (%s: %s -> %s; each: %s, then the gate)\n",
				k8s_step_field(s), in[ln].old.v[s], in[ln].want.v[s],
				s < K8S_PROXY ? "its static pod Ready at the new image"
				: s == K8S_PROXY ? "applied" : "the kubelet back with it");
		if (nodes && k)
			json_array_append_new(json_object_get(*json, "steps"), json_pack(
				"{s:s, s:s, s:o, s:s}", "component", k8s_step_name(s),
				"field", k8s_step_field(s), "nodes", nodes, "wait",
				s < K8S_PROXY ? "static-pod-ready" : s == K8S_PROXY
				? "none" : "kubelet-version"));
		else
			json_decref(nodes);
	}
	r = (int)total;
out:
	for (i = 0; i < n; i++) {
		k8s_images_free(&in[i].old);
		k8s_images_free(&in[i].want);
	}
	free(in);
	return r;
}
