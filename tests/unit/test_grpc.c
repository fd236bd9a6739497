/* Unit tests for src/util/grpc against tests/unit/grpc_server.py (python3-
 * grpcio) on 127.0.0.1: framing, streaming, status and message from
 * trailers, deadlines, metadata, CA verification, mTLS and its failures,
 * and refusing a server without HTTP/2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/grpc.h"

#include "testutil.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

struct fixture {
	char dir[64];
	char tls[32], mtls[32], h1[32], h2raw[32];
	char *ca, *other_ca, *cert, *key, *other_cert, *other_key;
	struct tu_proc srv;
	struct tu_proc raw;     /* h2_server.py: broken gRPC on purpose */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char line[128];
	int a, b, c;

	strcpy(f->dir, "/tmp/strata-grpc.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* CA; server cert for 127.0.0.1; admin client cert (O=os:admin,
	 * clientAuth); and a foreign CA with its own client cert. */
	if (tu_sh("cd %s && "
		  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout ca.key -out ca.pem -days 2 -subj /O=talos 2>/dev/null && "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout srv.key -out srv.csr -subj /CN=node 2>/dev/null && "
		  "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > sext && "
		  "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		  "-out srv.pem -days 2 -extfile sext 2>/dev/null && "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout cli.key -out cli.csr -subj /O=os:admin 2>/dev/null && "
		  "printf 'extendedKeyUsage=clientAuth\\n' > cext && "
		  "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		  "-out cli.pem -days 2 -extfile cext 2>/dev/null && "
		  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout oca.key -out oca.pem -days 2 -subj /O=other 2>/dev/null && "
		  "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		  "-keyout ocli.key -out ocli.csr -subj /O=os:admin 2>/dev/null && "
		  "openssl x509 -req -in ocli.csr -CA oca.pem -CAkey oca.key -CAcreateserial "
		  "-out ocli.pem -days 2 -extfile cext 2>/dev/null", f->dir) != 0)
		return -1;
	f->ca = tu_slurp(f->dir, "ca.pem");
	f->other_ca = tu_slurp(f->dir, "oca.pem");
	f->cert = tu_slurp(f->dir, "cli.pem");
	f->key = tu_slurp(f->dir, "cli.key");
	f->other_cert = tu_slurp(f->dir, "ocli.pem");
	f->other_key = tu_slurp(f->dir, "ocli.key");
	{
		char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/grpc_server.py",
				 f->dir, NULL };

		if (tu_spawn(&f->srv, argv, line, sizeof(line)) < 0 ||
		    sscanf(line, "PORTS %d %d %d", &a, &b, &c) != 3) {
			fprintf(stderr, "grpc_server.py did not start: %s\n", line);
			return -1;
		}
	}
	snprintf(f->tls, sizeof(f->tls), "127.0.0.1:%d", a);
	snprintf(f->mtls, sizeof(f->mtls), "127.0.0.1:%d", b);
	snprintf(f->h1, sizeof(f->h1), "127.0.0.1:%d", c);
	{
		char *crt = xasprintf("%s/srv.pem", f->dir);
		char *key = xasprintf("%s/srv.key", f->dir);
		char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/h2_server.py",
				 crt, key, NULL };
		int r = tu_spawn(&f->raw, argv, line, sizeof(line));

		free(crt);
		free(key);
		if (r < 0 || sscanf(line, "PORT %d", &a) != 1) {
			fprintf(stderr, "h2_server.py did not start: %s\n", line);
			return -1;
		}
	}
	snprintf(f->h2raw, sizeof(f->h2raw), "127.0.0.1:%d", a);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tu_stop(&f->srv);
	tu_stop(&f->raw);
	tu_sh("rm -rf '%s'", f->dir);
	free(f->ca);
	free(f->other_ca);
	free(f->cert);
	free(f->key);
	free(f->other_cert);
	free(f->other_key);
	free(f);
	return 0;
}

static void
test_grpc__unary_echo_insecure_and_verified(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;
	const char msg[] = "hello\0binary";

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Echo", msg, sizeof(msg), &r, &e), 0);
	assert_int_equal(r.status, GRPC_OK);
	assert_int_equal(r.n_msgs, 1);
	assert_int_equal(r.msgs[0].len, sizeof(msg));
	assert_memory_equal(r.msgs[0].ptr, msg, sizeof(msg));
	grpc_result_release(&r);
	/* Same call, verifying the server against the CA. */
	o.insecure = false;
	o.ca_pem = f->ca;
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), 0);
	/* An empty request message is legal. */
	assert_int_equal(grpc_call(&o, "/test.T/Echo", NULL, 0, &r, &e), 0);
	grpc_result_release(&r);
}

