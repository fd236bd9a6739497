/*
 * err: an error code plus a message chain, filled by the layer that fails
 * and prefixed with context by every layer it passes through.
 *
 *	if ((r = proxmox_vm_create(pve, n, err)) < 0)
 *		return err_wrap(err, "create vm '%s'", n->name);
 *
 * prints as "create vm 'cp-1': POST /nodes/pve1/qemu: HTTP 500: ...".
 * Never allocates. Messages are lowercase, no full stop, and never contain
 * secrets.
 */
#ifndef STRATA_UTIL_ERR_H
#define STRATA_UTIL_ERR_H

#include <stddef.h>

enum err_code {
	ERR_OK = 0,
	ERR_FAIL = 1,      /* runtime failure: exit 1 */
	ERR_USAGE = 2,     /* bad usage or config: exit 2 */
	ERR_INTR = 3,      /* interrupted, resumable: exit 3 */
	ERR_NOTFOUND = 4,  /* expected absence; callers may test for it */
	ERR_EXISTS = 5,
	ERR_LOCKED = 6,
};

struct err {
	int code;
	char msg[1024];
};

#define ERR_INIT { 0, { 0 } }

/* Set code and message; returns -code so callers can `return err_set(...)`. */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like err_set, with ": strerror(errnum)" appended. */
int err_sys(struct err *e, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend "ctx: " to the message; returns -code (at least -1). */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);
/* Exit status for a failed command: 2 for usage/config, 3 interrupted, else 1. */
int err_exit_code(const struct err *e);

#endif
