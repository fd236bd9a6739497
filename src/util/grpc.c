#include "util/grpc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/proc.h"
#include "util/tls.h"

void
grpc_result_init(struct grpc_result *r)
{
	memset(r, 0, sizeof(*r));
	r->status = -1;
}

void
grpc_result_release(struct grpc_result *r)
{
	size_t i;

	for (i = 0; i < r->n_msgs; i++)
		buf_release_secret(&r->msgs[i]);   /* kubeconfig, configs */
	free(r->msgs);
	free(r->message);
	grpc_result_init(r);
}

const char *
grpc_code_name(int code)
{
	static const char *const names[] = {
		"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
		"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
		"FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
		"Internal", "Unavailable", "DataLoss", "Unauthenticated",
	};

	if (code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])))
		return names[code];
	if (code == GRPC_TRANSPORT)
		return "Transport";
	return "UnknownCode";
}

char *
grpc_percent_decode(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len &&
		    isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], 0 };

			buf_addch(&b, (char)strtol(hex, NULL, 16));
			i += 2;
		} else {
			buf_addch(&b, s[i]);
		}
	}
	return buf_detach(&b, NULL);
}

void
grpc_timeout_value(long ms, char *out, size_t n)
{
	/* At most 8 digits; switch unit when milliseconds do not fit. */
	if (ms < 100000000L)
		snprintf(out, n, "%ldm", ms);
	else
		snprintf(out, n, "%ldS", ms / 1000);
}

/* Ctrl-C aborts a call in progress. */
static int
xferinfo_cb(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)p; (void)dt; (void)dn; (void)ut; (void)un;
	return proc_interrupted ? 1 : 0;
}

struct call {
	struct buf body;          /* raw response bytes */
	size_t max_body;
	int status;
	char *message;
	bool saw_status;
	bool bad_status;          /* a grpc-status that is not a number */
	bool in_headers;          /* between the status line and its end */
	bool status_in_headers;   /* a trailers-only response */
	bool cert_requested;      /* the server asked for a client cert */
	X509_STORE *store;        /* the only trust anchors, or NULL */
	char content_type[64];
	char alert[64];           /* TLS alert the peer sent us, if any */
	bool got_headers;         /* any HTTP response at all */
	char verify[160];         /* why the server's chain did not verify */
	const char *pin;          /* opts.pin_sha256 */
	bool pin_failed;
	char seen[65];            /* the leaf's SHA-256 */
	size_t body_seen;         /* response bytes received in all */
	/* streamed response (opts.on_msg) and streamed request */
	int (*on_msg)(void *ctx, const void *msg, size_t len, struct err *err);
	void *on_msg_ctx;
	const struct grpc_source *src;
	struct buf out;           /* framed bytes of the next request message */
	size_t out_off, sent;
	bool src_done;
	bool cb_failed;           /* on_msg or src failed: cb_err says why */
	struct err cb_err;
};

/* Record alerts the server sends: with TLS 1.3 a rejected client cert
 * shows up only as an alert after the handshake, which libcurl reports
 * as a vague stream error. */
static void
on_ssl_info(const SSL *ssl, int where, int ret)
{
	struct call *c;

	if (!(where & SSL_CB_ALERT) || !(where & SSL_CB_READ))
		return;
	c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_ex_index());
	if (c && !c->alert[0])
		snprintf(c->alert, sizeof(c->alert), "%s",
			 SSL_alert_desc_string_long(ret));
}

/* Keep OpenSSL's verdict on the server's chain: libcurl may report a
 * failed verification as a generic handshake error. */
static int
on_verify(int ok, X509_STORE_CTX *x)
{
	struct call *c = tls_owner(x);

	if (c && X509_STORE_CTX_get_error_depth(x) == 0 &&
	    tls_cert_sha256(X509_STORE_CTX_get_current_cert(x), c->seen) < 0)
		c->seen[0] = '\0';
	if (!ok && c && !c->verify[0])
		snprintf(c->verify, sizeof(c->verify), "%s (depth %d)",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)),
			 X509_STORE_CTX_get_error_depth(x));
	return ok;
}

