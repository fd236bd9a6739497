/* kubestatus: what `strata status` shows of the addons (kubeapi.h). */
#include "kube/kubeapi.h"

#include <stdio.h>
#include <string.h>

static json_t *
cni_status(json_t *ds)
{
	json_t *st = json_object_get(ds, "status");
	const char *img = json_string_value(json_object_get(json_array_get(
		json_object_get(json_object_get(json_object_get(json_object_get(
			ds, "spec"), "template"), "spec"), "containers"), 0),
		"image"));
	const char *tag = img ? strrchr(img, ':') : NULL;
	char ver[64] = "?";
	size_t n;

	/* quay.io/cilium/cilium:v1.18.4[@sha256:...] -> 1.18.4 */
	if (tag) {
		tag += tag[1] == 'v' ? 2 : 1;
		n = strcspn(tag, "@");
		snprintf(ver, sizeof(ver), "%.*s", (int)(n < 60 ? n : 60), tag);
	}
	return json_pack("{s:s, s:s, s:I, s:I}", "name", "cilium", "version",
			 ver, "ready",
			 json_integer_value(json_object_get(st, "numberReady")),
			 "desired",
			 json_integer_value(json_object_get(st,
							    "desiredNumberScheduled")));
}

static json_t *
flux_status(json_t *items)
{
	json_t *out = json_array(), *k;
	size_t i;

	json_array_foreach(items, i, k) {
		const char *msg = NULL;
		const char *ready = kube_condition(k, "Ready", &msg);
		const char *rev = json_string_value(json_object_get(
			json_object_get(k, "status"), "lastAppliedRevision"));

		json_array_append_new(out, json_pack(
			"{s:s?, s:s, s:s?, s:s?}", "name",
			json_string_value(json_object_get(json_object_get(
				k, "metadata"), "name")),
			"ready", ready ? ready : "Unknown", "revision", rev,
			"message", msg));
	}
	return json_pack("{s:o}", "kustomizations", out);
}

/* Cilium's GatewayClass: whether its operator accepted it. */
static json_t *
gateway_status(json_t *gc)
{
	const char *msg = NULL;
	const char *acc = kube_condition(gc, "Accepted", &msg);

	return json_pack("{s:s, s:s?, s:s, s:s?}", "class", "cilium",
			 "controller", json_string_value(json_object_get(
				 json_object_get(gc, "spec"), "controllerName")),
			 "accepted", acc ? acc : "Unknown", "message", msg);
}

int
kube_addons_read(struct kube_client *c, json_t **out, struct err *err)
{
	json_t *ds = NULL, *items = NULL;
	json_t *cni = json_null(), *flux = json_null(), *gw = json_null();
	json_t *gc = NULL;

	*out = NULL;
	if (kube_get(c, "apps/v1", "DaemonSet", "kube-system", "cilium", &ds,
		     err) == 0) {
		json_decref(cni);
		cni = cni_status(ds);
		json_decref(ds);
	} else if (err->code != ERR_NOTFOUND) {
		json_decref(cni);
		return -1;
	}
	err_clear(err);
	if (kube_list(c, "kustomize.toolkit.fluxcd.io/v1", "Kustomization",
		      NULL, NULL, &items, err) == 0) {
		json_decref(flux);
		flux = flux_status(items);
		json_decref(items);
	} else if (err->code != ERR_NOTFOUND) {
		json_decref(cni);
		return -1;
	}
	err_clear(err);
	if (kube_get(c, "gateway.networking.k8s.io/v1", "GatewayClass", NULL,
		     "cilium", &gc, err) == 0) {
		json_decref(gw);
		gw = gateway_status(gc);
		json_decref(gc);
	} else if (err->code != ERR_NOTFOUND) {
		json_decref(cni);
		json_decref(flux);
		return -1;
	}
	err_clear(err);
	*out = json_pack("{s:o, s:o, s:o}", "cni", cni, "gateway", gw, "flux",
			 flux);
	return 0;
}
