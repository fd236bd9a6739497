/* Unit tests for src/kube/kubeapi against the labsim Kubernetes API
 * (tests/unit/kube_server.py runs tests/labsim/kube.py on 127.0.0.1):
 * server-side apply as "strata", conflicts naming the other manager,
 * errors quoting the API, get/list/delete, pod logs and the waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "kube/removed.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "testutil.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

struct fixture {
	char dir[64];
	struct tu_proc srv;
	struct kube_client *kc;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err err = ERR_INIT;
	char line[64], *kcpath;
	char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/kube_server.py",
			 f->dir, NULL };

	strcpy(f->dir, "/tmp/strata-kube.XXXXXX");
	if (!mkdtemp(f->dir) || tu_spawn(&f->srv, argv, line, sizeof(line)) < 0 ||
	    strncmp(line, "PORT ", 5)) {
		fprintf(stderr, "kube_server.py did not start\n");
		return -1;
	}
	kcpath = xasprintf("%s/kubeconfig", f->dir);
	if (kube_client_load(&f->kc, kcpath, 10000, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	free(kcpath);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	kube_client_free(f->kc);
	tu_stop(&f->srv);
	tu_sh("rm -rf %s", f->dir);
	free(f);
	return 0;
}

static const struct kube_wait quick = { 10000, NULL, "test" };

static void
test_kube__paths(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	kube_path(&b, "batch/v1", "Job", "kube-system", "x");
	assert_string_equal(b.ptr, "/apis/batch/v1/namespaces/kube-system/jobs/x");
	buf_reset(&b);
	kube_path(&b, "v1", "ConfigMap", NULL, "c");
	assert_string_equal(b.ptr, "/api/v1/namespaces/default/configmaps/c");
	buf_reset(&b);
	kube_path(&b, "source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "r");
	assert_string_equal(b.ptr, "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/r");
	buf_reset(&b);
	kube_path(&b, "rbac.authorization.k8s.io/v1", "ClusterRole", "ignored", "r");
	assert_string_equal(b.ptr, "/apis/rbac.authorization.k8s.io/v1/clusterroles/r");
	buf_reset(&b);
	kube_path(&b, "networking.k8s.io/v1", "Ingress", NULL, NULL);
	assert_string_equal(b.ptr, "/apis/networking.k8s.io/v1/ingresses");
	buf_reset(&b);
	kube_path(&b, "networking.k8s.io/v1", "NetworkPolicy", "a", "p");
	assert_string_equal(b.ptr, "/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/p");
	buf_release(&b);
}

static void
test_kube__apply_yaml_get_list_delete(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	const char *y =
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\ndata: {k: '1'}\n"
		"---\n"
		"# an empty document is skipped\n"
		"---\n"
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels: {app: t}\ndata:\n  k: \"2\"\n";
	size_t n = 0;
	json_t *o = NULL, *items = NULL;

	if (kube_apply_yaml(f->kc, y, strlen(y), &n, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(n, 2);
	assert_int_equal(kube_get(f->kc, "v1", "ConfigMap", "default", "b", &o, &err), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "k")), "2");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(o, "metadata"), "managedFields"), 0), "manager")), "strata");
	json_decref(o);
	assert_int_equal(kube_list(f->kc, "v1", "ConfigMap", "default", "app=t", &items, &err), 0);
	assert_int_equal(json_array_size(items), 1);
	json_decref(items);
	assert_int_equal(kube_delete(f->kc, "v1", "ConfigMap", "default", "b", &err), 0);
	assert_int_equal(kube_delete(f->kc, "v1", "ConfigMap", "default", "b", &err), 0);
	assert_int_equal(kube_get(f->kc, "v1", "ConfigMap", "default", "b", &o, &err), -ERR_NOTFOUND);
	assert_int_equal(err.code, ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "get ConfigMap default/b: HTTP 404 NotFound: configmaps \"b\" not found"));
}

static void
test_kube__apply_items(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	const char *list =
		"- {apiVersion: v1, kind: ConfigMap, metadata: {name: i1, namespace: default}, data: {k: '1'}}\n"
		"- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: theirs, namespace: default}\n"
		"  data: {x: '2'}\n";
	const char *items = "items:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: i2}}\n";
	size_t n = 9;
	json_t *o = NULL;

	/* "theirs" is helm's: not forced, its x is a conflict */
	assert_int_not_equal(kube_apply_items(f->kc, list, strlen(list), false, &n,
					      &err), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(err.msg, "conflict with \"helm\""));
	if (kube_apply_items(f->kc, list, strlen(list), true, &n, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(n, 2);
	assert_int_equal(kube_get(f->kc, "v1", "ConfigMap", "default", "theirs", &o, &err), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "x")), "2");
	json_decref(o);
	if (kube_apply_items(f->kc, items, strlen(items), true, &n, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(n, 1);
	assert_int_not_equal(kube_apply_items(f->kc, "a: b\n", 5, true, &n, &err), 0);
	assert_non_null(strstr(err.msg, "not a list of objects"));
	assert_int_not_equal(kube_apply_items(f->kc, "- {kind: ConfigMap}\n", 20, true, &n,
					      &err), 0);
	assert_non_null(strstr(err.msg, "object 1: no apiVersion"));
	assert_int_equal(kube_apply_items(f->kc, "", 0, true, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(kube_delete(f->kc, "v1", "ConfigMap", "default", "i1", &err), 0);
	assert_int_equal(kube_delete(f->kc, "v1", "ConfigMap", "default", "i2", &err), 0);
}

static void
test_kube__removed_api_check(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	char y[512];
	int i;

	/* the server's own FlowSchemas are listed through v1beta3 too, but
	 * written through v1: nothing to migrate */
	if (kube_removed_check(f->kc, "1.31.4", "1.32.0", &err) < 0)
		fail_msg("%s", err.msg);
	/* releases before: their removed versions are 404 here */
	if (kube_removed_check(f->kc, "1.24.0", "1.31.4", &err) < 0)
		fail_msg("%s", err.msg);
	for (i = 0; i < 9; i++) {
		snprintf(y, sizeof(y), "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\n"
			 "kind: FlowSchema\nmetadata: {name: old-%d}\nspec: "
			 "{matchingPrecedence: %d, priorityLevelConfiguration: "
			 "{name: catch-all}}\n", i, 100 + i);
		if (kube_apply_yaml(f->kc, y, strlen(y), NULL, &err) < 0)
			fail_msg("%s", err.msg);
	}
	assert_int_equal(kube_removed_check(f->kc, "1.31.4", "1.32.0", &err), -ERR_USAGE);
	assert_non_null(strstr(err.msg, "Kubernetes 1.31.4 -> 1.32.0: 9 objects use an "
			       "API that 1.32 no longer serves: FlowSchema old-0 "
			       "(flowcontrol.apiserver.k8s.io/v1beta3, written by strata)"));
	assert_non_null(strstr(err.msg, " and 6 more (listed above). "));
	assert_non_null(strstr(err.msg, "migrate to flowcontrol.apiserver.k8s.io/v1 "));
	assert_null(strstr(err.msg, "exempt"));
	/* not on the way: 1.32 -> 1.33 removes nothing */
	assert_int_equal(kube_removed_check(f->kc, "1.32.0", "1.33.1", &err), 0);
	for (i = 0; i < 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "old-%d", i);
		assert_int_equal(kube_delete(f->kc, "flowcontrol.apiserver.k8s.io/v1",
					     "FlowSchema", NULL, name, &err), 0);
	}
	if (kube_removed_check(f->kc, "1.31.4", "1.32.0", &err) < 0)
		fail_msg("%s", err.msg);
}

static void
test_kube__errors_quote_the_api(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	json_t *cm = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1",
			       "kind", "ConfigMap", "metadata", "name", "owned",
			       "data", "x", "2");
	const char *bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: two}\n";
	const char *unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u}\nbogus: 1\n";

	/* a field helm owns: a conflict naming helm, never forced */
	assert_int_not_equal(kube_apply(f->kc, cm, NULL, &err), 0);
	assert_non_null(strstr(err.msg, "apply ConfigMap default/owned: HTTP 409 Conflict: Apply failed with 1 "
			       "conflict: conflict with \"helm\" using v1: .data.x"));
	assert_non_null(strstr(err.msg, "never forces"));
	json_decref(cm);
	/* 422 with the causes */
	assert_int_not_equal(kube_apply_yaml(f->kc, bad, strlen(bad), NULL, &err), 0);
	assert_non_null(strstr(err.msg, "apply Deployment default/d: HTTP 422 Invalid: Deployment.apps \"d\" is invalid"));
	assert_non_null(strstr(err.msg, "spec.replicas"));
	assert_non_null(strstr(err.msg, "spec.selector: Required value"));
	/* 400 for an undeclared field; 404 for an unknown kind */
	assert_int_not_equal(kube_apply_yaml(f->kc, unknown, strlen(unknown), NULL, &err), 0);
	assert_non_null(strstr(err.msg, "HTTP 400 BadRequest: failed to create typed patch object"));
	assert_non_null(strstr(err.msg, ".bogus: field not declared in schema"));
	unknown = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: k}\n";
	assert_int_equal(kube_apply_yaml(f->kc, unknown, strlen(unknown), NULL, &err), -ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "apply Kustomization default/k: HTTP 404 NotFound"));
	unknown = "kind: ConfigMap\n";
	assert_int_not_equal(kube_apply_yaml(f->kc, unknown, strlen(unknown), NULL, &err), 0);
	assert_string_equal(err.msg, "document 1: no apiVersion, kind or metadata.name");
}

