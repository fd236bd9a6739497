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

/*
 * What kind of failure, for callers that must decide (retry, look up,
 * refuse) without reading the message text. Set by the layer that knows
 * (util/http, util/grpc, the trust module); err_set clears it, err_wrap
 * keeps it.
 */
enum err_kind {
	ERRK_NONE = 0,
	ERRK_UNSENT,        /* failed before any byte of the request left
	                     * (DNS, refused, TLS handshake): nothing happened */
	ERRK_MAYBE_SENT,    /* the connection broke after sending began: the
	                     * request may have been carried out */
	ERRK_HTTP_STATUS,   /* the peer answered with an error status (status) */
	ERRK_GRPC_STATUS,   /* the peer answered with a gRPC status (status) */
	ERRK_TLS_TRUST,     /* the peer's certificate was not trusted (pin, CA,
	                     * name); nothing was sent */
	ERRK_TLS_CLIENT,    /* the peer refused our client certificate */
	ERRK_TIMEOUT,       /* no answer in time; may have been sent */
	ERRK_INTERRUPTED,   /* Ctrl-C */
	ERRK_REFUSED,       /* the trust module refused to send a secret */
};

struct err {
	int code;
	int kind;           /* enum err_kind */
	long status;        /* HTTP or gRPC status with ERRK_*_STATUS */
	char msg[1024];
};

#define ERR_INIT { 0, 0, 0, { 0 } }

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
/* Record the kind (and status) of the failure in e; returns -code. */
int err_kind(struct err *e, int kind, long status);
/* True when nobody knows whether the peer carried out the request: not
 * for kinds that say nothing was sent, nor when the peer answered with a
 * status (the caller knows what that status means); an unset kind counts
 * as unknown. */
int err_outcome_unknown(const struct err *e);
const char *err_kind_name(int kind);
/* Exit status for a failed command: 2 for usage/config, 3 interrupted, else 1. */
int err_exit_code(const struct err *e);

#endif
