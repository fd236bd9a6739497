/*
 * backup: the streaming env backup and restore (src/backup). Round trips
 * through real files, a large file kept across many age chunks, and every
 * failure leaving nothing: no target folder, no temporary sibling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "age/age.h"
#include "backup/backup.h"
#include "util/fs.h"
#include "util/tar.h"
#include "testutil.h"

static char tmpdir[64];
static char *id, *rec;

static int
setup(void **state)
{
	struct err err = ERR_INIT;

	(void)state;
	strcpy(tmpdir, "/tmp/strata-backup-XXXXXX");
	if (!mkdtemp(tmpdir) || age_keygen(&id, &rec, &err) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(rec);
	age_free_secret(id);
	return tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static char *
path(const char *rel)
{
	return fs_join(tmpdir, rel);
}

static void
put(const char *rel, const void *data, size_t len)
{
	struct err err = ERR_INIT;
	char *p = path(rel);

	assert_int_equal(fs_write_atomic(p, data, len, 0600, &err), 0);
	free(p);
}

/* Entries in the folder holding rel (restore's temp siblings included). */
static int
entries_in(const char *rel)
{
	char *p = path(rel);
	struct dirent *de;
	DIR *d = opendir(p);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	free(p);
	return n;
}

/* An env folder with a 300 KiB "snapshot" spanning several age chunks. */
static unsigned char *big;
#define BIG (300 * 1024 + 7)

static void
make_env(void)
{
	char *p = path("env");

	assert_int_equal(tu_sh("mkdir -p %s/nodes %s/etcd", p, p), 0);
	free(p);
	put("env/config.yml", "name: lab\n", 10);
	put("env/secrets.yaml", "secret: 1\n", 10);
	put("env/nodes/cp-1.yaml", "machine: {}\n", 12);
	big = xmalloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (unsigned char)(i * 31 + (i >> 10));
	put("env/etcd/a.snapshot", big, BIG);
	put("env/etcd/b.snapshot", "old", 3);
}

static void
test_backup__round_trip(void **state)
{
	struct err err = ERR_INIT;
	struct backup_stats st;
	const char *r[1] = { rec }, *ids[1] = { id };
	struct backup_keys bk = { r, 1, NULL, "etcd/a.snapshot" };
	struct restore_keys rk = { ids, 1, NULL };
	struct buf got = BUF_INIT;
	char *out = path("out/lab.age"), *dest = path("restored/env"), *f;

	(void)state;
	make_env();
	assert_int_equal(tu_sh("mkdir -p %s/out", tmpdir), 0);
	f = path("env");
	assert_int_equal(backup_write(out, f, &bk, &st, &err), 0);
	free(f);
	assert_int_equal(st.files, 4);          /* b.snapshot left out */
	assert_int_equal(st.snapshots_left_out, 1);
	assert_int_equal(st.bytes, 10 + 10 + 12 + BIG);
	assert_true(st.written > st.bytes);
	assert_int_equal(entries_in("out"), 1);  /* no temp file left */
	/* never over an existing file, and the file stays as it was */
	f = path("env");
	assert_int_equal(backup_write(out, f, &bk, &st, &err), -ERR_EXISTS);
	free(f);
	assert_int_equal(entries_in("out"), 1);

	assert_int_equal(backup_restore(out, dest, &rk, &st, &err), 0);
	assert_int_equal(st.files, 4);
	assert_int_equal(st.bytes, 10 + 10 + 12 + BIG);
	f = path("restored/env/etcd/a.snapshot");
	assert_int_equal(fs_read_file(&got, f, 1 << 20, &err), 0);
	free(f);
	assert_int_equal(got.len, BIG);
	assert_memory_equal(got.ptr, big, BIG);
	f = path("restored/env/etcd/b.snapshot");
	assert_false(fs_exists(f));
	free(f);
	assert_int_equal(entries_in("restored"), 1);
	/* restore never writes into an existing folder */
	assert_int_equal(backup_restore(out, dest, &rk, &st, &err), -ERR_USAGE);
	if (tu_sh("command -v age >/dev/null 2>&1") == 0) {
		/* the streamed file is plain age + ustar */
		put("key.txt", id, strlen(id));
		assert_int_equal(tu_sh("mkdir %s/x && age -d -i %s/key.txt %s | tar -x -C %s/x && "
				       "cmp %s/x/etcd/a.snapshot %s/env/etcd/a.snapshot",
				       tmpdir, tmpdir, out, tmpdir, tmpdir, tmpdir), 0);
	}
	buf_release(&got);
	free(out);
	free(dest);
	free(big);
}