static void
test_grpc__wrong_ca_refused(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .ca_pem = f->other_ca };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	assert_non_null(strstr(e.msg, "not signed by this cluster's OS CA"));
	grpc_result_release(&r);
}

static void
test_grpc__server_stream(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Stream", "5", 1, &r, &e), 0);
	assert_int_equal(r.n_msgs, 5);
	assert_string_equal(r.msgs[0].ptr, "msg-0");
	assert_string_equal(r.msgs[4].ptr, "msg-4");
	grpc_result_release(&r);
}

static void
test_grpc__status_and_message_from_trailers(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Fail", "", 0, &r, &e), -1);
	assert_int_equal(r.status, GRPC_ALREADY_EXISTS);
	assert_string_equal(r.message, "50% done: exists\n");
	assert_non_null(strstr(e.msg, "/test.T/Fail on 127.0.0.1:"));
	assert_non_null(strstr(e.msg, "AlreadyExists: 50% done: exists"));
	grpc_result_release(&r);
}

static void
test_grpc__deadline(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true, .timeout_ms = 300 };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Slow", "", 0, &r, &e), -1);
	assert_int_equal(r.status, GRPC_DEADLINE_EXCEEDED);
	grpc_result_release(&r);
}

static void
test_grpc__node_metadata(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true, .node = "10.0.0.12" };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Node", "", 0, &r, &e), 0);
	assert_string_equal(r.msgs[0].ptr, "10.0.0.12");
	grpc_result_release(&r);
}

static void
test_grpc__mtls_accepts_our_cert_rejects_foreign(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->mtls, .ca_pem = f->ca,
			       .cert_pem = f->cert, .key_pem = f->key };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "m", 1, &r, &e), 0);
	grpc_result_release(&r);
	o.cert_pem = f->other_cert;
	o.key_pem = f->other_key;
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "m", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	assert_non_null(strstr(e.msg, "rejected our client certificate"));
	assert_null(strstr(e.msg, "not closed cleanly"));
	grpc_result_release(&r);
}

static void
test_grpc__http1_only_server_refused(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->h1, .insecure = true, .timeout_ms = 2000 };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "m", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	grpc_result_release(&r);
}

static void
test_grpc__helpers(void **state)
{
	char buf[32], *d;

	d = grpc_percent_decode("a%20b%25c%zz%2", 14);
	assert_string_equal(d, "a b%c%zz%2");
	free(d);
	grpc_timeout_value(1500, buf, sizeof(buf));
	assert_string_equal(buf, "1500m");
	grpc_timeout_value(200000000L, buf, sizeof(buf));
	assert_string_equal(buf, "200000S");
	assert_string_equal(grpc_code_name(GRPC_UNAVAILABLE), "Unavailable");
}

/* grpc-status is a number: garbage or an empty value is not OK. */
static void
test_grpc__garbage_status_is_not_ok(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->h2raw, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/ok/Echo", "x", 1, &r, &e), 0);
	assert_int_equal(r.status, GRPC_OK);
	grpc_result_release(&r);
	assert_int_equal(grpc_call(&o, "/bad/GarbageStatus", "x", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	assert_non_null(strstr(e.msg, "grpc-status is not a number"));
	grpc_result_release(&r);
	assert_int_equal(grpc_call(&o, "/bad/EmptyStatus", "x", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	grpc_result_release(&r);
}

/* A status in the headers does not make a broken stream complete. */
static void
test_grpc__truncated_stream_after_header_status(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->h2raw, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/bad/StatusThenReset", "x", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	assert_int_equal(r.n_msgs, 0);
	grpc_result_release(&r);
	assert_int_equal(grpc_call(&o, "/bad/OkThenReset", "x", 1, &r, &e), -1);
	assert_int_equal(r.status, GRPC_TRANSPORT);
	assert_int_equal(e.kind, ERRK_MAYBE_SENT);
	grpc_result_release(&r);
}

/* The TLS fact the maintenance probe reads, and the kinds callers use. */
static void
test_grpc__cert_request_fact_and_kinds(void **state)
{
	struct fixture *f = *state;
	struct grpc_opts o = { .target = f->tls, .insecure = true };
	struct grpc_result r;
	struct err e = ERR_INIT;

	grpc_result_init(&r);
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), 0);
	assert_false(r.cert_requested);
	grpc_result_release(&r);
	/* A server that wants a client cert asks for it (we send none). */
	o.target = f->mtls;
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), -1);
	assert_true(r.cert_requested);
	grpc_result_release(&r);
	o.target = f->tls;
	assert_int_equal(grpc_call(&o, "/test.T/Fail", "x", 1, &r, &e), -1);
	assert_int_equal(e.kind, ERRK_GRPC_STATUS);
	assert_int_equal(e.status, GRPC_ALREADY_EXISTS);
	grpc_result_release(&r);
	o.insecure = false;
	o.ca_pem = f->other_ca;
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), -1);
	assert_int_equal(e.kind, ERRK_TLS_TRUST);
	grpc_result_release(&r);
	o.target = "127.0.0.1:9";
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), -1);
	assert_int_equal(e.kind, ERRK_UNSENT);
	assert_non_null(strstr(e.msg, "nothing listens there"));
	grpc_result_release(&r);
	/* A CA text without a certificate is refused before connecting. */
	o.target = f->tls;
	o.ca_pem = "not a certificate";
	assert_int_equal(grpc_call(&o, "/test.T/Echo", "x", 1, &r, &e), -1);
	assert_non_null(strstr(e.msg, "holds no PEM certificate"));
	grpc_result_release(&r);
}