/* Without verification (maintenance mode): the chain is not judged, but
 * the leaf's digest is recorded and, with a pin, must match; returning 0
 * aborts the handshake before the request is written. */
static int
on_insecure_verify(int ok, X509_STORE_CTX *x)
{
	struct call *c = tls_owner(x);

	(void)ok;
	if (!c)
		return 0;
	if (X509_STORE_CTX_get_error_depth(x) > 0)
		return 1;
	if (tls_cert_sha256(X509_STORE_CTX_get_current_cert(x), c->seen) < 0 ||
	    (c->pin && strcmp(c->seen, c->pin))) {
		c->pin_failed = c->pin != NULL;
		return 0;
	}
	X509_STORE_CTX_set_error(x, X509_V_OK);
	return 1;
}

/* Called only when the server sends a CertificateRequest and we hold no
 * client certificate: a TLS fact (maintenance mode never asks, apid
 * always does). Sends none. */
static int
on_cert_request(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	struct call *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
					     tls_ex_index());

	(void)x509;
	(void)pkey;
	if (c)
		c->cert_requested = true;
	return 0;
}

static CURLcode
on_ssl_ctx(CURL *curl, void *sslctx, void *userp)
{
	struct call *c = userp;
	int mode;

	(void)curl;
	if (SSL_CTX_set_ex_data(sslctx, tls_ex_index(), c) != 1)
		return CURLE_SSL_CERTPROBLEM;
	/* The cluster's CA replaces whatever libcurl loaded. */
	if (c->store && tls_ctx_use_store(sslctx, c->store) < 0)
		return CURLE_SSL_CACERT_BADFILE;
	mode = SSL_CTX_get_verify_mode(sslctx);
	SSL_CTX_set_info_callback(sslctx, on_ssl_info);
	SSL_CTX_set_client_cert_cb(sslctx, on_cert_request);
	if (mode & SSL_VERIFY_PEER)
		SSL_CTX_set_verify(sslctx, mode, on_verify);
	else
		SSL_CTX_set_verify(sslctx, SSL_VERIFY_PEER, on_insecure_verify);
	return CURLE_OK;
}

