/* Unit tests for src/util/http against tests/unit/https_server.py on
 * 127.0.0.1: pinning, CA verification, retries, keep-alive, no retry of a
 * create that may have happened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/http.h"

#include "testutil.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

struct fixture {
	char dir[64];
	char url[64];
	char pub_url[64];     /* a server whose CA is in the "system" store */
	char fp[80];          /* fingerprint of the server cert, hex */
	char other_fp[80];
	struct tu_proc srv;
	struct tu_proc pub;
};

/* Start https_server.py with dir/cert and dir/key; its URL into url. */
static int
start_server(struct fixture *f, struct tu_proc *p, const char *cert,
	     const char *key, char *url)
{
	char line[64];
	char *c = xasprintf("%s/%s", f->dir, cert);
	char *k = xasprintf("%s/%s", f->dir, key);
	char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/https_server.py",
			 c, k, NULL };
	int r = tu_spawn(p, argv, line, sizeof(line));

	free(c);
	free(k);
	if (r < 0 || strncmp(line, "PORT ", 5)) {
		fprintf(stderr, "https_server.py did not start\n");
		return -1;
	}
	snprintf(url, 64, "https://127.0.0.1:%d", atoi(line + 5));
	return 0;
}

/* A counter of the server's (GET /PATH -> {"data": N}). */
static long
server_count(struct fixture *f, const char *url, const char *path)
{
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct http_response r;
	struct err e = ERR_INIT;
	long n = -1;

	o.base_url = url;
	o.insecure = true;
	if (http_client_new(&c, &o, &e) < 0)
		return -1;
	http_response_init(&r);
	if (http_request(c, "GET", path, NULL, NULL, 0, 0, &r, &e) == 0 &&
	    r.status == 200)
		n = atol(strchr(r.body.ptr, ':') + 1);
	http_response_release(&r);
	http_client_free(c);
	(void)f;
	return n;
}

static void
read_fp(const char *dir, const char *cert, char *out)
{
	char *cmd = xasprintf("openssl x509 -in %s/%s -noout -fingerprint -sha256 | "
			      "sed 's/.*=//; s/://g' | tr A-F a-f", dir, cert);
	FILE *p = popen(cmd, "r");

	out[0] = '\0';
	if (p) {
		if (fgets(out, 80, p))
			out[strcspn(out, "\n")] = '\0';
		pclose(p);
	}
	free(cmd);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/strata-http.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* A CA, a server cert it signs for 127.0.0.1, and an unrelated CA. */
	if (tu_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		  "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null && "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null && "
		  "printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
		  "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		  "-out srv.pem -days 2 -extfile ext 2>/dev/null && "
		  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout other.key -out other.pem -days 2 -subj /CN=other 2>/dev/null",
		  f->dir) != 0)
		return -1;
	/* A "public" CA in a stand-in system store (SSL_CERT_FILE and
	 * SSL_CERT_DIR), and a server it signs for the same address. */
	if (tu_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		  "-nodes -keyout pubca.key -out pubca.pem -days 2 -subj /CN=public-ca 2>/dev/null && "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout pub.key -out pub.csr -subj /CN=127.0.0.1 2>/dev/null && "
		  "openssl x509 -req -in pub.csr -CA pubca.pem -CAkey pubca.key -CAcreateserial "
		  "-out pub.pem -days 2 -extfile ext 2>/dev/null && "
		  "mkdir store && cp pubca.pem store/ && openssl rehash store 2>/dev/null && "
		  "cat ca.pem pubca.pem > bundle.pem", f->dir) != 0)
		return -1;
	read_fp(f->dir, "srv.pem", f->fp);
	read_fp(f->dir, "other.pem", f->other_fp);
	if (start_server(f, &f->srv, "srv.pem", "srv.key", f->url) < 0 ||
	    start_server(f, &f->pub, "pub.pem", "pub.key", f->pub_url) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_stop(&f->srv);
	tu_stop(&f->pub);
	tu_sh("rm -rf '%s'", f->dir);
	free(f);
	return 0;
}

