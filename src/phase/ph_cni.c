/*
 * ph_cni: Cilium, installed by helm from a Job in the cluster once the
 * Kubernetes API answers (docs/addons.md).
 *
 * Values (../shared/reference/kubernetes/FACTS.md §1): IPAM from
 * Kubernetes, kube-proxy replacement with the API reached through
 * KubePrism (localhost:7445 on every node, which balances over the
 * control planes behind the endpoint/VIP, so agents do not depend on one
 * VIP holder), the agent's capabilities without SYS_MODULE, cgroup v2 and
 * bpffs as Talos mounts them; the user's kubernetes.cni.values go on top.
 *
 * Current when state.json's addons.cni.config_sha256 matches the digest of
 * (chart version, helm image, values) and the cilium DaemonSet runs that
 * version: then no Job starts.
 */
#include "phase/phase.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/gatewayapi.h"
#include "kube/kubeapi.h"
#include "phase/addon.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/out.h"

#define CILIUM_REPO "https://helm.cilium.io/"
#define JOB_NAME "strata-cilium-install"

void
addon_digest(json_t *v, char out[65])
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	/* Fails only without memory (or a broken OpenSSL): die, as
	 * xmalloc does, rather than use an unset digest. */
	if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1)
		abort();
	for (i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
	free(s);
}

bool
cni_gateway(const struct config *cfg)
{
	return cfg->components.ingress &&
	       !strcmp(cfg->components.ingress, "gateway");
}

/* The Gateway API CRDs, applied (server-side, as strata) and Established
 * before the chart is installed. */
static int
gateway_crds_apply(struct kube_client *kc, const struct kube_wait *w,
		   struct err *err)
{
	json_t *crds = gatewayapi_crds(), *o;
	size_t i;
	int r = 0;

	json_array_foreach(crds, i, o) {
		if ((r = kube_apply(kc, o, NULL, err)) < 0)
			break;
	}
	json_decref(crds);
	for (i = 0; r == 0 && gatewayapi_crd_names[i]; i++)
		r = kube_wait_crd(kc, gatewayapi_crd_names[i], w, err);
	if (r == 0)
		out_step("cni: %zu Gateway API CRDs Established", i);
	return r;
}

/* Every Gateway API CRD still there (a re-run with nothing to do checks
 * that nobody deleted one). */
static bool
gateway_crds_present(struct kube_client *kc)
{
	struct err e = ERR_INIT;
	json_t *o = NULL;
	size_t i;

	for (i = 0; gatewayapi_crd_names[i]; i++) {
		if (kube_get(kc, "apiextensions.k8s.io/v1",
			     "CustomResourceDefinition", NULL,
			     gatewayapi_crd_names[i], &o, &e) < 0) {
			err_clear(&e);
			return false;
		}
		json_decref(o);
		o = NULL;
	}
	return true;
}

json_t *
cni_values(const struct config *cfg, struct err *err)
{
	json_t *v = json_pack(
		"{s:{s:s}, s:b, s:s, s:i,"
		" s:{s:{s:[sssssssssss], s:[sss]}},"
		" s:{s:{s:b}, s:s}}",
		"ipam", "mode", "kubernetes",
		"kubeProxyReplacement", 1,
		"k8sServiceHost", "localhost", "k8sServicePort", 7445,
		"securityContext", "capabilities", "ciliumAgent",
		"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN",
		"SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID",
		"cleanCiliumState", "NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE",
		"cgroup", "autoMount", "enabled", 0, "hostRoot", "/sys/fs/cgroup");

	/* Gateway API through Cilium (FACTS §1): its controller, ALPN and
	 * appProtocol; the chart then creates the GatewayClass "cilium"
	 * because the CRDs (applied first) serve GatewayClass. */
	if (cni_gateway(cfg))
		json_object_set_new(v, "gatewayAPI", json_pack(
			"{s:b, s:b, s:b}", "enabled", 1, "enableAlpn", 1,
			"enableAppProtocol", 1));
	if (cfg->kubernetes.cni_values) {
		json_error_t je;
		json_t *u = json_loads(cfg->kubernetes.cni_values, 0, &je);

		if (!u || json_object_update_recursive(v, u) < 0) {
			json_decref(u);
			json_decref(v);
			err_set(err, ERR_FAIL, "kubernetes.cni.values: %s",
				je.text);
			return NULL;
		}
		json_decref(u);
	}
	return v;
}

/* The rights helm needs to install the cilium chart: what the chart
 * creates (FACTS §2, "Rights"), plus escalate and bind because its
 * ClusterRoles grant rights the installer does not hold itself. */
static json_t *
cilium_rules(void)
{
	return json_pack(
		"[{s:[s], s:[sssss], s:[ssssss]},"
		" {s:[s], s:[ss], s:[ssssss]},"
		" {s:[s], s:[ssss], s:[ssssssss]}]",
		"apiGroups", "", "resources", "secrets", "configmaps",
		"serviceaccounts", "services", "namespaces",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "apps", "resources", "daemonsets", "deployments",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "rbac.authorization.k8s.io", "resources",
		"clusterroles", "clusterrolebindings", "roles", "rolebindings",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"escalate", "bind");
}