/* grpc-status is a decimal number; anything else is not a status. */
static int
parse_status(const char *v, size_t len)
{
	int n = 0;
	size_t i;

	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (!len || len > 3)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/* Hand every whole frame in c->body to on_msg and keep the rest (less
 * than one frame, so the move stays small). */
static int
deliver_frames(struct call *c)
{
	const unsigned char *p = (const unsigned char *)c->body.ptr;
	size_t off = 0;

	while (c->body.len - off >= 5) {
		uint32_t len = (uint32_t)p[off + 1] << 24 |
			       (uint32_t)p[off + 2] << 16 |
			       (uint32_t)p[off + 3] << 8 | p[off + 4];

		if (p[off] != 0) {
			err_set(&c->cb_err, ERR_FAIL, "compressed gRPC message "
				"(not negotiated)");
			return -1;
		}
		if (len > c->max_body) {
			err_set(&c->cb_err, ERR_FAIL, "a gRPC message of %u bytes "
				"(more than the %zu allowed)", len, c->max_body);
			return -1;
		}
		if (c->body.len - off - 5 < len)
			break;
		if (c->on_msg(c->on_msg_ctx, p + off + 5, len, &c->cb_err) < 0)
			return -1;
		off += 5 + len;
	}
	if (off) {
		memmove(c->body.ptr, c->body.ptr + off, c->body.len - off);
		c->body.len -= off;
	}
	return 0;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct call *c = userp;
	size_t n = size * nmemb;

	c->body_seen += n;
	if (c->on_msg) {
		buf_add(&c->body, ptr, n);
		if (deliver_frames(c) < 0) {
			c->cb_failed = true;
			return 0;
		}
		return n;
	}
	if (c->body.len + n > c->max_body)
		return 0;
	buf_add(&c->body, ptr, n);
	return n;
}

static void
add_frame(struct buf *b, const void *msg, size_t len);

/* The request body of a source, one message at a time. */
static size_t
on_read(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct call *c = userp;
	size_t room = size * nmemb, n;

	if (c->out_off == c->out.len && !c->src_done) {
		struct buf msg = BUF_INIT_SECRET;
		int r;

		c->out.len = 0;
		c->out_off = 0;
		r = c->src->next(c->src->ctx, &msg, &c->cb_err);
		if (r < 0) {
			buf_release_secret(&msg);
			c->cb_failed = true;
			return CURL_READFUNC_ABORT;
		}
		if (r > 0)
			c->src_done = true;
		else
			add_frame(&c->out, msg.ptr, msg.len);
		buf_release_secret(&msg);
		if (c->sent + c->out.len > c->src->total) {
			err_set(&c->cb_err, ERR_FAIL, "the request grew past the "
				"%zu bytes announced", c->src->total);
			c->cb_failed = true;
			return CURL_READFUNC_ABORT;
		}
	}
	if (c->out_off == c->out.len) {
		if (c->sent != c->src->total) {
			err_set(&c->cb_err, ERR_FAIL, "the request ended after %zu "
				"of the %zu bytes announced", c->sent,
				c->src->total);
			c->cb_failed = true;
			return CURL_READFUNC_ABORT;
		}
		return 0;
	}
	n = c->out.len - c->out_off < room ? c->out.len - c->out_off : room;
	memcpy(ptr, c->out.ptr + c->out_off, n);
	c->out_off += n;
	c->sent += n;
	return n;
}

/* Headers and trailers both arrive here, one line at a time. */
static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct call *c = userp;
	size_t n = size * nmemb, len = n;

	while (len && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r'))
		len--;
	if (len > 5 && !strncmp(ptr, "HTTP/", 5)) {
		c->got_headers = true;
		c->in_headers = true;
	} else if (len == 0) {
		c->in_headers = false;
	}
	if (len > 12 && !strncasecmp(ptr, "grpc-status:", 12)) {
		const char *v = ptr + 12;

		while (*v == ' ')
			v++;
		c->status = parse_status(v, len - (size_t)(v - ptr));
		if (c->status < 0)
			c->bad_status = true;
		c->saw_status = true;
		c->status_in_headers = c->in_headers;
	} else if (len > 13 && !strncasecmp(ptr, "grpc-message:", 13)) {
		const char *v = ptr + 13;
		size_t vl;

		while (*v == ' ')
			v++;
		vl = len - (size_t)(v - ptr);
		free(c->message);
		c->message = grpc_percent_decode(v, vl);
	} else if (len > 13 && !strncasecmp(ptr, "content-type:", 13)) {
		const char *v = ptr + 13;

		while (*v == ' ')
			v++;
		snprintf(c->content_type, sizeof(c->content_type), "%.*s",
			 (int)(len - (size_t)(v - ptr)), v);
	}
	return n;
}

static int
split_frames(struct call *c, struct grpc_result *res, struct err *err,
	     const char *path)
{
	const unsigned char *p = (const unsigned char *)c->body.ptr;
	size_t left = c->body.len;

	while (left > 0) {
		uint32_t len;

		if (left < 5)
			return err_set(err, ERR_FAIL, "%s: truncated gRPC frame", path);
		if (p[0] != 0)
			return err_set(err, ERR_FAIL,
				       "%s: compressed gRPC message (not negotiated)",
				       path);
		len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
		      (uint32_t)p[3] << 8 | p[4];
		if (len > left - 5)
			return err_set(err, ERR_FAIL, "%s: truncated gRPC message", path);
		res->msgs = xrealloc(res->msgs, (res->n_msgs + 1) * sizeof(*res->msgs));
		buf_init(&res->msgs[res->n_msgs]);
		buf_add(&res->msgs[res->n_msgs], p + 5, len);
		res->n_msgs++;
		p += 5 + len;
		left -= 5 + len;
	}
	return 0;
}

/* Turn OpenSSL's vague alerts into what actually happened. */
static int
transport_error(CURLcode rc, const char *errbuf, const struct call *c,
		const struct grpc_opts *o, const char *path,
		struct grpc_result *res, struct err *err)
{
	const char *e = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	const char *alert = c->alert;

	if (c->pin_failed) {
		res->tls = GRPC_TLS_PIN_CHANGED;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the server's certificate (sha256 %s) is "
			       "not the one it showed a moment ago (sha256 %s); "
			       "sent nothing. Another machine may have taken the "
			       "address: check the node's console and the network",
			       path, o->target, c->seen[0] ? c->seen : "unknown",
			       c->pin);
	}
	if (c->verify[0]) {
		res->tls = GRPC_TLS_SERVER_UNTRUSTED;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the node's certificate is not signed by "
			       "this cluster's OS CA; refusing to talk to it (%s)",
			       path, o->target, c->verify);
	}
	if (alert[0] && o->cert_pem &&
	    (!strcmp(alert, "unknown CA") || !strcmp(alert, "bad certificate") ||
	     !strcmp(alert, "certificate required") ||
	     !strcmp(alert, "certificate unknown") ||
	     !strcmp(alert, "unsupported certificate") ||
	     !strcmp(alert, "access denied"))) {
		res->tls = GRPC_TLS_CLIENT_REJECTED;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the node rejected our client certificate "
			       "(TLS alert '%s': it trusts another CA; is this node "
			       "part of a different cluster?)", path, o->target,
			       alert);
	}
	if (alert[0])
		return err_set(err, ERR_FAIL, "%s on %s: TLS alert '%s' from the "
			       "node: %s", path, o->target, alert, e);
	/* Some servers (BoringSSL) just hang up on a client cert they do not
	 * trust, after a TLS 1.3 handshake that looked fine to us. */
	if (o->cert_pem && !c->got_headers &&
	    (rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM ||
	     rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
	     rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE)) {
		res->tls = GRPC_TLS_CLIENT_REJECTED;
		res->hung_up = true;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the node hung up right after the TLS "
			       "handshake without answering: it most likely "
			       "rejected our client certificate (it trusts another "
			       "CA: is this node part of a different cluster?)",
			       path, o->target);
	}
	if (o->cert_pem && (strstr(e, "unknown ca") || strstr(e, "bad certificate") ||
			    strstr(e, "certificate required") ||
			    strstr(e, "certificate unknown") ||
			    strstr(e, "access denied"))) {
		res->tls = GRPC_TLS_CLIENT_REJECTED;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the node rejected our client certificate "
			       "(it trusts another CA: is this node part of a "
			       "different cluster?): %s", path, o->target, e);
	}
	if (rc == CURLE_PEER_FAILED_VERIFICATION ||
	    strstr(e, "certificate verify failed") ||
	    strstr(e, "SSL: no alternative certificate subject name") ||
	    strstr(e, "does not match target host")) {
		res->tls = GRPC_TLS_SERVER_UNTRUSTED;
		return err_set(err, ERR_FAIL,
			       "%s on %s: the node's certificate is not signed by "
			       "this cluster's OS CA (or does not name this "
			       "address); refusing to talk to it: %s",
			       path, o->target, e);
	}
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return err_set(err, ERR_FAIL, "%s on %s: no answer in time (is "
			       "the address right, does a firewall drop port "
			       "%s?): %s", path, o->target,
			       strrchr(o->target, ':') ? strrchr(o->target, ':') + 1
						       : "50000", e);
	if (rc == CURLE_COULDNT_CONNECT)
		return err_set(err, ERR_FAIL, "%s on %s: nothing listens there "
			       "(yet: booting or rebooting, or the address is "
			       "wrong): %s", path, o->target, e);
	if (rc == CURLE_COULDNT_RESOLVE_HOST)
		return err_set(err, ERR_FAIL, "%s on %s: cannot resolve the "
			       "address: %s", path, o->target, e);
	return err_set(err, ERR_FAIL, "%s on %s: %s", path, o->target, e);
}

