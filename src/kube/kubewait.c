/* kubewait: the bounded waits of kubeapi.h, on its get/list calls. */
#include "kube/kubeapi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/out.h"

struct poll {
	const struct kube_wait *w;
	long long start, deadline;
	long backoff;
	char last[512];
};

static void
poll_start(struct poll *p, const struct kube_wait *w)
{
	memset(p, 0, sizeof(*p));
	p->w = w;
	p->start = clock_mono_ms();
	p->deadline = p->start + w->timeout_ms;
	p->backoff = 100;
}

static bool
interrupted(const struct poll *p)
{
	return p->w->interrupted && *p->w->interrupted;
}

/* A progress line, printed when it differs from the last one. */
static void
poll_say(struct poll *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strcmp(line, p->last)) {
		snprintf(p->last, sizeof(p->last), "%s", line);
		out_step("%s: %s", p->w->what ? p->w->what : "kubernetes", line);
	}
}

/* Sleep before the next look; false when the bound is reached or the
 * apply was interrupted (err says which, with the last progress seen). */
static bool
poll_again(struct poll *p, const char *waiting_for, struct err *err)
{
	long long now = clock_mono_ms();
	long sleep_ms = p->backoff;

	if (interrupted(p)) {
		err_set(err, ERR_INTR, "interrupted while waiting for %s",
			waiting_for);
		return false;
	}
	if (now >= p->deadline) {
		err_set(err, ERR_FAIL, "%s not reached after %llds%s%s",
			waiting_for, (now - p->start) / 1000,
			p->last[0] ? "; last seen: " : "", p->last);
		return false;
	}
	if (now + sleep_ms > p->deadline)
		sleep_ms = (long)(p->deadline - now);
	clock_sleep_ms(sleep_ms);
	p->backoff = p->backoff * 3 / 2 > 1000 ? 1000 : p->backoff * 3 / 2;
	return true;
}

int
kube_wait_nodes_ready(struct kube_client *c, const char *const *names,
		      size_t n, const struct kube_wait *w, struct err *err)
{
	struct poll p;
	char what[64];

	snprintf(what, sizeof(what), "%zu node%s Ready", n, n == 1 ? "" : "s");
	poll_start(&p, w);
	for (;;) {
		struct kube_node *v = NULL;
		struct err e = ERR_INIT;
		size_t k = 0, i, j, ready = 0;
		const char *missing = NULL, *notready = NULL, *why = NULL;

		if (kube_nodes(c, &v, &k, &e) == 0) {
			for (i = 0; i < n; i++) {
				bool found = false;

				for (j = 0; j < k && !found; j++) {
					if (strcmp(v[j].name, names[i]))
						continue;
					found = true;
					if (v[j].ready)
						ready++;
					else if (!notready) {
						notready = names[i];
						why = v[j].ready_message;
					}
				}
				if (!found && !missing)
					missing = names[i];
			}
			if (ready == n) {
				kube_nodes_free(v, k);
				poll_say(&p, "%zu/%zu nodes Ready", ready, n);
				return 0;
			}
			poll_say(&p, "%zu/%zu nodes Ready (%s%s%s%.200s)", ready, n,
				 missing ? missing : notready,
				 missing ? " not registered" : " NotReady",
				 !missing && why ? ": " : "",
				 !missing && why ? why : "");
			kube_nodes_free(v, k);
		} else {
			poll_say(&p, "%.400s", e.msg);
		}
		if (!poll_again(&p, what, err))
			return -1;
	}
}

static long
num(json_t *o, const char *key)
{
	return (long)json_integer_value(json_object_get(o, key));
}

int
kube_wait_rollout(struct kube_client *c, const char *kind, const char *ns,
		  const char *name, const struct kube_wait *w, struct err *err)
{
	bool ds = !strcmp(kind, "DaemonSet");
	struct poll p;
	char what[300];

	snprintf(what, sizeof(what), "%s %s/%s rolled out", kind, ns, name);
	poll_start(&p, w);
	for (;;) {
		struct err e = ERR_INIT;
		json_t *o = NULL;

		if (kube_get(c, "apps/v1", kind, ns, name, &o, &e) == 0) {
			json_t *st = json_object_get(o, "status");
			long gen = num(json_object_get(o, "metadata"), "generation");
			long obs = num(st, "observedGeneration");
			long want = ds ? num(st, "desiredNumberScheduled")
				       : json_object_get(json_object_get(o, "spec"),
							 "replicas")
				       ? num(json_object_get(o, "spec"), "replicas") : 1;
			long upd = num(st, ds ? "updatedNumberScheduled"
					      : "updatedReplicas");
			long avail = num(st, ds ? "numberAvailable"
						: "availableReplicas");

			json_decref(o);
			if (obs >= gen && upd >= want && avail >= want &&
			    (!ds || want > 0)) {
				poll_say(&p, "%s %s: %ld/%ld ready", kind, name,
					 avail, want);
				return 0;
			}
			poll_say(&p, "%s %s: %ld/%ld ready", kind, name, avail,
				 want);
		} else {
			poll_say(&p, "%.400s", e.msg);
		}
		if (!poll_again(&p, what, err))
			return -1;
	}
}

