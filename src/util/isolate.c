#include "util/isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"

/* libfyaml on a 1 MiB file takes milliseconds; this only bounds a hang. */
#define ISOLATE_TIMEOUT_MS 120000

/* What the child sends first; the result's bytes follow. */
struct reply {
	int r;
	struct err err;
	uint64_t len;
};

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * 0 when all n bytes came; -1 on EOF or error; -2 at the deadline, so a child
 * that never answers (one forked while another thread held a lock it
 * then needs) does not hold the parent forever. Ctrl-C does not cut it
 * short: the child, which may be writing files, takes milliseconds.
 */
static int
read_all(int fd, void *p, size_t n, long long deadline)
{
	char *c = p;

	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t g;
		int pr;

		if (clock_mono_ms() >= deadline)
			return -2;
		pr = poll(&pfd, 1, 50);
		if (pr < 0 && errno != EINTR)
			return -1;
		if (pr <= 0)
			continue;
		g = read(fd, c, n);
		if (g < 0 && errno == EINTR)
			continue;
		if (g <= 0)
			return -1;
		c += g;
		n -= (size_t)g;
	}
	return 0;
}

static void __attribute__((noreturn))
child(int fd, isolate_fn fn, void *ctx)
{
	struct buf out = BUF_INIT_SECRET;
	struct reply rep;

	memset(&rep, 0, sizeof(rep));
	err_clear(&rep.err);
	rep.r = fn(ctx, &out, &rep.err);
	rep.len = out.len;
	if (write_all(fd, &rep, sizeof(rep)) < 0 ||
	    write_all(fd, out.ptr, out.len) < 0)
		_exit(1);
	/* _exit: no atexit handlers, no stdio flush of the parent's
	 * buffered output; the memory goes with the process. */
	_exit(0);
}

/* Read the child's reply from fd, reap it, and hand on its result. */
static int
reply_from(pid_t pid, int fd, struct buf *out, struct err *err)
{
	struct reply rep;
	long long deadline = clock_mono_ms() + ISOLATE_TIMEOUT_MS;
	int status = 0, r;

	memset(&rep, 0, sizeof(rep));
	r = read_all(fd, &rep, sizeof(rep), deadline);
	if (r == 0) {
		buf_grow(out, rep.len);
		r = read_all(fd, out->ptr + out->len, rep.len, deadline);
		if (r == 0) {
			out->len += rep.len;
			out->ptr[out->len] = '\0';
		}
	}
	close(fd);
	if (r == -2)
		kill(pid, SIGKILL);   /* ours, by its pid */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == -2)
		return err_set(err, ERR_FAIL, "isolated step did not finish "
			       "within %d s", ISOLATE_TIMEOUT_MS / 1000);
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			return err_set(err, ERR_FAIL, "isolated step died "
				       "(signal %d)", WTERMSIG(status));
		return err_set(err, ERR_FAIL, "isolated step failed (its "
			       "result did not arrive)");
	}
	rep.err.msg[sizeof(rep.err.msg) - 1] = '\0';
	*err = rep.err;
	return rep.r;
}

