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
#include <stdio.h>

#include "talos/api.h"
#include "util/err.h"

struct kube_client;

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
/* The same for several nodes with one client (kc, borrowed, or NULL: one
 * loaded from kubeconfig) and one Node list: *ready when every one is
 * registered and Ready. Negative (ready false) when the API does not
 * answer or a node is not registered (ERR_NOTFOUND, naming the first). */
int health_k8s_all_ready(const char *kubeconfig, struct kube_client *kc,
			 const char *const *names, size_t n_names, bool *ready,
			 struct err *err);

/*
 * The cluster health gate: what `talosctl health` checks (FACTS-day2 §4e),
 * in that order, for the cluster as it should be now (the nodes listed).
 * Used between every disruptive step (scale, restart, upgrade) and shown
 * by `strata status --health`. The checks:
 *
 *   talos        every node's Talos answers Version over mTLS (this
 *                cluster's OS CA) at its address;
 *   etcd         the etcd service Running and healthy on every control
 *                plane;
 *   etcd-quorum  (only when it fails) etcd healthy on fewer than a
 *                majority of the control planes: named first, with
 *                strata restore --etcd as the way out;
 *   etcd-members every control plane's EtcdMemberList shows the same
 *                members, one per control plane listed (none left over),
 *                each started and no learner; EtcdStatus names the same
 *                leader everywhere;
 *   kubernetes   the API answers (GET /version) through the kubeconfig;
 *   nodes        every listed node registered as a Kubernetes Node, with
 *                no Node left over that is not listed (debris);
 *   static-pods  on every control plane the mirror pods of kube-apiserver,
 *                kube-controller-manager and kube-scheduler (label
 *                k8s-app, by spec.nodeName) Running and Ready;
 *   ready        every listed node Ready (only with want_ready: before a
 *                CNI no node can be);
 *   kube-proxy   the DaemonSet kube-system/kube-proxy with every pod ready,
 *                passed when absent (a CNI replaces it);
 *   coredns      the Deployment kube-system/coredns with all replicas
 *                available, passed when absent (want_ready only);
 *   cordon       no node cordoned by strata (the annotation
 *                HEALTH_CORDON_ANNOTATION marks a cordon of ours).
 *
 * A check that cannot be made because an earlier one failed is reported
 * as skipped, not as passed.
 */
#define HEALTH_CORDON_ANNOTATION "strata.dev/cordoned"

struct health_node {
	const char *name;                 /* Kubernetes node name (= hostname) */
	const char *addr;
	bool controlplane;
	bool leaving;                     /* being removed: a cordon of ours is expected */
};

struct health_cluster {
	const struct health_node *nodes;  /* every node the cluster should have */
	size_t n;
	const struct talos_creds *creds;
	const char *kubeconfig;           /* path; NULL: Kubernetes checks skipped */
	struct kube_client *kc;           /* borrowed client for kubeconfig, or
	                                   * NULL: one loaded per check (a gate
	                                   * polling many passes lends its own:
	                                   * a load costs a process) */
	bool want_ready;                  /* every node must be Ready */
	const char *const *away;          /* nodes allowed to be missing right now */
	size_t n_away;                    /* (the one being worked on); may be 0 */
};

enum health_state { HEALTH_PASS, HEALTH_FAIL, HEALTH_SKIP };

struct health_item {
	const char *check;                /* "talos", "etcd", ... (static) */
	enum health_state state;
	char detail[512];                 /* what passed, or what is missing */
};

#define HEALTH_MAX_ITEMS 12

struct health_report {
	struct health_item v[HEALTH_MAX_ITEMS];
	size_t n;
	bool healthy;                     /* every item passed (none skipped) */
	const char *first_fail;           /* points into v[].detail, or NULL */
	const char *first_check;          /* its check's name ("static-pods") */
};

/*
 * One look at the whole cluster. 0 with rep filled (healthy or not);
 * negative only for a failure waiting cannot cure (a node answers with
 * another cluster's certificate), err filled.
 */
int health_cluster_check(const struct health_cluster *hc,
			 struct health_report *rep, struct err *err);

/*
 * The gate: health_cluster_check until healthy, at most timeout_ms, with
 * a progress line on stderr when what is missing changes. `before` names
 * the step the gate guards ("removing w-3"). 0 when healthy; ERR_INTR
 * once proc_interrupted is set (Ctrl-C); else ERR_FAIL naming the failing check and
 * saying that nothing was changed.
 */
int health_gate(const struct health_cluster *hc, long long timeout_ms,
		const char *before, struct err *err);

/*
 * hc for the cluster cfg describes: every Talos node of cfg->nodes, Ready
 * wanted unless kubernetes.cni is none. kubeconfig (a path, may be NULL)
 * and creds are borrowed. health_cluster_release frees the node array.
 */
struct config;
void health_cluster_from_config(struct health_cluster *hc,
				const struct config *cfg,
				const struct talos_creds *creds,
				const char *kubeconfig);
void health_cluster_release(struct health_cluster *hc);

/* rep as lines "  ok   talos: ..." (fp) or as a JSON object. */
void health_report_print(const struct health_report *rep, FILE *fp);
struct json_t;
struct json_t *health_report_json(const struct health_report *rep);

#endif
