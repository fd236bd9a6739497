/*
 * kubeapi: the Kubernetes API client, with the admin kubeconfig Talos
 * handed out (server, CA and client cert from the file's current context,
 * kept in memory only).
 *
 * Writes are server-side apply as field manager "strata" with strict
 * field validation, never forced: a field another manager owns is a
 * conflict reported with that manager's name. Errors name the object
 * ("apply Job kube-system/cilium-install") and quote the API's message and
 * causes; a 404 has code ERR_NOTFOUND. Objects are jansson values.
 *
 * Waits poll with backoff until a bound (w->timeout_ms), print a progress
 * line when what they see changes, and stop early when *w->interrupted is
 * set (ERR_INTR).
 */
#ifndef STRATA_KUBE_KUBEAPI_H
#define STRATA_KUBE_KUBEAPI_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define KUBE_FIELD_MANAGER "strata"

struct kube_client;

struct kube_node {
	char *name;
	char *address;             /* InternalIP, or NULL */
	char *kubelet_version;
	char *ready_message;       /* the Ready condition's message, or NULL */
	bool ready;
};

int kube_client_from_kubeconfig(struct kube_client **out, const char *text,
				size_t len, long timeout_ms, struct err *err);
int kube_client_load(struct kube_client **out, const char *path,
		     long timeout_ms, struct err *err);
void kube_client_free(struct kube_client *c);
const char *kube_client_server(const struct kube_client *c);

/* GET /version: the server's gitVersion. */
int kube_version(struct kube_client *c, char **git_version, struct err *err);
int kube_nodes(struct kube_client *c, struct kube_node **out, size_t *n,
	       struct err *err);
void kube_nodes_free(struct kube_node *v, size_t n);

/* The REST path of a kind's object (name) or collection (name NULL):
 * "/apis/batch/v1/namespaces/kube-system/jobs/x". Namespaced kinds without
 * a namespace go to "default", as kubectl does. */
void kube_path(struct buf *out, const char *api_version, const char *kind,
	       const char *ns, const char *name);
bool kube_kind_namespaced(const char *kind);

/* Server-side apply of one object; *out (may be NULL) gets the result. */
int kube_apply(struct kube_client *c, json_t *obj, json_t **out,
	       struct err *err);
/* kube_apply taking the fields it sets from their other managers
 * (force=true), for a field strata now owns (kube-proxy's image after a
 * Kubernetes upgrade). */
int kube_apply_force(struct kube_client *c, json_t *obj, json_t **out,
		     struct err *err);
/* Every document of a multi-document YAML text, in order; stops at the
 * first failure. *applied (may be NULL) counts the documents applied. */
int kube_apply_yaml(struct kube_client *c, const char *text, size_t len,
		    size_t *applied, struct err *err);
/* Every object of a list (one YAML document: a sequence of objects, or a
 * mapping with `items`, as a Talos Manifest's spec), in order, forced or
 * not; stops at the first failure. Object bodies are wiped after use
 * (a bootstrap token Secret). */
int kube_apply_items(struct kube_client *c, const char *text, size_t len,
		     bool force, size_t *applied, struct err *err);
int kube_get(struct kube_client *c, const char *api_version, const char *kind,
	     const char *ns, const char *name, json_t **out, struct err *err);
/* The items of a list (ns NULL: every namespace; selector may be NULL). */
int kube_list(struct kube_client *c, const char *api_version, const char *kind,
	      const char *ns, const char *label_selector, json_t **items,
	      struct err *err);
/* Delete with background propagation (a Job's pods go too); an object
 * already gone is not an error. */
int kube_delete(struct kube_client *c, const char *api_version,
		const char *kind, const char *ns, const char *name,
		struct err *err);
/* The last tail lines of a pod's (first container's) log. */
int kube_pod_log(struct kube_client *c, const char *ns, const char *pod,
		 int tail, struct buf *out, struct err *err);

/* The status condition `type` of obj: "True", "False", "Unknown" or NULL;
 * *message (may be NULL) gets its message. */
const char *kube_condition(json_t *obj, const char *type, const char **message);

struct kube_wait {
	long long timeout_ms;
	volatile sig_atomic_t *interrupted;   /* may be NULL */
	const char *what;                     /* progress prefix, e.g. "cni" */
};

/* Every named node registered and Ready. */
int kube_wait_nodes_ready(struct kube_client *c, const char *const *names,
			  size_t n, const struct kube_wait *w, struct err *err);
/* A Deployment or DaemonSet rolled out: its current generation observed
 * and every wanted pod updated and available. */
int kube_wait_rollout(struct kube_client *c, const char *kind, const char *ns,
		      const char *name, const struct kube_wait *w,
		      struct err *err);
/* A CRD Established. */
int kube_wait_crd(struct kube_client *c, const char *name,
		  const struct kube_wait *w, struct err *err);

enum kube_job_end { KUBE_JOB_COMPLETE, KUBE_JOB_FAILED };
/* A Job Complete or Failed (*end says which). While it runs, a pod that
 * cannot start (image pull, scheduling, admission) shows in the progress
 * and, at the bound, in the error. */
int kube_wait_job(struct kube_client *c, const char *ns, const char *name,
		  const struct kube_wait *w, enum kube_job_end *end,
		  struct err *err);
/*
 * What runs of the addons (kubestatus.c), as JSON:
 *   {"cni": {"name": "cilium", "version": "1.18.4", "ready": 3,
 *            "desired": 3} or null,
 *    "gateway": {"class": "cilium", "controller", "accepted": "True"|
 *            "False"|"Unknown", "message"} or null (Cilium's GatewayClass),
 *    "flux": {"kustomizations": [{"name", "ready": "True"|"False"|
 *            "Unknown", "revision", "message"}]} or null}
 * A missing DaemonSet, GatewayClass or Flux (404) is null, not an error.
 */
int kube_addons_read(struct kube_client *c, json_t **out, struct err *err);

/* The pods bound to Kubernetes node `node` (fieldSelector spec.nodeName). */
int kube_pods_on_node(struct kube_client *c, const char *node, json_t **items,
		      struct err *err);
/* POST the pod's eviction subresource (policy/v1 Eviction). 0: evicted
 * (or already gone); 1: refused for now with 429 (a PodDisruptionBudget),
 * err holding the API's message; -1: another failure. */
int kube_evict(struct kube_client *c, const char *ns, const char *pod,
	       struct err *err);

/* The name of the Job's newest pod, or NULL. */
char *kube_job_pod(struct kube_client *c, const char *ns, const char *job,
		   struct err *err);

#endif