int
isolate_run(isolate_fn fn, void *ctx, struct buf *out, struct err *err)
{
	int fds[2], r;
	pid_t pid;

	/* CLOEXEC: a child another thread spawns meanwhile runs without
	 * our pipe; the reply is length-prefixed, so EOF is never relied on. */
	if (pipe2(fds, O_CLOEXEC) < 0)
		return err_sys(err, errno, "isolated step: pipe");
	fflush(NULL);   /* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		r = err_sys(err, errno, "isolated step: fork");
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], fn, ctx);
	}
	close(fds[1]);
	return reply_from(pid, fds[0], out, err);
}

/* ---- spawn: a fresh process ---- */

extern const isolate_fn __start_isolate_ops[] __attribute__((weak));
extern const isolate_fn __stop_isolate_ops[] __attribute__((weak));

#define SERVE_ARG "--strata-isolated-step"

int
isolate_spawn(isolate_fn fn, const void *in, size_t inlen, struct buf *out,
	      struct err *err)
{
	posix_spawn_file_actions_t fa;
	char idx[24], *argv[] = { "strata", SERVE_ARG, idx, NULL };
	int to[2], from[2], r;
	size_t i, n = (size_t)(__stop_isolate_ops - __start_isolate_ops);
	uint64_t len = inlen;
	pid_t pid;

	for (i = 0; i < n && __start_isolate_ops[i] != fn; i++)
		;
	if (i == n)
		return err_set(err, ERR_FAIL, "isolated step: function not "
			       "listed with ISOLATE_OP");
	snprintf(idx, sizeof(idx), "%zu", i);
	if (pipe2(to, O_CLOEXEC) < 0)
		return err_sys(err, errno, "isolated step: pipe");
	if (pipe2(from, O_CLOEXEC) < 0) {
		r = err_sys(err, errno, "isolated step: pipe");
		close(to[0]);
		close(to[1]);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to[0], 0);
	posix_spawn_file_actions_adddup2(&fa, from[1], 1);
	r = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(to[0]);
	close(from[1]);
	if (r != 0) {
		close(to[1]);
		close(from[0]);
		return err_sys(err, r, "isolated step: cannot start "
			       "/proc/self/exe");
	}
	/* The child reads all its input before it answers. */
	if (write_all(to[1], &len, sizeof(len)) < 0 ||
	    write_all(to[1], in, inlen) < 0) {
		close(to[1]);
		kill(pid, SIGKILL);
		return reply_from(pid, from[0], out, err);
	}
	close(to[1]);
	return reply_from(pid, from[0], out, err);
}

/* In the spawned copy, before main: serve one step and exit. glibc hands
 * constructors argc and argv. */
__attribute__((constructor)) static void
isolate_serve(int argc, char **argv)
{
	struct buf in = BUF_INIT_SECRET;
	size_t n = (size_t)(__stop_isolate_ops - __start_isolate_ops);
	uint64_t len;
	char *end;
	unsigned long i;

	if (argc != 3 || strcmp(argv[1], SERVE_ARG) != 0)
		return;
	i = strtoul(argv[2], &end, 10);
	if (*end || i >= n)
		_exit(2);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);   /* the parent decides; we take ms */
	if (read_all(0, &len, sizeof(len), clock_mono_ms() +
		     ISOLATE_TIMEOUT_MS) < 0 || len > (64u << 20))
		_exit(2);
	buf_grow(&in, (size_t)len);
	if (read_all(0, in.ptr, (size_t)len, clock_mono_ms() +
		     ISOLATE_TIMEOUT_MS) < 0)
		_exit(2);
	in.len = (size_t)len;
	in.ptr[in.len] = '\0';
	child(1, __start_isolate_ops[i], &in);
}

/* ---- packing ---- */

static void
put_u64(struct buf *b, uint64_t v)
{
	buf_add(b, &v, sizeof(v));
}

static int
get_u64(struct isolate_reader *r, uint64_t *v)
{
	if (r->bad || r->left < sizeof(*v)) {
		r->bad = 1;
		return -1;
	}
	memcpy(v, r->p, sizeof(*v));
	r->p += sizeof(*v);
	r->left -= sizeof(*v);
	return 0;
}

void
isolate_put_mem(struct buf *b, const void *p, size_t len)
{
	put_u64(b, len);
	buf_add(b, p, len);
}

void
isolate_put_str(struct buf *b, const char *s)
{
	if (!s) {
		put_u64(b, UINT64_MAX);
		return;
	}
	isolate_put_mem(b, s, strlen(s));
}

void
isolate_put_long(struct buf *b, long long v)
{
	put_u64(b, (uint64_t)v);
}

void
isolate_reader_init(struct isolate_reader *r, const struct buf *b)
{
	r->p = b->ptr;
	r->left = b->len;
	r->bad = 0;
}

static const char *
get_bytes(struct isolate_reader *r, size_t *len, int *null)
{
	uint64_t n;
	const char *p;

	*null = 0;
	if (get_u64(r, &n) < 0)
		return NULL;
	if (n == UINT64_MAX) {
		*null = 1;
		return NULL;
	}
	if (n > r->left) {
		r->bad = 1;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	*len = (size_t)n;
	return p;
}

char *
isolate_get_str(struct isolate_reader *r)
{
	size_t len = 0;
	int null;
	const char *p = get_bytes(r, &len, &null);

	return p ? xstrndup(p, len) : NULL;
}

void
isolate_get_mem(struct isolate_reader *r, struct buf *out)
{
	size_t len = 0;
	int null;
	const char *p = get_bytes(r, &len, &null);

	if (p)
		buf_add(out, p, len);
	else if (null)
		r->bad = 1;
}

long long
isolate_get_long(struct isolate_reader *r)
{
	uint64_t v = 0;

	get_u64(r, &v);
	return (long long)v;
}
