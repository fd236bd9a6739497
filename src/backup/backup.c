#include "backup/backup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "age/age.h"
#include "util/fs.h"
#include "util/tar.h"

#define FILE_MAX (256u << 20)
#define MAX_DEPTH 8

/* The lock and strata's temp files (".NAME.HEX.tmp") stay out. */
static bool
skip_name(const char *name, int depth)
{
	size_t n = strlen(name);

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return true;
	if (depth == 0 && !strcmp(name, ".lock"))
		return true;
	return name[0] == '.' && n > 4 && !strcmp(name + n - 4, ".tmp");
}

static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pass 1 collects the entries (name order, folders before what is in
 * them), so the archive is sized once and file contents are read straight
 * into it: no second copy of a secret in memory. */
struct entry {
	char *rel;                 /* "nodes/" for a folder */
	char *full;
	enum tar_type type;
	mode_t mode;
	size_t size;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

static void
entries_release(struct entries *es)
{
	size_t i;

	for (i = 0; i < es->n; i++) {
		free(es->v[i].rel);
		free(es->v[i].full);
	}
	free(es->v);
}

static void
push(struct entries *es, char *rel, char *full, enum tar_type type,
     const struct stat *sb)
{
	if (es->n == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 32;
		es->v = xrealloc(es->v, es->cap * sizeof(*es->v));
	}
	es->v[es->n].rel = rel;
	es->v[es->n].full = full;
	es->v[es->n].type = type;
	es->v[es->n].mode = sb->st_mode;
	es->v[es->n].size = type == TAR_FILE ? (size_t)sb->st_size : 0;
	es->n++;
}

/* ENV/etcd/NAME.snapshot: left out, except the one named keep (etcd/NAME). */
static bool
skip_snapshot(const char *rel, const char *name, const char *keep)
{
	size_t n = strlen(name);
	char *sub;
	bool skip;

	if (strcmp(rel, "etcd") || n < 9 || strcmp(name + n - 9, ".snapshot"))
		return false;
	if (!keep)
		return true;
	sub = fs_join(rel, name);
	skip = strcmp(sub, keep) != 0;
	free(sub);
	return skip;
}

static int
collect(struct entries *es, const char *root, const char *rel, int depth,
	const char *keep, struct backup_stats *st, struct err *err)
{
	char *path = rel[0] ? fs_join(root, rel) : xstrdup(root);
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > MAX_DEPTH) {
		r = err_set(err, ERR_FAIL, "'%s': folders nested too deep", path);
		goto out;
	}
	if (!(d = opendir(path))) {
		r = err_sys(err, errno, "cannot read '%s'", path);
		goto out;
	}
	while ((de = readdir(d))) {
		if (skip_name(de->d_name, depth))
			continue;
		if (skip_snapshot(rel, de->d_name, keep)) {
			st->snapshots_left_out++;
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), names_cmp);
	for (i = 0; i < n && r == 0; i++) {
		char *sub = rel[0] ? fs_join(rel, names[i]) : xstrdup(names[i]);
		char *full = fs_join(root, sub);
		struct stat sb;

		if (lstat(full, &sb) < 0) {
			r = err_sys(err, errno, "cannot stat '%s'", full);
		} else if (S_ISDIR(sb.st_mode)) {
			push(es, xasprintf("%s/", sub), xstrdup(full), TAR_DIR, &sb);
			st->dirs++;
			r = collect(es, root, sub, depth + 1, keep, st, err);
		} else if (S_ISREG(sb.st_mode)) {
			push(es, sub, full, TAR_FILE, &sb);
			sub = full = NULL;   /* owned by the entry now */
		} else {
			/* A link could point anywhere; its target is not the
			 * env's to copy. */
			st->skipped++;
		}
		free(sub);
		free(full);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
out:
	free(path);
	return r;
}

static int
add_file(struct buf *tar, const struct entry *e, struct backup_stats *st,
	 struct err *err)
{
	size_t before;
	int r;

	if ((r = tar_header(tar, e->rel, e->size, e->mode & 0644, TAR_FILE,
			    err)) < 0)
		return r;
	before = tar->len;
	if ((r = fs_read_file(tar, e->full, e->size, err)) < 0)
		return err_wrap(err, "'%s' changed while it was read (is an apply "
				"running without the lock?)", e->rel);
	if (tar->len - before != e->size)
		return err_set(err, ERR_FAIL, "'%s' changed size while it was read",
			       e->rel);
	tar_pad(tar, e->size);
	st->files++;
	st->bytes += e->size;
	return 0;
}

int
backup_archive(struct buf *tar, const char *env_dir, const char *keep_snapshot,
	       struct backup_stats *st, struct err *err)
{
	char *cfg = fs_join(env_dir, "config.yml");
	struct entries es = { 0 };
	size_t total = 1024, i;
	int r;

	memset(st, 0, sizeof(*st));
	if (!fs_exists(cfg)) {
		free(cfg);
		return err_set(err, ERR_USAGE, "'%s' has no config.yml; it is not "
			       "an environment folder", env_dir);
	}
	free(cfg);
	tar->secret = true;
	if ((r = collect(&es, env_dir, "", 0, keep_snapshot, st, err)) < 0)
		goto out;
	for (i = 0; i < es.n; i++)
		total += tar_entry_bytes(es.v[i].size);
	buf_grow(tar, total);
	for (i = 0; i < es.n && r == 0; i++) {
		if (es.v[i].type == TAR_DIR)
			r = tar_header(tar, es.v[i].rel, 0, 0700, TAR_DIR, err);
		else
			r = add_file(tar, &es.v[i], st, err);
	}
	if (r == 0)
		tar_finish(tar);
out:
	entries_release(&es);
	return r;
}

int
backup_make(struct buf *out, const char *env_dir,
	    const struct backup_keys *keys, struct backup_stats *st,
	    struct err *err)
{
	struct buf tar = BUF_INIT;
	int r;

