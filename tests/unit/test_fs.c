/*
 * Unit tests for src/util/fs: the env root (symlinks refused, owner and
 * mode checked), random O_EXCL temp names, no-replace creation, removal
 * without following links, and the kernel lock (16 processes racing for a
 * stale lock, 100 trials: exactly one wins and the others name it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
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

static char tmpdir[64];
static char envdir[96], elsewhere[96];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/strata-unit-fs.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	fs_root_close();
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh env folder (0700) and a folder outside it, per test. */
static int
fresh(void **state)
{
	static int n;

	n++;
	snprintf(envdir, sizeof(envdir), "%s/env%d", tmpdir, n);
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere%d", tmpdir, n);
	if (mkdir(envdir, 0700) < 0 || mkdir(elsewhere, 0700) < 0)
		return -1;
	fs_root_close();
	return 0;
}

static int
count_entries(const char *dir)
{
	char *cmd = xasprintf("ls -A '%s' | wc -l", dir);
	FILE *fp = popen(cmd, "r");
	int n = -1;

	if (fp) {
		if (fscanf(fp, "%d", &n) != 1)
			n = -1;
		pclose(fp);
	}
	free(cmd);
	return n;
}

static void
test_root__symlinked_folder_inside_env_is_refused(void **state)
{
	struct err e = ERR_INIT;
	char *nodes = fs_join(envdir, "nodes");
	char *file = fs_join(envdir, "nodes/cp-1.yaml");

	assert_int_equal(symlink(elsewhere, nodes), 0);
	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_true(fs_mkdir_p(nodes, 0700, &e) < 0);
	assert_non_null(strstr(e.msg, "'nodes' is a symlink"));
	err_clear(&e);
	assert_true(fs_write_atomic(file, "CA KEY", 6, FS_MODE_SECRET, &e) < 0);
	assert_non_null(strstr(e.msg, "is a symlink"));
	assert_true(fs_write_if_changed(file, "CA KEY", 6, FS_MODE_SECRET, NULL,
					&e) < 0);
	/* Nothing was written where the link points. */
	assert_int_equal(count_entries(elsewhere), 0);
	free(nodes);
	free(file);
}

static void
test_root__symlinked_file_inside_env_is_refused(void **state)
{
	struct err e = ERR_INIT;
	char *link = fs_join(envdir, "secrets.yaml");
	char *target = fs_join(elsewhere, "stolen");
	bool changed;

	assert_int_equal(fs_write_atomic(target, "old", 3, 0600, &e), 0);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	/* Even with the same contents (a compare that followed the link
	 * would call it unchanged and never notice). */
	assert_true(fs_write_if_changed(link, "old", 3, 0600, &changed, &e) < 0);
	assert_non_null(strstr(e.msg, "'secrets.yaml' is a symlink"));
	assert_true(fs_write_atomic(link, "KEYS", 4, 0600, &e) < 0);
	assert_true(fs_create_atomic(link, "KEYS", 4, 0600, &e) < 0);
	{
		struct buf b = BUF_INIT;

		assert_int_equal(fs_read_file(&b, target, 100, &e), 0);
		assert_string_equal(b.ptr, "old");
		buf_release(&b);
	}
	assert_int_equal(count_entries(elsewhere), 1);
	free(link);
	free(target);
}

static void
test_root__dotdot_and_prefix_lookalike(void **state)
{
	struct err e = ERR_INIT;
	char *up = xasprintf("%s/../%s", envdir, "escaped");
	char *look = xasprintf("%sx", envdir);   /* env1x: not inside env1 */
	char *lookfile = fs_join(look, "f");

	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_true(fs_write_atomic(up, "x", 1, 0600, &e) < 0);
	assert_non_null(strstr(e.msg, "'..'"));
	assert_int_equal(mkdir(look, 0700), 0);
	assert_int_equal(fs_write_atomic(lookfile, "x", 1, 0600, &e), 0);
	free(up);
	free(look);
	free(lookfile);
}

