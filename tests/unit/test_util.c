/* Unit tests for src/util: err chains, buf, fs (atomic write, lock), net. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/net.h"

static char tmpdir[64];

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/strata-unit.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_err__chain_reads_outermost_first(void **state)
{
	struct err e = ERR_INIT;
	int r;

	r = err_set(&e, ERR_FAIL, "HTTP %d: %s", 500, "boom");
	assert_int_equal(r, -ERR_FAIL);
	r = err_wrap(&e, "POST /nodes/%s/qemu", "pve1");
	r = err_wrap(&e, "create vm '%s'", "cp-1");
	assert_int_equal(r, -ERR_FAIL);
	assert_string_equal(e.msg, "create vm 'cp-1': POST /nodes/pve1/qemu: HTTP 500: boom");
	assert_int_equal(err_exit_code(&e), 1);
	err_set(&e, ERR_USAGE, "bad");
	assert_int_equal(err_exit_code(&e), 2);
}

static void
test_err__wrap_truncates_without_overflow(void **state)
{
	struct err e = ERR_INIT;
	char big[2000];
	int i;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(&e, ERR_FAIL, "%s", big);
	for (i = 0; i < 10; i++)
		err_wrap(&e, "layer %d", i);
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	assert_memory_equal(e.msg, "layer 9: layer 8: ", 18);
}

/* The kind survives wrapping, is cleared by a new message, and answers
 * "may it have happened?" without reading the text. */
static void
test_err__kind_kept_by_wrap_cleared_by_set(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(e.kind, ERRK_NONE);
	assert_true(err_outcome_unknown(&e));
	err_set(&e, ERR_FAIL, "GET /x: HTTP 500: boom");
	assert_int_equal(err_kind(&e, ERRK_HTTP_STATUS, 500), -ERR_FAIL);
	err_wrap(&e, "create vm '%s'", "cp-1");
	assert_int_equal(e.kind, ERRK_HTTP_STATUS);
	assert_int_equal(e.status, 500);
	assert_false(err_outcome_unknown(&e));
	err_set(&e, ERR_FAIL, "something else");
	assert_int_equal(e.kind, ERRK_NONE);
	assert_int_equal(e.status, 0);
	err_kind(&e, ERRK_UNSENT, 0);
	assert_false(err_outcome_unknown(&e));
	err_kind(&e, ERRK_TLS_TRUST, 0);
	assert_false(err_outcome_unknown(&e));
	err_kind(&e, ERRK_MAYBE_SENT, 0);
	assert_true(err_outcome_unknown(&e));
	err_kind(&e, ERRK_TIMEOUT, 0);
	assert_true(err_outcome_unknown(&e));
	assert_string_equal(err_kind_name(ERRK_REFUSED), "refused");
	err_clear(&e);
	assert_int_equal(e.kind, ERRK_NONE);
}

static void
test_buf__grows_and_detaches(void **state)
{
	struct buf b = BUF_INIT;
	char *p;
	size_t len;
	int i;

	assert_string_equal(b.ptr, "");
	for (i = 0; i < 1000; i++)
		buf_addf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.ptr));
	assert_memory_equal(b.ptr, "0,1,2,", 6);
	p = buf_detach(&b, &len);
	assert_int_equal(len, strlen(p));
	assert_string_equal(b.ptr, "");
	free(p);
	buf_release(&b);
}

static void
test_fs__atomic_write_sets_mode_and_replaces(void **state)
{
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	char *path = fs_join(tmpdir, "secret");
	struct stat st;
	bool changed;

	assert_int_equal(fs_write_atomic(path, "one", 3, FS_MODE_SECRET, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fs_write_atomic(path, "two!", 4, FS_MODE_SECRET, &e), 0);
	assert_int_equal(fs_read_file(&b, path, 100, &e), 0);
	assert_string_equal(b.ptr, "two!");
	assert_int_equal(fs_write_if_changed(path, "two!", 4, FS_MODE_SECRET, &changed, &e), 0);
	assert_false(changed);
	assert_int_equal(fs_write_if_changed(path, "three", 5, FS_MODE_SECRET, &changed, &e), 0);
	assert_true(changed);
	buf_release(&b);
	free(path);
}

static void
test_fs__read_refuses_oversize_and_reports_missing(void **state)
{
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	char *path = fs_join(tmpdir, "big");
	char *missing = fs_join(tmpdir, "nope");

	assert_int_equal(fs_write_atomic(path, "0123456789", 10, 0644, &e), 0);
	assert_true(fs_read_file(&b, path, 5, &e) < 0);
	assert_non_null(strstr(e.msg, "larger than 5 bytes"));
	buf_reset(&b);
	assert_int_equal(fs_read_file(&b, missing, 5, &e), -ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "cannot open"));
	buf_release(&b);
	free(path);
	free(missing);
}

