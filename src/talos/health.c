#include "talos/health.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "kube/kubeapi.h"
#include "talos/etcd.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/out.h"
#include "util/proc.h"

int
health_k8s_all_ready(const char *kubeconfig, struct kube_client *with,
		     const char *const *names, size_t n_names, bool *ready,
		     struct err *err)
{
	struct kube_client *kc = with;
	struct kube_node *v = NULL;
	size_t n = 0, i, k;
	int r;

	*ready = false;
	if (!kc && (r = kube_client_load(&kc, kubeconfig, 5000, err)) < 0)
		return r;
	/* one list for them all: a client costs a process (the kubeconfig
	 * holds a key: kube/kubeapi parses it isolated) */
	if ((r = kube_nodes(kc, &v, &n, err)) == 0) {
		*ready = true;
		for (k = 0; k < n_names && r == 0; k++) {
			bool found = false;

			for (i = 0; i < n; i++)
				if (v[i].name && !strcmp(v[i].name, names[k])) {
					found = true;
					*ready = *ready && v[i].ready;
				}
			if (!found) {
				*ready = false;
				r = err_set(err, ERR_NOTFOUND, "node '%s' is not "
					    "registered with Kubernetes", names[k]);
			}
		}
	}
	kube_nodes_free(v, n);
	if (kc != with)
		kube_client_free(kc);
	return r;
}

int
health_k8s_ready(const char *kubeconfig, const char *name, bool *ready,
		 struct err *err)
{
	return health_k8s_all_ready(kubeconfig, NULL, &name, 1, ready, err);
}

/* A health call to the node at addr over mTLS: 5 s per call. */
static struct talos_target
node_target(const char *addr, const struct talos_creds *creds)
{
	struct talos_target tt;

	memset(&tt, 0, sizeof(tt));
	tt.addr = addr;
	tt.creds = creds;
	tt.timeout_ms = 5000;
	return tt;
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

	tt = node_target(t->addr, t->creds);
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

/* ---- the cluster gate ---- */

static struct health_item *
item(struct health_report *rep, const char *check)
{
	struct health_item *it = &rep->v[rep->n++];

	memset(it, 0, sizeof(*it));
	it->check = check;
	it->state = HEALTH_PASS;
	return it;
}

static void
fail(struct health_report *rep, struct health_item *it, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
fail(struct health_report *rep, struct health_item *it, const char *fmt, ...)
{
	va_list ap;
	size_t len = strlen(it->detail);

	if (it->state != HEALTH_FAIL) {
		it->state = HEALTH_FAIL;
		it->detail[0] = 0;
		len = 0;
	} else if (len + 2 < sizeof(it->detail)) {
		memcpy(it->detail + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(it->detail + len, sizeof(it->detail) - len, fmt, ap);
	va_end(ap);
	rep->healthy = false;
	if (!rep->first_fail) {
		rep->first_fail = it->detail;
		rep->first_check = it->check;
	}
}

static void
skip(struct health_report *rep, const char *check, const char *why)
{
	struct health_item *it = item(rep, check);

	it->state = HEALTH_SKIP;
	snprintf(it->detail, sizeof(it->detail), "not checked: %s", why);
	rep->healthy = false;
}

static bool
is_away(const struct health_cluster *hc, const char *name)
{
	size_t i;

	for (i = 0; i < hc->n_away; i++)
		if (hc->away[i] && !strcmp(hc->away[i], name))
			return true;
	return false;
}

/*
 * The calls of one look go to every node at once, at most HEALTH_PARALLEL
 * at a time (one call per node each; a gate between two steps of a roll
 * waits for them all, and in turn they add up), results kept per node and
 * judged afterwards in node order: the report reads as if asked in turn.
 */
#define HEALTH_PARALLEL 8

struct pool {
	size_t n, next;
	pthread_mutex_t mu;
	void (*fn)(void *ctx, size_t i);
	void *ctx;
};

static void *
pool_run(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&p->mu);
		i = p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n)
			return NULL;
		p->fn(p->ctx, i);
	}
}

static void
each_node(size_t n, void (*fn)(void *ctx, size_t i), void *ctx)
{
	struct pool p = { .n = n, .fn = fn, .ctx = ctx };
	pthread_t th[HEALTH_PARALLEL];
	size_t k, started = 0;

	pthread_mutex_init(&p.mu, NULL);
	for (k = 0; n > 1 && k < HEALTH_PARALLEL && k < n; k++)
		if (pthread_create(&th[started], NULL, pool_run, &p) == 0)
			started++;
	pool_run(&p);        /* this thread too (all of it without threads) */
	for (k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	pthread_mutex_destroy(&p.mu);
}

static const char *
str_at(json_t *o, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(o, a), b));
}