static void
test_root__writes_inside_env_work(void **state)
{
	struct err e = ERR_INIT;
	char *dir = fs_join(envdir, "nodes/deep");
	char *file = fs_join(envdir, "nodes/deep/w.yaml");
	struct buf b = BUF_INIT;
	struct stat st;
	bool changed;

	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_int_equal(fs_mkdir_p(dir, 0700, &e), 0);
	assert_int_equal(fs_write_if_changed(file, "v1", 2, 0600, &changed, &e), 0);
	assert_true(changed);
	assert_int_equal(fs_write_if_changed(file, "v1", 2, 0600, &changed, &e), 0);
	assert_false(changed);
	assert_int_equal(fs_read_file(&b, file, 10, &e), 0);
	assert_string_equal(b.ptr, "v1");
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* No temporary file left behind. */
	assert_int_equal(count_entries(dir), 1);
	buf_release(&b);
	free(dir);
	free(file);
}

static void
test_root__bad_mode_and_owner_refused(void **state)
{
	struct err e = ERR_INIT;
	char *lnk = fs_join(tmpdir, "envlink");

	assert_int_equal(chmod(envdir, 0770), 0);
	assert_true(fs_root_open(envdir, false, &e) < 0);
	assert_non_null(strstr(e.msg, "writable by its group"));
	assert_non_null(strstr(e.msg, "chmod 700"));
	assert_int_equal(chmod(envdir, 0707), 0);
	assert_true(fs_root_open(envdir, false, &e) < 0);
	assert_non_null(strstr(e.msg, "writable by others"));
	/* init creates the folder: it fixes the mode instead. */
	assert_int_equal(fs_root_open(envdir, true, &e), 0);
	fs_root_close();
	{
		struct stat st;

		assert_int_equal(stat(envdir, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	/* A link to the env folder is not the folder. */
	unlink(lnk);
	assert_int_equal(symlink(envdir, lnk), 0);
	assert_true(fs_root_open(lnk, false, &e) < 0);
	assert_non_null(strstr(e.msg, "is a symlink"));
	if (geteuid() == 0) {
		assert_int_equal(chown(envdir, 4242, 4242), 0);
		assert_true(fs_root_open(envdir, false, &e) < 0);
		assert_non_null(strstr(e.msg, "owned by uid 4242"));
		assert_non_null(strstr(e.msg, "chown"));
		assert_int_equal(chown(envdir, 0, 0), 0);
	}
	free(lnk);
}

static void
test_tmp__names_random_and_planted_name_harmless(void **state)
{
	struct err e = ERR_INIT;
	char *a = fs_temp_name("state.json"), *b = fs_temp_name("state.json");
	char *file = fs_join(envdir, "state.json");
	char *old = xasprintf("%s.tmp.%ld", file, (long)getpid());
	char *target = fs_join(elsewhere, "t");

	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, ".state.json.", 12), 0);
	/* 12 random bytes in hex, then ".tmp" */
	assert_int_equal(strlen(a), strlen(".state.json.") + 24 + 4);
	/* The old predictable name, planted as a link, catches nothing. */
	assert_int_equal(symlink(target, old), 0);
	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_int_equal(fs_write_atomic(file, "{}", 2, 0600, &e), 0);
	assert_int_equal(count_entries(elsewhere), 0);
	free(a);
	free(b);
	free(file);
	free(old);
	free(target);
}

static void
test_create__never_replaces(void **state)
{
	struct err e = ERR_INIT;
	char *file = fs_join(envdir, "secrets.yaml");
	struct buf b = BUF_INIT;

	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_int_equal(fs_create_atomic(file, "first", 5, 0600, &e), 0);
	assert_int_equal(fs_create_atomic(file, "second", 6, 0600, &e), -ERR_EXISTS);
	assert_int_equal(fs_read_file(&b, file, 10, &e), 0);
	assert_string_equal(b.ptr, "first");
	assert_int_equal(count_entries(envdir), 1);
	buf_release(&b);
	free(file);
}

static void
test_remove__folder_files_and_links_not_followed(void **state)
{
	struct err e = ERR_INIT;
	char *nodes = fs_join(envdir, "nodes");
	char *f1 = fs_join(envdir, "nodes/a.yaml"), *f2 = fs_join(envdir, "nodes/b.yaml");
	char *lnk = fs_join(envdir, "nodes/c.yaml"), *kc = fs_join(envdir, "kubeconfig");
	char *target = fs_join(elsewhere, "keep");

	assert_int_equal(fs_root_open(envdir, false, &e), 0);
	assert_int_equal(fs_mkdir_p(nodes, 0700, &e), 0);
	assert_int_equal(fs_write_atomic(f1, "a", 1, 0600, &e), 0);
	assert_int_equal(fs_write_atomic(f2, "b", 1, 0600, &e), 0);
	assert_int_equal(fs_write_atomic(target, "k", 1, 0600, &e), 0);
	assert_int_equal(symlink(elsewhere, lnk), 0);
	assert_int_equal(symlink(target, kc), 0);
	assert_int_equal(fs_remove(nodes, &e), 0);
	assert_int_equal(fs_remove(kc, &e), 0);
	assert_false(fs_exists(nodes));
	assert_false(fs_exists(kc));
	assert_int_equal(fs_remove(nodes, &e), 0);   /* absent: fine */
	assert_int_equal(count_entries(elsewhere), 1);
	assert_true(fs_exists(target));
	free(nodes);
	free(f1);
	free(f2);
	free(lnk);
	free(kc);
	free(target);
}

static void
test_lock__exclusive_released_by_kernel_file_kept(void **state)
{
	struct fs_lock a = { 0 }, b = { 0 };
	struct err e = ERR_INIT;
	char *lockpath = fs_join(envdir, ".lock");
	char want[64];
	pid_t child;
	int status, p[2];

	assert_int_equal(fs_lock_acquire(&a, envdir, &e), 0);
	assert_int_equal(fs_lock_acquire(&b, envdir, &e), -ERR_LOCKED);
	snprintf(want, sizeof(want), "locked by pid %ld", (long)getpid());
	assert_non_null(strstr(e.msg, want));
	fs_lock_release(&b);
	fs_lock_release(&a);
	/* Release never unlinks: another process may hold the inode. */
	assert_true(fs_exists(lockpath));
	/* A holder killed with SIGKILL: the kernel released its lock. */
	assert_int_equal(pipe(p), 0);
	child = fork();
	if (child == 0) {
		struct fs_lock c = { 0 };
		struct err ce = ERR_INIT;
		char ch = fs_lock_acquire(&c, envdir, &ce) == 0 ? 'y' : 'n';

		if (write(p[1], &ch, 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	{
		char ch = 0;

		assert_int_equal(read(p[0], &ch, 1), 1);
		assert_int_equal(ch, 'y');
	}
	assert_int_equal(fs_lock_acquire(&a, envdir, &e), -ERR_LOCKED);
	snprintf(want, sizeof(want), "locked by pid %ld", (long)child);
	assert_non_null(strstr(e.msg, want));
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(fs_lock_acquire(&a, envdir, &e), 0);
	fs_lock_release(&a);
	close(p[0]);
	close(p[1]);
	free(lockpath);
}

struct race_result {
	pid_t pid;
	int rc;
	char msg[400];
};

static void
test_lock__16_racers_for_a_stale_lock_one_wins_100_trials(void **state)
{
	char *lockpath = fs_join(envdir, ".lock");
	int trial, i;

	for (trial = 0; trial < 100; trial++) {
		struct race_result res[16];
		pid_t kids[16], dead, winner = 0;
		int go[2], out[2], hold[2], nwin = 0;
		char *stale;
		struct err e = ERR_INIT;

		/* The file a dead holder left: its pid, this host. */
		dead = fork();
		if (dead == 0)
			_exit(0);
		waitpid(dead, NULL, 0);
		{
			char host[256] = "";

			gethostname(host, sizeof(host) - 1);
			stale = xasprintf("%ld %s\n", (long)dead, host);
		}
		assert_int_equal(fs_write_atomic(lockpath, stale, strlen(stale),
						 0600, &e), 0);
		free(stale);
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(out), 0);
		assert_int_equal(pipe(hold), 0);
		for (i = 0; i < 16; i++) {
			kids[i] = fork();
			assert_true(kids[i] >= 0);
			if (kids[i] == 0) {
				struct race_result r = { 0 };
				struct fs_lock lk = { 0 };
				struct err ce = ERR_INIT;
				char ch;

				close(go[1]);
				close(hold[1]);
				close(out[0]);
				if (read(go[0], &ch, 1) != 0)
					_exit(2);
				r.pid = getpid();
				r.rc = fs_lock_acquire(&lk, envdir, &ce);
				memcpy(r.msg, ce.msg, sizeof(r.msg) - 1);
				if (write(out[1], &r, sizeof(r)) != sizeof(r))
					_exit(2);
				/* Hold (or not) until every racer reported. */
				if (read(hold[0], &ch, 1) != 0)
					_exit(2);
				_exit(0);
			}
		}
		close(go[0]);
		close(out[1]);
		close(hold[0]);
		close(go[1]);   /* all start now */
		for (i = 0; i < 16; i++)
			assert_int_equal(read(out[0], &res[i], sizeof(res[i])),
					 sizeof(res[i]));
		close(hold[1]);
		for (i = 0; i < 16; i++)
			assert_int_equal(waitpid(kids[i], NULL, 0), kids[i]);
		close(out[0]);
		for (i = 0; i < 16; i++)
			if (res[i].rc == 0) {
				nwin++;
				winner = res[i].pid;
			}
		if (nwin != 1)
			fail_msg("trial %d: %d winners", trial, nwin);
		for (i = 0; i < 16; i++) {
			char want[64];

			if (res[i].rc == 0)
				continue;
			assert_int_equal(res[i].rc, -ERR_LOCKED);
			snprintf(want, sizeof(want), "locked by pid %ld ", (long)winner);
			if (!strstr(res[i].msg, want))
				fail_msg("trial %d: loser says '%s', winner %ld",
					 trial, res[i].msg, (long)winner);
		}
	}
	free(lockpath);
}

/* The streamed writer: nothing at the path until commit, the temporary
 * file gone after abort, 0600 exactly, and no replace when asked not to. */
static void
test_atomic__streamed_commit_abort_noreplace(void **state)
{
	struct err e = ERR_INIT;
	struct fs_atomic w;
	struct buf b = BUF_INIT;
	struct stat st;
	char *path = fs_join(elsewhere, "snap");
	int n = 0;
	DIR *dir;
	struct dirent *de;

	(void)state;
	assert_int_equal(fs_atomic_open(&w, path, FS_MODE_SECRET, false, &e), 0);
	assert_int_equal(fs_atomic_write(&w, "abc", 3, &e), 0);
	assert_int_equal(fs_atomic_write(&w, "def", 3, &e), 0);
	assert_false(fs_exists(path));
	fs_atomic_abort(&w);
	assert_false(fs_exists(path));
	dir = opendir(elsewhere);
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.' || strstr(de->d_name, ".tmp") != NULL;
	closedir(dir);
	assert_int_equal(n, 0);   /* the temporary file went too */

	assert_int_equal(fs_atomic_open(&w, path, FS_MODE_SECRET, false, &e), 0);
	assert_int_equal(fs_atomic_write(&w, "abc", 3, &e), 0);
	assert_int_equal(fs_atomic_write(&w, "def", 3, &e), 0);
	assert_int_equal(fs_atomic_commit(&w, &e), 0);
	assert_int_equal(fs_read_file(&b, path, 100, &e), 0);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.ptr, "abcdef", 6);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fs_atomic_open(&w, path, FS_MODE_SECRET, false, &e),
			 -ERR_EXISTS);
	buf_release(&b);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_root__symlinked_folder_inside_env_is_refused, fresh),
		cmocka_unit_test_setup(test_root__symlinked_file_inside_env_is_refused, fresh),
		cmocka_unit_test_setup(test_root__dotdot_and_prefix_lookalike, fresh),
		cmocka_unit_test_setup(test_root__writes_inside_env_work, fresh),
		cmocka_unit_test_setup(test_root__bad_mode_and_owner_refused, fresh),
		cmocka_unit_test_setup(test_tmp__names_random_and_planted_name_harmless, fresh),
		cmocka_unit_test_setup(test_create__never_replaces, fresh),
		cmocka_unit_test_setup(test_atomic__streamed_commit_abort_noreplace, fresh),
		cmocka_unit_test_setup(test_remove__folder_files_and_links_not_followed, fresh),
		cmocka_unit_test_setup(test_lock__exclusive_released_by_kernel_file_kept, fresh),
		cmocka_unit_test_setup(test_lock__16_racers_for_a_stale_lock_one_wins_100_trials, fresh),
	};

	return cmocka_run_group_tests_name("fs", tests, setup, teardown);
}
