/* Unit tests for src/plan/observe's parsing of what Proxmox reports: a
 * count of cores or MiB that is not a number is an error, never a 0 that
 * plan would read as a change to apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "plan/observe.h"

static void
test_observe__int(void **state)
{
	static const char *const bad[] = {
		"", "x", "8x", " 8", "-1", "+4", "4.0", "current=", "current=x",
		"99999999999", "current=4096,x", NULL,
	};
	int v = -7;
	size_t i;

	(void)state;
	assert_int_equal(observe_int("4", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(observe_int("current=4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(observe_int("0", &v), 0);
	assert_int_equal(v, 0);
	for (i = 0; bad[i]; i++) {
		v = -7;
		assert_int_equal(observe_int(bad[i], &v), -1);
		assert_int_equal(v, -7);   /* untouched */
	}
	assert_int_equal(observe_int(NULL, &v), -1);
}

static void
test_observe__pending(void **state)
{
	struct vm_spec s;
	struct err e = ERR_INIT;
	json_t *p;

	(void)state;
	memset(&s, 0, sizeof(s));
	p = json_loads("[{\"key\":\"cores\",\"value\":2,\"pending\":\"4\"},"
		       "{\"key\":\"memory\",\"value\":\"current=2048\",\"pending\":\"4096\"},"
		       "{\"key\":\"name\",\"value\":\"not a number\"}]", 0, NULL);
	assert_int_equal(observe_pending(&s, p, &e), 0);
	json_decref(p);
	assert_int_equal(s.cores, 2);
	assert_int_equal(s.pending_cores, 4);
	assert_int_equal(s.memory_mib, 2048);
	assert_int_equal(s.pending_memory_mib, 4096);

	memset(&s, 0, sizeof(s));
	p = json_loads("[{\"key\":\"memory\",\"value\":\"2048\",\"pending\":\"lots\"}]",
		       0, NULL);
	assert_int_equal(observe_pending(&s, p, &e), -1);
	json_decref(p);
	assert_non_null(strstr(e.msg, "pending memory 'lots' is not a number"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_observe__int),
		cmocka_unit_test(test_observe__pending),
	};

	return cmocka_run_group_tests_name("observe", tests, NULL, NULL);
}
