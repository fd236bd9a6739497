/* drain: cordon, evictions honouring PodDisruptionBudgets, uncordon. */
#include "kube/drain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talos/health.h"
#include "util/clock.h"
#include "util/out.h"

static int
node_apply(struct kube_client *c, const char *node, const char *why,
	   struct err *err)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1",
			      "kind", "Node", "metadata", "name", node);
	int r;

	if (why) {
		json_object_set_new(json_object_get(o, "metadata"), "annotations",
				    json_pack("{s:s}", HEALTH_CORDON_ANNOTATION, why));
		json_object_set_new(o, "spec", json_pack("{s:b}", "unschedulable", 1));
	}
	r = kube_apply(c, o, NULL, err);
	json_decref(o);
	return r;
}

int
kube_cordon(struct kube_client *c, const char *node, const char *why,
	    struct err *err)
{
	if (node_apply(c, node, why, err) < 0)
		return err_wrap(err, "cordon %s", node);
	return 0;
}

int
kube_uncordon(struct kube_client *c, const char *node, struct err *err)
{
	if (node_apply(c, node, NULL, err) < 0)
		return err_wrap(err, "uncordon %s", node);
	return 0;
}

/* Pods a drain leaves alone: DaemonSet-owned, mirror (static) pods, and
 * pods already finished. */
static bool
drain_skips(json_t *pod)
{
	json_t *md = json_object_get(pod, "metadata"), *ref;
	const char *phase = json_string_value(json_object_get(
		json_object_get(pod, "status"), "phase"));
	size_t i;

	if (json_object_get(json_object_get(md, "annotations"), "kubernetes.io/config.mirror"))
		return true;
	json_array_foreach(json_object_get(md, "ownerReferences"), i, ref) {
		const char *k = json_string_value(json_object_get(ref, "kind"));

		if (k && !strcmp(k, "DaemonSet") && json_is_true(json_object_get(ref, "controller")))
			return true;
	}
	return phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
}

int
kube_drain(struct kube_client *c, const char *node, const struct kube_wait *w,
	   size_t *evicted, struct err *err)
{
	long long t0 = clock_mono_ms(), deadline = t0 + w->timeout_ms;
	long backoff = 100;
	char last[600] = "";
	size_t n_ev = 0;

	if (evicted)
		*evicted = 0;
	for (;;) {
		json_t *pods = NULL, *p;
		struct err e = ERR_INIT;
		size_t i, left = 0, blocked = 0;
		char why[600] = "";

		if (kube_pods_on_node(c, node, &pods, &e) < 0) {
			snprintf(why, sizeof(why), "%.590s", e.msg);
			left = 1;
		}
		json_array_foreach(pods, i, p) {
			json_t *md = json_object_get(p, "metadata");
			const char *ns = json_string_value(json_object_get(md, "namespace"));
			const char *name = json_string_value(json_object_get(md, "name"));
			int r;

			if (!ns || !name || drain_skips(p))
				continue;
			left++;
			if (json_object_get(md, "deletionTimestamp"))
				continue;   /* evicted, terminating */
			err_clear(&e);
			r = kube_evict(c, ns, name, &e);
			if (r == 0) {
				n_ev++;
				out_step("drain %s: evicted pod %s/%s", node, ns, name);
			} else {
				blocked++;
				if (!why[0])
					snprintf(why, sizeof(why), "%.590s", e.msg);
			}
		}
		json_decref(pods);
		if (!left) {
			if (evicted)
				*evicted = n_ev;
			out_step("drain %s: done, %zu pod%s evicted (%lld ms)", node, n_ev,
				 n_ev == 1 ? "" : "s", clock_mono_ms() - t0);
			return 0;
		}
		if (why[0] && strcmp(why, last)) {
			snprintf(last, sizeof(last), "%s", why);
			out_step("drain %s: waiting: %s", node, last);
		}
		if (w->interrupted && *w->interrupted)
			return err_set(err, ERR_INTR, "interrupted while draining %s", node);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "drain %s: %zu pod%s still on the node "
				       "after %lld s%s%s; the node stays cordoned and is "
				       "not removed: let the budget allow it (more "
				       "replicas elsewhere, or change the "
				       "PodDisruptionBudget), then run apply again",
				       node, left, left == 1 ? "" : "s",
				       (clock_mono_ms() - t0) / 1000,
				       blocked ? "; " : "", blocked ? last : "");
		clock_sleep_ms(backoff);
		backoff = backoff * 3 / 2 > 2000 ? 2000 : backoff * 3 / 2;
	}
}
