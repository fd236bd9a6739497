#include "util/http.h"

#include "trust/trust.h"
#include "util/fs.h"
#include "util/tls.h"

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
	char *host;               /* "host:port" of base_url, for messages */
	char *ca_desc;            /* "CA file 'x'" or "the given CA", or NULL */
	X509_STORE *store;        /* the only trust anchors with a CA */
	char pin[65];             /* lowercase hex SHA-256 of the leaf */
	bool pinned;
	bool pin_failed;          /* set by the verify callback */
	char seen[65];            /* fingerprint the server presented */
	char verify[160];         /* why the chain did not verify */
	int max_attempts;
	long backoff_ms;
	struct http_stats stats;
	char errbuf[CURL_ERROR_SIZE];
	char *key_pem;            /* our copy of a client key, wiped on free */
};

struct http_share {
	CURLSH *sh;
	pthread_mutex_t mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t key_mu;
	char *key;                /* the trust of the first client (share_key) */
};

static void
share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	struct http_share *s = u;

	(void)h;
	(void)a;
	if ((int)d >= 0 && d < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&s->mu[d]);
}

static void
share_unlock(CURL *h, curl_lock_data d, void *u)
{
	struct http_share *s = u;

	(void)h;
	if ((int)d >= 0 && d < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&s->mu[d]);
}

struct http_share *
http_share_new(void)
{
	struct http_share *s = xcalloc(1, sizeof(*s));
	int i;

	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->mu[i], NULL);
	pthread_mutex_init(&s->key_mu, NULL);
	/* Without a share every client does its own full handshake: slower,
	 * never less safe, so a libcurl refusing it is not an error. */
	if (!(s->sh = curl_share_init()) ||
	    curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		if (s->sh)
			curl_share_cleanup(s->sh);
		s->sh = NULL;
	}
	return s;
}

void
http_share_free(struct http_share *s)
{
	int i;

	if (!s)
		return;
	if (s->sh)
		curl_share_cleanup(s->sh);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->mu[i]);
	pthread_mutex_destroy(&s->key_mu);
	free(s->key);
	free(s);
}

/*
 * What a TLS session proves: the host, how the server was verified (pin,
 * CA) and who we were (client certificate). libcurl reuses a session for
 * any client of the same host whose own TLS options match, and a pin or
 * our verify callback is not among them: a resumed handshake skips the
 * certificate, so a client with another pin would never see it. Hence a
 * share serves only clients with the first one's key (share_admits).
 */
static char *
share_key(const struct http_opts *o)
{
	return xasprintf("%s\n%s\n%s\n%s\n%s\n%s\n%d", o->base_url,
			 o->fingerprint ? o->fingerprint : "",
			 o->ca_file ? o->ca_file : "", o->ca_pem ? o->ca_pem : "",
			 o->client_cert ? o->client_cert : "",
			 o->client_cert_pem ? o->client_cert_pem : "", o->insecure);
}

static bool
share_admits(struct http_share *s, const struct http_opts *o)
{
	char *k = share_key(o);
	bool ok;

	pthread_mutex_lock(&s->key_mu);
	if (!s->key) {
		s->key = k;
		k = NULL;
		ok = true;
	} else {
		ok = !strcmp(s->key, k);
	}
	pthread_mutex_unlock(&s->key_mu);
	free(k);
	return ok;
}

/* Header lists carry the Authorization token: wipe before freeing. */
static void
slist_free_secret(struct curl_slist *l)
{
	struct curl_slist *s;

	for (s = l; s; s = s->next)
		OPENSSL_cleanse(s->data, strlen(s->data));
	curl_slist_free_all(l);
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

/* 32 hex pairs, colons allowed between them, into lowercase hex. */
static int
parse_fingerprint(const char *s, char out[65])
{
	size_t n = 0;

	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (n == 64 || !isxdigit((unsigned char)s[0]) ||
		    !isxdigit((unsigned char)s[1]))
			return -1;
		out[n++] = (char)tolower((unsigned char)s[0]);
		out[n++] = (char)tolower((unsigned char)s[1]);
		s++;
	}
	out[n] = '\0';
	return n == 64 ? 0 : -1;
}

