/*
 * Unit tests for src/util/iso: an image written by libisofs is read back by
 * an independent reader (python3-pycdlib, tests/unit/iso_check.py): volume
 * id, Rock Ridge and Joliet names, and every file's bytes (by SHA-256).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util/err.h"
#include "util/iso.h"

static char tmpdir[64];

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/strata-iso.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	return tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static void
sha256_hex(char out[65], const void *p, size_t n)
{
	unsigned char md[32];
	unsigned int len = 0;
	int i;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Write img to a file and run the pycdlib reader on it; its output. */
static char *
read_back(const struct buf *img)
{
	char *path = xasprintf("%s/img.iso", tmpdir);
	char *cmd, *out;
	FILE *f = fopen(path, "wb");
	int rc;

	assert_non_null(f);
	assert_int_equal(fwrite(img->ptr, 1, img->len, f), img->len);
	assert_int_equal(fclose(f), 0);
	cmd = xasprintf("/usr/bin/python3 %s/tests/unit/iso_check.py '%s' > '%s/out.txt' "
			"2>&1", SRCDIR, path, tmpdir);
	rc = system(cmd);
	out = tu_slurp(tmpdir, "out.txt");
	if (rc != 0)
		fail_msg("iso_check.py failed (%d):\n%s", rc, out);
	free(cmd);
	free(path);
	return out;
}

static void
expect_line(const char *out, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&line, fmt, ap);
	va_end(ap);
	buf_addch(&line, '\n');
	if (!strstr(out, line.ptr))
		fail_msg("missing line '%.*s' in:\n%s", (int)line.len - 1,
			 line.ptr, out);
	buf_release(&line);
}

static void
test_iso__cidata_reads_back_with_pycdlib(void **state)
{
	/* A config larger than one block, with bytes of every value. */
	struct buf ud = BUF_INIT, img = BUF_INIT;
	const char *md = "instance-id: strata-lab-cp-1\nlocal-hostname: cp-1\n";
	struct err err = ERR_INIT;
	char h1[65], h2[65], *out;
	int i;

	buf_adds(&ud, "version: v1alpha1\nmachine:\n  type: controlplane\n");
	for (i = 0; i < 20000; i++)
		buf_addch(&ud, (char)(i * 7));
	struct iso_file files[] = {
		{ "user-data", ud.ptr, ud.len },
		{ "meta-data", md, strlen(md) },
	};
	assert_int_equal(iso_build(&img, "cidata", files, 2, &err), 0);
	assert_true(img.len % 2048 == 0);
	assert_true(img.len < 3u << 20);   /* Talos reads at most 3 MiB */
	out = read_back(&img);
	sha256_hex(h1, ud.ptr, ud.len);
	sha256_hex(h2, md, strlen(md));
	expect_line(out, "volid cidata");
	expect_line(out, "rr 1");
	expect_line(out, "joliet 1");
	expect_line(out, "rr user-data %s", h1);
	expect_line(out, "rr meta-data %s", h2);
	expect_line(out, "joliet user-data %s", h1);
	expect_line(out, "joliet meta-data %s", h2);
	free(out);
	buf_release_secret(&img);
	buf_release(&ud);
}

static void
test_iso__empty_file_and_two_builds_agree_on_content(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct err err = ERR_INIT;
	struct iso_file files[] = { { "network-config", "", 0 } };
	char *out;

	assert_int_equal(iso_build(&a, "cidata", files, 1, &err), 0);
	assert_int_equal(iso_build(&b, "cidata", files, 1, &err), 0);
	assert_int_equal(a.len, b.len);
	out = read_back(&a);
	expect_line(out, "rr network-config "
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(out);
	buf_release(&a);
	buf_release(&b);
}

static void
test_iso__bad_volume_id_is_refused(void **state)
{
	struct buf img = BUF_INIT;
	struct err err = ERR_INIT;
	struct iso_file files[] = { { "x", "y", 1 } };

	assert_int_equal(iso_build(&img, "ci data", files, 1, &err), -1);
	assert_non_null(strstr(err.msg, "volume id 'ci data'"));
	assert_int_equal(img.len, 0);
	err_clear(&err);
	assert_int_equal(iso_build(&img, "", files, 1, &err), -1);
	assert_int_equal(iso_build(&img, "a-volume-id-longer-than-32-chars!",
				   files, 1, &err), -1);
}

static void
test_iso__duplicate_name_fails_with_libisofs_message(void **state)
{
	struct buf img = BUF_INIT;
	struct err err = ERR_INIT;
	struct iso_file files[] = { { "a", "1", 1 }, { "a", "2", 1 } };

	assert_int_equal(iso_build(&img, "cidata", files, 2, &err), -1);
	assert_non_null(strstr(err.msg, "build ISO image: a: "));
	buf_release(&img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso__cidata_reads_back_with_pycdlib),
		cmocka_unit_test(test_iso__empty_file_and_two_builds_agree_on_content),
		cmocka_unit_test(test_iso__bad_volume_id_is_refused),
		cmocka_unit_test(test_iso__duplicate_name_fails_with_libisofs_message),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