static bool
pod_ready(json_t *pod)
{
	const char *c = kube_condition(pod, "Ready", NULL);

	return c && !strcmp(c, "True");
}

static const char *
pod_image(json_t *pod)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(pod, "spec"), "containers"), 0), "image"));
}

/*
 * static-pods: on every control plane (by pod spec.nodeName) the mirror
 * pods of kube-apiserver, kube-controller-manager and kube-scheduler
 * (label k8s-app) present, Running and Ready (FACTS-day2 4e items 11,
 * 12). A control plane that is away is not asked for.
 */
static const char *const static_components[] = {
	"kube-apiserver", "kube-controller-manager", "kube-scheduler"
};

static void
check_static_pods(const struct health_cluster *hc, struct kube_client *kc,
		  struct health_report *rep)
{
	struct health_item *it = item(rep, "static-pods");
	struct err e = ERR_INIT;
	json_t *pods = NULL, *o;
	size_t i, j, k, ncp = 0;

	if (kube_list(kc, "v1", "Pod", "kube-system", "tier=control-plane", &pods, &e) < 0) {
		fail(rep, it, "cannot list the static pods in kube-system: %s", e.msg);
		return;
	}
	for (i = 0; i < hc->n; i++) {
		const struct health_node *nd = &hc->nodes[i];

		if (!nd->controlplane || is_away(hc, nd->name))
			continue;
		ncp++;
		for (k = 0; k < sizeof(static_components) / sizeof(static_components[0]); k++) {
			json_t *found = NULL;

			json_array_foreach(pods, j, o) {
				const char *app = str_at(json_object_get(o, "metadata"), "labels", "k8s-app");
				const char *on = str_at(o, "spec", "nodeName");

				if (app && on && !strcmp(app, static_components[k]) &&
				    !strcmp(on, nd->name))
					found = o;
			}
			if (!found)
				fail(rep, it, "static pod %s on %s is missing", static_components[k],
				     nd->name);
			else if (!str_at(found, "status", "phase") ||
				 strcmp(str_at(found, "status", "phase"), "Running"))
				fail(rep, it, "static pod %s on %s is %s, not Running",
				     static_components[k], nd->name,
				     str_at(found, "status", "phase") ? str_at(found, "status", "phase") : "without a phase");
			else if (!pod_ready(found))
				fail(rep, it, "static pod %s on %s (%s) is Running but not Ready",
				     static_components[k], nd->name,
				     pod_image(found) ? pod_image(found) : "?");
		}
	}
	if (it->state == HEALTH_PASS)
		snprintf(it->detail, sizeof(it->detail), "kube-apiserver, kube-controller-manager, "
			 "kube-scheduler Running and Ready on %zu control plane%s", ncp,
			 ncp == 1 ? "" : "s");
	json_decref(pods);
}

/*
 * kube-proxy: the DaemonSet kube-system/kube-proxy has every pod ready
 * (skipped when absent, as with a CNI that replaces kube-proxy); coredns:
 * the Deployment kube-system/coredns has all its replicas available
 * (skipped when absent). FACTS-day2 4e items 14, 15. CoreDNS only with
 * want_ready: before a CNI none of its pods can run (kube-proxy's use the
 * host network).
 */