/* The kind of a transport failure: what was (not) sent. */
static int
transport_kind(CURLcode rc, CURL *curl, const struct grpc_result *res,
	       struct err *err)
{
	curl_off_t app = 0;

	if (res->tls == GRPC_TLS_SERVER_UNTRUSTED ||
	    res->tls == GRPC_TLS_PIN_CHANGED)
		return err_kind(err, ERRK_TLS_TRUST, 0);
	if (res->tls == GRPC_TLS_CLIENT_REJECTED)
		return err_kind(err, ERRK_TLS_CLIENT, 0);
	if (tls_curl_unsent(rc))
		return err_kind(err, ERRK_UNSENT, 0);
	switch (rc) {
	case CURLE_ABORTED_BY_CALLBACK:
		err->code = ERR_INTR;
		return err_kind(err, ERRK_INTERRUPTED, 0);
	case CURLE_OPERATION_TIMEDOUT:
		/* No TLS handshake finished: nothing was sent (no early
		 * data). */
		curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME_T, &app);
		return err_kind(err, app == 0 ? ERRK_UNSENT : ERRK_TIMEOUT, 0);
	default:
		return err_kind(err, ERRK_MAYBE_SENT, 0);
	}
}

static void
add_frame(struct buf *b, const void *msg, size_t len)
{
	unsigned char h[5];

	h[0] = 0;
	h[1] = (unsigned char)(len >> 24);
	h[2] = (unsigned char)(len >> 16);
	h[3] = (unsigned char)(len >> 8);
	h[4] = (unsigned char)len;
	buf_add(b, h, 5);
	if (len)
		buf_add(b, msg, len);
}

