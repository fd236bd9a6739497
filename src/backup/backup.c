#include "backup/backup.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "age/age.h"
#include "util/fs.h"
#include "util/tar.h"

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
 * them); pass 2 streams each file's bytes into the archive in pieces, so
 * neither the archive nor a whole file is ever held in memory. */
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

/* ---- backup: entries -> ustar -> age -> the file, piece by piece ---- */

#define PIECE 65536

static int
atomic_sink(void *ctx, const void *data, size_t len, struct err *err)
{
	return fs_atomic_write(ctx, data, len, err);
}

static int
put_header(struct age_writer *w, const char *name, size_t size, mode_t mode,
	   enum tar_type type, struct err *err)
{
	struct buf h = BUF_INIT;
	int r;

	if ((r = tar_header(&h, name, size, mode, type, err)) == 0)
		r = age_writer_write(w, h.ptr, h.len, err);
	buf_release(&h);
	return r;
}

static int
put_pad(struct age_writer *w, size_t size, struct err *err)
{
	static const unsigned char zero[2 * 512];
	size_t n = (512 - size % 512) % 512;

	return n ? age_writer_write(w, zero, n, err) : 0;
}

/* A file's bytes, read in pieces: exactly the size it had when listed. */
static int
put_file(struct age_writer *w, const struct entry *e, struct backup_stats *st,
	 struct err *err)
{
	unsigned char *piece = xmalloc(PIECE);
	size_t done = 0;
	struct stat sb;
	int fd, r;

	if ((r = put_header(w, e->rel, e->size, e->mode & 0644, TAR_FILE, err)) < 0)
		goto out;
	fd = open(e->full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = err_sys(err, errno, "cannot read '%s'", e->full);
		goto out;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size != e->size) {
		r = err_set(err, ERR_FAIL, "'%s' changed while it was read (is an "
			    "apply running without the lock?)", e->rel);
		close(fd);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, piece, PIECE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_sys(err, errno, "cannot read '%s'", e->full);
			break;
		}
		if (n == 0 || done + (size_t)n > e->size) {
			if (n || done != e->size)
				r = err_set(err, ERR_FAIL, "'%s' changed size "
					    "while it was read", e->rel);
			break;
		}
		if ((r = age_writer_write(w, piece, (size_t)n, err)) < 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (r == 0)
		r = put_pad(w, e->size, err);
	if (r == 0) {
		st->files++;
		st->bytes += e->size;
	}
out:
	secret_free(piece, PIECE);
	return r;
}

int
backup_write(const char *path, const char *env_dir,
	     const struct backup_keys *keys, struct backup_stats *st,
	     struct err *err)
{
	static const unsigned char end[2 * 512];
	char *cfg = fs_join(env_dir, "config.yml");
	struct entries es = { 0 };
	struct age_writer *w = NULL;
	struct fs_atomic fa;
	bool open_file = false;
	size_t i;
	int r;

