/*
 * out: the only writer of user-facing messages on stderr.
 * "error: ...", "warning: ...", "note: ..." with colour on a terminal
 * unless NO_COLOR is set. Plain results go to stdout through stdio.
 */
#ifndef STRATA_UTIL_OUT_H
#define STRATA_UTIL_OUT_H

#include <stdbool.h>

void out_init(void);
bool out_color(void);
void out_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A progress/status line: "==> text" on stderr. */
void out_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
