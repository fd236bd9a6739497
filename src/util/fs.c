#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The env root: one per process (commands act on one environment). */
static struct {
	int fd;
	char *path;
} root = { -1, NULL };

char *
fs_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	if (la && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

void
fs_root_close(void)
{
	if (root.fd >= 0)
		close(root.fd);
	free(root.path);
	root.fd = -1;
	root.path = NULL;
}

int
fs_root_open(const char *dir, bool fix_mode, struct err *err)
{
	struct stat st;
	int fd;

	if (root.path && !strcmp(root.path, dir))
		return 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		struct stat lst;

		if ((e == ELOOP || e == ENOTDIR) && lstat(dir, &lst) == 0 &&
		    S_ISLNK(lst.st_mode))
			return err_set(err, ERR_USAGE, "'%s' is a symlink; strata "
				       "opens the env folder itself, never a link: "
				       "pass the folder it points to", dir);
		return err_sys(err, e, "cannot open env folder '%s'", dir);
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return err_sys(err, e, "cannot stat '%s'", dir);
	}
	if (st.st_uid != geteuid()) {
		close(fd);
		return err_set(err, ERR_USAGE, "'%s' is owned by uid %ld, not by "
			       "you (uid %ld); it holds your cluster's secrets: "
			       "run 'chown -R %ld %s' if it is yours", dir,
			       (long)st.st_uid, (long)geteuid(), (long)geteuid(),
			       dir);
	}
	if (fix_mode && (st.st_mode & 07777) != FS_MODE_DIR_PRIVATE &&
	    fchmod(fd, FS_MODE_DIR_PRIVATE) < 0) {
		int e = errno;

		close(fd);
		return err_sys(err, e, "cannot chmod '%s'", dir);
	} else if (!fix_mode && (st.st_mode & 022)) {
		close(fd);
		return err_set(err, ERR_USAGE, "'%s' is writable by %s (mode "
			       "%04o); it holds your cluster's secrets: run "
			       "'chmod 700 %s'", dir,
			       (st.st_mode & 020) && (st.st_mode & 002)
			       ? "group and others" : (st.st_mode & 020)
			       ? "its group" : "others",
			       (unsigned)(st.st_mode & 07777), dir);
	}
	fs_root_close();
	root.fd = fd;
	root.path = xstrdup(dir);
	return 0;
}

/* path relative to the root, or NULL when path is not inside it. */
static const char *
root_rel(const char *path)
{
	size_t n;

	if (!root.path)
		return NULL;
	n = strlen(root.path);
	while (n > 1 && root.path[n - 1] == '/')
		n--;
	if (strncmp(path, root.path, n) || (path[n] != '/' && path[n] != '\0'))
		return NULL;
	path += n;
	while (*path == '/')
		path++;
	return path;
}

static int
refuse_link(struct err *err, const char *path, const char *comp)
{
	return err_set(err, ERR_FAIL, "'%s': '%s' is a symlink; strata never "
		       "writes through a link inside the env folder: replace "
		       "it with a real folder or file", path, comp);
}

/*
 * Walk from dfd down the directories of rel (all components but the last
 * when leaf is set) without following a symlink; mkdir_mode != 0 creates
 * missing ones. Returns an fd for the last directory, *name the leaf.
 */
static int
walk(int dfd, const char *path, const char *rel, bool leaf,
     mode_t mkdir_mode, const char **name, struct err *err)
{
	char *copy = xstrdup(rel), *s = copy;
	int fd = dup(dfd);

	if (fd < 0) {
		free(copy);
		return err_sys(err, errno, "dup");
	}
	for (;;) {
		char *slash = strchr(s, '/');
		int next;

		if (!slash && leaf)
			break;
		if (slash)
			*slash = '\0';
		if (!strcmp(s, "..")) {
			close(fd);
			free(copy);
			return err_set(err, ERR_FAIL, "'%s': '..' inside the env "
				       "folder is refused", path);
		}
		if (*s && strcmp(s, ".")) {
			if (mkdir_mode && mkdirat(fd, s, mkdir_mode) < 0 &&
			    errno != EEXIST) {
				int e = errno;

				close(fd);
				free(copy);
				return err_sys(err, e, "cannot create directory "
					       "'%s' in '%s'", s, path);
			}
			next = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				      O_CLOEXEC);
			if (next < 0) {
				int e = errno;
				struct stat st;
				int r;

				if ((e == ELOOP || e == ENOTDIR) &&
				    fstatat(fd, s, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISLNK(st.st_mode))
					r = refuse_link(err, path, s);
				else if (e == ENOTDIR)
					r = err_set(err, ERR_FAIL, "'%s': '%s' is "
						    "not a directory", path, s);
				else
					r = err_sys(err, e, "cannot open '%s' of "
						    "'%s'", s, path);
				if (e == ENOENT)
					err->code = ERR_NOTFOUND, r = -ERR_NOTFOUND;
				close(fd);
				free(copy);
				return r;
			}
			close(fd);
			fd = next;
		}
		if (!slash)
			break;
		s = slash + 1;
	}
	if (name)
		*name = rel + (s - copy);
	free(copy);
	return fd;
}

