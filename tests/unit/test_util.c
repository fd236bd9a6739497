/* Unit tests for src/util: err chains, buf, fs (atomic write, lock), net. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/isolate.h"
#include "util/net.h"
#include "util/num.h"
#include "util/proc.h"
#include "util/clock.h"
#include "phase/phase.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

static char tmpdir[64];

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/strata-unit.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

static int
teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
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

/*
 * What a freed block still holds. Under ASan (every test build) freed
 * memory sits in quarantine, unfilled: unpoison and look.
 */
static int
freed_block_holds(const char *p, size_t n, const char *needle)
{
#if defined(__SANITIZE_ADDRESS__)
	size_t k = strlen(needle), i;

	__asan_unpoison_memory_region((void *)p, n);
	for (i = 0; i + k <= n; i++)
		if (!memcmp(p + i, needle, k))
			return 1;
	return 0;
#else
	(void)p; (void)n; (void)needle;
	return -1;
#endif
}

static void
test_buf__secret_wipes_on_growth_and_release(void **state)
{
	struct buf plain = BUF_INIT, sec = BUF_INIT_SECRET;
	const char *key = "PRIVATE-KEY-0123456789";
	char *old_plain, *old_sec;
	size_t cap_plain, cap_sec;
	int i;

	if (freed_block_holds("", 0, "") < 0)
		skip();
	/* After a prefix: the allocator keeps its own data at the start of
	 * a freed block. */
	buf_adds(&plain, "prefix-prefix-prefix-prefix-prefix-");
	buf_adds(&sec, "prefix-prefix-prefix-prefix-prefix-");
	buf_adds(&plain, key);
	buf_adds(&sec, key);
	old_plain = plain.ptr;
	old_sec = sec.ptr;
	cap_plain = plain.cap;
	cap_sec = sec.cap;
	for (i = 0; i < 200; i++) {
		buf_adds(&plain, "more text to make it grow ");
		buf_adds(&sec, "more text to make it grow ");
	}
	assert_ptr_not_equal(sec.ptr, old_sec);
	assert_non_null(strstr(sec.ptr, key));
	/* realloc left the key behind in the plain one: the check sees it. */
	if (plain.ptr != old_plain)
		assert_int_equal(freed_block_holds(old_plain, cap_plain, key), 1);
	assert_int_equal(freed_block_holds(old_sec, cap_sec, key), 0);
	/* Release wipes too, and the flag survives it. */
	old_sec = sec.ptr;
	cap_sec = sec.cap;
	buf_release(&sec);
	assert_int_equal(freed_block_holds(old_sec, cap_sec, key), 0);
	assert_true(sec.secret);
	buf_adds(&sec, key);
	buf_reset(&sec);
	assert_int_equal(freed_block_holds(sec.ptr, sec.cap, key), 0);
	buf_release(&sec);
	buf_release(&plain);
	{
		char *s = xasprintf("prefix-prefix-prefix-prefix-%s", key);
		size_t n = strlen(s);

		secret_strfree(s);
		assert_int_equal(freed_block_holds(s, n, key), 0);
	}
}

