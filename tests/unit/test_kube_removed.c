/* Unit tests for src/kube/removed: the table of API group/versions a
 * Kubernetes release stops serving (looked up per upgrade path) and which
 * listed objects use a removed one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "kube/removed.h"

static const struct kube_removed *
find(const struct kube_removed **v, size_t n, const char *gv, const char *kind)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i]->group_version, gv) && !strcmp(v[i]->kind, kind))
			return v[i];
	return NULL;
}

static void
test_kube_removed__per_release(void **state)
{
	const struct kube_removed *v[32], *e;
	size_t n;

	(void)state;
	n = kube_removed_between(24, 25, v, 32);
	assert_int_equal(n, 7);
	e = find(v, n, "policy/v1beta1", "PodSecurityPolicy");
	assert_non_null(e);
	assert_null(e->replacement);
	assert_non_null(e->what_to_do);
	e = find(v, n, "policy/v1beta1", "PodDisruptionBudget");
	assert_non_null(e);
	assert_string_equal(e->replacement, "policy/v1");
	assert_non_null(find(v, n, "batch/v1beta1", "CronJob"));
	assert_non_null(find(v, n, "discovery.k8s.io/v1beta1", "EndpointSlice"));
	assert_non_null(find(v, n, "events.k8s.io/v1beta1", "Event"));
	assert_non_null(find(v, n, "autoscaling/v2beta1", "HorizontalPodAutoscaler"));
	assert_non_null(find(v, n, "node.k8s.io/v1beta1", "RuntimeClass"));

	n = kube_removed_between(25, 26, v, 32);
	assert_int_equal(n, 3);
	assert_non_null(find(v, n, "flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"));
	assert_non_null(find(v, n, "autoscaling/v2beta2", "HorizontalPodAutoscaler"));
	n = kube_removed_between(26, 27, v, 32);
	assert_int_equal(n, 1);
	assert_string_equal(v[0]->kind, "CSIStorageCapacity");
	assert_string_equal(v[0]->replacement, "storage.k8s.io/v1");
	assert_int_equal(kube_removed_between(27, 28, v, 32), 0);
	n = kube_removed_between(28, 29, v, 32);
	assert_int_equal(n, 2);
	assert_string_equal(find(v, n, "flowcontrol.apiserver.k8s.io/v1beta2",
				 "PriorityLevelConfiguration")->replacement,
			    "flowcontrol.apiserver.k8s.io/v1");
	n = kube_removed_between(31, 32, v, 32);
	assert_int_equal(n, 2);
	assert_non_null(find(v, n, "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema"));
	assert_string_equal(find(v, n, "flowcontrol.apiserver.k8s.io/v1beta3",
				 "PriorityLevelConfiguration")->replacement,
			    "flowcontrol.apiserver.k8s.io/v1");
}

static void
test_kube_removed__ranges(void **state)
{
	const struct kube_removed *v[2];

	(void)state;
	/* a patch upgrade, the newer releases: nothing */
	assert_int_equal(kube_removed_between(32, 32, v, 2), 0);
	assert_int_equal(kube_removed_between(35, 36, NULL, 0), 0);
	assert_int_equal(kube_removed_between(32, 36, NULL, 0), 0);
	/* from-exclusive, to-inclusive; counted past max */
	assert_int_equal(kube_removed_between(24, 32, NULL, 0), 15);
	assert_int_equal(kube_removed_between(25, 32, NULL, 0), 8);
	assert_int_equal(kube_removed_between(24, 25, v, 2), 7);
	assert_int_equal(v[0]->removed_in, 25);
	assert_int_equal(v[1]->removed_in, 25);
}

static json_t *
obj(const char *mf_api, const char *manager, const char *last_applied)
{
	json_t *o = json_pack("{s:s, s:{s:s}}", "kind", "FlowSchema", "metadata",
			      "name", "x");
	json_t *md = json_object_get(o, "metadata");

	json_object_set_new(md, "managedFields", json_pack(
		"[{s:s, s:s}, {s:s, s:s}]", "manager", "api-priority-and-fairness",
		"apiVersion", "flowcontrol.apiserver.k8s.io/v1", "manager", manager,
		"apiVersion", mf_api));
	if (last_applied)
		json_object_set_new(md, "annotations", json_pack("{s:s}",
			"kubectl.kubernetes.io/last-applied-configuration",
			last_applied));
	return o;
}

static void
test_kube_removed__uses(void **state)
{
	const struct kube_removed *v[4], *fs, *psp;
	const char *who = "unset";
	json_t *o;

	(void)state;
	kube_removed_between(31, 32, v, 4);
	fs = find(v, 2, "flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema");
	/* every writer used v1: served through v1beta3 too, but fine */
	o = obj("flowcontrol.apiserver.k8s.io/v1", "helm", NULL);
	assert_false(kube_removed_uses(fs, o, &who));
	assert_null(who);
	json_decref(o);
	/* one manager wrote through the removed version */
	o = obj("flowcontrol.apiserver.k8s.io/v1beta3", "helm", NULL);
	assert_true(kube_removed_uses(fs, o, &who));
	assert_string_equal(who, "helm");
	json_decref(o);
	/* kubectl's client-side apply records the version it applied */
	o = obj("flowcontrol.apiserver.k8s.io/v1", "kubectl-client-side-apply",
		"{\"apiVersion\":\"flowcontrol.apiserver.k8s.io/v1beta3\","
		"\"kind\":\"FlowSchema\"}");
	assert_true(kube_removed_uses(fs, o, &who));
	assert_string_equal(who, "kubectl apply");
	json_decref(o);
	o = obj("flowcontrol.apiserver.k8s.io/v1", "kubectl-client-side-apply",
		"{\"apiVersion\":\"flowcontrol.apiserver.k8s.io/v1\"}");
	assert_false(kube_removed_uses(fs, o, NULL));
	json_decref(o);
	o = obj("flowcontrol.apiserver.k8s.io/v1", "x", "not json");
	assert_false(kube_removed_uses(fs, o, NULL));
	json_decref(o);
	/* no replacement: every object of the kind goes with its API */
	{
		const struct kube_removed *all[8];
		size_t n = kube_removed_between(24, 25, all, 8);

		psp = find(all, n, "policy/v1beta1", "PodSecurityPolicy");
	}
	o = json_pack("{s:{s:s}}", "metadata", "name", "restricted");
	assert_true(kube_removed_uses(psp, o, &who));
	assert_null(who);
	json_decref(o);
}

static void
test_kube_removed__check_without_removals(void **state)
{
	struct err err = ERR_INIT;

	(void)state;
	/* nothing to list: no client needed, no error */
	assert_int_equal(kube_removed_check(NULL, "1.35.4", "1.36.0", &err), 0);
	assert_int_equal(kube_removed_check(NULL, "1.32.0", "1.32.1", &err), 0);
	assert_int_equal(kube_removed_check(NULL, "v1.33.0", "v1.34.0", &err), 0);
	assert_int_equal(kube_removed_check(NULL, "junk", "1.32.0", &err), 0);
	assert_int_equal(kube_removed_check(NULL, "1.32.0", "1.31.0", &err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kube_removed__per_release),
		cmocka_unit_test(test_kube_removed__ranges),
		cmocka_unit_test(test_kube_removed__uses),
		cmocka_unit_test(test_kube_removed__check_without_removals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
