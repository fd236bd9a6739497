/*
 * machineconfig: base controlplane.yaml / worker.yaml as `talosctl gen
 * config` makes them for version contracts 1.12 and 1.13 (v1alpha1 document
 * plus RegistryMirrorConfig and HostnameConfig documents), built as libfyaml
 * documents from the inputs below and a secrets bundle.
 */
#ifndef STRATA_TALOS_MACHINECONFIG_H
#define STRATA_TALOS_MACHINECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "talos/secrets.h"
#include "talos/tyaml.h"
#include "util/err.h"

struct mc_mirror {
	const char *host;          /* ghcr.io */
	const char *url;           /* https://ghcr.io.my-mirror.com */
};

struct mc_input {
	const char *cluster_name;
	const char *endpoint;      /* https://host:6443 */
	const char *k8s_version;   /* "1.35.4", no leading v */
	int contract_minor;        /* 12 or 13 */
	const char *install_disk;  /* NULL: omitted */
	const char *install_image; /* NULL: omitted */
	const char *dns_domain;    /* NULL: cluster.local */
	const char *pod_subnet;    /* NULL: 10.244.0.0/16 */
	const char *service_subnet; /* NULL: 10.96.0.0/12 */
	const char *cni_name;      /* NULL: default (flannel); "none", "custom" */
	const char *const *cni_urls;
	size_t n_cni_urls;
	bool proxy_disabled;       /* kube-proxy off (cilium) */
	bool allow_scheduling_on_controlplanes;
	const char *const *sans;
	size_t n_sans;
	const char *const *kernel_args;
	size_t n_kernel_args;
	int local_api_port;        /* 0: omitted */
	const char *const *sysctl_kv; /* key, value, key, value, ... */
	size_t n_sysctls;
	const struct mc_mirror *mirrors;
	size_t n_mirrors;
};

/* Build the documents of one machine type into out (appended). */
int talos_mc_generate(struct ydocs *out, const struct mc_input *in,
		      const struct talos_secrets *s, bool controlplane,
		      struct err *err);

#endif