	if (!keys->n_recipients && !keys->passphrase)
		return err_set(err, ERR_USAGE, "no key to encrypt the backup to: "
			       "set backup.recipients (age1... keys) or "
			       "backup.passphrase in config.yml");
	if (keys->n_recipients && keys->passphrase)
		return err_set(err, ERR_USAGE, "backup.recipients and "
			       "backup.passphrase are both set; age files hold "
			       "either recipients or one passphrase: keep one");
	if ((r = backup_archive(&tar, env_dir, keys->etcd_snapshot, st, err)) < 0)
		goto out;
	if (keys->passphrase)
		r = age_encrypt_passphrase(out, tar.ptr, tar.len, keys->passphrase,
					   0, err);
	else
		r = age_encrypt(out, tar.ptr, tar.len, keys->recipients,
				keys->n_recipients, err);
	if (r < 0)
		err_wrap(err, "encrypt");
out:
	buf_release(&tar);
	return r;
}

/* Pass 1: every entry sane, config.yml at the top. */
static int
check_archive(const struct buf *tar, struct backup_stats *st, struct err *err)
{
	struct tar_reader rd;
	struct tar_entry e;
	bool has_config = false;
	int r;

	tar_reader_init(&rd, tar->ptr, tar->len);
	while ((r = tar_next(&rd, &e, err)) > 0) {
		if (e.type == TAR_DIR && !e.name[0])
			continue;   /* "./" itself */
		if (!tar_name_safe(e.name))
			return err_set(err, ERR_FAIL, "the archive holds '%s', a "
				       "name outside the env folder; refusing it",
				       e.name);
		if (e.type == TAR_OTHER)
			return err_set(err, ERR_FAIL, "the archive holds '%s', "
				       "which is neither a file nor a folder",
				       e.name);
		if (e.type == TAR_FILE) {
			st->files++;
			st->bytes += e.size;
			has_config |= !strcmp(e.name, "config.yml");
		} else {
			st->dirs++;
		}
	}
	if (r < 0)
		return err_wrap(err, "the archive in the backup");
	if (!has_config)
		return err_set(err, ERR_FAIL, "the backup holds no config.yml; it "
			       "is not a strata env backup");
	return 0;
}

static int
unpack(const struct buf *tar, const char *dest, struct err *err)
{
	struct tar_reader rd;
	struct tar_entry e;
	int r;

	tar_reader_init(&rd, tar->ptr, tar->len);
	while ((r = tar_next(&rd, &e, err)) > 0) {
		char *path;

		if (e.type == TAR_DIR && !e.name[0])
			continue;
		path = fs_join(dest, e.name);

		if (e.type == TAR_DIR) {
			size_t n = strlen(path);

			if (n && path[n - 1] == '/')
				path[n - 1] = 0;
			r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err);
		} else {
			char *slash = strrchr(path, '/');

			*slash = 0;
			r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err);
			*slash = '/';
			if (r == 0)
				r = fs_write_atomic(path, e.data, e.size,
						    (e.mode & 0044) == 0044 &&
						    strcmp(e.name, "secrets.yaml")
						    ? FS_MODE_PUBLIC : FS_MODE_SECRET,
						    err);
		}
		free(path);
		if (r < 0)
			return r;
	}
	return r;
}

int
backup_restore(const void *age, size_t len, const char *dest_dir,
	       const struct restore_keys *keys, struct backup_stats *st,
	       struct err *err)
{
	struct buf tar = BUF_INIT;
	struct age_keys ak;
	enum age_fail fail = AGE_OK;
	struct stat sb;
	int r;

	memset(st, 0, sizeof(*st));
	if (lstat(dest_dir, &sb) == 0)
		return err_set(err, ERR_USAGE, "'%s' already exists; restore "
			       "never writes into an existing folder (move it "
			       "away or name another)", dest_dir);
	memset(&ak, 0, sizeof(ak));
	ak.identities = keys->identities;
	ak.n_identities = keys->n_identities;
	ak.passphrases = keys->passphrase ? &keys->passphrase : NULL;
	ak.n_passphrases = keys->passphrase ? 1 : 0;
	if (!ak.n_identities && !ak.n_passphrases)
		return err_set(err, ERR_USAGE, "no key to open the backup: give "
			       "--identity FILE or a passphrase");
	tar.secret = true;
	r = age_decrypt_keys(&tar, age, len, &ak, &fail, err);
	if (r < 0) {
		buf_release(&tar);
		if (fail == AGE_FAIL_NO_MATCH)
			return err_set(err, ERR_FAIL, "none of the given keys opens "
				       "this backup (wrong identity or passphrase)");
		return err_wrap(err, "the backup cannot be decrypted");
	}
	if ((r = check_archive(&tar, st, err)) < 0)
		goto out;
	if ((r = fs_mkdir_p(dest_dir, FS_MODE_DIR_PRIVATE, err)) < 0)
		goto out;
	if ((r = unpack(&tar, dest_dir, err)) < 0)
		err_wrap(err, "unpacking into '%s' failed part way; remove the "
			 "folder and restore again", dest_dir);
out:
	buf_release(&tar);
	return r;
}