static void
check_addons(struct kube_client *kc, struct health_report *rep, bool coredns)
{
	struct health_item *it;
	struct err e = ERR_INIT;
	json_t *o = NULL;

	it = item(rep, "kube-proxy");
	if (kube_get(kc, "apps/v1", "DaemonSet", "kube-system", "kube-proxy", &o, &e) < 0) {
		if (e.code == ERR_NOTFOUND)
			snprintf(it->detail, sizeof(it->detail), "no kube-proxy DaemonSet "
				 "(replaced by the CNI): nothing to check");
		else
			fail(rep, it, "cannot read DaemonSet kube-system/kube-proxy: %s", e.msg);
	} else {
		json_t *st = json_object_get(o, "status");
		json_int_t want = json_integer_value(json_object_get(st, "desiredNumberScheduled"));
		json_int_t ready = json_integer_value(json_object_get(st, "numberReady"));

		if (want == 0 || ready < want)
			fail(rep, it, "kube-proxy DaemonSet: %lld of %lld pods ready",
			     (long long)ready, (long long)want);
		else
			snprintf(it->detail, sizeof(it->detail), "kube-proxy DaemonSet: %lld/%lld "
				 "pods ready", (long long)ready, (long long)want);
	}
	json_decref(o);
	o = NULL;
	err_clear(&e);
	if (!coredns)
		return;
	it = item(rep, "coredns");
	if (kube_get(kc, "apps/v1", "Deployment", "kube-system", "coredns", &o, &e) < 0) {
		if (e.code == ERR_NOTFOUND)
			snprintf(it->detail, sizeof(it->detail), "no CoreDNS Deployment: "
				 "nothing to check");
		else
			fail(rep, it, "cannot read Deployment kube-system/coredns: %s", e.msg);
	} else {
		json_t *st = json_object_get(o, "status");
		json_int_t want = json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas"));
		json_int_t avail = json_integer_value(json_object_get(st, "availableReplicas"));

		if (!json_object_get(json_object_get(o, "spec"), "replicas"))
			want = 1;
		if (avail < want)
			fail(rep, it, "CoreDNS Deployment: %lld of %lld replicas available",
			     (long long)avail, (long long)want);
		else
			snprintf(it->detail, sizeof(it->detail), "CoreDNS Deployment: %lld/%lld "
				 "replicas available", (long long)avail, (long long)want);
	}
	json_decref(o);
}