#define JOB_YAML \
	"apiVersion: batch/v1\nkind: Job\nmetadata: {name: %s, namespace: kube-system}\n" \
	"spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n" \
	"      hostNetwork: true\n      tolerations: [{operator: Exists}]\n" \
	"      containers: [{name: m, image: busybox, command: [%s]}]\n"

static void
apply_job(struct fixture *f, const char *name, const char *cmd)
{
	struct err err = ERR_INIT;
	char *y = xasprintf(JOB_YAML, name, cmd);

	int r = kube_apply_yaml(f->kc, y, strlen(y), NULL, &err);

	free(y);
	if (r < 0)
		fail_msg("%s", err.msg);
}

static void
test_kube__wait_job_and_log(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	enum kube_job_end end;
	struct buf log = BUF_INIT;
	char *pod;

	apply_job(f, "ok", "'true'");
	assert_int_equal(kube_wait_job(f->kc, "kube-system", "ok", &quick, &end, &err), 0);
	assert_int_equal(end, KUBE_JOB_COMPLETE);
	/* helm without the chart version it asks for: Failed, the log says why */
	apply_job(f, "bad", "helm, upgrade, --install, cilium, cilium, --version, '0.0.1', --namespace, kube-system");
	assert_int_equal(kube_wait_job(f->kc, "kube-system", "bad", &quick, &end, &err), 0);
	assert_int_equal(end, KUBE_JOB_FAILED);
	pod = kube_job_pod(f->kc, "kube-system", "bad", &err);
	assert_non_null(pod);
	assert_int_equal(kube_pod_log(f->kc, "kube-system", pod, 5, &log, &err), 0);
	assert_non_null(strstr(log.ptr, "Kubernetes cluster unreachable"));
	free(pod);
	buf_release(&log);
}