static bool
cni_should_run(struct apply_ctx *c)
{
	return c->cfg->kubernetes.cni == CNI_CILIUM && c->cfg->n_nodes > 0;
}

/* The cilium DaemonSet runs chart version `version` (its image tag). */
static bool
cilium_at(struct kube_client *kc, const char *version)
{
	struct err e = ERR_INIT;
	json_t *ds = NULL;
	const char *img;
	char want[80];
	bool ok;

	if (kube_get(kc, "apps/v1", "DaemonSet", "kube-system", "cilium", &ds,
		     &e) < 0)
		return false;
	img = json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(json_object_get(json_object_get(ds, "spec"),
						"template"), "spec"),
		"containers"), 0), "image"));
	snprintf(want, sizeof(want), ":v%s", version);
	ok = img && strstr(img, want);
	json_decref(ds);
	return ok;
}

static int
node_names(struct apply_ctx *c, const char ***out)
{
	size_t i;

	*out = xcalloc(c->cfg->n_nodes + 1, sizeof(**out));
	for (i = 0; i < c->cfg->n_nodes; i++)
		(*out)[i] = c->cfg->nodes[i].name;
	return 0;
}

static int
cni_run(struct apply_ctx *c, struct err *err)
{
	const struct kubernetes_config *k = &c->cfg->kubernetes;
	char *kpath = fs_join(c->env_dir, "kubeconfig");
	struct kube_client *kc = NULL;
	struct kube_wait w = { c->wait_ms, &phase_interrupted, "cni" };
	struct installer in = { .name = JOB_NAME, .image = k->cni_helm_image };
	json_t *values = NULL, *id = NULL;
	const char **names = NULL;
	char sha[65], *done = NULL, *vals = NULL;
	long long t0 = clock_mono_ms(), job_ms = 0, tw;
	bool started = false;
	int r;

	if ((r = kube_client_load(&kc, kpath, 10000, err)) < 0)
		goto out;
	if (!(values = cni_values(c->cfg, err))) {
		r = -1;
		goto out;
	}
	id = json_pack("{s:s, s:s, s:O}", "version", k->cni_version, "image",
		       k->cni_helm_image, "values", values);
	addon_digest(id, sha);
	node_names(c, &names);
	done = state_addon_get(&c->st, "cni", "config_sha256");
	if (done && !strcmp(done, sha) && cilium_at(kc, k->cni_version) &&
	    (!cni_gateway(c->cfg) || gateway_crds_present(kc))) {
		out_step("cni: cilium %s installed with these values; no Job",
			 k->cni_version);
		r = kube_wait_nodes_ready(kc, names, c->cfg->n_nodes, &w, err);
		goto out;
	}
	vals = json_dumps(values, JSON_INDENT(2) | JSON_SORT_KEYS);
	in.values = vals;
	in.sha = sha;
	in.rules = cilium_rules();
	in.command = json_pack("[sssssssssssss]", "helm", "upgrade",
			       "--install", "cilium", "cilium", "--repo",
			       CILIUM_REPO, "--version", k->cni_version,
			       "--namespace", "kube-system", "--values",
			       "/values/values.yaml");
	r = cni_gateway(c->cfg) ? gateway_crds_apply(kc, &w, err) : 0;
	if (r == 0)
		r = addon_run_installer(kc, &in, &w, &started, &job_ms, err);
	tw = clock_mono_ms();
	if (r == 0)
		r = kube_wait_rollout(kc, "DaemonSet", "kube-system", "cilium",
				      &w, err);
	if (r == 0)
		r = kube_wait_nodes_ready(kc, names, c->cfg->n_nodes, &w, err);
	tw = clock_mono_ms() - tw;
	if (r == 0)
		r = state_addon_set(&c->st, "cni", "config_sha256", sha, err);
	if (r == 0) {
		long long all = clock_mono_ms() - t0;

		out_step("cni: cilium %s running, %zu nodes Ready", k->cni_version,
			 c->cfg->n_nodes);
		out_step("cni: took %.2fs: Job %.2fs, rollout and nodes %.2fs, "
			 "strata %.3fs", all / 1000.0, job_ms / 1000.0,
			 tw / 1000.0, (all - job_ms - tw) / 1000.0);
	}
out:
	if (r < 0 && phase_interrupted && err->code != ERR_INTR)
		err->code = ERR_INTR;
	json_decref(in.rules);
	json_decref(in.command);
	json_decref(values);
	json_decref(id);
	free(vals);
	free(done);
	free(names);
	kube_client_free(kc);
	free(kpath);
	return r < 0 ? -1 : 0;
}

static void
cni_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    Job kube-system/%s: helm upgrade --install cilium %s "
		"(%s), unless that release with these values is installed; "
		"wait for every node Ready\n", JOB_NAME,
		c->cfg->kubernetes.cni_version, c->cfg->kubernetes.cni_helm_image);
	if (cni_gateway(c->cfg))
		fprintf(fp, "    first the Gateway API CRDs (%s, ...), then "
			"gatewayAPI.enabled in the values\n", gatewayapi_crd_names[0]);
}

const struct phase ph_cni = {
	.name = "cni",
	.title = "Cilium",
	.should_run = cni_should_run,
	.run = cni_run,
	.dry_run = cni_dry_run,
};