static void
check_kubernetes(const struct health_cluster *hc, struct health_report *rep)
{
	struct kube_client *kc = NULL;
	struct health_item *it;
	struct err e = ERR_INIT;
	json_t *items = NULL, *o;
	char *ver = NULL;
	size_t i, j, nready = 0, nreg = 0;

	it = item(rep, "kubernetes");
	if (hc->kc)
		kc = hc->kc;             /* borrowed: the caller's, for every pass */
	else if (kube_client_load(&kc, hc->kubeconfig, 5000, &e) < 0)
		kc = NULL;
	if (!kc || kube_version(kc, &ver, &e) < 0) {
		fail(rep, it, "the Kubernetes API does not answer: %s", e.msg);
		skip(rep, "nodes", "the API does not answer");
		skip(rep, "static-pods", "the API does not answer");
		if (hc->want_ready)
			skip(rep, "ready", "the API does not answer");
		skip(rep, "kube-proxy", "the API does not answer");
		if (hc->want_ready)
			skip(rep, "coredns", "the API does not answer");
		skip(rep, "cordon", "the API does not answer");
		if (kc != hc->kc)
			kube_client_free(kc);
		return;
	}
	snprintf(it->detail, sizeof(it->detail), "API %s answers (%s)",
		 kube_client_server(kc), ver);
	free(ver);
	if (kube_list(kc, "v1", "Node", NULL, NULL, &items, &e) < 0) {
		it = item(rep, "nodes");
		fail(rep, it, "cannot list Nodes: %s", e.msg);
		skip(rep, "static-pods", "the Nodes could not be listed");
		if (hc->want_ready)
			skip(rep, "ready", "the Nodes could not be listed");
		skip(rep, "kube-proxy", "the Nodes could not be listed");
		if (hc->want_ready)
			skip(rep, "coredns", "the Nodes could not be listed");
		skip(rep, "cordon", "the Nodes could not be listed");
		if (kc != hc->kc)
			kube_client_free(kc);
		return;
	}
	/* nodes: each listed node registered, no Node not listed */
	it = item(rep, "nodes");
	for (i = 0; i < hc->n; i++) {
		bool found = false;

		json_array_foreach(items, j, o) {
			const char *nm = str_at(o, "metadata", "name");

			if (nm && !strcmp(nm, hc->nodes[i].name))
				found = true;
		}
		if (found)
			nreg++;
		else if (!is_away(hc, hc->nodes[i].name))
			fail(rep, it, "%s is not registered as a Kubernetes Node",
			     hc->nodes[i].name);
	}
	json_array_foreach(items, j, o) {
		const char *nm = str_at(o, "metadata", "name");
		bool listed = false;

		for (i = 0; nm && i < hc->n; i++)
			if (!strcmp(nm, hc->nodes[i].name))
				listed = true;
		if (nm && !listed && !is_away(hc, nm))
			fail(rep, it, "Node %s is registered but not part of the "
			     "cluster (left behind by a removal?)", nm);
	}
	if (it->state == HEALTH_PASS)
		snprintf(it->detail, sizeof(it->detail), "%zu/%zu nodes registered",
			 nreg, hc->n);
	check_static_pods(hc, kc, rep);
	/* ready */
	if (hc->want_ready) {
		it = item(rep, "ready");
		json_array_foreach(items, j, o) {
			const char *nm = str_at(o, "metadata", "name");
			const char *cond = nm ? kube_condition(o, "Ready", NULL) : NULL;

			if (!nm || is_away(hc, nm))
				continue;
			if (cond && !strcmp(cond, "True"))
				nready++;
			else
				fail(rep, it, "Node %s is not Ready", nm);
		}
		if (it->state == HEALTH_PASS)
			snprintf(it->detail, sizeof(it->detail), "%zu nodes Ready", nready);
	}
	check_addons(kc, rep, hc->want_ready);
	/* cordon */
	it = item(rep, "cordon");
	json_array_foreach(items, j, o) {
		const char *nm = str_at(o, "metadata", "name");
		json_t *ann = json_object_get(json_object_get(o, "metadata"), "annotations");
		const char *why = json_string_value(json_object_get(ann, HEALTH_CORDON_ANNOTATION));
		json_t *un = json_object_get(json_object_get(o, "spec"), "unschedulable");

		bool leaving = false;

		for (i = 0; nm && i < hc->n; i++)
			if (!strcmp(nm, hc->nodes[i].name) && hc->nodes[i].leaving)
				leaving = true;
		if (!nm || is_away(hc, nm) || leaving || !why || !json_is_true(un))
			continue;
		fail(rep, it, "Node %s is cordoned by strata (%s); the next apply "
		     "finishes what cordoned it", nm, why);
	}
	if (it->state == HEALTH_PASS)
		snprintf(it->detail, sizeof(it->detail), "no node cordoned by strata");
	json_decref(items);
	if (kc != hc->kc)
		kube_client_free(kc);
}

static bool
listed_cp(const struct health_cluster *hc, const char *name)
{
	size_t i;

	for (i = 0; i < hc->n; i++)
		if (hc->nodes[i].controlplane && !strcmp(hc->nodes[i].name, name))
			return true;
	return false;
}

/* etcd-members: every answering control plane lists one member per
 * control plane, all started, no learner, the same set everywhere; and
 * every one names the same leader. */
struct members_ask {
	const struct health_cluster *hc;
	struct {
		bool asked;
		int m_rc, s_rc;
		struct etcd_members m;
		struct etcd_status es;
		struct err me, se;
	} *v;
};

static void
members_one(void *ctx, size_t i)
{
	struct members_ask *a = ctx;
	const struct health_node *nd = &a->hc->nodes[i];
	struct talos_target tt;

	if (!nd->controlplane || is_away(a->hc, nd->name))
		return;
	a->v[i].asked = true;
	a->v[i].me = (struct err)ERR_INIT;
	a->v[i].se = (struct err)ERR_INIT;
	tt = node_target(nd->addr, a->hc->creds);
	a->v[i].m_rc = talos_etcd_members(&tt, false, &a->v[i].m, NULL, &a->v[i].me);
	if (a->v[i].m_rc == 0)
		a->v[i].s_rc = talos_etcd_status(&tt, &a->v[i].es, NULL, &a->v[i].se);
}