/* Restore failures: nothing at the target, nothing beside it. */
static void
refused(const char *file, const char *const *ids, const char *want)
{
	struct err err = ERR_INIT;
	struct backup_stats st;
	struct restore_keys rk = { ids, 1, NULL };
	char *f = path(file), *dest = path("bad/env");

	assert_int_equal(tu_sh("mkdir -p %s/bad", tmpdir), 0);
	assert_true(backup_restore(f, dest, &rk, &st, &err) < 0);
	if (!strstr(err.msg, want))
		fail_msg("'%s' does not say '%s'", err.msg, want);
	assert_int_equal(entries_in("bad"), 0);
	free(f);
	free(dest);
}

static void
test_backup__failures_leave_nothing(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, ar = BUF_INIT;
	const char *r[1] = { rec }, *ids[1] = { id };
	char *other, *orec;
	unsigned char data[200000];

	(void)state;
	/* a valid backup (made above) cut short: the files already unpacked
	 * into the temp folder go with it */
	char *out = path("out/lab.age");
	assert_int_equal(fs_read_file(&enc, out, 1 << 24, &err), 0);
	free(out);
	put("cut.age", enc.ptr, enc.len - 100);
	refused("cut.age", ids, "truncated");
	/* a flipped byte late in the file */
	enc.ptr[enc.len - 5000] ^= 1;
	put("flip.age", enc.ptr, enc.len);
	refused("flip.age", ids, "altered");
	/* the wrong identity */
	assert_int_equal(age_keygen(&other, &orec, &err), 0);
	const char *oids[1] = { other };
	refused("out/lab.age", oids, "none of the given keys");
	/* a name outside the folder after a good file */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)i;
	tar_add(&ar, "config.yml", "name: x\n", 8, 0600, TAR_FILE, &err);
	tar_add(&ar, "big", data, sizeof(data), 0600, TAR_FILE, &err);
	tar_add(&ar, "../evil", "x", 1, 0600, TAR_FILE, &err);
	tar_finish(&ar);
	buf_reset(&enc);
	assert_int_equal(age_encrypt(&enc, ar.ptr, ar.len, r, 1, &err), 0);
	put("evil.age", enc.ptr, enc.len);
	refused("evil.age", ids, "outside the env folder");
	char *evil = path("evil");
	assert_false(fs_exists(evil));
	free(evil);
	/* no config.yml */
	buf_reset(&ar);
	tar_add(&ar, "big", data, sizeof(data), 0600, TAR_FILE, &err);
	tar_finish(&ar);
	buf_reset(&enc);
	assert_int_equal(age_encrypt(&enc, ar.ptr, ar.len, r, 1, &err), 0);
	put("nocfg.age", enc.ptr, enc.len);
	refused("nocfg.age", ids, "no config.yml");
	/* an archive cut inside an entry (the age file itself is whole) */
	buf_reset(&ar);
	tar_add(&ar, "config.yml", "name: x\n", 8, 0600, TAR_FILE, &err);
	tar_add(&ar, "big", data, sizeof(data), 0600, TAR_FILE, &err);
	buf_reset(&enc);
	assert_int_equal(age_encrypt(&enc, ar.ptr, ar.len - 1000, r, 1, &err), 0);
	put("tarcut.age", enc.ptr, enc.len);
	refused("tarcut.age", ids, "entry 'big'");
	buf_release(&ar);
	buf_release(&enc);
	free(orec);
	age_free_secret(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backup__round_trip),
		cmocka_unit_test(test_backup__failures_leave_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
