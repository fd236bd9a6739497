#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (code <= 0)
		code = ERR_FAIL;
	e->code = code;
	e->kind = ERRK_NONE;
	e->status = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -code;
}

int
err_sys(struct err *e, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	e->code = ERR_FAIL;
	e->kind = ERRK_NONE;
	e->status = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(errnum));
	return -ERR_FAIL;
}

int
err_wrap(struct err *e, const char *fmt, ...)
{
	char prefix[512], old[sizeof(e->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* "prefix: old", truncated to fit; the tail of a chain matters least. */
	{
		size_t cap = sizeof(e->msg) - 1, n = 0, lp = strlen(prefix);
		size_t lo = strlen(old);

		if (lp > cap)
			lp = cap;
		memcpy(e->msg, prefix, lp);
		n = lp;
		if (lo && n + 2 <= cap) {
			memcpy(e->msg + n, ": ", 2);
			n += 2;
			if (lo > cap - n)
				lo = cap - n;
			memcpy(e->msg + n, old, lo);
			n += lo;
		}
		e->msg[n] = '\0';
	}
	if (e->code <= 0)
		e->code = ERR_FAIL;
	return -e->code;
}

void
err_clear(struct err *e)
{
	e->code = 0;
	e->kind = ERRK_NONE;
	e->status = 0;
	e->msg[0] = '\0';
}

int
err_kind(struct err *e, int kind, long status)
{
	e->kind = kind;
	e->status = status;
	if (e->code <= 0)
		e->code = ERR_FAIL;
	return -e->code;
}

int
err_outcome_unknown(const struct err *e)
{
	switch (e->kind) {
	case ERRK_UNSENT:
	case ERRK_TLS_TRUST:
	case ERRK_TLS_CLIENT:
	case ERRK_REFUSED:
	case ERRK_HTTP_STATUS:
	case ERRK_GRPC_STATUS:
		return 0;
	default:
		return 1;
	}
}

const char *
err_kind_name(int kind)
{
	static const char *const names[] = {
		"none", "unsent", "maybe-sent", "http-status", "grpc-status",
		"tls-trust", "tls-client", "timeout", "interrupted", "refused",
	};

	if (kind >= 0 && kind < (int)(sizeof(names) / sizeof(names[0])))
		return names[kind];
	return "unknown";
}

int
err_exit_code(const struct err *e)
{
	switch (e->code) {
	case ERR_OK:
		return 0;
	case ERR_USAGE:
		return 2;
	case ERR_INTR:
		return 3;
	default:
		return 1;
	}
}