	memset(st, 0, sizeof(*st));
	if (!keys->n_recipients && !keys->passphrase) {
		free(cfg);
		return err_set(err, ERR_USAGE, "no key to encrypt the backup to: "
			       "set backup.recipients (age1... keys) or "
			       "backup.passphrase in config.yml");
	}
	if (keys->n_recipients && keys->passphrase) {
		free(cfg);
		return err_set(err, ERR_USAGE, "backup.recipients and "
			       "backup.passphrase are both set; age files hold "
			       "either recipients or one passphrase: keep one");
	}
	if (!fs_exists(cfg)) {
		free(cfg);
		return err_set(err, ERR_USAGE, "'%s' has no config.yml; it is not "
			       "an environment folder", env_dir);
	}
	free(cfg);
	if ((r = collect(&es, env_dir, "", 0, keys->etcd_snapshot, st, err)) < 0)
		goto out;
	if ((r = fs_atomic_open(&fa, path, FS_MODE_SECRET, false, err)) < 0)
		goto out;
	open_file = true;
	if ((r = age_writer_open(&w, keys->recipients, keys->n_recipients,
				 keys->passphrase, 0, atomic_sink, &fa, err)) < 0) {
		err_wrap(err, "encrypt");
		goto out;
	}
	for (i = 0; i < es.n && r == 0; i++) {
		if (es.v[i].type == TAR_DIR)
			r = put_header(w, es.v[i].rel, 0, 0700, TAR_DIR, err);
		else
			r = put_file(w, &es.v[i], st, err);
	}
	if (r == 0)
		r = age_writer_write(w, end, sizeof(end), err);
	if (r < 0)
		goto out;
	r = age_writer_close(w, err);
	w = NULL;
	if (r < 0)
		goto out;
	st->written = fa.written;
	open_file = false;
	r = fs_atomic_commit(&fa, err);
out:
	age_writer_free(w);
	if (open_file)
		fs_atomic_abort(&fa);
	entries_release(&es);
	return r;
}

/* ---- restore: the file -> age -> ustar -> a temp folder -> ENV ---- */

static int
fd_source(void *ctx, void *buf, size_t cap, size_t *got, struct err *err)
{
	int fd = *(int *)ctx;
	ssize_t n;

	do
		n = read(fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_sys(err, errno, "cannot read the backup");
	*got = (size_t)n;
	return 0;
}

static int
age_source(void *ctx, void *buf, size_t cap, size_t *got, struct err *err)
{
	return age_reader_read(ctx, buf, cap, got, err);
}

/* Remove what restore made under dir (files and folders only). */
static void
remove_tree(int parent, const char *name, int depth)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || depth > 64 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		unlinkat(parent, name, 0);
		return;
	}
	while ((de = readdir(d))) {
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(sb.st_mode))
			remove_tree(fd, de->d_name, depth + 1);
		else
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
	unlinkat(parent, name, AT_REMOVEDIR);
}

/*
 * A restore killed part way (kill -9, power loss) leaves its temporary
 * sibling ".BASE.HEX.tmp" (fs_temp_name's shape) with secrets in it; the
 * next restore of the same target removes such folders of ours first.
 */
static void
remove_stale_temps(const char *parent, const char *base)
{
	size_t bl = strlen(base);
	struct dirent *de;
	DIR *d;
	int dfd;

	if ((dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		const char *n = de->d_name, *hex = n + 1 + bl + 1;
		struct stat sb;
		size_t i;

		if (n[0] != '.' || strncmp(n + 1, base, bl) || n[1 + bl] != '.' ||
		    strlen(hex) != 24 + 4 || strcmp(hex + 24, ".tmp"))
			continue;
		for (i = 0; i < 24 && isxdigit((unsigned char)hex[i]); i++)
			;
		if (i < 24 || fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid())
			continue;
		remove_tree(dfd, n, 0);
	}
	closedir(d);
}

/* Every entry sane; folders made, files written (atomically) into tmp. */
static int
unpack_stream(struct tar_stream *ts, const char *tmp, bool *has_config,
	      struct backup_stats *st, struct err *err)
{
	unsigned char *piece = xmalloc(PIECE);
	struct tar_entry e;
	int r;

	while ((r = tar_stream_next(ts, &e, err)) > 0) {
		struct fs_atomic fa;
		char *path, *slash;
		size_t got;

		if (e.type == TAR_DIR && !e.name[0])
			continue;   /* "./" itself */
		if (!tar_name_safe(e.name)) {
			r = err_set(err, ERR_FAIL, "the archive holds '%s', a "
				    "name outside the env folder; refusing it",
				    e.name);
			break;
		}
		if (e.type == TAR_OTHER) {
			r = err_set(err, ERR_FAIL, "the archive holds '%s', which "
				    "is neither a file nor a folder", e.name);
			break;
		}
		path = fs_join(tmp, e.name);
		if (e.type == TAR_DIR) {
			size_t n = strlen(path);

			if (n && path[n - 1] == '/')
				path[n - 1] = 0;
			r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err);
			st->dirs++;
			free(path);
			if (r < 0)
				break;
			continue;
		}
		slash = strrchr(path, '/');
		*slash = 0;
		r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err);
		*slash = '/';
		if (r == 0)
			r = fs_atomic_open(&fa, path, (e.mode & 0044) == 0044 &&
					   strcmp(e.name, "secrets.yaml")
					   ? FS_MODE_PUBLIC : FS_MODE_SECRET,
					   false, err);
		free(path);
		if (r < 0)
			break;
		while ((r = tar_stream_data(ts, piece, PIECE, &got, err)) == 0 &&
		       got)
			if ((r = fs_atomic_write(&fa, piece, got, err)) < 0)
				break;
		if (r < 0) {
			fs_atomic_abort(&fa);
			break;
		}
		if ((r = fs_atomic_commit(&fa, err)) < 0)
			break;
		st->files++;
		st->bytes += e.size;
		*has_config |= !strcmp(e.name, "config.yml");
	}
	secret_free(piece, PIECE);
	return r;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* tmp -> dest, never over something that appeared meanwhile. */
