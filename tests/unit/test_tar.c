/* util/tar: round trips, long names through the prefix field, damage
 * detected, and the name check restore relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util/tar.h"

static void
test_tar__round_trip(void **state)
{
	struct buf ar = BUF_INIT;
	struct err err = ERR_INIT;
	struct tar_reader rd;
	struct tar_entry e;
	char longname[200];

	(void)state;
	memset(longname, 'a', sizeof(longname));
	memcpy(longname + 90, "/", 1);
	memcpy(longname + 150, "/", 1);
	longname[199] = 0;
	assert_int_equal(tar_add(&ar, "nodes/", NULL, 0, 0700, TAR_DIR, &err), 0);
	assert_int_equal(tar_add(&ar, "nodes/cp-1.yaml", "abc", 3, 0600, TAR_FILE, &err), 0);
	assert_int_equal(tar_add(&ar, longname, "x", 1, 0644, TAR_FILE, &err), 0);
	assert_int_equal(tar_add(&ar, "empty", "", 0, 0600, TAR_FILE, &err), 0);
	tar_finish(&ar);
	assert_int_equal(ar.len % 512, 0);

	tar_reader_init(&rd, ar.ptr, ar.len);
	assert_int_equal(tar_next(&rd, &e, &err), 1);
	assert_string_equal(e.name, "nodes/");
	assert_int_equal(e.type, TAR_DIR);
	assert_int_equal(tar_next(&rd, &e, &err), 1);
	assert_string_equal(e.name, "nodes/cp-1.yaml");
	assert_int_equal(e.size, 3);
	assert_memory_equal(e.data, "abc", 3);
	assert_int_equal(e.mode, 0600);
	assert_int_equal(tar_next(&rd, &e, &err), 1);
	assert_string_equal(e.name, longname);
	assert_int_equal(tar_next(&rd, &e, &err), 1);
	assert_string_equal(e.name, "empty");
	assert_int_equal(e.size, 0);
	assert_int_equal(tar_next(&rd, &e, &err), 0);
	buf_release(&ar);
}

static void
test_tar__damage_and_limits(void **state)
{
	struct buf ar = BUF_INIT;
	struct err err = ERR_INIT;
	struct tar_reader rd;
	struct tar_entry e;
	char name[300];

	(void)state;
	memset(name, 'b', sizeof(name));
	name[299] = 0;
	assert_true(tar_add(&ar, name, "x", 1, 0600, TAR_FILE, &err) < 0);
	assert_non_null(strstr(err.msg, "name too long"));
	assert_int_equal(tar_add(&ar, "f", "hello", 5, 0600, TAR_FILE, &err), 0);
	tar_finish(&ar);
	ar.ptr[3] ^= 1;   /* a changed name: the checksum no longer fits */
	tar_reader_init(&rd, ar.ptr, ar.len);
	assert_true(tar_next(&rd, &e, &err) < 0);
	assert_non_null(strstr(err.msg, "bad header checksum"));
	ar.ptr[3] ^= 1;
	/* Cut inside the contents, then before the end marker. */
	tar_reader_init(&rd, ar.ptr, 512 + 2);
	assert_true(tar_next(&rd, &e, &err) < 0);
	assert_non_null(strstr(err.msg, "truncated"));
	tar_reader_init(&rd, ar.ptr, 1024);
	assert_int_equal(tar_next(&rd, &e, &err), 1);
	assert_true(tar_next(&rd, &e, &err) < 0);
	assert_non_null(strstr(err.msg, "no end marker"));
	buf_release(&ar);
}

static void
test_tar__names(void **state)
{
	(void)state;
	assert_true(tar_name_safe("config.yml"));
	assert_true(tar_name_safe("nodes/cp-1.yaml"));
	assert_true(tar_name_safe("nodes/"));
	assert_true(tar_name_safe("a..b/.hidden"));
	assert_false(tar_name_safe(""));
	assert_false(tar_name_safe("/etc/passwd"));
	assert_false(tar_name_safe("../x"));
	assert_false(tar_name_safe("nodes/../../x"));
	assert_false(tar_name_safe("a/./b"));
	assert_false(tar_name_safe("a//b"));
	assert_false(tar_name_safe(".."));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tar__round_trip),
		cmocka_unit_test(test_tar__damage_and_limits),
		cmocka_unit_test(test_tar__names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
