/* Unit tests for src/phase/manifest_prune (the record of the bootstrap
 * manifests' objects strata applied, and what of it is stale) and the
 * journal's records (state_record_get/set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/manifest_prune.h"
#include "state/state.h"
#include "util/buf.h"

#include "testutil.h"

/* What Talos's Manifests render (a list of objects per resource). */
static const char *const TOKEN =
	"- apiVersion: v1\n"
	"  kind: Secret\n"
	"  metadata: {name: bootstrap-token-abc, namespace: kube-system}\n"
	"  stringData: {token-secret: NOT-READ}\n";
static const char *const CSR =
	"- apiVersion: rbac.authorization.k8s.io/v1\n"
	"  kind: ClusterRoleBinding\n"
	"  metadata: {name: system-bootstrap-approve-node-client-csr}\n";
static const char *const DNS =
	"items:\n"
	"- apiVersion: apps/v1\n"
	"  kind: Deployment\n"
	"  metadata: {name: coredns, namespace: kube-system}\n"
	"- apiVersion: v1\n"
	"  kind: ConfigMap\n"
	"  metadata: {name: coredns}\n";   /* no namespace: default */

static void
add(struct mp_set *s, const char *y)
{
	struct err e = ERR_INIT;

	assert_int_equal(mp_set_add_yaml(s, y, strlen(y), &e), 0);
}

static char *
whats(const struct mp_set *s)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_adds(&b, "");
	for (i = 0; i < s->n; i++) {
		char w[256];

		mp_obj_what(&s->v[i], w, sizeof(w));
		buf_addf(&b, "%s%s", i ? "; " : "", w);
	}
	return buf_detach(&b, NULL);
}

static void
test_manifest_prune__stale_is_old_minus_new(void **state)
{
	struct mp_set old = MP_SET_INIT, now = MP_SET_INIT, st = MP_SET_INIT;
	char *w;

	(void)state;
	add(&old, TOKEN);
	add(&old, CSR);
	add(&old, DNS);
	assert_int_equal(old.n, 4);
	/* CoreDNS no longer rendered */
	add(&now, TOKEN);
	add(&now, CSR);
	mp_set_stale(&old, &now, &st);
	w = whats(&st);
	assert_string_equal(w, "ConfigMap default/coredns; Deployment kube-system/coredns");
	free(w);
	mp_set_release(&st);
	/* all still rendered: nothing stale; nothing recorded: nothing stale */
	add(&now, DNS);
	mp_set_stale(&old, &now, &st);
	assert_int_equal(st.n, 0);
	mp_set_release(&old);
	mp_set_stale(&old, &now, &st);
	assert_int_equal(st.n, 0);
	mp_set_release(&now);
}

static void
test_manifest_prune__same_object_other_version_not_stale(void **state)
{
	struct mp_set old = MP_SET_INIT, now = MP_SET_INIT, st = MP_SET_INIT;

	(void)state;
	mp_set_add(&old, "policy/v1beta1", "PodDisruptionBudget", "kube-system", "x");
	mp_set_add(&old, "v1", "Service", "kube-system", "x");
	mp_set_add(&now, "policy/v1", "PodDisruptionBudget", "kube-system", "x");
	/* another group, same kind and name: another object */
	mp_set_add(&now, "example.com/v1", "Service", "kube-system", "x");
	/* same name in another namespace: another object */
	mp_set_add(&now, "v1", "Service", "default", "x");
	mp_set_stale(&old, &now, &st);
	assert_int_equal(st.n, 1);
	assert_string_equal(st.v[0].api_version, "v1");
	assert_string_equal(st.v[0].ns, "kube-system");
	mp_set_release(&st);
	mp_set_release(&old);
	mp_set_release(&now);
}