/*
 * Directory fd holding path, and its last component. Inside the root the
 * walk follows no symlink; outside, the parent directory is opened as
 * given (it is the caller's path) and only the leaf is checked.
 */
static int
open_parent(const char *path, const char **name, struct err *err)
{
	const char *rel = root_rel(path);
	const char *slash;
	char *dir;
	int fd;

	if (rel && *rel)
		return walk(root.fd, path, rel, true, 0, name, err);
	if (rel)
		return err_set(err, ERR_FAIL, "'%s' is the env folder itself", path);
	slash = strrchr(path, '/');
	if (!slash) {
		dir = xstrdup(".");
		*name = path;
	} else {
		dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
		*name = slash + 1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		fd = err_sys(err, e, "cannot open directory '%s'", dir);
		if (e == ENOENT)
			err->code = ERR_NOTFOUND, fd = -ERR_NOTFOUND;
	}
	free(dir);
	if (fd >= 0 && !**name) {
		close(fd);
		return err_set(err, ERR_FAIL, "'%s' names no file", path);
	}
	return fd;
}

char *
fs_temp_name(const char *name)
{
	unsigned char rnd[12];
	char hex[sizeof(rnd) * 2 + 1];
	size_t got = 0, i;

	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fputs("fatal: getrandom failed\n", stderr);
			abort();
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	/* Short enough for NAME_MAX whatever the name. */
	return xasprintf(".%.200s.%s.tmp", name, hex);
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fs_atomic_open(struct fs_atomic *w, const char *path, mode_t mode,
	       bool replace, struct err *err)
{
	const char *name;
	struct stat st;
	int dfd, fd = -1, tries, r = 0;
	char *tmp = NULL;

	memset(w, 0, sizeof(*w));
	w->dfd = w->fd = -1;
	if ((dfd = open_parent(path, &name, err)) < 0)
		return dfd;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode)) {
			r = refuse_link(err, path, name);
			goto fail;
		}
		if (!replace) {
			r = err_set(err, ERR_EXISTS, "'%s' exists; not overwritten",
				    path);
			goto fail;
		}
	}
	for (tries = 0; tries < 8 && fd < 0; tries++) {
		free(tmp);
		tmp = fs_temp_name(name);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			    O_CLOEXEC, mode);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		r = err_sys(err, errno, "cannot create a temporary file for '%s'",
			    path);
		goto fail;
	}
	/* The umask may have narrowed the mode; secrets must be exactly 0600. */
	if (fchmod(fd, mode) < 0) {
		r = err_sys(err, errno, "cannot chmod '%s'", path);
		close(fd);
		unlinkat(dfd, tmp, 0);
		goto fail;
	}
	w->dfd = dfd;
	w->fd = fd;
	w->tmp = tmp;
	w->path = xstrdup(path);
	w->name = xstrdup(name);
	w->replace = replace;
	return 0;
fail:
	close(dfd);
	free(tmp);
	return r;
}

int
fs_atomic_write(struct fs_atomic *w, const void *data, size_t len,
		struct err *err)
{
	if (w->fd < 0)
		return err_set(err, ERR_FAIL, "'%s': write after the file was "
			       "closed", w->path ? w->path : "?");
	if (write_all(w->fd, data, len) < 0)
		return err_sys(err, errno, "cannot write '%s'", w->path);
	w->written += len;
	return 0;
}

void
fs_atomic_abort(struct fs_atomic *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->dfd >= 0 && w->tmp)
		unlinkat(w->dfd, w->tmp, 0);
	if (w->dfd >= 0)
		close(w->dfd);
	free(w->tmp);
	free(w->path);
	free(w->name);
	memset(w, 0, sizeof(*w));
	w->dfd = w->fd = -1;
}