/*
 * The cluster's CA is the only trust anchor: a server under a CA the
 * system store trusts (here a store bound over /etc/ssl/certs, libcurl's
 * CA path and bundle, in a mount namespace) is refused when the caller
 * gives another CA. Before, any public-CA certificate naming the node's
 * address counted as the cluster's.
 */
static void
test_grpc__ca_replaces_system_store(void **state)
{
	struct fixture *f = *state;
	struct tu_proc pub = { 0 };
	char self[4096], *slash, line[128], *out, *d2;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 64);
	int a, b, c, rc;

	assert_true(n > 0);
	self[n] = '\0';
	slash = strrchr(self, '/');
	strcpy(slash + 1, "grpc_get");
	if (access(self, X_OK) != 0 || tu_sh("unshare -m true 2>/dev/null") != 0)
		skip();
	/* A second server whose CA ("public") is in the stand-in store. */
	d2 = xasprintf("%s/pub", f->dir);
	assert_int_equal(tu_sh("mkdir -p %s/store && cd %s && "
			       "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			       "-keyout ca.key -out ca.pem -days 2 -subj /O=public 2>/dev/null && "
			       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			       "-keyout srv.key -out srv.csr -subj /CN=node 2>/dev/null && "
			       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			       "-out srv.pem -days 2 -extfile ../sext 2>/dev/null && "
			       "cp ca.pem store/ && cp ca.pem store/ca-certificates.crt && "
			       "openssl rehash store 2>/dev/null", d2, d2), 0);
	{
		char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/grpc_server.py",
				 d2, NULL };

		assert_int_equal(tu_spawn(&pub, argv, line, sizeof(line)), 0);
		assert_int_equal(sscanf(line, "PORTS %d %d %d", &a, &b, &c), 3);
	}
	/* Control: trusting the public CA explicitly works... */
	rc = tu_sh("unshare -m sh -c 'mount --bind %s/store /etc/ssl/certs && "
		   "exec %s 127.0.0.1:%d %s/ca.pem' > %s/ns.out 2>&1", d2, self, a,
		   d2, f->dir);
	out = tu_slurp(f->dir, "ns.out");
	if (WEXITSTATUS(rc) != 1)
		fprintf(stderr, "%s", out);
	assert_int_equal(WEXITSTATUS(rc), 1);
	assert_non_null(strstr(out, "sent: status 0"));
	free(out);
	/* ...but given the cluster's CA, the system's does not count. */
	rc = tu_sh("unshare -m sh -c 'mount --bind %s/store /etc/ssl/certs && "
		   "exec %s 127.0.0.1:%d %s/ca.pem' > %s/ns.out 2>&1", d2, self, a,
		   f->dir, f->dir);
	out = tu_slurp(f->dir, "ns.out");
	tu_stop(&pub);
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "kind tls-trust"));
	free(out);
	free(d2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grpc__unary_echo_insecure_and_verified),
		cmocka_unit_test(test_grpc__wrong_ca_refused),
		cmocka_unit_test(test_grpc__server_stream),
		cmocka_unit_test(test_grpc__status_and_message_from_trailers),
		cmocka_unit_test(test_grpc__deadline),
		cmocka_unit_test(test_grpc__node_metadata),
		cmocka_unit_test(test_grpc__mtls_accepts_our_cert_rejects_foreign),
		cmocka_unit_test(test_grpc__http1_only_server_refused),
		cmocka_unit_test(test_grpc__helpers),
		cmocka_unit_test(test_grpc__garbage_status_is_not_ok),
		cmocka_unit_test(test_grpc__truncated_stream_after_header_status),
		cmocka_unit_test(test_grpc__cert_request_fact_and_kinds),
		cmocka_unit_test(test_grpc__ca_replaces_system_store),
	};

	return cmocka_run_group_tests_name("grpc", tests, setup, teardown);
}
