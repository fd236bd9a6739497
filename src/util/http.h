/*
 * http: a small HTTPS client on libcurl for REST APIs (Proxmox, Kubernetes).
 *
 * One client keeps one connection alive across requests (keep-alive, HTTP/2
 * when the server offers it). TLS is always verified, one of three ways:
 *
 *	ca_file      the server chain must verify against this CA (and the
 *	             host name must match)
 *	fingerprint  the server's leaf certificate must have this SHA-256
 *	             digest; checked inside the handshake, before any byte of
 *	             the request (and its token) is sent
 *	insecure     no verification; only when the config says so
 *
 * Retries: idempotent requests (GET, PUT, DELETE and anything marked so)
 * are retried on connection failures and 500/502/503/504 with exponential
 * backoff and full jitter. A non-idempotent request (POST that creates
 * something) is retried only when the connection could not be opened at
 * all, because otherwise it may have happened: the caller must re-read
 * state instead.
 *
 * The auth header is never logged or put in an error message.
 */
#ifndef STRATA_UTIL_HTTP_H
#define STRATA_UTIL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct http_opts {
	const char *base_url;      /* "https://host:8006/api2/json" */
	const char *ca_file;
	const char *fingerprint;   /* 64 hex digits, colons allowed */
	bool insecure;
	const char *auth_header;   /* "Authorization: ..." (secret) */
	const char *client_cert;   /* PEM file for mTLS, or NULL */
	const char *client_key;
	const char *ca_pem;        /* in-memory variants (kubeconfig data), */
	const char *client_cert_pem; /* never written to disk */
	const char *client_key_pem;
	long connect_timeout_ms;   /* default 5000 */
	long timeout_ms;           /* whole request, default 30000 */
	int max_attempts;          /* default 4 */
	long backoff_ms;           /* first backoff, default 200 */
	struct http_share *share;  /* TLS sessions shared with other clients, or NULL */
};

struct http_response {
	long status;
	char *reason;              /* reason phrase of the status line, or NULL */
	struct buf body;
	char *content_type;
};

struct http_client;

/*
 * TLS sessions shared by the clients of one endpoint and one trust
 * configuration (libcurl share, CURL_LOCK_DATA_SSL_SESSION): a client
 * made after another's handshake resumes that session instead of a full
 * handshake (no certificate sent, no server signature). libcurl matches a
 * session by host, port and its own TLS options, not by our pin or CA
 * callback, and a resumed handshake shows no certificate: so a share
 * serves only clients with the same endpoint, pin, CA and client
 * certificate as its first client; any other client made with it does a
 * full handshake of its own (test_http). Thread-safe; free it after every
 * client that used it.
 */
struct http_share;

struct http_share *http_share_new(void);
void http_share_free(struct http_share *s);

int http_client_new(struct http_client **out, const struct http_opts *opts,
		    struct err *err);
void http_client_free(struct http_client *c);

#define HTTP_IDEMPOTENT 0x1   /* safe to repeat even if it reached the server */
/* The server answers 500 only when it did nothing (Proxmox: the handler
 * failed before a task started), so a 500 may be retried even for a
 * request that is not idempotent. */
#define HTTP_RETRY_500  0x2

/*
 * Send METHOD base_url+path with an optional body. Any HTTP status is a
 * success at this layer (resp->status tells); transport failures fill err
 * as "METHOD PATH: <reason>". resp must be initialised with
 * http_response_init and released with http_response_release.
 */
int http_request(struct http_client *c, const char *method, const char *path,
		 const char *content_type, const void *body, size_t len,
		 unsigned flags, struct http_response *resp, struct err *err);

void http_response_init(struct http_response *r);
void http_response_release(struct http_response *r);

/* Counters for tests and benchmarks. */
struct http_stats {
	unsigned long requests;    /* attempts sent, retries included */
	unsigned long retries;
	unsigned long connects;    /* new TCP connections opened */
};
void http_client_stats(const struct http_client *c, struct http_stats *out);

/* Percent-encode s for a query string or form body into out. */
void http_urlencode(struct buf *out, const char *s);

#endif
