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
	char fp[80];          /* fingerprint of the server cert, hex */
	char other_fp[80];
	struct tu_proc srv;
};

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
	char line[64];
	char *cert, *key;
	int r;

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
	read_fp(f->dir, "srv.pem", f->fp);
	read_fp(f->dir, "other.pem", f->other_fp);
	cert = xasprintf("%s/srv.pem", f->dir);
	key = xasprintf("%s/srv.key", f->dir);
	{
		char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/https_server.py",
				 cert, key, NULL };

		r = tu_spawn(&f->srv, argv, line, sizeof(line));
	}
	free(cert);
	free(key);
	if (r < 0 || strncmp(line, "PORT ", 5)) {
		fprintf(stderr, "https_server.py did not start\n");
		return -1;
	}
	snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%d", atoi(line + 5));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_stop(&f->srv);
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
	long before;

	http_response_init(&r);
	assert_int_equal(http_request(probe, "GET", "/count/pinprobe", NULL, NULL, 0, 0, &r, &e), 0);
	before = atol(strchr(r.body.ptr, ':') + 1);
	assert_true(http_request(c, "GET", "/flaky/pinprobe/0", NULL, NULL, 0, 0, &r, &e) < 0);
	assert_non_null(strstr(e.msg, "does not match the pinned fingerprint"));
	assert_non_null(strstr(e.msg, f->fp));          /* says what it saw */
	assert_null(strstr(e.msg, "SECRET-VALUE"));     /* never the token */
	/* The server never saw the request. */
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
	http_response_release(&r);
	http_client_free(good);
	http_client_free(bad);
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
		cmocka_unit_test(test_http__wrong_pin_refused_before_request),
		cmocka_unit_test(test_http__ca_file_verifies_chain),
		cmocka_unit_test(test_http__no_verification_needs_insecure),
		cmocka_unit_test(test_http__retries_5xx_for_idempotent_only),
		cmocka_unit_test(test_http__keep_alive_reuses_one_connection),
		cmocka_unit_test(test_http__body_and_auth_header_sent),
		cmocka_unit_test(test_http__connection_refused_is_reported),
		cmocka_unit_test(test_http__urlencode),
	};

	return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
