#include "util/tls.h"

#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

/*
 * libcurl's memory goes through these: every block it frees (its upload
 * buffer holding a machine config, header lists with the Proxmox token,
 * its copies of URLs and options) is wiped first, and a growth copies
 * and wipes instead of realloc. The size is malloc's own
 * (malloc_usable_size), which covers the whole block.
 */
static void
wipe_free(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

static void *
wipe_realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	if (!p)
		return malloc(n);
	if (n == 0) {
		wipe_free(p);
		return NULL;
	}
	if (!(q = malloc(n)))
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}
static int ex_index = -1;
static char init_error[256];

static void
global_init(void)
{
	const curl_ssl_backend **avail = NULL;
	CURLsslset rs;
	CURLcode rc;

	/* Must come before curl_global_init; fails when libcurl has no
	 * OpenSSL backend (Debian's libcurl-gnutls, -nss). */
	rs = curl_global_sslset(CURLSSLBACKEND_OPENSSL, NULL, &avail);
	if (rs != CURLSSLSET_OK) {
		const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

		snprintf(init_error, sizeof(init_error),
			 "libcurl %s uses %s, not OpenSSL: strata checks "
			 "certificates and pins inside OpenSSL and will not "
			 "connect without them (install the OpenSSL build: "
			 "Debian package libcurl4)", v->version,
			 v->ssl_version ? v->ssl_version : "no TLS library");
		return;
	}
	if ((rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free,
				       wipe_realloc, strdup, calloc)) != CURLE_OK) {
		snprintf(init_error, sizeof(init_error),
			 "cannot initialise libcurl: %s", curl_easy_strerror(rc));
		return;
	}
	ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (ex_index < 0)
		snprintf(init_error, sizeof(init_error),
			 "cannot initialise OpenSSL (no ex_data index)");
}

int
tls_global_init(struct err *err)
{
	pthread_once(&once, global_init);
	if (init_error[0])
		return err_set(err, ERR_FAIL, "%s", init_error) < 0
		       ? err_kind(err, ERRK_UNSENT, 0) : 0;
	return 0;
}

int
tls_ex_index(void)
{
	return ex_index;
}

X509_STORE *
tls_store_from_pem(const char *pem, size_t len)
{
	STACK_OF(X509_INFO) *infos;
	X509_STORE *st;
	BIO *bio;
	int i, n = 0;

	if (!pem || !len || len > 16u << 20)
		return NULL;
	if (!(bio = BIO_new_mem_buf(pem, (int)len)))
		return NULL;
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!infos)
		return NULL;
	st = X509_STORE_new();
	for (i = 0; st && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);

		if (!xi->x509)
			continue;
		if (X509_STORE_add_cert(st, xi->x509) != 1) {
			X509_STORE_free(st);
			st = NULL;
			break;
		}
		n++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (st && n == 0) {
		X509_STORE_free(st);
		st = NULL;
	}
	return st;
}

int
tls_ctx_use_store(SSL_CTX *ctx, X509_STORE *store)
{
	if (!store || X509_STORE_up_ref(store) != 1)
		return -1;
	/* Frees (drops a reference to) whatever libcurl loaded: the
	 * default bundle and CA path are gone. */
	SSL_CTX_set_cert_store(ctx, store);
	return 0;
}

void *
tls_owner(X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX *ctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;

	return ctx ? SSL_CTX_get_ex_data(ctx, ex_index) : NULL;
}

bool
tls_curl_unsent(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return true;
	default:
		return false;
	}
}

int
tls_cert_sha256(X509 *cert, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	out[0] = '\0';
	if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
		return -1;
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}
