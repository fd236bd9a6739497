/*
 * gatewayapi: our own CustomResourceDefinitions for the Gateway API kinds
 * Cilium's Gateway API controller watches (gatewayapi.h).
 *
 * Group gateway.networking.k8s.io: GatewayClass (cluster scoped),
 * Gateway, HTTPRoute and GRPCRoute at v1, ReferenceGrant at v1beta1,
 * TLSRoute at v1alpha2. The schemas are deliberately shallow: each object
 * must have a spec, and the fields every object of the kind needs are
 * required (GatewayClass: controllerName; Gateway: gatewayClassName and
 * listeners); the rest of spec and status is kept as given. The API
 * server therefore refuses a Gateway before this CRD exists (404) and one
 * without a class (422), but not every mistake upstream's full schema
 * would catch; docs/addons.md says how to replace them.
 */
#include "kube/gatewayapi.h"

#include <stdbool.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define GROUP "gateway.networking.k8s.io"

const char *const gatewayapi_crd_names[] = {
	"gatewayclasses." GROUP, "gateways." GROUP, "httproutes." GROUP,
	"grpcroutes." GROUP, "referencegrants." GROUP, "tlsroutes." GROUP,
	NULL
};

struct kind {
	const char *kind, *plural, *list, *version;
	bool cluster;
	const char *required[3];   /* spec's required fields */
	const char *types[3];      /* their types */
};

static const struct kind kinds[] = {
	{ "GatewayClass", "gatewayclasses", "GatewayClassList", "v1", true,
	  { "controllerName" }, { "string" } },
	{ "Gateway", "gateways", "GatewayList", "v1", false,
	  { "gatewayClassName", "listeners" }, { "string", "array" } },
	{ "HTTPRoute", "httproutes", "HTTPRouteList", "v1", false, { NULL }, { NULL } },
	{ "GRPCRoute", "grpcroutes", "GRPCRouteList", "v1", false, { NULL }, { NULL } },
	{ "ReferenceGrant", "referencegrants", "ReferenceGrantList", "v1beta1",
	  false, { NULL }, { NULL } },
	{ "TLSRoute", "tlsroutes", "TLSRouteList", "v1alpha2", false, { NULL }, { NULL } },
};

static json_t *
spec_schema(const struct kind *k)
{
	json_t *s = json_pack("{s:s, s:b}", "type", "object",
			      "x-kubernetes-preserve-unknown-fields", 1);
	json_t *props = json_object(), *req = json_array();
	size_t i;

	for (i = 0; i < 3 && k->required[i]; i++) {
		json_t *p = json_pack("{s:s}", "type", k->types[i]);

		if (!strcmp(k->types[i], "array"))
			json_object_set_new(p, "items", json_pack(
				"{s:s, s:b}", "type", "object",
				"x-kubernetes-preserve-unknown-fields", 1));
		json_object_set_new(props, k->required[i], p);
		json_array_append_new(req, json_string(k->required[i]));
	}
	if (json_array_size(req)) {
		json_object_set_new(s, "properties", props);
		json_object_set_new(s, "required", req);
	} else {
		json_decref(props);
		json_decref(req);
	}
	return s;
}

static json_t *
crd(const struct kind *k)
{
	char name[128], singular[64];
	size_t i;
	json_t *schema = json_pack(
		"{s:s, s:{s:o, s:{s:s, s:b}}, s:[s]}", "type", "object",
		"properties", "spec", spec_schema(k), "status", "type", "object",
		"x-kubernetes-preserve-unknown-fields", 1, "required", "spec");

	snprintf(name, sizeof(name), "%s.%s", k->plural, GROUP);
	for (i = 0; k->kind[i] && i + 1 < sizeof(singular); i++)
		singular[i] = (char)tolower((unsigned char)k->kind[i]);
	singular[i] = '\0';
	return json_pack(
		"{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s},"
		" s:[{s:s, s:b, s:b, s:{s:o}, s:{s:{}}}]}}",
		"apiVersion", "apiextensions.k8s.io/v1",
		"kind", "CustomResourceDefinition",
		"metadata", "name", name, "labels",
		"app.kubernetes.io/managed-by", "strata",
		"spec", "group", GROUP, "scope",
		k->cluster ? "Cluster" : "Namespaced",
		"names", "kind", k->kind, "listKind", k->list, "plural", k->plural,
		"singular", singular,
		"versions", "name", k->version, "served", 1, "storage", 1,
		"schema", "openAPIV3Schema", schema, "subresources", "status");
}

json_t *
gatewayapi_crds(void)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		json_array_append_new(a, crd(&kinds[i]));
	return a;
}
