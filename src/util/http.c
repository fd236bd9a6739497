#include "util/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/proc.h"

struct http_client {
	CURL *curl;
	struct curl_slist *headers;
	char *base_url;
	unsigned char pin[32];
	bool pinned;
	bool pin_failed;          /* set by the verify callback */
	char seen[65];            /* fingerprint the server presented */
	int max_attempts;
	long backoff_ms;
	struct http_stats stats;
	char errbuf[CURL_ERROR_SIZE];
	char *key_pem;            /* our copy of a client key, wiped on free */
};

/* Header lists carry the Authorization token: wipe before freeing. */
static void
slist_free_secret(struct curl_slist *l)
{
	struct curl_slist *s;

	for (s = l; s; s = s->next)
		OPENSSL_cleanse(s->data, strlen(s->data));
	curl_slist_free_all(l);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void
http_response_init(struct http_response *r)
{
	r->status = 0;
	r->reason = NULL;
	buf_init(&r->body);
	r->content_type = NULL;
}

void
http_response_release(struct http_response *r)
{
	buf_release(&r->body);
	free(r->content_type);
	free(r->reason);
	r->content_type = NULL;
	r->reason = NULL;
	r->status = 0;
}

/* Keep the reason phrase: Proxmox puts its error message there. */
static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct http_response *r = userp;
	size_t n = size * nmemb;

	if (n > 9 && !strncmp(ptr, "HTTP/", 5)) {
		const char *sp = memchr(ptr, ' ', n);

		free(r->reason);
		r->reason = NULL;
		if (sp && (size_t)(sp - ptr) + 5 < n) {
			const char *p = sp + 5; /* past " NNN " */
			size_t len = n - (size_t)(p - ptr);

			while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
				len--;
			if (len)
				r->reason = xstrndup(p, len);
		}
	}
	return n;
}

static int
parse_fingerprint(const char *s, unsigned char out[32])
{
	size_t n = 0;

	for (; *s; s++) {
		int hi, lo;

		if (*s == ':')
			continue;
		if (n == 32 || !isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]))
			return -1;
		hi = isdigit((unsigned char)s[0]) ? s[0] - '0'
						  : (tolower((unsigned char)s[0]) - 'a' + 10);
		lo = isdigit((unsigned char)s[1]) ? s[1] - '0'
						  : (tolower((unsigned char)s[1]) - 'a' + 10);
		out[n++] = (unsigned char)(hi << 4 | lo);
		s++;
	}
	return n == 32 ? 0 : -1;
}

static int pin_index = -1;

/*
 * OpenSSL verify callback for pinned connections: the chain is not judged
 * (Proxmox certs are self-signed), only the leaf's SHA-256 digest.
 * Returning 0 aborts the handshake before the request is written.
 */
static int
pin_verify(int preverify_ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX *sctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;
	struct http_client *c = sctx ? SSL_CTX_get_ex_data(sctx, pin_index) : NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	X509 *cert;
	int i;

	(void)preverify_ok;
	if (!c)
		return 0;
	if (X509_STORE_CTX_get_error_depth(xs) > 0)
		return 1;
	cert = X509_STORE_CTX_get_current_cert(xs);
	if (!cert || !X509_digest(cert, EVP_sha256(), md, &mdlen) || mdlen != 32) {
		c->pin_failed = true;
		return 0;
	}
	for (i = 0; i < 32; i++)
		snprintf(c->seen + 2 * i, 3, "%02x", md[i]);
	if (memcmp(md, c->pin, 32) != 0) {
		c->pin_failed = true;
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

static CURLcode
ssl_ctx_cb(CURL *curl, void *sslctx, void *userp)
{
	SSL_CTX *ctx = sslctx;

	(void)curl;
	SSL_CTX_set_ex_data(ctx, pin_index, userp);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pin_verify);
	return CURLE_OK;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct buf *b = userp;
	size_t n = size * nmemb;

	if (b->len + n > 256u * 1024 * 1024)
		return 0; /* refuse absurd bodies */
	buf_add(b, ptr, n);
	return n;
}

/* Ctrl-C aborts a transfer in progress (CURLE_ABORTED_BY_CALLBACK). */
static int
xferinfo_cb(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)p; (void)dt; (void)dn; (void)ut; (void)un;
	return proc_interrupted ? 1 : 0;
}

/* libcurl copies the PEM text (CURL_BLOB_COPY): the caller may free it. */
static void
set_blob(CURL *h, CURLoption opt, const char *pem)
{
	struct curl_blob b = { (void *)pem, strlen(pem), CURL_BLOB_COPY };

	curl_easy_setopt(h, opt, &b);
}