int
fs_atomic_commit(struct fs_atomic *w, struct err *err)
{
	int fd = w->fd, r = 0;

	if (fd < 0 || w->dfd < 0) {
		fs_atomic_abort(w);
		return err_set(err, ERR_FAIL, "commit of a file not open");
	}
	if (fsync(fd) < 0) {
		r = err_sys(err, errno, "cannot fsync '%s'", w->path);
		goto fail;
	}
	w->fd = -1;
	if (close(fd) < 0) {
		r = err_sys(err, errno, "cannot close '%s'", w->path);
		goto fail;
	}
	if (w->replace) {
		if (renameat(w->dfd, w->tmp, w->dfd, w->name) < 0) {
			r = err_sys(err, errno, "cannot rename into '%s'", w->path);
			goto fail;
		}
	} else {
		/* link(2) fails when name exists: never replaces a file that
		 * appeared meanwhile. */
		if (linkat(w->dfd, w->tmp, w->dfd, w->name, 0) < 0) {
			int e = errno;

			r = e == EEXIST
				? err_set(err, ERR_EXISTS, "'%s' appeared meanwhile; "
					  "not overwritten", w->path)
				: err_sys(err, e, "cannot create '%s'", w->path);
			goto fail;
		}
		unlinkat(w->dfd, w->tmp, 0);
	}
	free(w->tmp);
	w->tmp = NULL;     /* nothing left to unlink */
	if (fsync(w->dfd) < 0)
		r = err_sys(err, errno, "'%s' written, but its directory cannot "
			    "be synced", w->path);
fail:
	fs_atomic_abort(w);
	return r;
}

static int
write_atomic(const char *path, const void *data, size_t len, mode_t mode,
	     bool replace, struct err *err)
{
	struct fs_atomic w;
	int r;

	if ((r = fs_atomic_open(&w, path, mode, replace, err)) < 0)
		return r;
	if ((r = fs_atomic_write(&w, data, len, err)) < 0) {
		fs_atomic_abort(&w);
		return r;
	}
	return fs_atomic_commit(&w, err);
}

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		struct err *err)
{
	return write_atomic(path, data, len, mode, true, err);
}

int
fs_create_atomic(const char *path, const void *data, size_t len, mode_t mode,
		 struct err *err)
{
	return write_atomic(path, data, len, mode, false, err);
}

/* Read fd to its end, straight into out (no stack copy of the bytes: they
 * may be a secret); sized once from fstat when the file says its size. */
static int
read_fd(struct buf *out, int fd, const char *path, size_t max, struct err *err)
{
	struct stat st;
	size_t total = 0;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (size_t)st.st_size <= max)
		buf_grow(out, (size_t)st.st_size + 1);
	for (;;) {
		ssize_t n;

		if (out->cap - out->len < 4096)
			buf_grow(out, 65536);
		n = read(fd, out->ptr + out->len, out->cap - out->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, errno, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max) {
			out->ptr[out->len] = 0;
			return err_set(err, ERR_FAIL,
				       "'%s' is larger than %zu bytes", path,
				       max);
		}
		out->len += (size_t)n;
		out->ptr[out->len] = 0;
	}
	return 0;
}

int
fs_write_if_changed(const char *path, const void *data, size_t len,
		    mode_t mode, bool *changed, struct err *err)
{
	struct buf old = BUF_INIT;
	struct err ignore = ERR_INIT;
	const char *name;
	struct stat st;
	int same = 0, dfd, fd;

	/* Compare what is there without following a link (a link is then
	 * refused by the write). */
	old.secret = true;
	if ((dfd = open_parent(path, &name, &ignore)) >= 0) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			if (read_fd(&old, fd, path, len + 1, &ignore) == 0 &&
			    old.len == len && memcmp(old.ptr, data, len) == 0 &&
			    fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
			    (st.st_mode & 07777) == mode)
				same = 1;
			close(fd);
		}
		close(dfd);
	}
	buf_release(&old);
	if (changed)
		*changed = !same;
	if (same)
		return 0;
	return fs_write_atomic(path, data, len, mode, err);
}

int
fs_read_file(struct buf *out, const char *path, size_t max, struct err *err)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			err_sys(err, errno, "cannot open '%s'", path);
			err->code = ERR_NOTFOUND;
			return -ERR_NOTFOUND;
		}
		return err_sys(err, errno, "cannot open '%s'", path);
	}
	r = read_fd(out, fd, path, max, err);
	close(fd);
	return r;
}

bool
fs_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

bool
fs_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int
fs_mkdir_p(const char *path, mode_t mode, struct err *err)
{
	const char *rel = root_rel(path);
	char *p, *s;
	int r = 0;

	if (rel) {
		int fd = walk(root.fd, path, rel, false, mode, NULL, err);

		if (fd < 0)
			return fd;
		close(fd);
		return 0;
	}
	p = xstrdup(path);
	s = p;
	while (*s == '/')
		s++;
	for (;;) {
		char *slash = strchr(s, '/');

		if (slash)
			*slash = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			r = err_sys(err, errno, "cannot create directory '%s'",
				    p);
			break;
		}
		if (!slash)
			break;
		*slash = '/';
		s = slash + 1;
		while (*s == '/')
			s++;
		if (!*s)
			break;
	}
	if (r == 0 && !fs_is_dir(path))
		r = err_set(err, ERR_FAIL, "'%s' is not a directory", path);
	free(p);
	return r;
}

