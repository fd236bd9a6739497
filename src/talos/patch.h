/*
 * patch: Talos strategic-merge patches on libfyaml documents.
 *
 * Documents are matched by apiVersion/kind[/name] (v1alpha1 = the document
 * without kind); unmatched patch documents are appended. Maps merge key by
 * key, scalars are replaced unless the patch value is empty, lists append
 * except cluster.network.podSubnets/serviceSubnets and
 * cluster.apiServer.auditPolicy (replaced), machine.network.interfaces
 * (merged by interface or deviceSelector), vlans (by vlanId) and
 * cluster.apiServer.admissionControl (by name). "$patch: delete" removes a
 * key, a list item (matched on the item's other fields) or a document.
 *
 * A patch whose single document is a list is an RFC 6902 JSON Patch (add,
 * remove, replace, move, copy, test); like Talos, it is refused on
 * multi-document configs, which every v1.12 config is.
 */
#ifndef STRATA_TALOS_PATCH_H
#define STRATA_TALOS_PATCH_H

#include "talos/tyaml.h"
#include "util/err.h"

/* Apply every document of patch to cfg, in order. */
int talos_patch_apply(struct ydocs *cfg, const struct ydocs *patch,
		      struct err *err);
/* True when the patch is a JSON6902 patch (one document, a list of ops). */
int talos_patch_is_json6902(const struct ydocs *patch);

#endif
