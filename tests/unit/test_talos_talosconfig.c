/* talosconfig: admin cert reused while valid under the same OS CA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "talos/secrets.h"
#include "talos/talosconfig.h"

static const char *const eps[] = { "10.0.0.11" };
static const char *const nodes[] = { "10.0.0.11", "10.0.0.21" };

static void
test_talosconfig__reuse_and_rotate(void **state)
{
	struct talos_secrets *s1 = NULL, *s2 = NULL;
	struct talosconfig_input in = { "c1", eps, 1, nodes, 2, NULL, 0, NULL };
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	struct err err = ERR_INIT;
	bool reused = true;

	(void)state;
	assert_int_equal(talos_secrets_generate(&s1, &err), 0);
	assert_int_equal(talos_secrets_generate(&s2, &err), 0);
	assert_int_equal(talos_talosconfig_build(&a, &in, s1, &reused, &err), 0);
	assert_false(reused);
	assert_non_null(strstr(a.ptr, "context: c1\n"));
	in.previous = a.ptr;
	in.previous_len = a.len;
	assert_int_equal(talos_talosconfig_build(&b, &in, s1, &reused, &err), 0);
	assert_true(reused);
	assert_string_equal(a.ptr, b.ptr);
	/* Another OS CA: the old cert is not trusted, a new one is made. */
	assert_int_equal(talos_talosconfig_build(&c, &in, s2, &reused, &err), 0);
	assert_false(reused);
	assert_string_not_equal(a.ptr, c.ptr);
	/* Another role (strata etcd's os:etcd:backup): the admin cert is not
	 * reused for it, and that one is reused for itself. */
	buf_reset(&b);
	in.role = "os:etcd:backup";
	assert_int_equal(talos_talosconfig_build(&b, &in, s1, &reused, &err), 0);
	assert_false(reused);
	buf_reset(&c);
	in.previous = b.ptr;
	in.previous_len = b.len;
	assert_int_equal(talos_talosconfig_build(&c, &in, s1, &reused, &err), 0);
	assert_true(reused);
	in.role = NULL;
	assert_int_equal(talos_talosconfig_build(&a, &in, s1, &reused, &err), 0);
	assert_false(reused);
	buf_release(&a);
	buf_release(&b);
	buf_release(&c);
	talos_secrets_free(s1);
	talos_secrets_free(s2);
}

static void
test_talosconfig__endpoints_and_nodes_required(void **state)
{
	struct talos_secrets *s = NULL;
	struct talosconfig_input in = { "c1", eps, 0, nodes, 2, NULL, 0, NULL };
	struct buf a = BUF_INIT;
	struct err err = ERR_INIT;
	bool reused;

	(void)state;
	assert_int_equal(talos_secrets_generate(&s, &err), 0);
	assert_true(talos_talosconfig_build(&a, &in, s, &reused, &err) < 0);
	in.n_endpoints = 1;
	in.n_nodes = 0;
	assert_true(talos_talosconfig_build(&a, &in, s, &reused, &err) < 0);
	assert_non_null(strstr(err.msg, "at least one endpoint and one node"));
	buf_release(&a);
	talos_secrets_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_talosconfig__reuse_and_rotate),
		cmocka_unit_test(test_talosconfig__endpoints_and_nodes_required),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