/*
 * OpenSSL verify callback for pinned connections: the chain is not judged
 * (Proxmox certs are self-signed), only the leaf's SHA-256 digest.
 * Returning 0 aborts the handshake before the request is written.
 */
static int
pin_verify(int preverify_ok, X509_STORE_CTX *xs)
{
	struct http_client *c = tls_owner(xs);

	(void)preverify_ok;
	if (!c)
		return 0;
	if (X509_STORE_CTX_get_error_depth(xs) > 0)
		return 1;
	if (tls_cert_sha256(X509_STORE_CTX_get_current_cert(xs), c->seen) < 0 ||
	    strcmp(c->seen, c->pin)) {
		c->pin_failed = true;
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

/* Keep OpenSSL's verdict on a CA-verified chain for the message. */
static int
ca_verify(int ok, X509_STORE_CTX *xs)
{
	struct http_client *c = tls_owner(xs);

	if (!ok && c && !c->verify[0])
		snprintf(c->verify, sizeof(c->verify), "%s (depth %d)",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)),
			 X509_STORE_CTX_get_error_depth(xs));
	return ok;
}

static CURLcode
ssl_ctx_cb(CURL *curl, void *sslctx, void *userp)
{
	struct http_client *c = userp;
	SSL_CTX *ctx = sslctx;

	(void)curl;
	if (SSL_CTX_set_ex_data(ctx, tls_ex_index(), c) != 1)
		return CURLE_SSL_CERTPROBLEM;
	if (c->pinned) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pin_verify);
		return CURLE_OK;
	}
	if (c->store) {
		/* The given CA replaces whatever libcurl loaded (the system
		 * bundle, its CA path): nothing else is trusted. */
		if (tls_ctx_use_store(ctx, c->store) < 0)
			return CURLE_SSL_CACERT_BADFILE;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, ca_verify);
	}
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
static CURLcode
set_blob(CURL *h, CURLoption opt, const char *pem)
{
	struct curl_blob b = { (void *)pem, strlen(pem), CURL_BLOB_COPY };

	return curl_easy_setopt(h, opt, &b);
}

/* "host:port" of an https:// URL, for messages. */
static char *
url_host(const char *url)
{
	const char *p = url + 8, *e = p + strcspn(p, "/?#");

	return xstrndup(p, (size_t)(e - p));
}

/*
 * Every option that decides what is verified, what is sent or where:
 * a libcurl that refuses one must not be used as if it had taken it.
 */
static int
setopts(struct http_client *c, const struct http_opts *o, struct err *err)
{
	CURL *h = c->curl;
	const char *bad = NULL;
	CURLcode rc = CURLE_OK;

#define SET(opt, val) do { if (!bad && (rc = curl_easy_setopt(h, opt, val)) != CURLE_OK) \
		bad = #opt; } while (0)
#define SETB(opt, pem) do { if (!bad && (rc = set_blob(h, opt, pem)) != CURLE_OK) \
		bad = #opt; } while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_HTTPHEADER, c->headers);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
	SET(CURLOPT_SSL_CTX_DATA, c);
	if (c->pinned) {
		/* The chain is not judged; the pin is, during the handshake
		 * (ssl_ctx_cb). Host names are not checked either: the pin
		 * names one certificate. */
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->store) {
		if (o->ca_pem)
			SETB(CURLOPT_CAINFO_BLOB, o->ca_pem);
		else
			SET(CURLOPT_CAINFO, o->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL);
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
	} else {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->client_cert) {
		SET(CURLOPT_SSLCERT, o->client_cert);
		SET(CURLOPT_SSLKEY, o->client_key);
	} else if (o->client_cert_pem && o->client_key_pem) {
		struct curl_blob kb;

		SETB(CURLOPT_SSLCERT_BLOB, o->client_cert_pem);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		/* Not copied by libcurl (it frees copies unwiped): the
		 * client's own copy, wiped in http_client_free. */
		c->key_pem = xstrdup(o->client_key_pem);
		kb.data = c->key_pem;
		kb.len = strlen(c->key_pem);
		kb.flags = CURL_BLOB_NOCOPY;
		SET(CURLOPT_SSLKEY_BLOB, &kb);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
#undef SETB
	if (bad)
		return err_set(err, ERR_FAIL, "libcurl refused %s (%s): it "
			       "cannot make the connection as configured, so "
			       "none is made", bad, curl_easy_strerror(rc));
	/* Not security-relevant: a libcurl without them still works. */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
			 o->timeout_ms > 0 ? o->timeout_ms : 30000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "strata/0.1");
	/* Another trust setting than the share's first client: no share
	 * (a full handshake, its own verification), never its sessions. */
	if (o->share && o->share->sh && share_admits(o->share, o))
		curl_easy_setopt(h, CURLOPT_SHARE, o->share->sh);
	/* Ctrl-C aborts a transfer in progress. */
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	return 0;
}