static void
test_manifest_prune__json_round_trip(void **state)
{
	struct mp_set a = MP_SET_INIT, b = MP_SET_INIT;
	struct err e = ERR_INIT;
	json_t *j, *bad;
	char *s;

	(void)state;
	add(&a, DNS);
	add(&a, CSR);
	mp_set_sort(&a);
	j = mp_set_to_json(&a);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	/* cluster-scoped: no namespace key; the Secret's body never read */
	assert_string_equal(s,
		"[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"coredns\","
		"\"namespace\":\"default\"},"
		"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":"
		"\"coredns\",\"namespace\":\"kube-system\"},"
		"{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":"
		"\"ClusterRoleBinding\",\"name\":"
		"\"system-bootstrap-approve-node-client-csr\"}]");
	free(s);
	assert_int_equal(mp_set_from_json(&b, j, &e), 0);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.v[2].ns, "");
	json_decref(j);
	mp_set_release(&b);
	/* hand-edited journal: an entry without a name */
	bad = json_pack("[{s:s, s:s}]", "apiVersion", "v1", "kind", "Secret");
	assert_int_equal(mp_set_from_json(&b, bad, &e), -ERR_FAIL);
	assert_non_null(strstr(e.msg, "bootstrap_manifests_applied[0]"));
	json_decref(bad);
	mp_set_release(&b);
	mp_set_release(&a);
}

static void
test_manifest_prune__bad_manifest_and_refused_kinds(void **state)
{
	struct mp_set s = MP_SET_INIT;
	struct err e = ERR_INIT;
	const char *noname = "- {apiVersion: v1, kind: Secret, metadata: {}}\n";
	const char *map = "apiVersion: v1\nkind: Secret\n";
	struct mp_obj ns = { "v1", "Namespace", "", "x" };
	struct mp_obj crd = { "apiextensions.k8s.io/v1", "CustomResourceDefinition",
			      "", "x" };
	struct mp_obj other_ns = { "example.com/v1", "Namespace", "default", "x" };
	struct mp_obj dep = { "apps/v1", "Deployment", "kube-system", "x" };

	(void)state;
	assert_int_equal(mp_set_add_yaml(&s, noname, strlen(noname), &e), -ERR_FAIL);
	assert_non_null(strstr(e.msg, "object 1"));
	assert_int_equal(mp_set_add_yaml(&s, map, strlen(map), &e), -ERR_FAIL);
	assert_int_equal(mp_set_add_yaml(&s, "", 0, &e), 0);
	assert_int_equal(s.n, 0);
	mp_set_release(&s);
	assert_true(mp_prune_refused(&ns));
	assert_true(mp_prune_refused(&crd));
	assert_false(mp_prune_refused(&other_ns));
	assert_false(mp_prune_refused(&dep));
}

static void
test_manifest_prune__state_record(void **state)
{
	char dir[] = "/tmp/strata-mprune.XXXXXX";
	struct state st, st2;
	struct err e = ERR_INIT;
	json_t *v;
	unsigned long saved;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_load(&st, dir, &e), 0);
	assert_null(state_record_get(&st, STATE_KEY_MANIFESTS_APPLIED));
	assert_int_equal(state_record_set(&st, STATE_KEY_MANIFESTS_APPLIED,
					  json_pack("[{s:s}]", "kind", "Secret"), &e), 0);
	saved = st.saved;
	/* unchanged: no save */
	assert_int_equal(state_record_set(&st, STATE_KEY_MANIFESTS_APPLIED,
					  json_pack("[{s:s}]", "kind", "Secret"), &e), 0);
	assert_true(st.saved == saved);
	assert_int_equal(state_load(&st2, dir, &e), 0);
	v = state_record_get(&st2, STATE_KEY_MANIFESTS_APPLIED);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	/* forgotten with the cluster (destroy) */
	assert_int_equal(state_cluster_forget(&st2, &e), 0);
	assert_null(state_record_get(&st2, STATE_KEY_MANIFESTS_APPLIED));
	state_release(&st);
	state_release(&st2);
	tu_sh("rm -rf %s", dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_prune__stale_is_old_minus_new),
		cmocka_unit_test(test_manifest_prune__same_object_other_version_not_stale),
		cmocka_unit_test(test_manifest_prune__json_round_trip),
		cmocka_unit_test(test_manifest_prune__bad_manifest_and_refused_kinds),
		cmocka_unit_test(test_manifest_prune__state_record),
	};

	return cmocka_run_group_tests_name("manifest_prune", tests, NULL, NULL);
}
