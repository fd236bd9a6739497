/*
 * health: is a Talos node back and healthy, e.g. after a restart? The one
 * place for these checks (day-2 work extends it):
 *
 *   - Talos answers over mTLS with a cert from this cluster's OS CA
 *     (Version), at the node's address;
 *   - on a control plane, the etcd service is Running and healthy
 *     (ServiceList);
 *   - when asked (want_ready: the node was Ready before), its Kubernetes
 *     node of that name is Ready.
 *
 * Knows Talos and Kubernetes, nothing of Proxmox.
 */
#ifndef STRATA_TALOS_HEALTH_H
#define STRATA_TALOS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "talos/api.h"
#include "util/err.h"

struct health_target {
	const char *name;                 /* Kubernetes node name */
	const char *addr;                 /* the node's address */
	bool controlplane;
	bool want_ready;                  /* the Kubernetes node must be Ready */
	const struct talos_creds *creds;
	const char *kubeconfig;           /* path; needed with want_ready */
};

/*
 * One look. 0: healthy. 1: not yet, why[] says what is missing. Negative:
 * a failure waiting will not cure (the address answers with another
 * cluster's certificate), err filled.
 */
int health_check(const struct health_target *t, char *why, size_t whylen,
		 struct err *err);

/* Is Kubernetes node `name` Ready? 0 with *ready set, or -1 (API not
 * answering, no such node: err says which). */
int health_k8s_ready(const char *kubeconfig, const char *name, bool *ready,
		     struct err *err);

#endif