int
kube_wait_crd(struct kube_client *c, const char *name,
	      const struct kube_wait *w, struct err *err)
{
	struct poll p;
	char what[300];

	snprintf(what, sizeof(what), "CRD %s Established", name);
	poll_start(&p, w);
	for (;;) {
		struct err e = ERR_INIT;
		json_t *o = NULL;

		if (kube_get(c, "apiextensions.k8s.io/v1",
			     "CustomResourceDefinition", NULL, name, &o, &e) == 0) {
			const char *s = kube_condition(o, "Established", NULL);
			bool ok = s && !strcmp(s, "True");

			json_decref(o);
			if (ok)
				return 0;
			snprintf(p.last, sizeof(p.last), "%s not Established yet",
				 name);
		} else {
			snprintf(p.last, sizeof(p.last), "%.400s", e.msg);
		}
		if (!poll_again(&p, what, err))
			return -1;
	}
}

/* Why a Job's pod is not running: its waiting reason or scheduling
 * message; or, with no pod, the Job's last event (admission refusals). */
static void
job_stuck(struct kube_client *c, const char *ns, const char *job,
	  char *out, size_t n)
{
	struct err e = ERR_INIT;
	char *pod = kube_job_pod(c, ns, job, &e);
	json_t *o = NULL, *items = NULL, *ev;
	size_t i;

	out[0] = '\0';
	if (pod && kube_get(c, "v1", "Pod", ns, pod, &o, &e) == 0) {
		json_t *st = json_object_get(o, "status");
		json_t *cs = json_array_get(json_object_get(st, "containerStatuses"), 0);
		json_t *wt = json_object_get(json_object_get(cs, "state"), "waiting");
		const char *msg = NULL;
		const char *sched = kube_condition(o, "PodScheduled", &msg);

		if (wt)
			snprintf(out, n, "pod %s: %s%s%s", pod,
				 json_string_value(json_object_get(wt, "reason")) ?: "waiting",
				 json_string_value(json_object_get(wt, "message")) &&
				 *json_string_value(json_object_get(wt, "message")) ? ": " : "",
				 json_string_value(json_object_get(wt, "message")) ?: "");
		else if (sched && !strcmp(sched, "False"))
			snprintf(out, n, "pod %s unschedulable: %s", pod,
				 msg ? msg : "");
		json_decref(o);
	} else if (!pod) {
		if (kube_list(c, "v1", "Event", ns, NULL, &items, &e) == 0) {
			json_array_foreach(items, i, ev) {
				json_t *io = json_object_get(ev, "involvedObject");
				const char *k = json_string_value(json_object_get(io, "kind"));
				const char *nm = json_string_value(json_object_get(io, "name"));
				const char *m = json_string_value(json_object_get(ev, "message"));

				if (k && nm && m && !strcmp(k, "Job") &&
				    !strcmp(nm, job))
					snprintf(out, n, "job %s: %s", job, m);
			}
			json_decref(items);
		}
	}
	free(pod);
}

int
kube_wait_job(struct kube_client *c, const char *ns, const char *name,
	      const struct kube_wait *w, enum kube_job_end *end,
	      struct err *err)
{
	struct poll p;
	char what[300];
	int tries = 0;

	snprintf(what, sizeof(what), "Job %s/%s Complete", ns, name);
	poll_start(&p, w);
	for (;;) {
		struct err e = ERR_INIT;
		json_t *o = NULL;

		if (kube_get(c, "batch/v1", "Job", ns, name, &o, &e) == 0) {
			const char *s = kube_condition(o, "Complete", NULL);
			const char *f = kube_condition(o, "Failed", NULL);
			bool active = num(json_object_get(o, "status"), "active") > 0;
			bool done = s && !strcmp(s, "True");
			bool failed = f && !strcmp(f, "True");

			json_decref(o);
			if (done) {
				*end = KUBE_JOB_COMPLETE;
				return 0;
			}
			if (failed) {
				*end = KUBE_JOB_FAILED;
				return 0;
			}
			/* every few looks: is its pod stuck? */
			if (tries++ % 4 == 3 || clock_mono_ms() + p.backoff >= p.deadline) {
				char why[400];

				job_stuck(c, ns, name, why, sizeof(why));
				if (why[0])
					poll_say(&p, "%s", why);
				else if (active)
					poll_say(&p, "job %s running", name);
			}
		} else {
			poll_say(&p, "%.400s", e.msg);
		}
		if (!poll_again(&p, what, err))
			return -1;
	}
}