static void
test_fs__lock_is_exclusive_and_stale_lock_taken_over(void **state)
{
	struct fs_lock a = { 0 }, b = { 0 };
	struct err e = ERR_INIT;
	char *lockpath = fs_join(tmpdir, ".lock");
	pid_t child;
	int status;

	assert_int_equal(fs_lock_acquire(&a, tmpdir, &e), 0);
	assert_int_equal(fs_lock_acquire(&b, tmpdir, &e), -ERR_LOCKED);
	assert_non_null(strstr(e.msg, "locked by pid"));
	fs_lock_release(&b);
	fs_lock_release(&a);
	assert_false(fs_exists(lockpath));

	/* A lock left by a dead process is stale. */
	child = fork();
	if (child == 0) {
		struct fs_lock c = { 0 };
		struct err ce = ERR_INIT;

		_exit(fs_lock_acquire(&c, tmpdir, &ce) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(fs_exists(lockpath));
	assert_int_equal(fs_lock_acquire(&a, tmpdir, &e), 0);
	fs_lock_release(&a);
	free(lockpath);
}

static void
test_fs__mkdir_p_nested(void **state)
{
	struct err e = ERR_INIT;
	char *p = fs_join(tmpdir, "a/b/c");
	struct stat st;

	assert_int_equal(fs_mkdir_p(p, 0700, &e), 0);
	assert_true(fs_is_dir(p));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(fs_mkdir_p(p, 0700, &e), 0);
	free(p);
}

static void
test_net__ipv4_strict(void **state)
{
	uint32_t a;

	assert_true(net_ipv4_parse("10.0.0.1", &a));
	assert_int_equal(a, 0x0a000001);
	assert_true(net_ipv4_parse("255.255.255.255", &a));
	assert_false(net_ipv4_parse("10.0.0.300", &a));
	assert_false(net_ipv4_parse("10.0.0", &a));
	assert_false(net_ipv4_parse("10.0.0.1.2", &a));
	assert_false(net_ipv4_parse("010.0.0.1", &a));
	assert_false(net_ipv4_parse(" 10.0.0.1", &a));
	assert_false(net_ipv4_parse("10.0.0.1 ", &a));
	assert_false(net_ipv4_parse("", &a));
	assert_false(net_ipv4_parse("1..2.3", &a));
}

static void
test_net__cidr_and_membership(void **state)
{
	uint32_t n, a;
	int p;
	char s[16];

	assert_true(net_cidr_parse("10.0.0.0/24", &n, &p));
	assert_int_equal(p, 24);
	assert_false(net_cidr_parse("10.0.0.1/24", &n, &p));
	assert_true(net_ifaddr_parse("10.0.0.1/24", &a, &p));
	assert_false(net_cidr_parse("10.0.0.0/33", &n, &p));
	assert_false(net_cidr_parse("10.0.0.0/", &n, &p));
	assert_false(net_cidr_parse("10.0.0.0/024", &n, &p));
	assert_true(net_cidr_parse("0.0.0.0/0", &n, &p));
	net_cidr_parse("10.0.0.0/24", &n, &p);
	net_ipv4_parse("10.0.0.200", &a);
	assert_true(net_in(a, n, p));
	net_ipv4_parse("10.0.1.1", &a);
	assert_false(net_in(a, n, p));
	assert_string_equal(net_ipv4_str(0xc0a80101, s), "192.168.1.1");
	assert_true(net_overlap(0x0a000000, 8, 0x0a010000, 16));
	assert_false(net_overlap(0x0a000000, 16, 0x0a010000, 16));
}

static void
test_net__mac_normalised(void **state)
{
	char mac[18];

	assert_true(net_mac_parse("bc:24:11:aa:0f:01", mac));
	assert_string_equal(mac, "BC:24:11:AA:0F:01");
	assert_false(net_mac_parse("bc:24:11:aa:0f", mac));
	assert_false(net_mac_parse("bc-24-11-aa-0f-01", mac));
	assert_false(net_mac_parse("bc:24:11:aa:0f:0g", mac));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err__chain_reads_outermost_first),
		cmocka_unit_test(test_err__wrap_truncates_without_overflow),
		cmocka_unit_test(test_err__kind_kept_by_wrap_cleared_by_set),
		cmocka_unit_test(test_buf__grows_and_detaches),
		cmocka_unit_test(test_fs__atomic_write_sets_mode_and_replaces),
		cmocka_unit_test(test_fs__read_refuses_oversize_and_reports_missing),
		cmocka_unit_test(test_fs__lock_is_exclusive_and_stale_lock_taken_over),
		cmocka_unit_test(test_fs__mkdir_p_nested),
		cmocka_unit_test(test_net__ipv4_strict),
		cmocka_unit_test(test_net__cidr_and_membership),
		cmocka_unit_test(test_net__mac_normalised),
	};

	return cmocka_run_group_tests_name("util", tests, setup, teardown);
}
