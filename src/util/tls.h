/*
 * tls: the OpenSSL side of libcurl that util/http and util/grpc share.
 *
 * strata's TLS checks (fingerprint pins, a CA that replaces the system
 * store, the facts the Talos probe reads) run inside OpenSSL callbacks.
 * A libcurl built on another TLS library would ignore those callbacks and
 * connect unverified, so tls_global_init refuses to start unless libcurl
 * uses OpenSSL: no request is made at all.
 */
#ifndef STRATA_UTIL_TLS_H
#define STRATA_UTIL_TLS_H

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/*
 * Once per process: select libcurl's OpenSSL backend and initialise
 * libcurl. Fails (every time) when libcurl has no OpenSSL backend.
 */
int tls_global_init(struct err *err);
/* The SSL_CTX ex_data slot the callbacks find their owner in (after
 * tls_global_init). */
int tls_ex_index(void);

/*
 * A certificate store holding exactly the certificates of pem (one or
 * more PEM blocks): the trust anchors for a "CA file", replacing the
 * system store. NULL when no certificate parses.
 */
X509_STORE *tls_store_from_pem(const char *pem, size_t len);
/* Make store ctx's only trust (takes a reference). 0 or -1. */
int tls_ctx_use_store(SSL_CTX *ctx, X509_STORE *store);

/* The owner a callback's SSL_CTX was given (SSL_CTX ex_data), or NULL. */
void *tls_owner(X509_STORE_CTX *xs);

/* libcurl failures that happen before a TLS handshake completes: strata
 * sends no early data, so no byte of the request has left. */
bool tls_curl_unsent(CURLcode rc);

/* Lowercase hex SHA-256 of the certificate's DER. 0 or -1. */
int tls_cert_sha256(X509 *cert, char out[65]);

#endif
