/*
 * addon_job: run an installer (helm, flux) inside the cluster as a Job in
 * kube-system, the way the cni and gitops phases install their addons.
 *
 * Why a Job: before a CNI runs, only a hostNetwork pod can start, and
 * Talos's default pod security admits hostNetwork only in kube-system
 * (../shared/reference/kubernetes/FACTS.md §2). The Job tolerates every
 * taint (not-ready, control-plane), reaches the API through KubePrism
 * (localhost:7445 on every node), resolves names through the node
 * (dnsPolicy Default: CoreDNS needs the CNI) and runs under its own
 * ServiceAccount bound to a ClusterRole with the installer's rights only.
 *
 * A finished Job's pod template cannot change, so a Job is identified by
 * the digest of what it installs (annotation strata.dev/config-sha256):
 * the same digest, Complete, means installed; Running means wait for it
 * (an earlier apply was interrupted); anything else is deleted and run
 * anew.
 */
#include "phase/addon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/out.h"

#define NS "kube-system"
#define SHA_ANNOTATION "strata.dev/config-sha256"
#define LOG_LINES 12

static json_t *
meta(const char *name, const char *ns)
{
	json_t *m = json_pack("{s:s, s:{s:s}}", "name", name, "labels",
			      "app.kubernetes.io/managed-by", "strata");

	if (ns)
		json_object_set_new(m, "namespace", json_string(ns));
	return m;
}

static int
apply_new(struct kube_client *kc, json_t *obj, struct err *err)
{
	int r = kube_apply(kc, obj, NULL, err);

	json_decref(obj);
	return r;
}

static json_t *
job_object(const struct installer *in)
{
	json_t *env = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]",
				"name", "KUBERNETES_SERVICE_HOST", "value", "localhost",
				"name", "KUBERNETES_SERVICE_PORT", "value", "7445",
				"name", "HOME", "value", "/tmp");
	json_t *ctr = json_pack("{s:s, s:s, s:O, s:o}", "name", "install",
				"image", in->image, "command", in->command,
				"env", env);
	json_t *spec = json_pack(
		"{s:b, s:s, s:s, s:s, s:[{s:s}], s:[o]}",
		"hostNetwork", 1, "dnsPolicy", "Default",
		"restartPolicy", "Never", "serviceAccountName", in->name,
		"tolerations", "operator", "Exists", "containers", ctr);
	json_t *md = meta(in->name, NS);

	if (in->values) {
		json_object_set_new(ctr, "volumeMounts", json_pack(
			"[{s:s, s:s, s:b}]", "name", "values", "mountPath",
			"/values", "readOnly", 1));
		json_object_set_new(spec, "volumes", json_pack(
			"[{s:s, s:{s:s}}]", "name", "values", "configMap",
			"name", in->name));
	}
	json_object_set_new(md, "annotations",
			    json_pack("{s:s}", SHA_ANNOTATION, in->sha));
	return json_pack("{s:s, s:s, s:o, s:{s:i, s:{s:{s:{s:s}}, s:o}}}",
			 "apiVersion", "batch/v1", "kind", "Job", "metadata", md,
			 "spec", "backoffLimit", 1, "template", "metadata",
			 "annotations", SHA_ANNOTATION, in->sha, "spec", spec);
}

static int
apply_objects(struct kube_client *kc, const struct installer *in,
	      struct err *err)
{
	if (apply_new(kc, json_pack("{s:s, s:s, s:o}", "apiVersion", "v1",
				    "kind", "ServiceAccount", "metadata",
				    meta(in->name, NS)), err) < 0 ||
	    apply_new(kc, json_pack("{s:s, s:s, s:o, s:O}", "apiVersion",
				    "rbac.authorization.k8s.io/v1", "kind",
				    "ClusterRole", "metadata",
				    meta(in->name, NULL), "rules", in->rules),
		      err) < 0 ||
	    apply_new(kc, json_pack(
		    "{s:s, s:s, s:o, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:s}]}",
		    "apiVersion", "rbac.authorization.k8s.io/v1", "kind",
		    "ClusterRoleBinding", "metadata", meta(in->name, NULL),
		    "roleRef", "apiGroup", "rbac.authorization.k8s.io",
		    "kind", "ClusterRole", "name", in->name, "subjects",
		    "kind", "ServiceAccount", "name", in->name, "namespace",
		    NS), err) < 0)
		return -1;
	if (in->values &&
	    apply_new(kc, json_pack("{s:s, s:s, s:o, s:{s:s}}", "apiVersion",
				    "v1", "kind", "ConfigMap", "metadata",
				    meta(in->name, NS), "data", "values.yaml",
				    in->values), err) < 0)
		return -1;
	return apply_new(kc, job_object(in), err);
}