static void
check_etcd_members(const struct health_cluster *hc, struct health_report *rep)
{
	struct health_item *it = item(rep, "etcd-members");
	struct etcd_members first = { 0 };
	struct members_ask a = { .hc = hc };
	uint64_t leader = 0;
	size_t i, j, asked = 0;
	char from[128] = "";

	a.v = xcalloc(hc->n + 1, sizeof(*a.v));
	each_node(hc->n, members_one, &a);
	for (i = 0; i < hc->n; i++) {
		const struct health_node *nd = &hc->nodes[i];
		struct etcd_members m = a.v[i].m;
		struct etcd_status *es = &a.v[i].es;

		if (!a.v[i].asked)
			continue;
		memset(&a.v[i].m, 0, sizeof(a.v[i].m));
		if (a.v[i].m_rc < 0) {
			fail(rep, it, "EtcdMemberList on %s: %s", nd->name, a.v[i].me.msg);
			continue;
		}
		asked++;
		for (j = 0; j < m.n; j++) {
			const struct etcd_member *mb = &m.v[j];
			char hex[17];

			etcd_member_id_format(mb->id, hex);
			if (!mb->hostname || !mb->hostname[0])
				fail(rep, it, "member %s has not started (seen from %s)", hex, nd->name);
			else if (mb->learner)
				fail(rep, it, "member %s (%s) is still a learner", mb->hostname, hex);
			else if (!listed_cp(hc, mb->hostname) && !is_away(hc, mb->hostname))
				fail(rep, it, "member %s (%s) is not a control plane of the cluster "
				     "(left behind?): remove it with a scale-down of that node or "
				     "EtcdRemoveMemberByID", mb->hostname, hex);
		}
		for (j = 0; j < hc->n; j++) {
			const struct health_node *c = &hc->nodes[j];

			if (c->controlplane && !is_away(hc, c->name) &&
			    !etcd_members_find(&m, c->name))
				fail(rep, it, "%s is not an etcd member (seen from %s)", c->name, nd->name);
		}
		if (!from[0]) {
			snprintf(from, sizeof(from), "%s", nd->name);
			first = m;
			memset(&m, 0, sizeof(m));
		} else {
			bool same = m.n == first.n;

			for (j = 0; same && j < m.n; j++)
				same = etcd_members_find(&first, m.v[j].hostname ? m.v[j].hostname : "") != NULL;
			if (!same)
				fail(rep, it, "%s and %s list different etcd members", from, nd->name);
		}
		etcd_members_release(&m);
		if (a.v[i].s_rc < 0) {
			fail(rep, it, "EtcdStatus on %s: %s", nd->name, a.v[i].se.msg);
		} else if (!es->leader) {
			fail(rep, it, "etcd on %s knows no leader", nd->name);
		} else if (leader && es->leader != leader) {
			fail(rep, it, "etcd members disagree on the leader");
		} else {
			leader = es->leader;
		}
	}
	for (i = 0; i < hc->n; i++) {
		etcd_members_release(&a.v[i].m);
		if (a.v[i].asked && a.v[i].m_rc == 0)
			etcd_status_release(&a.v[i].es);
	}
	free(a.v);
	if (it->state == HEALTH_PASS) {
		char hex[17];

		etcd_member_id_format(leader, hex);
		snprintf(it->detail, sizeof(it->detail), "%zu member%s on %zu control plane%s "
			 "agree, leader %s", first.n, first.n == 1 ? "" : "s", asked,
			 asked == 1 ? "" : "s", hex);
	}
	etcd_members_release(&first);
}

/* etcd writes nothing without a majority of its members, and the
 * Kubernetes API then times out on every request: say so first, with
 * the way out when the members cannot come back. */
