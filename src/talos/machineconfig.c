#include "talos/machineconfig.h"
#include "util/yaml.h"

#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fy_node *
pair(struct fy_document *doc, const char *crt, const char *key)
{
	struct fy_node *m = y_map(doc);

	y_puts(m, "crt", crt);
	if (key)
		y_puts_secret(m, "key", key);
	return m;
}

static struct fy_node *
str_seq(struct fy_document *doc, const char *const *v, size_t n)
{
	struct fy_node *s = y_seq(doc);

	for (size_t i = 0; i < n; i++)
		fy_node_sequence_append(s, y_str(doc, v[i]));
	return s;
}

static struct fy_node *
one_seq(struct fy_document *doc, const char *v)
{
	return str_seq(doc, &v, 1);
}

static void
put_image(struct fy_node *parent, const char *key, const char *repo,
	  const char *ver)
{
	struct fy_document *doc = fy_node_document(parent);
	struct fy_node *m = y_map(doc);
	char img[256];

	snprintf(img, sizeof(img), "%s:v%s", repo, ver);
	y_puts(m, "image", img);
	y_put(parent, key, m);
}

static struct fy_node *
machine_node(struct fy_document *doc, const struct mc_input *in,
	     const struct talos_secrets *s, bool cp)
{
	struct fy_node *m = y_map(doc), *k, *inst, *f, *n;
	char img[256];

	y_puts(m, "type", cp ? "controlplane" : "worker");
	y_puts_secret(m, "token", s->trustd_token);
	y_put(m, "ca", pair(doc, s->os.crt_b64, cp ? s->os.key_b64 : ""));
	y_put(m, "certSANs", str_seq(doc, in->sans, in->n_sans));
	k = y_map(doc);
	snprintf(img, sizeof(img), "ghcr.io/siderolabs/kubelet:v%s", in->k8s_version);
	y_puts(k, "image", img);
	y_puts(k, "defaultRuntimeSeccompProfileEnabled", "true");
	y_puts(k, "disableManifestsDirectory", "true");
	y_put(m, "kubelet", k);
	if (in->contract_minor <= 12)
		y_put(m, "network", y_map(doc));
	inst = y_map(doc);
	if (in->install_disk && *in->install_disk)
		y_puts(inst, "disk", in->install_disk);
	if (in->n_kernel_args)
		y_put(inst, "extraKernelArgs",
		      str_seq(doc, in->kernel_args, in->n_kernel_args));
	if (in->install_image && *in->install_image)
		y_puts(inst, "image", in->install_image);
	y_puts(inst, "wipe", "false");
	y_puts(inst, "grubUseUKICmdline", "true");
	y_put(m, "install", inst);
	if (in->n_sysctls) {
		n = y_map(doc);
		for (size_t i = 0; i < in->n_sysctls; i++)
			y_puts(n, in->sysctl_kv[2 * i], in->sysctl_kv[2 * i + 1]);
		y_put(m, "sysctls", n);
	}
	f = y_map(doc);
	y_puts(f, "diskQuotaSupport", "true");
	n = y_map(doc);
	y_puts(n, "enabled", "true");
	y_puts(n, "port", "7445");
	y_put(f, "kubePrism", n);
	n = y_map(doc);
	y_puts(n, "enabled", "true");
	y_puts(n, "forwardKubeDNSToHost", "true");
	y_put(f, "hostDNS", n);
	y_put(m, "features", f);
	if (cp) {
		n = y_map(doc);
		y_puts(n, "node.kubernetes.io/exclude-from-external-load-balancers", "");
		y_put(m, "nodeLabels", n);
	}
	return m;
}

static struct fy_node *
admission_control(struct fy_document *doc)
{
	struct fy_node *seq = y_seq(doc), *item = y_map(doc), *c = y_map(doc);
	struct fy_node *d = y_map(doc), *e = y_map(doc);

	y_puts(c, "apiVersion", "pod-security.admission.config.k8s.io/v1alpha1");
	y_puts(d, "audit", "restricted");
	y_puts(d, "audit-version", "latest");
	y_puts(d, "enforce", "baseline");
	y_puts(d, "enforce-version", "latest");
	y_puts(d, "warn", "restricted");
	y_puts(d, "warn-version", "latest");
	y_put(c, "defaults", d);
	y_put(e, "namespaces", one_seq(doc, "kube-system"));
	y_put(e, "runtimeClasses", y_seq(doc));
	y_put(e, "usernames", y_seq(doc));
	y_put(c, "exemptions", e);
	y_puts(c, "kind", "PodSecurityConfiguration");
	y_puts(item, "name", "PodSecurity");
	y_put(item, "configuration", c);
	fy_node_sequence_append(seq, item);
	return seq;
}