/* What the Job of this name is: 0 absent, 1 ours and Complete, 2 ours
 * and running, 3 to be replaced (another digest, or Failed). */
static int
job_now(struct kube_client *kc, const struct installer *in, struct err *err)
{
	json_t *o = NULL;
	const char *sha, *s;
	int r;

	if ((r = kube_get(kc, "batch/v1", "Job", NS, in->name, &o, err)) < 0) {
		if (err->code != ERR_NOTFOUND)
			return -1;
		err_clear(err);
		return 0;
	}
	sha = json_string_value(json_object_get(json_object_get(
		json_object_get(o, "metadata"), "annotations"), SHA_ANNOTATION));
	if (!sha || strcmp(sha, in->sha))
		r = 3;
	else if ((s = kube_condition(o, "Complete", NULL)) && !strcmp(s, "True"))
		r = 1;
	else if ((s = kube_condition(o, "Failed", NULL)) && !strcmp(s, "True"))
		r = 3;
	else
		r = 2;
	json_decref(o);
	return r;
}

/* Delete the old Job and wait until it is gone (a name being deleted
 * cannot be applied again). */
static int
job_replace(struct kube_client *kc, const struct installer *in,
	    long long timeout_ms, struct err *err)
{
	long long end = clock_mono_ms() + timeout_ms;

	if (kube_delete(kc, "batch/v1", "Job", NS, in->name, err) < 0)
		return -1;
	for (;;) {
		json_t *o = NULL;

		if (kube_get(kc, "batch/v1", "Job", NS, in->name, &o, err) < 0)
			break;
		json_decref(o);
		if (clock_mono_ms() >= end)
			return err_set(err, ERR_FAIL, "the old Job %s/%s is "
				       "still being deleted", NS, in->name);
		clock_sleep_ms(100);
	}
	if (err->code != ERR_NOTFOUND)
		return -1;
	err_clear(err);
	return 0;
}

/* err: the Job failed, with the last lines of its pod's log. */
static int
job_failed(struct kube_client *kc, const struct installer *in,
	   struct err *err)
{
	struct err e = ERR_INIT;
	struct buf log = BUF_INIT, msg = BUF_INIT;
	char *pod = kube_job_pod(kc, NS, in->name, &e);
	char *save = NULL, *line;

	buf_addf(&msg, "Job %s/%s failed", NS, in->name);
	if (pod && kube_pod_log(kc, NS, pod, LOG_LINES, &log, &e) == 0 &&
	    log.len) {
		buf_addf(&msg, "; the log of pod %s ends:", pod);
		for (line = strtok_r(log.ptr, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			buf_addf(&msg, "\n    %s", line);
	} else if (pod) {
		buf_addf(&msg, " (no log from pod %s: %s)", pod, e.msg);
	}
	buf_addf(&msg, "\nsee: kubectl --kubeconfig ENV/kubeconfig -n %s "
		 "describe job %s", NS, in->name);
	err_set(err, ERR_FAIL, "%s", msg.ptr);
	free(pod);
	buf_release(&log);
	buf_release(&msg);
	return -1;
}

int
addon_run_installer(struct kube_client *kc, const struct installer *in,
		    const struct kube_wait *w, bool *started,
		    long long *job_ms, struct err *err)
{
	enum kube_job_end end;
	long long t0;
	int now;

	*started = false;
	*job_ms = 0;
	if ((now = job_now(kc, in, err)) < 0)
		return -1;
	if (now == 1) {
		out_step("%s: Job %s/%s for this config completed earlier; not "
			 "started again", w->what, NS, in->name);
		return 0;
	}
	if (now == 3 && job_replace(kc, in, w->timeout_ms, err) < 0)
		return -1;
	if (now != 2) {
		if (apply_objects(kc, in, err) < 0)
			return -1;
		*started = true;
		out_step("%s: Job %s/%s started (%s)", w->what, NS, in->name,
			 in->image);
	} else {
		out_step("%s: Job %s/%s from an earlier apply still runs; "
			 "waiting for it", w->what, NS, in->name);
	}
	t0 = clock_mono_ms();
	if (kube_wait_job(kc, NS, in->name, w, &end, err) < 0)
		return -1;
	*job_ms = clock_mono_ms() - t0;
	if (end == KUBE_JOB_FAILED)
		return job_failed(kc, in, err);
	return 0;
}