static void
check_quorum(struct health_report *rep, size_t etcd_ok, size_t ncp)
{
	struct health_item *it;

	if (!ncp || etcd_ok >= ncp / 2 + 1)
		return;
	it = item(rep, "etcd-quorum");
	fail(rep, it, "etcd lacks quorum: its service is healthy on %zu of %zu "
	     "control planes and a majority needs %zu; the Kubernetes API "
	     "can neither read nor write until enough of them come back. If "
	     "they cannot, recover from a snapshot: strata restore ENV --etcd "
	     "FILE (docs/etcd.md)", etcd_ok, ncp, ncp / 2 + 1);
	rep->first_fail = it->detail;
}

/* talos and etcd: each node's Version over mTLS, on a control plane then
 * its etcd service. */
struct node_ask {
	const struct health_cluster *hc;
	struct {
		bool asked;
		int probe, svc_rc;
		char *state;
		bool healthy;
		struct err pe, se;
	} *v;
};

static void
node_one(void *ctx, size_t i)
{
	struct node_ask *a = ctx;
	const struct health_node *nd = &a->hc->nodes[i];
	struct talos_target tt;
	struct talos_status st;
	char *tag = NULL;

	if (is_away(a->hc, nd->name))
		return;
	a->v[i].asked = true;
	a->v[i].pe = (struct err)ERR_INIT;
	a->v[i].se = (struct err)ERR_INIT;
	tt = node_target(nd->addr, a->hc->creds);
	a->v[i].probe = talos_probe(&tt, &tag, &st, &a->v[i].pe);
	free(tag);
	if (a->v[i].probe == TALOS_UP && nd->controlplane)
		a->v[i].svc_rc = talos_service(&tt, "etcd", &a->v[i].state,
					       &a->v[i].healthy, &st, &a->v[i].se);
}

int
health_cluster_check(const struct health_cluster *hc, struct health_report *rep,
		     struct err *err)
{
	struct health_item *talos, *etcd;
	struct node_ask a = { .hc = hc };
	size_t i, up = 0, ncp = 0, etcd_ok = 0;
	bool talos_ok;
	int r = 0;

	memset(rep, 0, sizeof(*rep));
	rep->healthy = true;
	talos = item(rep, "talos");
	etcd = item(rep, "etcd");
	a.v = xcalloc(hc->n + 1, sizeof(*a.v));
	each_node(hc->n, node_one, &a);
	for (i = 0; i < hc->n && r == 0; i++) {
		const struct health_node *nd = &hc->nodes[i];
		const char *state = a.v[i].state;
		bool healthy = a.v[i].healthy;
		struct err *e = &a.v[i].pe;

		if (!a.v[i].asked)
			continue;
		if (a.v[i].probe == TALOS_FOREIGN) {
			r = err_set(err, ERR_FAIL, "%s at %s answers with another "
				    "cluster's certificate: %s; check the node's "
				    "address in the config", nd->name, nd->addr, e->msg);
			break;
		}
		if (nd->controlplane)
			ncp++;
		if (a.v[i].probe != TALOS_UP) {
			fail(rep, talos, "Talos on %s (%s) does not answer over mTLS%s%s",
			     nd->name, nd->addr, e->msg[0] ? ": " : "", e->msg);
			continue;
		}
		up++;
		if (!nd->controlplane)
			continue;
		if (a.v[i].svc_rc < 0)
			fail(rep, etcd, "etcd on %s: %s", nd->name, a.v[i].se.msg);
		else if (!state || strcmp(state, "Running") || !healthy)
			fail(rep, etcd, "etcd on %s is %s%s", nd->name,
			     state ? state : "not running",
			     state && !strcmp(state, "Running") ? " but not healthy" : "");
		else
			etcd_ok++;
	}
	for (i = 0; i < hc->n; i++)
		free(a.v[i].state);
	free(a.v);
	if (r < 0)
		return r;
	talos_ok = talos->state == HEALTH_PASS;
	if (talos_ok)
		snprintf(talos->detail, sizeof(talos->detail), "%zu/%zu nodes answer", up, hc->n);
	if (etcd->state == HEALTH_PASS)
		snprintf(etcd->detail, sizeof(etcd->detail),
			 "etcd Running and healthy on %zu/%zu control planes", etcd_ok, ncp);
	check_quorum(rep, etcd_ok, ncp);
	if (etcd->state == HEALTH_PASS && talos_ok)
		check_etcd_members(hc, rep);
	else
		skip(rep, "etcd-members", "etcd is not healthy everywhere");
	if (hc->kubeconfig)
		check_kubernetes(hc, rep);
	else
		skip(rep, "kubernetes", "no kubeconfig yet");
	return 0;
}