int
http_client_new(struct http_client **out, const struct http_opts *o,
		struct err *err)
{
	struct http_client *c;
	CURL *h;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (pin_index < 0)
		pin_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!o->base_url || strncmp(o->base_url, "https://", 8))
		return err_set(err, ERR_USAGE, "'%s' is not an https:// URL",
			       o->base_url ? o->base_url : "");
	if (!o->ca_file && !o->ca_pem && !o->fingerprint && !o->insecure)
		return err_set(err, ERR_USAGE,
			       "no way to verify the server: give a CA file, "
			       "a fingerprint, or insecure");
	c = xcalloc(1, sizeof(*c));
	if (o->fingerprint) {
		if (parse_fingerprint(o->fingerprint, c->pin) < 0) {
			free(c);
			return err_set(err, ERR_USAGE,
				       "'%s' is not a SHA-256 fingerprint",
				       o->fingerprint);
		}
		c->pinned = true;
	}
	h = curl_easy_init();
	if (!h) {
		free(c);
		return err_set(err, ERR_FAIL, "cannot start libcurl");
	}
	c->curl = h;
	c->base_url = xstrdup(o->base_url);
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 4;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
	if (o->auth_header)
		c->headers = curl_slist_append(c->headers, o->auth_header);
	c->headers = curl_slist_append(c->headers, "Accept: application/json");
	/* No "Expect: 100-continue" round trip for bodies. */
	c->headers = curl_slist_append(c->headers, "Expect:");

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms > 0 ? o->timeout_ms : 30000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "strata/0.1");
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (c->pinned) {
		/* The chain is not judged; the pin is, during the handshake. */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
	} else if (o->ca_file || o->ca_pem) {
		if (o->ca_pem)
			set_blob(h, CURLOPT_CAINFO_BLOB, o->ca_pem);
		else
			curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	} else {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->client_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, o->client_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, o->client_key);
	} else if (o->client_cert_pem && o->client_key_pem) {
		set_blob(h, CURLOPT_SSLCERT_BLOB, o->client_cert_pem);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		/* Not copied by libcurl (it frees copies unwiped): the
		 * client's own copy, wiped in http_client_free. */
		struct curl_blob kb;

		c->key_pem = xstrdup(o->client_key_pem);
		kb.data = c->key_pem;
		kb.len = strlen(c->key_pem);
		kb.flags = CURL_BLOB_NOCOPY;
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	*out = c;
	return 0;
}

void
http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	slist_free_secret(c->headers);
	secret_strfree(c->key_pem);
	free(c->base_url);
	free(c);
}

void
http_client_stats(const struct http_client *c, struct http_stats *out)
{
	*out = c->stats;
}


/* Full jitter: a uniform pick in [0, min(cap, base * 2^attempt)]. */
static long
backoff(const struct http_client *c, int attempt)
{
	long cap = 5000, d = c->backoff_ms;
	int i;

	for (i = 0; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return d / 2 + (long)((unsigned long)random() % (unsigned long)(d / 2 + 1));
}

/* Could the request have reached the server's application? */
static bool
maybe_sent(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return false;
	default:
		return true;
	}
}

static bool
transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static int
describe_failure(struct http_client *c, CURLcode rc, const char *method,
		 const char *path, struct err *err)
{
	if (c->pinned && c->pin_failed)
		return err_set(err, ERR_FAIL,
			       "%s %s: server certificate does not match the "
			       "pinned fingerprint (server presented sha256 %s); "
			       "refusing to send the request", method, path,
			       c->seen[0] ? c->seen : "unknown");
	if (rc == CURLE_PEER_FAILED_VERIFICATION ||
	    (rc == CURLE_SSL_CONNECT_ERROR && strstr(c->errbuf, "certificate")))
		return err_set(err, ERR_FAIL,
			       "%s %s: TLS verification failed: %s", method,
			       path, c->errbuf[0] ? c->errbuf
						  : curl_easy_strerror(rc));
	return err_set(err, ERR_FAIL, "%s %s: %s", method, path,
		       c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
}

int
http_request(struct http_client *c, const char *method, const char *path,
	     const char *content_type, const void *body, size_t len,
	     unsigned flags, struct http_response *resp, struct err *err)
{
	struct curl_slist *hdrs = NULL;
	char *url = xasprintf("%s%s", c->base_url, path);
	bool idem = (flags & HTTP_IDEMPOTENT) || !strcmp(method, "GET") ||
		    !strcmp(method, "PUT") || !strcmp(method, "DELETE") ||
		    !strcmp(method, "HEAD");
	CURL *h = c->curl;
	int attempt, r = 0;

	if (content_type) {
		struct curl_slist *s;
		char *ct = xasprintf("Content-Type: %s", content_type);

		for (s = c->headers; s; s = s->next)
			hdrs = curl_slist_append(hdrs, s->data);
		hdrs = curl_slist_append(hdrs, ct);
		free(ct);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs ? hdrs : c->headers);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	} else {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? len : 0));
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
				 strcmp(method, "POST") ? method : NULL);
	}

	for (attempt = 0;; attempt++) {
		CURLcode rc;
		long connects = 0;
		char *ct = NULL;

		buf_reset(&resp->body);
		c->errbuf[0] = '\0';
		c->pin_failed = false;
		c->seen[0] = '\0';
		c->stats.requests++;
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
		c->stats.connects += (unsigned long)connects;
		if (rc == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
			curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
			free(resp->content_type);
			resp->content_type = ct ? xstrdup(ct) : NULL;
			if (attempt + 1 < c->max_attempts &&
			    ((idem && (resp->status == 500 || resp->status == 502 ||
				       resp->status == 503 || resp->status == 504)) ||
			     ((flags & HTTP_RETRY_500) && resp->status == 500))) {
				c->stats.retries++;
				if (proc_sleep_ms(backoff(c, attempt)))
					continue;
			}
			r = 0;
			break;
		}
		if (c->pinned && c->pin_failed) {
			r = describe_failure(c, rc, method, path, err);
			break;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK && proc_interrupted) {
			r = err_set(err, ERR_INTR, "%s %s: interrupted", method, path);
			break;
		}
		if (attempt + 1 < c->max_attempts && transient(rc) &&
		    (idem || !maybe_sent(rc))) {
			c->stats.retries++;
			if (proc_sleep_ms(backoff(c, attempt)))
				continue;
		}
		r = describe_failure(c, rc, method, path, err);
		break;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	slist_free_secret(hdrs);
	free(url);
	return r;
}

void
http_urlencode(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			buf_addch(out, (char)ch);
		} else {
			buf_addch(out, '%');
			buf_addch(out, hex[ch >> 4]);
			buf_addch(out, hex[ch & 15]);
		}
	}
}