static struct http_client *
client(struct fixture *f, const char *fp, const char *ca, bool insecure)
{
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct err e = ERR_INIT;
	char *cafile = ca ? xasprintf("%s/%s", f->dir, ca) : NULL;

	o.base_url = f->url;
	o.fingerprint = fp;
	o.ca_file = cafile;
	o.insecure = insecure;
	o.auth_header = "Authorization: PVEAPIToken=u@pve!t=SECRET-VALUE";
	o.backoff_ms = 5;
	o.max_attempts = 4;
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	free(cafile);
	return c;
}

static struct http_client *
client_shared(struct fixture *f, const char *fp, struct http_share *sh)
{
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct err e = ERR_INIT;

	o.base_url = f->url;
	o.fingerprint = fp;
	o.auth_header = "Authorization: PVEAPIToken=u@pve!t=SECRET-VALUE";
	o.share = sh;
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	return c;
}

/* A share's TLS sessions serve only clients with its first client's pin:
 * a resumed handshake shows no certificate, so a client with another pin
 * that resumed one would send its request unchecked. */
static void
test_http__share_only_for_the_same_pin(void **state)
{
	struct fixture *f = *state;
	struct http_share *sh = http_share_new();
	struct http_client *a = client_shared(f, f->fp, sh);
	struct http_client *b = client_shared(f, f->fp, sh);
	struct http_client *w = client_shared(f, f->other_fp, sh);
	struct http_response r;
	struct err e = ERR_INIT;
	int i;

	http_response_init(&r);
	for (i = 0; i < 2; i++) {   /* the second read takes the session ticket */
		assert_int_equal(http_request(a, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
		assert_int_equal(r.status, 200);
	}
	assert_int_equal(http_request(b, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_true(http_request(w, "GET", "/ok", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_non_null(strstr(e.msg, "not the pinned fingerprint"));
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	http_response_release(&r);
	http_client_free(a);
	http_client_free(b);
	http_client_free(w);
	http_share_free(sh);
}

static void
test_http__pinned_fingerprint_accepted(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->fp, NULL, false);
	struct http_response r;
	struct err e = ERR_INIT;

	http_response_init(&r);
	assert_int_equal(http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body.ptr, "{\"data\": \"ok\"}");
	assert_string_equal(r.content_type, "application/json");
	http_response_release(&r);
	http_client_free(c);
}

static void
test_http__wrong_pin_refused_before_request(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->other_fp, NULL, false);
	struct http_client *probe = client(f, f->fp, NULL, false);
	struct http_response r;
	struct err e = ERR_INIT;
	long before, reqs;

	http_response_init(&r);
	assert_int_equal(http_request(probe, "GET", "/count/pinprobe", NULL, NULL, 0, 0, &r, &e), 0);
	before = atol(strchr(r.body.ptr, ':') + 1);
	reqs = server_count(f, f->url, "/requests");
	assert_true(reqs > 0);
	assert_true(http_request(c, "GET", "/flaky/pinprobe/0", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_non_null(strstr(e.msg, "not the pinned fingerprint"));
	assert_non_null(strstr(e.msg, f->fp));          /* says what it saw */
	assert_non_null(strstr(e.msg, "openssl s_client -connect 127.0.0.1:"));
	assert_null(strstr(e.msg, "SECRET-VALUE"));     /* never the token */
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	/* The server never read a request: the one after is the only new
	 * one. */
	assert_int_equal(server_count(f, f->url, "/requests"), reqs + 1);
	assert_int_equal(http_request(probe, "GET", "/count/pinprobe", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(atol(strchr(r.body.ptr, ':') + 1), before);
	http_response_release(&r);
	http_client_free(c);
	http_client_free(probe);
}

static void
test_http__ca_file_verifies_chain(void **state)
{
	struct fixture *f = *state;
	struct http_client *good = client(f, NULL, "ca.pem", false);
	struct http_client *bad = client(f, NULL, "other.pem", false);
	struct http_response r;
	struct err e = ERR_INIT;

	http_response_init(&r);
	assert_int_equal(http_request(good, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_true(http_request(bad, "GET", "/ok", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_non_null(strstr(e.msg, "GET /ok: "));
	assert_non_null(strstr(e.msg, "does not verify against CA file"));
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	http_response_release(&r);
	http_client_free(good);
	http_client_free(bad);
}

/*
 * A server whose certificate chains to a CA of the system store (here a
 * stand-in store named by SSL_CERT_FILE / SSL_CERT_DIR, and libcurl's
 * CA path) is refused when the config gives another CA: the given CA
 * replaces the store, it does not add to it. The request never reaches
 * the server.
 */
static void
test_http__ca_file_replaces_system_store(void **state)
{
	struct fixture *f = *state;
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct http_response r;
	struct err e = ERR_INIT;
	char *ca = xasprintf("%s/ca.pem", f->dir);
	char *pubca = xasprintf("%s/pubca.pem", f->dir);
	char *store = xasprintf("%s/store", f->dir);
	char *bundle = xasprintf("%s/bundle.pem", f->dir);
	char *pem;
	long reqs;

	setenv("SSL_CERT_FILE", pubca, 1);
	setenv("SSL_CERT_DIR", store, 1);
	http_response_init(&r);
	o.base_url = f->pub_url;
	o.auth_header = "Authorization: PVEAPIToken=u@pve!t=SECRET-VALUE";
	o.max_attempts = 1;
	/* The server is fine for a client that trusts its CA... */
	o.ca_file = bundle;
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	assert_int_equal(http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	http_client_free(c);
	/* ...but not for one given another CA, as a file or in memory. */
	reqs = server_count(f, f->pub_url, "/requests");
	o.ca_file = ca;
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	assert_true(http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	assert_non_null(strstr(e.msg, "CA file '"));
	http_client_free(c);
	o.ca_file = NULL;
	o.ca_pem = pem = tu_slurp(f->dir, "ca.pem");
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	assert_true(http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	http_client_free(c);
	free(pem);
	assert_int_equal(server_count(f, f->pub_url, "/requests"), reqs + 1);
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	http_response_release(&r);
	free(ca);
	free(pubca);
	free(store);
	free(bundle);
}

/* Path of a helper program next to this test binary, or NULL. */
static char *
helper(const char *name)
{
	char self[4096], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 64);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	strcpy(slash + 1, name);
	return access(self, X_OK) == 0 ? xstrdup(self) : NULL;
}

/*
 * The same with libcurl's real defaults: in a mount namespace, the test's
 * store is bind-mounted over /etc/ssl/certs (libcurl's CA path and
 * bundle), so the public CA is what the system trusts. Given another CA,
 * the request must not go out.
 */
static void
test_http__ca_file_replaces_libcurl_defaults(void **state)
{
	struct fixture *f = *state;
	char *prog = helper("http_get"), *out;
	long reqs;
	int rc;

	if (!prog || tu_sh("unshare -m true 2>/dev/null") != 0)
		skip();         /* no mount namespaces here */
	tu_sh("cp %s/pubca.pem %s/store/ca-certificates.crt", f->dir, f->dir);
	reqs = server_count(f, f->pub_url, "/requests");
	/* Control: trusting the system store's CA explicitly works... */
	rc = tu_sh("unshare -m sh -c 'mount --bind %s/store /etc/ssl/certs && "
		   "exec %s %s ca %s/pubca.pem' > %s/ns.out 2>&1", f->dir, prog,
		   f->pub_url, f->dir, f->dir);
	out = tu_slurp(f->dir, "ns.out");
	assert_int_equal(WEXITSTATUS(rc), 1);
	assert_non_null(strstr(out, "sent: status 200"));
	free(out);
	/* ...the config's CA alone decides: refused, nothing sent. */
	rc = tu_sh("unshare -m sh -c 'mount --bind %s/store /etc/ssl/certs && "
		   "exec %s %s ca %s/ca.pem' > %s/ns.out 2>&1", f->dir, prog,
		   f->pub_url, f->dir, f->dir);
	out = tu_slurp(f->dir, "ns.out");
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "kind tls-trust"));
	free(out);
	assert_int_equal(server_count(f, f->pub_url, "/requests"), reqs + 2);
	free(prog);
}

/* A CA file that holds no certificate is a usage error up front. */
static void
test_http__bad_ca_file_is_reported(void **state)
{
	struct fixture *f = *state;
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct err e = ERR_INIT;
	char *path = xasprintf("%s/srv.key", f->dir);

	o.base_url = f->url;
	o.ca_file = path;
	assert_true(http_client_new(&c, &o, &e) < 0);
	assert_null(c);
	assert_int_equal(e.code, ERR_USAGE);
	assert_non_null(strstr(e.msg, "holds no PEM certificate"));
	free(path);
	o.ca_file = "/nonexistent/ca.pem";
	assert_true(http_client_new(&c, &o, &e) < 0);
	assert_non_null(strstr(e.msg, "/nonexistent/ca.pem"));
}

/*
 * The same client code linked against libcurl-gnutls (where OpenSSL
 * callbacks are ignored) refuses to start: not one TCP connection.
 */
static void
test_http__gnutls_libcurl_refuses_to_pin(void **state)
{
	struct fixture *f = *state;
	char *self = helper("http_gnutls"), *out;
	long conns;
	int rc;

	if (!self)
		skip();         /* libcurl3-gnutls not installed at build time */
	conns = server_count(f, f->url, "/connections");
	rc = tu_sh("%s %s pin %s > %s/gnutls.out 2>&1", self, f->url, f->other_fp,
		   f->dir);
	out = tu_slurp(f->dir, "gnutls.out");
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "refused: libcurl"));
	assert_non_null(strstr(out, "not OpenSSL"));
	assert_null(strstr(out, "SECRET-VALUE"));
	free(out);
	/* Only the counting request's own connection is new. */
	assert_int_equal(server_count(f, f->url, "/connections"), conns + 1);
	free(self);
}

static void
test_http__no_verification_needs_insecure(void **state)
{
	struct fixture *f = *state;
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct err e = ERR_INIT;

	o.base_url = f->url;
	assert_true(http_client_new(&c, &o, &e) < 0);
	assert_non_null(strstr(e.msg, "no way to verify the server"));
	/* decided by the trust module (trust_http_send) */
	assert_int_equal(e.kind, ERRK_REFUSED);
	o.base_url = "http://127.0.0.1:1";
	o.insecure = true;
	assert_true(http_client_new(&c, &o, &e) < 0);
	assert_null(c);
}

static void
test_http__retries_5xx_for_idempotent_only(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->fp, NULL, false);
	struct http_response r;
	struct http_stats st;
	struct err e = ERR_INIT;

	http_response_init(&r);
	assert_int_equal(http_request(c, "GET", "/flaky/g/2", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	http_client_stats(c, &st);
	assert_int_equal(st.retries, 2);
	/* A create that may have happened is not repeated. */
	assert_int_equal(http_request(c, "POST", "/flaky/p/2", "application/x-www-form-urlencoded",
				      "a=1", 3, 0, &r, &e), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.reason, "Service Unavailable");
	assert_int_equal(http_request(c, "GET", "/count/p", NULL, NULL, 0, 0, &r, &e), 0);
	assert_string_equal(r.body.ptr, "{\"data\": 1}");
	/* A 500 is retried for GET, and for POST only when the caller says a
	 * 500 means nothing happened. */
	assert_int_equal(http_request(c, "GET", "/fail500/g5/1", NULL, NULL, 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(http_request(c, "POST", "/fail500/p5/1", NULL, "", 0, 0, &r, &e), 0);
	assert_int_equal(r.status, 500);
	assert_int_equal(http_request(c, "POST", "/fail500/q5/1", NULL, "", 0, HTTP_RETRY_500, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(http_request(c, "POST", "/flaky/r5/1", NULL, "", 0, HTTP_RETRY_500, &r, &e), 0);
	assert_int_equal(r.status, 503);
	/* Unless the caller marks it idempotent. */
	assert_int_equal(http_request(c, "POST", "/flaky/q/1", NULL, "", 0, HTTP_IDEMPOTENT, &r, &e), 0);
	assert_int_equal(r.status, 200);
	http_response_release(&r);
	http_client_free(c);
}

static void
test_http__keep_alive_reuses_one_connection(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->fp, NULL, false);
	struct http_response r;
	struct http_stats st;
	struct err e = ERR_INIT;
	int i;

	http_response_init(&r);
	for (i = 0; i < 20; i++)
		assert_int_equal(http_request(c, "GET", "/ok", NULL, NULL, 0, 0, &r, &e), 0);
	http_client_stats(c, &st);
	assert_int_equal(st.requests, 20);
	assert_int_equal(st.connects, 1);
	http_response_release(&r);
	http_client_free(c);
}

static void
test_http__body_and_auth_header_sent(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->fp, NULL, false);
	struct http_response r;
	struct err e = ERR_INIT;

	http_response_init(&r);
	assert_int_equal(http_request(c, "POST", "/echo", "application/json",
				      "{\"x\":1}", 7, 0, &r, &e), 0);
	assert_string_equal(r.body.ptr, "{\"data\": \"{\\\"x\\\":1}\"}");
	assert_int_equal(http_request(c, "GET", "/auth", NULL, NULL, 0, 0, &r, &e), 0);
	assert_non_null(strstr(r.body.ptr, "PVEAPIToken=u@pve!t=SECRET-VALUE"));
	http_response_release(&r);
	http_client_free(c);
}

static void
test_http__connection_refused_is_reported(void **state)
{
	struct http_opts o = { 0 };
	struct http_client *c = NULL;
	struct http_response r;
	struct err e = ERR_INIT;

	o.base_url = "https://127.0.0.1:9";
	o.insecure = true;
	o.max_attempts = 2;
	o.backoff_ms = 1;
	assert_int_equal(http_client_new(&c, &o, &e), 0);
	http_response_init(&r);
	assert_true(http_request(c, "POST", "/x", NULL, "", 0, 0, &r, &e) < 0);
	assert_non_null(strstr(e.msg, "POST /x: "));
	assert_non_null(strstr(e.msg, "cannot connect to 127.0.0.1:9"));
	assert_int_equal(e.kind, ERRK_UNSENT);
	http_response_release(&r);
	http_client_free(c);
}

/* A POST whose connection broke after sending may have happened: not
 * repeated, and the kind says so. */
static void
test_http__dropped_post_is_maybe_sent(void **state)
{
	struct fixture *f = *state;
	struct http_client *c = client(f, f->fp, NULL, false);
	struct http_response r;
	struct err e = ERR_INIT;

	http_response_init(&r);
	assert_true(http_request(c, "POST", "/drop/dp", NULL, "a=1", 3, 0, &r, &e) < 0);
	assert_int_equal(e.kind, ERRK_MAYBE_SENT);
	assert_true(err_outcome_unknown(&e));
	assert_int_equal(server_count(f, f->url, "/count/dp"), 1);
	/* A GET is idempotent: retried. */
	assert_true(http_request(c, "GET", "/drop/dg", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_int_equal(server_count(f, f->url, "/count/dg"), 4);
	http_response_release(&r);
	http_client_free(c);
}

static void
test_http__urlencode(void **state)
{
	struct buf b = BUF_INIT;

	http_urlencode(&b, "virtio,bridge=vmbr0 a/b");
	assert_string_equal(b.ptr, "virtio%2Cbridge%3Dvmbr0%20a%2Fb");
	buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http__pinned_fingerprint_accepted),
		cmocka_unit_test(test_http__share_only_for_the_same_pin),
		cmocka_unit_test(test_http__wrong_pin_refused_before_request),
		cmocka_unit_test(test_http__ca_file_verifies_chain),
		cmocka_unit_test(test_http__ca_file_replaces_system_store),
		cmocka_unit_test(test_http__ca_file_replaces_libcurl_defaults),
		cmocka_unit_test(test_http__bad_ca_file_is_reported),
		cmocka_unit_test(test_http__gnutls_libcurl_refuses_to_pin),
		cmocka_unit_test(test_http__no_verification_needs_insecure),
		cmocka_unit_test(test_http__retries_5xx_for_idempotent_only),
		cmocka_unit_test(test_http__keep_alive_reuses_one_connection),
		cmocka_unit_test(test_http__body_and_auth_header_sent),
		cmocka_unit_test(test_http__connection_refused_is_reported),
		cmocka_unit_test(test_http__dropped_post_is_maybe_sent),
		cmocka_unit_test(test_http__urlencode),
	};

	return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
