/*
 * progress: one line per item (a VM, a node) with its current step and
 * elapsed time. On a terminal the block of lines is redrawn in place; on
 * anything else each change is one timestamped line. Thread-safe: worker
 * threads report their own item.
 */
#ifndef STRATA_UTIL_PROGRESS_H
#define STRATA_UTIL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct progress;

struct progress *progress_start(FILE *fp, const char *title,
				const char *const *names, size_t n);
void progress_step(struct progress *p, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void progress_done(struct progress *p, size_t i, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Final summary ("3 done, 1 failed in 12.4s") and free. NULL-safe. */
void progress_stop(struct progress *p);

#endif
