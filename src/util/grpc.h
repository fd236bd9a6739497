/*
 * grpc: gRPC calls over HTTP/2 + TLS with libcurl, for the Talos API.
 *
 * Messages travel as already-encoded protobuf bytes (protobuf-c does the
 * encoding); this layer does the rest: the 5-byte length-prefixed framing,
 * `te: trailers`, `grpc-timeout` deadlines, extra metadata (the Talos
 * `node` routing header), grpc-status / grpc-message from the trailers
 * (or from the headers of a trailers-only error), percent-decoding of the
 * message, and ALPN h2 (a server that does not speak h2 is an error).
 *
 * TLS: `insecure` (maintenance mode: the node's cert is random, nothing to
 * verify it against), or verification against `ca_pem` including the
 * node's address in the SANs; ca_pem then is the only trust anchor (the
 * system store is not consulted). `cert_pem`/`key_pem` add a client
 * certificate (mTLS). All PEM is passed in memory, never written out.
 */
#ifndef STRATA_UTIL_GRPC_H
#define STRATA_UTIL_GRPC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* gRPC status codes used by callers. */
enum grpc_code {
	GRPC_OK = 0,
	GRPC_CANCELLED = 1,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4,
	GRPC_NOT_FOUND = 5,
	GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7,
	GRPC_FAILED_PRECONDITION = 9,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
	GRPC_TRANSPORT = 100,    /* ours: no gRPC status (connection, TLS) */
};

struct grpc_opts {
	const char *target;      /* "host:port" */
	bool insecure;
	const char *ca_pem;
	const char *cert_pem;
	const char *key_pem;
	long timeout_ms;         /* deadline sent as grpc-timeout; default 10000 */
	long connect_timeout_ms; /* default 3000 */
	const char *node;        /* "node" metadata for apid routing, or NULL */
	/* With insecure: the SHA-256 (64 lowercase hex) the server's leaf
	 * certificate must have, checked inside the handshake before any
	 * byte of the request leaves; another certificate ends the call
	 * with ERRK_TLS_TRUST (res->tls GRPC_TLS_PIN_CHANGED). NULL: any. */
	const char *pin_sha256;
	size_t max_reply;        /* bytes of reply kept at most; 0: 64 MiB */
	/* With on_msg: each response message goes to on_msg as it arrives
	 * (max_reply then bounds one message) and is not kept in the
	 * result, so a long stream never sits in memory. A negative return
	 * ends the call with the err it filled. */
	int (*on_msg)(void *ctx, const void *msg, size_t len, struct err *err);
	void *on_msg_ctx;
};

/* A client stream read as it is sent (EtcdRecover from a file). */
struct grpc_source {
	/* The next request message appended to msg (empty on entry): 0, or
	 * 1 when there are no more, or -1 with err. */
	int (*next)(void *ctx, struct buf *msg, struct err *err);
	void *ctx;
	/* The request body's exact length: 5 + length of every message. */
	size_t total;
};

/* One streamed or unary response: the concatenated messages. */
struct grpc_result {
	int status;              /* enum grpc_code */
	char *message;           /* decoded grpc-message, or NULL */
	struct buf *msgs;        /* each response message, in order */
	size_t n_msgs;
	int tls;                 /* enum grpc_tls: why a handshake failed */
	bool cert_requested;     /* the server asked for a client certificate
	                          * we did not have (a TLS fact) */
	bool hung_up;            /* GRPC_TLS_CLIENT_REJECTED without an alert:
	                          * the server closed right after the
	                          * handshake, which a server going away
	                          * (a reboot) does too */
	char peer_sha256[65];    /* the server's leaf certificate (hex
	                          * SHA-256), "" when no handshake got there */
};

/* For GRPC_TRANSPORT failures: was it the TLS trust, and whose? */
enum grpc_tls {
	GRPC_TLS_NONE = 0,
	GRPC_TLS_SERVER_UNTRUSTED,   /* the server's cert did not verify */
	GRPC_TLS_CLIENT_REJECTED,    /* the server refused our client cert */
	GRPC_TLS_PIN_CHANGED,        /* not the certificate of pin_sha256 */
};

void grpc_result_init(struct grpc_result *r);
void grpc_result_release(struct grpc_result *r);

/*
 * Call /service/method with one request message. Works for unary and
 * server-streaming methods (every message the server sends is kept).
 * Returns 0 when the call completed with grpc-status 0; otherwise fills
 * err ("path: <code name>: <message>") and res->status, and returns -1.
 * err->kind says what happened: ERRK_GRPC_STATUS (err->status = the
 * code), ERRK_TLS_TRUST / ERRK_TLS_CLIENT, ERRK_UNSENT (nothing left:
 * no connection or handshake), ERRK_TIMEOUT, ERRK_MAYBE_SENT.
 */
int grpc_call(const struct grpc_opts *o, const char *path,
	      const void *req, size_t req_len, struct grpc_result *res,
	      struct err *err);

/*
 * The same with a client stream: every request message is sent in order,
 * then the stream is half-closed (EtcdRecover's upload). n may be 0.
 */
int grpc_call_stream(const struct grpc_opts *o, const char *path,
		     const struct buf *reqs, size_t n, struct grpc_result *res,
		     struct err *err);

/* The same with the messages pulled from src while sending. */
int grpc_call_source(const struct grpc_opts *o, const char *path,
		     const struct grpc_source *src, struct grpc_result *res,
		     struct err *err);

const char *grpc_code_name(int code);
/* Percent-decode a grpc-message value (exported for tests). Caller frees. */
char *grpc_percent_decode(const char *s, size_t len);
/* Format a grpc-timeout header value for ms ("250m", "10S"). */
void grpc_timeout_value(long ms, char *out, size_t n);

#endif