static int call_framed(const struct grpc_opts *o, const char *path,
		       unsigned char *framed, size_t framed_len,
		       const struct grpc_source *src,
		       struct grpc_result *res, struct err *err);

int
grpc_call(const struct grpc_opts *o, const char *path, const void *req,
	  size_t req_len, struct grpc_result *res, struct err *err)
{
	struct buf b = BUF_INIT_SECRET;

	add_frame(&b, req, req_len);
	/* call_framed wipes and frees the frames */
	return call_framed(o, path, (unsigned char *)buf_detach(&b, NULL),
			   req_len + 5, NULL, res, err);
}

int
grpc_call_stream(const struct grpc_opts *o, const char *path,
		 const struct buf *reqs, size_t n, struct grpc_result *res,
		 struct err *err)
{
	struct buf b = BUF_INIT_SECRET;
	size_t i, len;

	for (i = 0; i < n; i++)
		add_frame(&b, reqs[i].ptr, reqs[i].len);
	len = b.len;
	if (!len)
		buf_add(&b, "", 1);   /* a pointer to pass even with no frames */
	return call_framed(o, path, (unsigned char *)buf_detach(&b, NULL), len,
			   NULL, res, err);
}

int
grpc_call_source(const struct grpc_opts *o, const char *path,
		 const struct grpc_source *src, struct grpc_result *res,
		 struct err *err)
{
	unsigned char *none = xcalloc(1, 1);

	return call_framed(o, path, none, 0, src, res, err);
}

