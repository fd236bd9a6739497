/* Unit tests for the Kubernetes side of talos/health against the labsim
 * Kubernetes API (tests/unit/kube_server.py: nodes n-1 and n-2, no CNI, so
 * neither is Ready): several nodes' readiness from one Node list, and a
 * gate's borrowed client (health_cluster.kc) used instead of a load from
 * the kubeconfig path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "talos/health.h"
#include "util/err.h"
#include "testutil.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

struct fixture {
	char dir[64];
	char *kcpath;
	struct tu_proc srv;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char line[64];
	char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/kube_server.py",
			 f->dir, NULL };

	strcpy(f->dir, "/tmp/strata-health.XXXXXX");
	if (!mkdtemp(f->dir) || tu_spawn(&f->srv, argv, line, sizeof(line)) < 0 ||
	    strncmp(line, "PORT ", 5)) {
		fprintf(stderr, "kube_server.py did not start\n");
		return -1;
	}
	f->kcpath = xasprintf("%s/kubeconfig", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_stop(&f->srv);
	tu_sh("rm -rf %s", f->dir);
	free(f->kcpath);
	free(f);
	return 0;
}

/* Registered but NotReady: 0 and not ready; one not registered: -1
 * naming it; the single-node form agrees. */
static void
test_all_ready(void **state)
{
	struct fixture *f = *state;
	const char *both[] = { "n-1", "n-2" }, *stray[] = { "n-1", "n-9" };
	struct err err = ERR_INIT;
	bool ready = true;

	assert_int_equal(health_k8s_all_ready(f->kcpath, NULL, both, 2, &ready, &err), 0);
	assert_false(ready);
	ready = true;
	assert_true(health_k8s_all_ready(f->kcpath, NULL, stray, 2, &ready, &err) < 0);
	assert_false(ready);
	assert_int_equal(err.code, ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "'n-9' is not registered"));
	err_clear(&err);
	ready = true;
	assert_int_equal(health_k8s_ready(f->kcpath, "n-2", &ready, &err), 0);
	assert_false(ready);
	assert_true(health_k8s_ready(f->kcpath, "n-9", &ready, &err) < 0);
	/* no names: nothing to be not Ready, the API answered */
	assert_int_equal(health_k8s_all_ready(f->kcpath, NULL, both, 0, &ready, &err), 0);
	assert_true(ready);
	/* a lent client: asked through it (the path is not read), and still
	 * the caller's afterwards */
	{
		struct kube_client *kc = NULL;
		char *bogus = xasprintf("%s/no-such-kubeconfig", f->dir);

		assert_int_equal(kube_client_load(&kc, f->kcpath, 5000, &err), 0);
		err_clear(&err);
		assert_true(health_k8s_all_ready(bogus, kc, stray, 2, &ready, &err) < 0);
		assert_int_equal(err.code, ERR_NOTFOUND);
		assert_non_null(strstr(err.msg, "'n-9' is not registered"));
		assert_int_equal(health_k8s_all_ready(bogus, kc, both, 2, &ready, &err), 0);
		assert_false(ready);
		assert_true(health_k8s_all_ready(bogus, NULL, both, 2, &ready, &err) < 0);
		kube_client_free(kc);
		free(bogus);
	}
}

static const struct health_item *
find(const struct health_report *rep, const char *check)
{
	for (size_t i = 0; i < rep->n; i++)
		if (!strcmp(rep->v[i].check, check))
			return &rep->v[i];
	return NULL;
}

/* A gate that lends its client: the check asks the API through it, not
 * through a client loaded from hc.kubeconfig (a path that does not exist
 * here: without the borrowed client the API "does not answer"). */
static void
test_borrowed_client(void **state)
{
	struct fixture *f = *state;
	struct health_node nodes[] = { { "n-1", "127.0.0.101", false, false },
				       { "n-2", "127.0.0.102", false, false } };
	const char *away[] = { "n-1", "n-2" };
	struct health_cluster hc;
	struct health_report rep;
	struct kube_client *kc = NULL;
	struct err err = ERR_INIT;
	const struct health_item *it;
	char *bogus = xasprintf("%s/no-such-kubeconfig", f->dir);

	assert_int_equal(kube_client_load(&kc, f->kcpath, 5000, &err), 0);
	memset(&hc, 0, sizeof(hc));
	hc.nodes = nodes;
	hc.n = 2;
	hc.away = away;      /* no Talos asked: both are away */
	hc.n_away = 2;
	hc.kubeconfig = bogus;
	assert_int_equal(health_cluster_check(&hc, &rep, &err), 0);
	assert_non_null(it = find(&rep, "kubernetes"));
	assert_int_equal(it->state, HEALTH_FAIL);
	assert_non_null(strstr(it->detail, "does not answer"));
	hc.kc = kc;
	assert_int_equal(health_cluster_check(&hc, &rep, &err), 0);
	assert_non_null(it = find(&rep, "kubernetes"));
	assert_int_equal(it->state, HEALTH_PASS);
	assert_non_null(strstr(it->detail, "answers"));
	assert_non_null(it = find(&rep, "nodes"));
	assert_int_equal(it->state, HEALTH_PASS);
	/* the second pass with the same client: still usable (not freed) */
	assert_int_equal(health_cluster_check(&hc, &rep, &err), 0);
	assert_int_equal(find(&rep, "kubernetes")->state, HEALTH_PASS);
	kube_client_free(kc);
	free(bogus);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_ready),
		cmocka_unit_test(test_borrowed_client),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