/* The trust anchors of a CA file or in-memory CA, checked now. */
static int
load_ca(struct http_client *c, const struct http_opts *o, struct err *err)
{
	struct buf b = BUF_INIT;
	int r;

	if (o->ca_pem) {
		c->ca_desc = xstrdup("the given CA");
		c->store = tls_store_from_pem(o->ca_pem, strlen(o->ca_pem));
		if (!c->store)
			return err_set(err, ERR_USAGE, "the given CA holds no "
				       "PEM certificate");
		return 0;
	}
	c->ca_desc = xasprintf("CA file '%s'", o->ca_file);
	if ((r = fs_read_file(&b, o->ca_file, 16 << 20, err)) < 0)
		return err_wrap(err, "CA file");
	c->store = tls_store_from_pem(b.ptr, b.len);
	buf_release(&b);
	if (!c->store)
		return err_set(err, ERR_USAGE, "CA file '%s' holds no PEM "
			       "certificate (check tls.ca_file: it must be the "
			       "CA's certificate in PEM, e.g. Proxmox's "
			       "/etc/pve/pve-root-ca.pem)", o->ca_file);
	return 0;
}

int
http_client_new(struct http_client **out, const struct http_opts *o,
		struct err *err)
{
	struct http_client *c;
	int r;

	*out = NULL;
	if (!o->base_url || strncmp(o->base_url, "https://", 8))
		return err_set(err, ERR_USAGE, "'%s' is not an https:// URL",
			       o->base_url ? o->base_url : "");
	{
		/* The trust module decides whether this client may exist and
		 * carry its secret (trust.h). */
		struct err ie = ERR_INIT;
		char *host = url_host(o->base_url);
		struct trust_http_peer tp = {
			.host = host,
			.secret = o->auth_header ? "the API token"
				  : (o->client_key || o->client_key_pem)
				  ? "the client certificate's key" : NULL,
			.tls = o->fingerprint ? TRUST_TLS_PIN
			       : (o->ca_file || o->ca_pem) ? TRUST_TLS_CA
			       : o->insecure ? TRUST_TLS_INSECURE
			       : TRUST_TLS_NONE,
		};

		tp.openssl = tls_global_init(&ie) == 0;
		tp.tls_error = ie.msg;
		r = trust_http_send(&tp, err);
		free(host);
		if (r < 0)
			return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->base_url = xstrdup(o->base_url);
	c->host = url_host(o->base_url);
	if (o->fingerprint) {
		if (parse_fingerprint(o->fingerprint, c->pin) < 0) {
			http_client_free(c);
			return err_set(err, ERR_USAGE,
				       "'%s' is not a SHA-256 fingerprint",
				       o->fingerprint);
		}
		c->pinned = true;
	} else if ((o->ca_file || o->ca_pem) && (r = load_ca(c, o, err)) < 0) {
		http_client_free(c);
		return r;
	}
	if (!(c->curl = curl_easy_init())) {
		http_client_free(c);
		return err_set(err, ERR_FAIL, "cannot start libcurl");
	}
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 4;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
	if (o->auth_header)
		c->headers = curl_slist_append(c->headers, o->auth_header);
	c->headers = curl_slist_append(c->headers, "Accept: application/json");
	/* No "Expect: 100-continue" round trip for bodies. */
	c->headers = curl_slist_append(c->headers, "Expect:");
	if ((r = setopts(c, o, err)) < 0) {
		http_client_free(c);
		return r;
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
	X509_STORE_free(c->store);
	free(c->base_url);
	free(c->host);
	free(c->ca_desc);
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

/* Was the request's fate decided before anything was sent? A timeout
 * while a new connection was still being set up counts. */
static bool
unsent(struct http_client *c, CURLcode rc)
{
	long connects = 0;
	curl_off_t app = 0;

	if (tls_curl_unsent(rc) || c->pin_failed || c->verify[0])
		return true;
	if (rc != CURLE_OPERATION_TIMEDOUT)
		return false;
	curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &connects);
	curl_easy_getinfo(c->curl, CURLINFO_APPCONNECT_TIME_T, &app);
	return connects > 0 && app == 0;
}

/*
 * One message per failure class, each saying what to check. Never the
 * auth header: only the method, path, host and libcurl's own text.
 */
static int
describe_failure(struct http_client *c, CURLcode rc, const char *method,
		 const char *path, struct err *err)
{
	const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);

	if (c->pinned && c->pin_failed) {
		err_set(err, ERR_FAIL,
			"%s %s: the server at %s presented a certificate with "
			"sha256 %s, not the pinned fingerprint; refusing to "
			"send the request. If its certificate was renewed, "
			"compare with `pvenode cert info` on the host or `openssl "
			"s_client -connect %s </dev/null 2>/dev/null | openssl "
			"x509 -noout -fingerprint -sha256`, then update "
			"tls.fingerprint", method, path, c->host,
			c->seen[0] ? c->seen : "unknown", c->host);
		return err_kind(err, ERRK_TLS_TRUST, 0);
	}
	if (c->verify[0] || rc == CURLE_PEER_FAILED_VERIFICATION) {
		err_set(err, ERR_FAIL,
			"%s %s: the certificate of %s does not verify against "
			"%s: %s; refusing to send the request (check "
			"tls.ca_file, or pin the server with tls.fingerprint)",
			method, path, c->host, c->ca_desc ? c->ca_desc : "the CA",
			c->verify[0] ? c->verify : why);
		return err_kind(err, ERRK_TLS_TRUST, 0);
	}
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		err_set(err, ERR_FAIL, "%s %s: cannot resolve the host of %s "
			"(check the endpoint's host name and DNS): %s", method,
			path, c->host, why);
		return err_kind(err, ERRK_UNSENT, 0);
	case CURLE_COULDNT_CONNECT:
		err_set(err, ERR_FAIL, "%s %s: cannot connect to %s (is the "
			"service running, the port right, a firewall in the "
			"way?): %s", method, path, c->host, why);
		return err_kind(err, ERRK_UNSENT, 0);
	case CURLE_OPERATION_TIMEDOUT:
		err_set(err, ERR_FAIL, "%s %s: no answer from %s in time (check "
			"the address and that nothing drops the traffic): %s",
			method, path, c->host, why);
		return err_kind(err, unsent(c, rc) ? ERRK_UNSENT : ERRK_TIMEOUT, 0);
	case CURLE_ABORTED_BY_CALLBACK:
		err_set(err, ERR_INTR, "%s %s: interrupted", method, path);
		return err_kind(err, ERRK_INTERRUPTED, 0);
	default:
		break;
	}
	if (rc == CURLE_SSL_CONNECT_ERROR) {
		err_set(err, ERR_FAIL, "%s %s: TLS handshake with %s failed (is "
			"it an HTTPS port?): %s", method, path, c->host, why);
		return err_kind(err, ERRK_UNSENT, 0);
	}
	err_set(err, ERR_FAIL, "%s %s: %s: %s", method, path, c->host, why);
	return err_kind(err, unsent(c, rc) ? ERRK_UNSENT : ERRK_MAYBE_SENT, 0);
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
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTPHEADER,
			     hdrs ? hdrs : c->headers) != CURLE_OK) {
		curl_slist_free_all(hdrs);
		free(url);
		err_set(err, ERR_FAIL, "%s %s: libcurl refused the URL", method,
			path);
		return err_kind(err, ERRK_UNSENT, 0);
	}
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
		c->verify[0] = '\0';
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
		if (c->pin_failed || c->verify[0]) {
			r = describe_failure(c, rc, method, path, err);
			break;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK && proc_interrupted) {
			err_set(err, ERR_INTR, "%s %s: interrupted", method, path);
			r = err_kind(err, ERRK_INTERRUPTED, 0);
			break;
		}
		if (attempt + 1 < c->max_attempts && transient(rc) &&
		    (idem || unsent(c, rc))) {
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
