/*
 * drain: take a Kubernetes node out of service the way `kubectl drain`
 * does, for a node strata is about to remove.
 *
 *   cordon    server-side apply of the Node as manager "strata":
 *             spec.unschedulable true and the annotation
 *             strata.dev/cordoned (what for), so the health gate can tell
 *             our cordon from a user's;
 *   drain     every pod bound to the node is evicted through the eviction
 *             subresource, except DaemonSet pods (their controller puts
 *             them back) and mirror pods (static pods: the kubelet owns
 *             them). An eviction a PodDisruptionBudget refuses (429) is
 *             retried with backoff until the bound; then the drain fails
 *             naming the pod and the budget's message, and nothing further
 *             happens to the node. Evicted pods are waited for until gone.
 *   uncordon  the same apply without those fields: strata gives them up.
 */
#ifndef STRATA_KUBE_DRAIN_H
#define STRATA_KUBE_DRAIN_H

#include <stddef.h>

#include "kube/kubeapi.h"
#include "util/err.h"

int kube_cordon(struct kube_client *c, const char *node, const char *why,
		struct err *err);
int kube_uncordon(struct kube_client *c, const char *node, struct err *err);
/* *evicted (may be NULL) counts the pods evicted. */
int kube_drain(struct kube_client *c, const char *node,
	       const struct kube_wait *w, size_t *evicted, struct err *err);

#endif
