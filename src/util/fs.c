#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *
fs_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	if (la && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

static int
fsync_dir_of(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int fd, r = 0;

	if (!slash) {
		free(dir);
		dir = xstrdup(".");
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		r = fsync(fd);
		close(fd);
	}
	free(dir);
	return r;
}

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		struct err *err)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	const char *p = data;
	int fd, r = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  mode);
	if (fd < 0) {
		r = err_sys(err, errno, "cannot create '%s'", tmp);
		goto out;
	}
	/* The umask may have narrowed the mode; secrets must be exactly 0600. */
	if (fchmod(fd, mode) < 0) {
		r = err_sys(err, errno, "cannot chmod '%s'", tmp);
		goto fail;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = err_sys(err, errno, "cannot write '%s'", tmp);
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = err_sys(err, errno, "cannot fsync '%s'", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = err_sys(err, errno, "cannot close '%s'", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = err_sys(err, errno, "cannot rename '%s' to '%s'", tmp, path);
		goto fail;
	}
	fsync_dir_of(path);
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	return r;
}

int
fs_write_if_changed(const char *path, const void *data, size_t len,
		    mode_t mode, bool *changed, struct err *err)
{
	struct buf old = BUF_INIT;
	struct err ignore = ERR_INIT;
	struct stat st;
	int same = 0, r;

	if (fs_read_file(&old, path, len + 1, &ignore) == 0 &&
	    old.len == len && memcmp(old.ptr, data, len) == 0 &&
	    stat(path, &st) == 0 && (st.st_mode & 07777) == mode)
		same = 1;
	buf_release_secret(&old);
	if (changed)
		*changed = !same;
	if (same)
		return 0;
	r = fs_write_atomic(path, data, len, mode, err);
	return r;
}

int
fs_read_file(struct buf *out, const char *path, size_t max, struct err *err)
{
	char chunk[8192];
	size_t total = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			err_sys(err, errno, "cannot open '%s'", path);
			err->code = ERR_NOTFOUND;
			return -ERR_NOTFOUND;
		}
		return err_sys(err, errno, "cannot open '%s'", path);
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return err_sys(err, errno, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max) {
			close(fd);
			return err_set(err, ERR_FAIL,
				       "'%s' is larger than %zu bytes", path,
				       max);
		}
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	return 0;
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
	char *p = xstrdup(path);
	char *s = p;
	int r = 0;

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

static int
lock_holder_alive(const char *path, long *pid_out)
{
	struct buf b = BUF_INIT;
	struct err ignore = ERR_INIT;
	char host[256] = "", me[256] = "";
	long pid = 0;
	int alive = 1;

	if (fs_read_file(&b, path, 4096, &ignore) < 0) {
		buf_release(&b);
		return 1;
	}
	if (sscanf(b.ptr, "%ld %255s", &pid, host) >= 1 && pid > 0) {
		gethostname(me, sizeof(me) - 1);
		if ((!host[0] || strcmp(host, me) == 0) &&
		    kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			alive = 0;
	}
	*pid_out = pid;
	buf_release(&b);
	return alive;
}

int
fs_lock_acquire(struct fs_lock *lk, const char *dir, struct err *err)
{
	char host[256] = "";
	char line[320];
	int tries, fd;

	lk->path = fs_join(dir, ".lock");
	lk->held = 0;
	gethostname(host, sizeof(host) - 1);
	for (tries = 0; tries < 2; tries++) {
		long pid = 0;

		fd = open(lk->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  0600);
		if (fd >= 0) {
			int n = snprintf(line, sizeof(line), "%ld %s\n",
					 (long)getpid(), host);
			if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
				int e = errno;
				close(fd);
				unlink(lk->path);
				return err_sys(err, e, "cannot write '%s'",
					       lk->path);
			}
			close(fd);
			lk->held = 1;
			return 0;
		}
		if (errno != EEXIST)
			return err_sys(err, errno, "cannot create '%s'",
				       lk->path);
		if (lock_holder_alive(lk->path, &pid)) {
			err_set(err, ERR_LOCKED,
				"environment is locked by pid %ld ('%s'); "
				"wait for it to finish, or remove the file if "
				"that process is gone", pid, lk->path);
			return -ERR_LOCKED;
		}
		/* Stale: the holder died. Take it over. */
		unlink(lk->path);
	}
	return err_set(err, ERR_LOCKED, "cannot take lock '%s'", lk->path);
}

void
fs_lock_release(struct fs_lock *lk)
{
	if (lk->path && lk->held)
		unlink(lk->path);
	free(lk->path);
	lk->path = NULL;
	lk->held = 0;
}
