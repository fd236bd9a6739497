/*
 * gatewayapi: the Gateway API CRDs strata applies before Cilium starts
 * when components.ingress is "gateway" (docs/addons.md).
 *
 * Cilium's Gateway API support needs the CRDs in the cluster before its
 * operator starts, and its chart creates the GatewayClass only when
 * gateway.networking.k8s.io/v1 GatewayClass is served
 * (gatewayAPI.gatewayClass.create: auto;
 * ../shared/reference/kubernetes/FACTS.md §1 and cilium's values.yaml).
 */
#ifndef STRATA_KUBE_GATEWAYAPI_H
#define STRATA_KUBE_GATEWAYAPI_H

#include <jansson.h>

/* The CRD names (plural.group), NULL-terminated. */
extern const char *const gatewayapi_crd_names[];

/* The CustomResourceDefinition objects, in apply order (a new reference). */
json_t *gatewayapi_crds(void);

#endif