static int
move_into_place(const char *tmp, const char *dest, struct err *err)
{
	char *parent = xstrdup(dest), *slash;
	int r = 0, fd;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			r = err_set(err, ERR_USAGE, "'%s' appeared while the "
				    "backup was restored; nothing was changed "
				    "in it", dest);
		else
			r = err_sys(err, errno, "cannot rename '%s' to '%s'",
				    tmp, dest);
	}
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		strcpy(parent, ".");
	if (r == 0 && (fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	free(parent);
	return r;
}

/*
 * Make the temporary folder beside dest (its parent created if need be,
 * a killed run's leftovers removed), so the last step is one rename.
 */
static int
temp_sibling(const char *dest, char **tmp, struct err *err)
{
	char *dir = xstrdup(dest), *slash = strrchr(dir, '/'), *name;
	const char *parent = ".";
	int r = 0;

	*tmp = NULL;
	if (slash) {
		*slash = 0;
		parent = dir[0] ? dir : "/";
		if (dir[0])
			r = fs_mkdir_p(dir, FS_MODE_DIR_PRIVATE, err);
	}
	if (r == 0) {
		remove_stale_temps(parent, base_name(dest));
		name = fs_temp_name(base_name(dest));
		*tmp = slash ? fs_join(parent, name) : xstrdup(name);
		free(name);
		if (mkdir(*tmp, FS_MODE_DIR_PRIVATE) < 0) {
			r = err_sys(err, errno, "cannot create '%s'", *tmp);
			free(*tmp);
			*tmp = NULL;
		}
	}
	free(dir);
	return r;
}

int
backup_restore(const char *age_path, const char *dest_dir,
	       const struct restore_keys *keys, struct backup_stats *st,
	       struct err *err)
{
	struct age_reader *rd = NULL;
	struct tar_stream ts;
	struct age_keys ak;
	enum age_fail fail = AGE_OK;
	unsigned char rest[4096];
	char *tmp = NULL;
	bool has_config = false;
	struct stat sb;
	size_t got;
	int fd, r;

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
	if ((fd = open(age_path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(err, errno, "cannot open '%s'", age_path);
	if (age_reader_open(&rd, &ak, fd_source, &fd, &fail, err) < 0) {
		close(fd);
		if (fail == AGE_FAIL_NO_MATCH)
			return err_set(err, ERR_FAIL, "none of the given keys opens "
				       "this backup (wrong identity or passphrase)");
		return err_wrap(err, "the backup cannot be decrypted");
	}
	if ((r = temp_sibling(dest_dir, &tmp, err)) < 0)
		goto out;
	tar_stream_init(&ts, age_source, rd);
	r = unpack_stream(&ts, tmp, &has_config, st, err);
	/* the rest of the file must verify too (up to age's final chunk) */
	while (r == 0 && (r = age_reader_read(rd, rest, sizeof(rest), &got,
					      err)) == 0 && got)
		;
	if (r < 0) {
		err_wrap(err, fail == AGE_FAIL_PAYLOAD
			 ? "the backup cannot be decrypted; nothing was restored"
			 : "the backup was refused; nothing was restored");
		goto out;
	}
	if (!has_config) {
		r = err_set(err, ERR_FAIL, "the backup holds no config.yml; it "
			    "is not a strata env backup; nothing was restored");
		goto out;
	}
	r = move_into_place(tmp, dest_dir, err);
out:
	if (r < 0 && tmp)
		remove_tree(AT_FDCWD, tmp, 0);
	free(tmp);
	age_reader_free(rd);
	close(fd);
	return r;
}
