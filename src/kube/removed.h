/*
 * removed: the Kubernetes API group/versions a release stops serving, and
 * the check talosctl upgrade-k8s runs before it touches a node
 * (FACTS-day2 4b step 1: "the removed/deprecated API checks for V").
 *
 * A removed group/version with a replacement (policy/v1beta1
 * PodDisruptionBudget -> policy/v1) holds the same objects as the
 * replacement: the API server stores an object once and serves it through
 * every version it serves, so listing the old version also lists objects
 * created through the new one. What breaks at the upgrade is whoever still
 * writes them through the old version (a manifest, a chart, a controller):
 * the check reports an object whose managedFields (or kubectl's
 * last-applied-configuration) name the removed group/version. A kind with
 * no replacement (PodSecurityPolicy) is gone with its API: every object
 * of it is reported.
 */
#ifndef STRATA_KUBE_REMOVED_H
#define STRATA_KUBE_REMOVED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct kube_client;

struct kube_removed {
	int removed_in;               /* the 1.x minor that no longer serves it */
	const char *group_version;    /* "policy/v1beta1" */
	const char *kind;             /* "PodDisruptionBudget" */
	const char *replacement;      /* "policy/v1", or NULL: none */
	const char *what_to_do;       /* with no replacement: what instead */
};

/* The entries removed in a minor in (from_minor, to_minor], in table
 * order, at most max of them into out; returns how many there are. */
size_t kube_removed_between(int from_minor, int to_minor,
			    const struct kube_removed **out, size_t max);

/* Does item (an object listed through rm->group_version) use the removed
 * API? *who (may be NULL) gets the manager that wrote it through it, or
 * "kubectl apply" (last-applied-configuration), or NULL (no replacement:
 * the object itself goes). Borrowed from item. */
bool kube_removed_uses(const struct kube_removed *rm, json_t *item,
		       const char **who);

/*
 * Before a Kubernetes upgrade from -> to ("1.31.4" -> "1.32.0"): list each
 * removed group/version's kind on the live API server (404: not served,
 * nothing to find) and refuse (ERR_USAGE) when an object uses one: each
 * printed as a warning (kind, namespace/name, who writes it; at most 50),
 * the message naming the first 3, how many more, and what to do. 0 when
 * none, or when from/to do not parse.
 */
int kube_removed_check(struct kube_client *kc, const char *from,
		       const char *to, struct err *err);

#endif