static void
test_kube__waits_are_bounded(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	const char *names[] = { "n-1", "n-2" };
	struct kube_wait w = { 300, NULL, "test" };
	enum kube_job_end end;
	const char *crd;
	struct buf y = BUF_INIT;
	char *path;

	/* no CNI: the nodes stay NotReady; the error says so */
	assert_int_not_equal(kube_wait_nodes_ready(f->kc, names, 2, &w, &err), 0);
	assert_non_null(strstr(err.msg, "2 nodes Ready not reached after"));
	assert_non_null(strstr(err.msg, "0/2 nodes Ready (n-1 NotReady: container runtime network not ready"));
	/* a pod on the pod network never starts: the reason is in the error */
	{
		char *yy = xasprintf("apiVersion: batch/v1\nkind: Job\nmetadata: {name: podnet, namespace: kube-system}\n"
				     "spec:\n  template:\n    spec:\n      restartPolicy: Never\n"
				     "      tolerations: [{operator: Exists}]\n"
				     "      containers: [{name: m, image: busybox}]\n");

		assert_int_equal(kube_apply_yaml(f->kc, yy, strlen(yy), NULL, &err), 0);
		free(yy);
	}
	w.timeout_ms = 1500;
	assert_int_not_equal(kube_wait_job(f->kc, "kube-system", "podnet", &w, &end, &err), 0);
	assert_non_null(strstr(err.msg, "Job kube-system/podnet Complete not reached after 1s"));
	assert_non_null(strstr(err.msg, "ContainerCreating"));
	/* a CRD from the reference becomes Established */
	path = xasprintf("%s/../shared/reference/kubernetes/crds/source.toolkit.fluxcd.io_gitrepositories.yaml",
			 SRCDIR);
	if (fs_read_file(&y, path, 1 << 22, &err) == 0) {
		assert_int_equal(kube_apply_yaml(f->kc, y.ptr, y.len, NULL, &err), 0);
		crd = "gitrepositories.source.toolkit.fluxcd.io";
		assert_int_equal(kube_wait_crd(f->kc, crd, &quick, &err), 0);
	}
	free(path);
	buf_release(&y);
}

static void
test_kube__rollout(void **state)
{
	struct fixture *f = *state;
	struct err err = ERR_INIT;
	const char *d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n"
		"spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n"
		"    metadata: {labels: {app: web}}\n    spec:\n      hostNetwork: true\n"
		"      containers: [{name: w, image: nginx}]\n";

	assert_int_equal(kube_apply_yaml(f->kc, d, strlen(d), NULL, &err), 0);
	assert_int_equal(kube_wait_rollout(f->kc, "Deployment", "default", "web", &quick, &err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kube__paths),
		cmocka_unit_test(test_kube__apply_yaml_get_list_delete),
		cmocka_unit_test(test_kube__apply_items),
		cmocka_unit_test(test_kube__removed_api_check),
		cmocka_unit_test(test_kube__errors_quote_the_api),
		cmocka_unit_test(test_kube__wait_job_and_log),
		cmocka_unit_test(test_kube__waits_are_bounded),
		cmocka_unit_test(test_kube__rollout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
