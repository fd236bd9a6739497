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
 * JSON6902 patches are not implemented (Talos refuses them on the
 * multi-document configs every v1.12 generator produces anyway).
 */
#ifndef STRATA_TALOS_PATCH_H
#define STRATA_TALOS_PATCH_H

#include "talos/tyaml.h"
#include "util/err.h"

/* Apply every document of patch to cfg, in order. */
int talos_patch_apply(struct ydocs *cfg, const struct ydocs *patch,
		      struct err *err);
/* True when text looks like a JSON6902 patch (a top-level list of ops). */
int talos_patch_is_json6902(const struct ydocs *patch);

#endif