void
health_report_print(const struct health_report *rep, FILE *fp)
{
	size_t i;

	for (i = 0; i < rep->n; i++)
		fprintf(fp, "  %-4s %-12s %s\n",
			rep->v[i].state == HEALTH_PASS ? "ok" :
			rep->v[i].state == HEALTH_FAIL ? "FAIL" : "skip",
			rep->v[i].check, rep->v[i].detail);
}

json_t *
health_report_json(const struct health_report *rep)
{
	json_t *o = json_object(), *a = json_array();
	size_t i;

	for (i = 0; i < rep->n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}",
			"check", rep->v[i].check,
			"state", rep->v[i].state == HEALTH_PASS ? "pass" :
				 rep->v[i].state == HEALTH_FAIL ? "fail" : "skip",
			"detail", rep->v[i].detail));
	json_object_set_new(o, "healthy", json_boolean(rep->healthy));
	json_object_set_new(o, "checks", a);
	return o;
}

int
health_gate(const struct health_cluster *hc, long long timeout_ms,
	    const char *before, struct err *err)
{
	long long t0 = clock_mono_ms(), deadline = t0 + timeout_ms;
	long backoff = 100;
	char last[512] = "";
	struct health_report rep;
	int r;

	for (;;) {
		if ((r = health_cluster_check(hc, &rep, err)) < 0)
			return err_wrap(err, "health gate before %s", before);
		if (rep.healthy) {
			size_t i, checked = 0;

			for (i = 0; i < hc->n; i++)
				checked += !is_away(hc, hc->nodes[i].name);
			out_step("health gate before %s: passed (%zu node%s, %lld ms)",
				 before, checked, checked == 1 ? "" : "s",
				 clock_mono_ms() - t0);
			return 0;
		}
		if (rep.first_fail && strcmp(last, rep.first_fail)) {
			snprintf(last, sizeof(last), "%s", rep.first_fail);
			out_step("health gate before %s: waiting: %s: %s", before,
				 rep.first_check ? rep.first_check : "?", last);
		}
		if (proc_interrupted)
			return err_set(err, ERR_INTR, "interrupted in the health gate "
				       "before %s; nothing of it was started", before);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "health gate before %s: the cluster "
				       "was not healthy within %lld s: %s%s%s; %s was not started: "
				       "see `strata status ENV --health`, fix the cluster and "
				       "run apply again", before, timeout_ms / 1000,
				       rep.first_check ? rep.first_check : "",
				       rep.first_check ? ": " : "",
				       rep.first_fail ? rep.first_fail : "a check was skipped",
				       before);
		clock_sleep_ms(backoff);
		backoff = backoff * 3 / 2 > 2000 ? 2000 : backoff * 3 / 2;
	}
}

void
health_cluster_from_config(struct health_cluster *hc, const struct config *cfg,
			   const struct talos_creds *creds, const char *kubeconfig)
{
	struct health_node *v = xcalloc(cfg->n_nodes + 1, sizeof(*v));
	size_t i;

	memset(hc, 0, sizeof(*hc));
	for (i = 0; i < cfg->n_nodes; i++) {
		v[i].name = cfg->nodes[i].name;
		v[i].addr = cfg->nodes[i].ip;
		v[i].controlplane = cfg->nodes[i].role == ROLE_CONTROLPLANE;
	}
	hc->nodes = v;
	hc->n = cfg->n_nodes;
	hc->creds = creds;
	hc->kubeconfig = kubeconfig;
	hc->want_ready = cfg->kubernetes.cni != CNI_NONE;
}

void
health_cluster_release(struct health_cluster *hc)
{
	free((void *)hc->nodes);
	hc->nodes = NULL;
	hc->n = 0;
}
