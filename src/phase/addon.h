/*
 * addon: what the addon phases (cni, gitops) share: the installer Job
 * (addon_job.c) and the digest that says whether an install is current.
 */
#ifndef STRATA_PHASE_ADDON_H
#define STRATA_PHASE_ADDON_H

#include <jansson.h>
#include <stdbool.h>

#include "kube/kubeapi.h"
#include "util/err.h"

struct installer {
	const char *name;      /* Job, ServiceAccount, ClusterRole(Binding), ConfigMap */
	const char *image;
	json_t *command;       /* argv (array of strings) */
	json_t *rules;         /* the ClusterRole's rules: the installer's rights */
	const char *values;    /* ConfigMap key values.yaml at /values, or NULL */
	const char *sha;       /* digest of what it installs (64 hex) */
};

/*
 * Run the installer Job to completion unless a Job with the same digest
 * already completed. *started says whether this call created a Job;
 * *job_ms how long the wait for it took. A failed Job is an error quoting
 * the last lines of its pod's log.
 */
int addon_run_installer(struct kube_client *kc, const struct installer *in,
			const struct kube_wait *w, bool *started,
			long long *job_ms, struct err *err);

/* The Cilium chart values for this config: strata's Talos values with
 * kubernetes.cni.values merged over them (ph_cni.c). */
struct config;
json_t *cni_values(const struct config *cfg, struct err *err);
/* components.ingress is "gateway": the Gateway API through Cilium. */
bool cni_gateway(const struct config *cfg);

/* Hex SHA-256 of the canonical (sorted, compact) JSON of v into out[65]. */
void addon_digest(json_t *v, char out[65]);

#endif
