/*
 * Helpers shared by the unit tests that need a peer: run a shell command,
 * start a helper server and read its first line, stop it.
 */
#ifndef STRATA_TESTS_TESTUTIL_H
#define STRATA_TESTS_TESTUTIL_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"

struct tu_proc {
	pid_t pid;
	int stdin_fd;     /* closing it tells the helper to exit */
};

static inline int __attribute__((format(printf, 1, 2)))
tu_sh(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	rc = system(b.ptr);
	buf_release(&b);
	return rc;
}

/* Start argv (NULL-terminated); read its first stdout line into line. */
static inline int
tu_spawn(struct tu_proc *p, char *const argv[], char *line, size_t n)
{
	int in[2], out[2];
	FILE *fp;

	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	p->pid = fork();
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->stdin_fd = in[1];
	fp = fdopen(out[0], "r");
	if (!fp || !fgets(line, (int)n, fp)) {
		if (fp)
			fclose(fp);
		return -1;
	}
	fclose(fp);
	line[strcspn(line, "\n")] = '\0';
	return 0;
}

static inline void
tu_stop(struct tu_proc *p)
{
	int status;

	if (p->pid <= 0)
		return;
	close(p->stdin_fd);
	kill(p->pid, SIGTERM);
	waitpid(p->pid, &status, 0);
	p->pid = 0;
}

/* Read a whole small file into a malloc'd string ("" when missing). */
static inline char *
tu_slurp(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t k;
	FILE *f = fopen(path, "r");

	while (f && (k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, k);
	if (f)
		fclose(f);
	free(path);
	return buf_detach(&b, NULL);
}

#endif
