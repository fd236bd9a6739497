#include "talos/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"

int
health_k8s_ready(const char *kubeconfig, const char *name, bool *ready,
		 struct err *err)
{
	struct kube_client *kc = NULL;
	struct kube_node *v = NULL;
	size_t n = 0, i;
	int r;

	*ready = false;
	if ((r = kube_client_load(&kc, kubeconfig, 5000, err)) < 0)
		return r;
	if ((r = kube_nodes(kc, &v, &n, err)) == 0) {
		r = err_set(err, ERR_NOTFOUND, "node '%s' is not registered with Kubernetes", name);
		for (i = 0; i < n; i++) {
			if (v[i].name && !strcmp(v[i].name, name)) {
				*ready = v[i].ready;
				err_clear(err);
				r = 0;
			}
		}
	}
	kube_nodes_free(v, n);
	kube_client_free(kc);
	return r;
}

int
health_check(const struct health_target *t, char *why, size_t whylen,
	     struct err *err)
{
	struct talos_target tt;
	struct talos_status st;
	struct err e = ERR_INIT;
	char *tag = NULL, *state = NULL;
	bool healthy = false, ready = false;
	int probe;

	memset(&tt, 0, sizeof(tt));
	tt.addr = t->addr;
	tt.creds = t->creds;
	tt.timeout_ms = 5000;
	probe = talos_probe(&tt, &tag, &st, &e);
	free(tag);
	if (probe == TALOS_FOREIGN)
		return err_set(err, ERR_FAIL, "%s at %s answers with another "
			       "cluster's certificate: %s", t->name, t->addr, e.msg);
	if (probe != TALOS_UP) {
		snprintf(why, whylen, "Talos at %s is not up over mTLS yet%s%s",
			 t->addr, e.msg[0] ? ": " : "", e.msg);
		return 1;
	}
	if (t->controlplane) {
		err_clear(&e);
		if (talos_service(&tt, "etcd", &state, &healthy, &st, &e) < 0) {
			snprintf(why, whylen, "etcd on %s: %s", t->name, e.msg);
			return 1;
		}
		if (!state || strcmp(state, "Running") || !healthy) {
			snprintf(why, whylen, "etcd on %s is %s%s", t->name,
				 state ? state : "not running",
				 state && !strcmp(state, "Running") ? " but not healthy" : "");
			free(state);
			return 1;
		}
		free(state);
	}
	if (t->want_ready) {
		err_clear(&e);
		if (health_k8s_ready(t->kubeconfig, t->name, &ready, &e) < 0) {
			snprintf(why, whylen, "Kubernetes: %s", e.msg);
			return 1;
		}
		if (!ready) {
			snprintf(why, whylen, "Kubernetes node %s is not Ready", t->name);
			return 1;
		}
	}
	return 0;
}