static void
test_proc__protect_makes_process_not_dumpable(void **state)
{
	pid_t child;
	int status;

	assert_int_equal(prctl(PR_GET_DUMPABLE), 1);
	child = fork();
	if (child == 0) {
		struct err e = ERR_INIT;
		struct rlimit rl;

		if (proc_protect_secrets(&e) < 0)
			_exit(10);
		if (prctl(PR_GET_DUMPABLE) != 0)
			_exit(11);
		if (getrlimit(RLIMIT_CORE, &rl) < 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The first Ctrl-C sets the flag and cuts sleeps short; the second one
 * takes the default action (the process dies of SIGINT). */
static void
test_phase__first_sigint_flags_second_kills(void **state)
{
	pid_t child;
	int status;

	child = fork();
	if (child == 0) {
		long long t0;

		phase_install_signals();
		if (proc_interrupted || !proc_sleep_ms(30))
			_exit(10);
		raise(SIGINT);
		if (!proc_interrupted)
			_exit(11);
		t0 = clock_mono_ms();
		if (proc_sleep_ms(5000) || clock_mono_ms() - t0 > 1000)
			_exit(12);
		raise(SIGINT);
		_exit(13);   /* survived the second one */
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	if (WIFEXITED(status))
		fail_msg("child exited %d", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGINT);
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

/* ---- isolate ---- */

static int isolate_parent_flag;

static int
iso_pack(void *ctx, struct buf *out, struct err *err)
{
	(void)err;
	isolate_parent_flag = 1;   /* the child's copy, not the parent's */
	isolate_put_str(out, ctx);
	isolate_put_str(out, NULL);
	isolate_put_long(out, -42);
	isolate_put_mem(out, "a\0b", 3);
	return 0;
}

static void
test_isolate__result_and_pack_round_trip(void **state)
{
	struct buf out = BUF_INIT_SECRET, mem = BUF_INIT;
	struct isolate_reader rd;
	struct err err = ERR_INIT;
	char *s, *n;

	(void)state;
	isolate_parent_flag = 0;
	assert_int_equal(isolate_run(iso_pack, "hello", &out, &err), 0);
	assert_int_equal(isolate_parent_flag, 0);
	isolate_reader_init(&rd, &out);
	s = isolate_get_str(&rd);
	n = isolate_get_str(&rd);
	assert_string_equal(s, "hello");
	assert_null(n);
	assert_int_equal(isolate_get_long(&rd), -42);
	isolate_get_mem(&rd, &mem);
	assert_int_equal(mem.len, 3);
	assert_memory_equal(mem.ptr, "a\0b", 3);
	assert_false(rd.bad);
	assert_int_equal(rd.left, 0);
	/* Reading past the end is a failure, not garbage. */
	assert_null(isolate_get_str(&rd));
	assert_true(rd.bad);
	free(s);
	buf_release(&mem);
	buf_release_secret(&out);
}

static int
iso_fail(void *ctx, struct buf *out, struct err *err)
{
	(void)ctx;
	buf_adds(out, "partial");
	return err_set(err, ERR_USAGE, "bad thing in the child");
}

static int
iso_die(void *ctx, struct buf *out, struct err *err)
{
	(void)ctx;
	(void)out;
	(void)err;
	raise(SIGKILL);
	return 0;
}

static int
iso_upper(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *in = ctx;

	if (!in->len)
		return err_set(err, ERR_FAIL, "empty input");
	for (size_t i = 0; i < in->len; i++)
		buf_addch(out, (char)(in->ptr[i] >= 'a' && in->ptr[i] <= 'z'
				      ? in->ptr[i] - 32 : in->ptr[i]));
	return 0;
}
ISOLATE_OP(iso_upper);

/* A fresh copy of the binary serves the step (from threads too). */
static void
test_isolate__spawn_runs_a_listed_function_in_a_fresh_process(void **state)
{
	struct buf out = BUF_INIT_SECRET;
	struct err err = ERR_INIT;

	(void)state;
	assert_int_equal(isolate_spawn(iso_upper, "ab\0c", 4, &out, &err), 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.ptr, "AB\0C", 4);
	buf_release_secret(&out);
	assert_int_equal(isolate_spawn(iso_upper, "", 0, &out, &err), -ERR_FAIL);
	assert_string_equal(err.msg, "empty input");
	/* Not listed: refused, nothing run. */
	assert_true(isolate_spawn(iso_fail, "x", 1, &out, &err) < 0);
	assert_string_equal(err.msg, "isolated step: function not listed "
			    "with ISOLATE_OP");
	buf_release_secret(&out);
}

static void
test_isolate__error_and_death_reach_the_parent(void **state)
{
	struct buf out = BUF_INIT_SECRET;
	struct err err = ERR_INIT;

	(void)state;
	assert_int_equal(isolate_run(iso_fail, NULL, &out, &err), -ERR_USAGE);
	assert_int_equal(err.code, ERR_USAGE);
	assert_string_equal(err.msg, "bad thing in the child");
	assert_string_equal(out.ptr, "partial");
	buf_release_secret(&out);
	err_clear(&err);
	assert_true(isolate_run(iso_die, NULL, &out, &err) < 0);
	assert_string_equal(err.msg, "isolated step died (signal 9)");
	assert_int_equal(out.len, 0);
}

/* num: a malformed value is an error, not 0 (atoi's answer) */
static void
test_num__parse_int_checked(void **state)
{
	int v = 42;

	(void)state;
	assert_int_equal(num_parse_int("8", 0, 99, &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(num_parse_int("-12", -20, 20, &v), 0);
	assert_int_equal(v, -12);
	assert_int_equal(num_parse_int("2147483647", 0, 2147483647, &v), 0);
	assert_int_equal(v, 2147483647);
	v = 42;
	assert_int_equal(num_parse_int("", 0, 99, &v), -1);
	assert_int_equal(num_parse_int(NULL, 0, 99, &v), -1);
	assert_int_equal(num_parse_int("abc", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("12abc", 0, 99, &v), -1);
	assert_int_equal(num_parse_int(" 12", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("12 ", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("+12", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("-", -9, 99, &v), -1);
	assert_int_equal(num_parse_int("1-2", -9, 99, &v), -1);
	assert_int_equal(num_parse_int("0x10", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("100", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("-1", 0, 99, &v), -1);
	assert_int_equal(num_parse_int("99999999999999999999", 0, 2147483647, &v), -1);
	assert_int_equal(v, 42);       /* untouched by every failure */
	/* a prefix: the major of "8.4.1" */
	assert_int_equal(num_parse_int_n("8.4.1", 1, 0, 99, &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(num_parse_int_n("8.4.1", 0, 0, 99, &v), -1);
	assert_int_equal(num_parse_int_n("8.4.1", 3, 0, 999, &v), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err__chain_reads_outermost_first),
		cmocka_unit_test(test_err__wrap_truncates_without_overflow),
		cmocka_unit_test(test_err__kind_kept_by_wrap_cleared_by_set),
		cmocka_unit_test(test_buf__grows_and_detaches),
		cmocka_unit_test(test_buf__secret_wipes_on_growth_and_release),
		cmocka_unit_test(test_proc__protect_makes_process_not_dumpable),
		cmocka_unit_test(test_phase__first_sigint_flags_second_kills),
		cmocka_unit_test(test_fs__atomic_write_sets_mode_and_replaces),
		cmocka_unit_test(test_fs__read_refuses_oversize_and_reports_missing),
		cmocka_unit_test(test_fs__mkdir_p_nested),
		cmocka_unit_test(test_net__ipv4_strict),
		cmocka_unit_test(test_net__cidr_and_membership),
		cmocka_unit_test(test_net__mac_normalised),
		cmocka_unit_test(test_isolate__result_and_pack_round_trip),
		cmocka_unit_test(test_isolate__error_and_death_reach_the_parent),
		cmocka_unit_test(test_isolate__spawn_runs_a_listed_function_in_a_fresh_process),
		cmocka_unit_test(test_num__parse_int_checked),
	};

	return cmocka_run_group_tests_name("util", tests, setup, teardown);
}