static struct fy_node *
cluster_node(struct fy_document *doc, const struct mc_input *in,
	     const struct talos_secrets *s, bool cp)
{
	struct fy_node *c = y_map(doc), *n, *net, *api, *a, *r, *disc;

	y_puts(c, "id", s->cluster_id);
	y_puts_secret(c, "secret", s->cluster_secret);
	n = y_map(doc);
	y_puts(n, "endpoint", in->endpoint);
	if (cp && in->local_api_port > 0) {
		char port[16];

		snprintf(port, sizeof(port), "%d", in->local_api_port);
		y_puts(n, "localAPIServerPort", port);
	}
	y_put(c, "controlPlane", n);
	y_puts(c, "clusterName", in->cluster_name);
	net = y_map(doc);
	if (in->cni_name && *in->cni_name) {
		n = y_map(doc);
		y_puts(n, "name", in->cni_name);
		if (in->n_cni_urls)
			y_put(n, "urls", str_seq(doc, in->cni_urls, in->n_cni_urls));
		y_put(net, "cni", n);
	}
	y_puts(net, "dnsDomain", in->dns_domain ? in->dns_domain : "cluster.local");
	y_put(net, "podSubnets", one_seq(doc, in->pod_subnet ? in->pod_subnet : "10.244.0.0/16"));
	y_put(net, "serviceSubnets", one_seq(doc, in->service_subnet ? in->service_subnet : "10.96.0.0/12"));
	y_put(c, "network", net);
	y_puts_secret(c, "token", s->bootstrap_token);
	if (cp) {
		if (s->secretbox_secret)
			y_puts_secret(c, "secretboxEncryptionSecret", s->secretbox_secret);
		else
			y_puts_secret(c, "aescbcEncryptionSecret", s->aescbc_secret);
	}
	y_put(c, "ca", pair(doc, s->k8s.crt_b64, cp ? s->k8s.key_b64 : ""));
	if (cp) {
		y_put(c, "aggregatorCA", pair(doc, s->aggregator.crt_b64, s->aggregator.key_b64));
		n = y_map(doc);
		y_puts_secret(n, "key", s->service_account.key_b64);
		y_put(c, "serviceAccount", n);
		api = y_map(doc);
		{
			char img[256];

			snprintf(img, sizeof(img), "registry.k8s.io/kube-apiserver:v%s", in->k8s_version);
			y_puts(api, "image", img);
		}
		if (in->n_sans)
			y_put(api, "certSANs", str_seq(doc, in->sans, in->n_sans));
		y_put(api, "admissionControl", admission_control(doc));
		a = y_map(doc);
		y_puts(a, "apiVersion", "audit.k8s.io/v1");
		y_puts(a, "kind", "Policy");
		r = y_map(doc);
		y_puts(r, "level", "Metadata");
		n = y_seq(doc);
		fy_node_sequence_append(n, r);
		y_put(a, "rules", n);
		y_put(api, "auditPolicy", a);
		y_put(c, "apiServer", api);
		put_image(c, "controllerManager", "registry.k8s.io/kube-controller-manager", in->k8s_version);
		put_image(c, "proxy", "registry.k8s.io/kube-proxy", in->k8s_version);
		if (in->proxy_disabled)
			y_puts(y_get(c, "proxy"), "disabled", "true");
		put_image(c, "scheduler", "registry.k8s.io/kube-scheduler", in->k8s_version);
	} else if (in->proxy_disabled) {
		n = y_map(doc);
		y_puts(n, "disabled", "true");
		y_put(c, "proxy", n);
	}
	disc = y_map(doc);
	y_puts(disc, "enabled", "true");
	n = y_map(doc);
	r = y_map(doc);
	y_puts(r, "disabled", "true");
	y_put(n, "kubernetes", r);
	y_put(n, "service", y_map(doc));
	y_put(disc, "registries", n);
	y_put(c, "discovery", disc);
	if (cp) {
		n = y_map(doc);
		y_put(n, "ca", pair(doc, s->etcd.crt_b64, s->etcd.key_b64));
		y_put(c, "etcd", n);
		if (in->allow_scheduling_on_controlplanes)
			y_puts(c, "allowSchedulingOnControlPlanes", "true");
	}
	return c;
}

static struct fy_document *
new_doc(struct fy_node **root)
{
	struct fy_document *doc = yaml_new_document();

	if (!doc)
		abort();
	*root = y_map(doc);
	fy_document_set_root(doc, *root);
	return doc;
}

int
talos_mc_generate(struct ydocs *out, const struct mc_input *in,
		  const struct talos_secrets *s, bool cp, struct err *err)
{
	struct fy_document *doc;
	struct fy_node *root;

	if (!in->cluster_name || !in->endpoint || !in->k8s_version)
		return err_set(err, ERR_USAGE, "machine config needs a cluster name, an endpoint and a kubernetes version");
	if (in->contract_minor < 12 || in->contract_minor > 13)
		return err_set(err, ERR_USAGE, "talos version contract 1.%d is not supported (1.12 and 1.13 are)", in->contract_minor);
	if (strncmp(in->endpoint, "https://", 8) != 0)
		return err_set(err, ERR_USAGE, "endpoint '%s' must be an https:// URL", in->endpoint);
	doc = new_doc(&root);
	y_puts(root, "version", "v1alpha1");
	y_puts(root, "debug", "false");
	y_puts(root, "persist", "true");
	y_put(root, "machine", machine_node(doc, in, s, cp));
	y_put(root, "cluster", cluster_node(doc, in, s, cp));
	ydocs_push(out, doc);
	for (size_t i = 0; i < in->n_mirrors; i++) {
		struct fy_node *eps, *ep;

		doc = new_doc(&root);
		y_puts(root, "apiVersion", "v1alpha1");
		y_puts(root, "kind", "RegistryMirrorConfig");
		y_puts(root, "name", in->mirrors[i].host);
		eps = y_seq(doc);
		ep = y_map(doc);
		y_puts(ep, "url", in->mirrors[i].url);
		fy_node_sequence_append(eps, ep);
		y_put(root, "endpoints", eps);
		ydocs_push(out, doc);
	}
	doc = new_doc(&root);
	y_puts(root, "apiVersion", "v1alpha1");
	y_puts(root, "kind", "HostnameConfig");
	y_puts(root, "auto", "stable");
	ydocs_push(out, doc);
	return 0;
}