int
fs_remove(const char *path, struct err *err)
{
	const char *name;
	struct stat st;
	int dfd, fd, r = 0;
	DIR *d;
	struct dirent *de;

	if ((dfd = open_parent(path, &name, err)) < 0) {
		if (dfd == -ERR_NOTFOUND) {
			err_clear(err);
			return 0;
		}
		return dfd;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			r = err_sys(err, errno, "cannot stat '%s'", path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) < 0)
			r = err_sys(err, errno, "cannot remove '%s'", path);
		goto out;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		r = err_sys(err, errno, "cannot open '%s'", path);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			r = err_set(err, ERR_FAIL, "cannot remove '%s': it holds "
				    "a folder '%s' strata did not write", path,
				    de->d_name);
		else if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
			r = err_sys(err, errno, "cannot remove '%s/%s'", path,
				    de->d_name);
	}
	if (r == 0 && errno)
		r = err_sys(err, errno, "cannot read '%s'", path);
	closedir(d);
	if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		r = err_sys(err, errno, "cannot remove '%s'", path);
	if (r == 0 && fsync(dfd) < 0)
		r = err_sys(err, errno, "cannot sync the folder of '%s'", path);
out:
	close(dfd);
	return r;
}

/* "pid host" of the holder, for the message: the file is information. */
static void
lock_holder(int fd, char *out, size_t n)
{
	char buf[320];
	ssize_t got;
	long pid = 0;
	char host[256] = "", me[256] = "";
	int tries;

	gethostname(me, sizeof(me) - 1);
	/* The holder writes its line right after taking the lock. */
	for (tries = 0; tries < 200; tries++) {
		got = pread(fd, buf, sizeof(buf) - 1, 0);
		if (got > 0) {
			buf[got] = '\0';
			if (sscanf(buf, "%ld %255s", &pid, host) >= 1 && pid > 0 &&
			    buf[got - 1] == '\n' &&
			    /* not the line of a dead holder not yet replaced */
			    !(strcmp(host, me) == 0 && kill((pid_t)pid, 0) < 0 &&
			      errno == ESRCH))
				break;
		}
		pid = 0;
		usleep(5000);
	}
	if (pid > 0)
		snprintf(out, n, "pid %ld%s%s", pid, host[0] ? " on " : "", host);
	else
		snprintf(out, n, "another process");
}

int
fs_lock_acquire(struct fs_lock *lk, const char *dir, struct err *err)
{
	const char *rel = root_rel(dir);
	char host[256] = "", who[320], line[320];
	char *path = fs_join(dir, ".lock");
	int fd, n;

	lk->fd = -1;
	lk->held = 0;
	if (rel && !*rel)
		fd = openat(root.fd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW |
			    O_CLOEXEC, 0600);
	else
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		n = err_sys(err, errno, "cannot open '%s'", path);
		free(path);
		return n;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			lock_holder(fd, who, sizeof(who));
			err_set(err, ERR_LOCKED, "environment is locked by %s "
				"('%s'); wait for it to finish", who, path);
		} else {
			err_sys(err, errno, "cannot lock '%s'", path);
		}
		close(fd);
		free(path);
		return -err->code;
	}
	/* Held: the kernel drops it when this process ends. */
	gethostname(host, sizeof(host) - 1);
	n = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), host);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n) {
		n = err_sys(err, errno, "cannot write '%s'", path);
		close(fd);
		free(path);
		return n;
	}
	free(path);
	lk->fd = fd;
	lk->held = 1;
	return 0;
}

void
fs_lock_release(struct fs_lock *lk)
{
	/* Never unlink: another process may already hold the same inode
	 * open, waiting. Emptying it says no one holds it. */
	if (lk->held && lk->fd >= 0) {
		if (ftruncate(lk->fd, 0) < 0) {
			/* Information only; the kernel lock is what counts. */
		}
		close(lk->fd);
	}
	lk->fd = -1;
	lk->held = 0;
}

char *
fs_path_normalise(const char *path)
{
	struct buf out = BUF_INIT;
	const char **seg = xcalloc(strlen(path) + 2, sizeof(char *));
	size_t *len = xcalloc(strlen(path) + 2, sizeof(size_t));
	size_t n = 0, ups = 0, i;
	bool abs = path[0] == '/';
	const char *p = path;

	while (*p) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == 0 || (l == 1 && p[0] == '.')) {
			/* skip */
		} else if (l == 2 && p[0] == '.' && p[1] == '.') {
			if (n > ups)
				n--;
			else if (!abs) {
				seg[n] = p;
				len[n++] = l;
				ups++;
			}
		} else {
			seg[n] = p;
			len[n++] = l;
		}
		p += l + (e != NULL);
	}
	if (abs)
		buf_addch(&out, '/');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(&out, '/');
		buf_add(&out, seg[i], len[i]);
	}
	if (!out.len)
		buf_addch(&out, '.');
	free(seg);
	free(len);
	return buf_detach(&out, NULL);
}
