/*
 * kubeapi: the few Kubernetes API reads strata needs after a bootstrap
 * (is the API up, which nodes are registered and Ready), with the admin
 * kubeconfig Talos handed out: server, CA and client cert are taken from
 * the file's current context and kept in memory only.
 */
#ifndef STRATA_KUBE_KUBEAPI_H
#define STRATA_KUBE_KUBEAPI_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

struct kube_client;

struct kube_node {
	char *name;
	char *address;             /* InternalIP, or NULL */
	char *kubelet_version;
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

#endif
