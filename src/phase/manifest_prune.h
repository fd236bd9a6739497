/*
 * manifest_prune: the objects strata applied from Talos's bootstrap
 * manifests (talosctl upgrade-k8s step 6, FACTS-day2 4b), as a set
 * journaled in state.json (STATE_KEY_MANIFESTS_APPLIED), and the objects
 * of an earlier set that the manifests no longer render: what a re-apply
 * on Talos v1.13 and later deletes (talosctl v1.13 prunes, v1.12 does
 * not). Only what strata's own record names is ever a candidate: objects
 * made by users or Flux are not in it.
 */
#ifndef STRATA_PHASE_MANIFEST_PRUNE_H
#define STRATA_PHASE_MANIFEST_PRUNE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "state/state.h"   /* STATE_KEY_MANIFESTS_APPLIED */
#include "util/err.h"

/* One object: ns is "" for a cluster-scoped kind and "default" for a
 * namespaced one written without a namespace (where the API puts it). */
struct mp_obj {
	char *api_version, *kind, *ns, *name;
};

struct mp_set {
	struct mp_obj *v;
	size_t n, cap;
};

#define MP_SET_INIT { NULL, 0, 0 }

/* Add one object (a duplicate, same group/kind/namespace/name, is kept
 * once: the later apiVersion wins). */
void mp_set_add(struct mp_set *s, const char *api_version, const char *kind,
		const char *ns, const char *name);
/* Add every object of a Talos Manifest's spec (a YAML sequence of
 * objects, or a mapping with `items`); only the identity is read, never
 * the body (a bootstrap token Secret). */
int mp_set_add_yaml(struct mp_set *s, const char *text, size_t len,
		    struct err *err);
void mp_set_release(struct mp_set *s);
/* Sorted by group, kind, namespace, name (the record's and the log's
 * order). */
void mp_set_sort(struct mp_set *s);
bool mp_set_has(const struct mp_set *s, const struct mp_obj *o);

/* The record as a JSON array of {apiVersion, kind, namespace, name}
 * (namespace absent for a cluster-scoped kind), and back: a malformed
 * entry is an error naming it (the journal was edited by hand). */
json_t *mp_set_to_json(const struct mp_set *s);
int mp_set_from_json(struct mp_set *s, const json_t *a, struct err *err);

/*
 * The objects of old the new rendering (now) no longer has, into out
 * (sorted). Compared on API group, kind, namespace and name, not version:
 * a manifest that moves an object from v1beta1 to v1 renders the same
 * object, and deleting it would delete what was just applied.
 */
void mp_set_stale(const struct mp_set *old, const struct mp_set *now,
		  struct mp_set *out);

/* Kinds never pruned even when stale: deleting a Namespace deletes what
 * users put in it, deleting a CRD every object of it. */
bool mp_prune_refused(const struct mp_obj *o);

/* "Deployment kube-system/coredns", "ClusterRoleBinding x" */
void mp_obj_what(const struct mp_obj *o, char *out, size_t n);

#endif