static int
call_framed(const struct grpc_opts *o, const char *path, unsigned char *framed,
	    size_t framed_len, const struct grpc_source *source,
	    struct grpc_result *res, struct err *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL;
	struct call c;
	struct curl_blob blob;
	char *url, *hdr, tmo[32];
	long timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	long httpver = 0;
	const char *bad = NULL;
	CURLcode rc, src = CURLE_OK;
	CURL *curl;
	int r = 0;

	memset(&c, 0, sizeof(c));
	c.pin = o->insecure ? o->pin_sha256 : NULL;
	buf_init(&c.body);
	c.body.secret = true;
	c.max_body = o->max_reply ? o->max_reply : 64u * 1024 * 1024;
	c.status = -1;
	c.on_msg = o->on_msg;
	c.on_msg_ctx = o->on_msg_ctx;
	c.src = source;
	buf_init(&c.out);
	c.out.secret = true;
	err_clear(&c.cb_err);
	res->status = -1;
	res->tls = GRPC_TLS_NONE;
	res->cert_requested = false;
	res->hung_up = false;
	if (tls_global_init(err) < 0) {
		res->status = GRPC_TRANSPORT;
		secret_free(framed, framed_len);
		err_wrap(err, "%s on %s", path, o->target);
		return err_kind(err, ERRK_UNSENT, 0) < 0 ? -1 : 0;
	}
	if (!o->insecure) {
		if (!o->ca_pem) {
			res->status = GRPC_TRANSPORT;
			secret_free(framed, framed_len);
			return err_set(err, ERR_USAGE, "%s: no CA to verify %s "
				       "against", path, o->target) < 0 ? -1 : 0;
		}
		if (!(c.store = tls_store_from_pem(o->ca_pem, strlen(o->ca_pem)))) {
			res->status = GRPC_TRANSPORT;
			secret_free(framed, framed_len);
			return err_set(err, ERR_USAGE, "%s: the CA to verify %s "
				       "against holds no PEM certificate", path,
				       o->target) < 0 ? -1 : 0;
		}
	}

	url = xasprintf("https://%s%s", o->target, path);
	curl = curl_easy_init();
	if (!curl) {
		free(url);
		secret_free(framed, framed_len);
		X509_STORE_free(c.store);
		return err_set(err, ERR_FAIL, "cannot start libcurl") < 0 ? -1 : 0;
	}
	h = curl_slist_append(h, "content-type: application/grpc+proto");
	h = curl_slist_append(h, "te: trailers");
	h = curl_slist_append(h, "user-agent: strata/0.1 grpc-c");
	h = curl_slist_append(h, "Expect:");
	grpc_timeout_value(timeout, tmo, sizeof(tmo));
	hdr = xasprintf("grpc-timeout: %s", tmo);
	h = curl_slist_append(h, hdr);
	free(hdr);
	if (o->node) {
		hdr = xasprintf("node: %s", o->node);
		h = curl_slist_append(h, hdr);
		free(hdr);
	}

#define SET(opt, val) do { if (!bad && (src = curl_easy_setopt(curl, opt, val)) != CURLE_OK) \
		bad = #opt; } while (0)
	/* Every option that decides what is verified, sent, or where. */
	SET(CURLOPT_URL, url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_HTTPHEADER, h);
	SET(CURLOPT_POST, 1L);
	if (source) {
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, &c);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)source->total);
	} else {
		SET(CURLOPT_POSTFIELDS, framed);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)framed_len);
	}
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, &c);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, &c);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	SET(CURLOPT_SSL_CTX_DATA, &c);
	if (o->insecure) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		blob.data = (void *)o->ca_pem;
		blob.len = strlen(o->ca_pem);
		blob.flags = CURL_BLOB_COPY;
		SET(CURLOPT_CAINFO_BLOB, &blob);
		SET(CURLOPT_CAPATH, (char *)NULL);
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
	}
	if (o->cert_pem && o->key_pem) {
		blob.data = (void *)o->cert_pem;
		blob.len = strlen(o->cert_pem);
		blob.flags = CURL_BLOB_COPY;
		SET(CURLOPT_SSLCERT_BLOB, &blob);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		/* No copy of the key inside libcurl (it would free it
		 * unwiped): o->key_pem outlives this handle. */
		blob.data = (void *)o->key_pem;
		blob.len = strlen(o->key_pem);
		blob.flags = CURL_BLOB_NOCOPY;
		SET(CURLOPT_SSLKEY_BLOB, &blob);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
	if (bad) {
		res->status = GRPC_TRANSPORT;
		err_set(err, ERR_FAIL, "%s on %s: libcurl refused %s (%s); no "
			"connection made", path, o->target, bad,
			curl_easy_strerror(src));
		r = err_kind(err, ERRK_UNSENT, 0);
		goto out;
	}
	/* Ctrl-C aborts a call in progress. */
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	/* Our deadline plus a little, so the server's DeadlineExceeded wins. */
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout + 2000);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
			 o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 3000L);

	rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &httpver);
	if (rc == CURLE_ABORTED_BY_CALLBACK && proc_interrupted) {
		res->status = GRPC_TRANSPORT;
		err_set(err, ERR_INTR, "%s on %s: interrupted", path, o->target);
		r = err_kind(err, ERRK_INTERRUPTED, 0);
		goto out;
	}
	res->cert_requested = c.cert_requested;
	memcpy(res->peer_sha256, c.seen, sizeof(res->peer_sha256));
	if (c.cb_failed) {
		/* our side stopped the call: the reader or the sink said why */
		res->status = GRPC_TRANSPORT;
		*err = c.cb_err;
		err_wrap(err, "%s on %s", path, o->target);
		r = err_kind(err, ERRK_MAYBE_SENT, 0);
		goto out;
	}
	/*
	 * A broken stream counts as a transport failure, except after a
	 * complete trailers-only error reply (status in the headers, no
	 * message): servers may reset the stream then without reading our
	 * request. A status in the headers with messages, or an OK before
	 * the stream ended, is not a complete reply.
	 */
	if (rc != CURLE_OK &&
	    !(c.saw_status && c.status_in_headers && !c.body_seen &&
	      c.status > 0)) {
		res->status = GRPC_TRANSPORT;
		transport_error(rc, errbuf, &c, o, path, res, err);
		r = transport_kind(rc, curl, res, err);
		goto out;
	}
	if (httpver != CURL_HTTP_VERSION_2_0) {
		res->status = GRPC_TRANSPORT;
		err_set(err, ERR_FAIL, "%s on %s: server did not speak HTTP/2 "
			"(is this a Talos API port?)", path, o->target);
		r = err_kind(err, ERRK_MAYBE_SENT, 0);
		goto out;
	}
	if (!c.saw_status || c.bad_status ||
	    (c.status_in_headers && c.body_seen)) {
		long code = 0;

		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		res->status = GRPC_TRANSPORT;
		err_set(err, ERR_FAIL, "%s on %s: %s (HTTP %ld%s%s)", path,
			o->target,
			c.bad_status ? "the grpc-status is not a number"
			: c.saw_status ? "messages after a trailers-only status"
				       : "the stream ended without a gRPC status",
			code, c.content_type[0] ? ", " : "", c.content_type);
		r = err_kind(err, ERRK_MAYBE_SENT, 0);
		goto out;
	}
	res->status = c.status;
	res->message = c.message;
	c.message = NULL;
	if ((r = split_frames(&c, res, err, path)) < 0) {
		err_kind(err, ERRK_MAYBE_SENT, 0);
		goto out;
	}
	if (c.status != GRPC_OK) {
		err_set(err, ERR_FAIL, "%s on %s: %s: %s", path, o->target,
			grpc_code_name(c.status),
			res->message ? res->message : "(no message)");
		r = err_kind(err, ERRK_GRPC_STATUS, c.status);
	}
out:
	curl_easy_cleanup(curl);
	curl_slist_free_all(h);
	buf_release(&c.body);
	buf_release_secret(&c.out);
	free(c.message);
	free(url);
	/* The frame carried a machine config (every CA key) or a token. */
	secret_free(framed, framed_len);
	X509_STORE_free(c.store);
	return r < 0 ? -1 : 0;
}
