/*
 * Unit tests for src/trust (may this machine config go to that peer?) and
 * the maintenance-mode probe it relies on (src/talos/api talos_probe),
 * the latter against tests/e2e/impostor.py on 127.0.0.1: maintenance is
 * decided by TLS facts and status codes, never by message text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "talos/api.h"
#include "trust/trust.h"
#include "util/grpc.h"

#include "testutil.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static void
test_trust__cluster_peer_always_gets_it(void **state)
{
	struct trust_node n = { .name = "w-1", .installed = true };
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_CONFIG,
					   TRUST_PEER_CLUSTER, &e), 0);
}

static void
test_trust__maintenance_only_for_a_fresh_node(void **state)
{
	struct trust_node n = { .name = "w-1", .env_dir = "envs/lab" };
	struct err e = ERR_INIT;

	(void)state;
	/* Never installed, address from the config or the guest agent. */
	assert_int_equal(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_CONFIG,
					   TRUST_PEER_MAINTENANCE, &e), 0);
	assert_int_equal(trust_config_send(&n, "10.0.9.5", 50000, TRUST_ADDR_AGENT,
					   TRUST_PEER_MAINTENANCE, &e), 0);
	/* An address from nowhere we trust. */
	assert_true(trust_config_send(&n, "10.0.9.5", 50000, TRUST_ADDR_UNKNOWN,
				      TRUST_PEER_MAINTENANCE, &e) < 0);
	assert_int_equal(e.kind, ERRK_REFUSED);
	/* A peer that proved nothing. */
	assert_true(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_CONFIG,
				      TRUST_PEER_UNKNOWN, &e) < 0);
	assert_int_equal(e.kind, ERRK_REFUSED);
	/* Installed per the journal: an impostor, unless --reinstall. */
	n.installed = true;
	assert_true(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_CONFIG,
				      TRUST_PEER_MAINTENANCE, &e) < 0);
	assert_int_equal(e.kind, ERRK_REFUSED);
	assert_non_null(strstr(e.msg, "node 'w-1'"));
	assert_non_null(strstr(e.msg, "10.0.0.21:50000"));
	assert_non_null(strstr(e.msg, "strata apply envs/lab --reinstall w-1"));
	n.reinstall = true;
	assert_int_equal(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_AGENT,
					   TRUST_PEER_MAINTENANCE, &e), 0);
	/* --reinstall does not make an unknown address acceptable. */
	assert_true(trust_config_send(&n, "10.0.0.21", 50000, TRUST_ADDR_UNKNOWN,
				      TRUST_PEER_MAINTENANCE, &e) < 0);
}

static void
test_trust__journal_installed(void **state)
{
	char dir[] = "/tmp/strata-trust.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_load(&st, dir, &e), 0);
	assert_false(trust_journal_installed(&st, "w-1"));
	/* Applied in maintenance mode, not yet seen over mTLS. */
	assert_int_equal(state_talos_set(&st, "w-1", "config_sha256", "ab", &e), 0);
	assert_false(trust_journal_installed(&st, "w-1"));
	assert_int_equal(trust_journal_mark_installed(&st, "w-1", &e), 0);
	assert_true(trust_journal_installed(&st, "w-1"));
	/* Journals from before the key: booting from disk means installed. */
	assert_int_equal(state_talos_set(&st, "w-2", "boot", "disk", &e), 0);
	assert_true(trust_journal_installed(&st, "w-2"));
	state_release(&st);
	tu_sh("rm -rf %s", dir);
}

/* Start impostor.py on 127.0.0.1 (any port) with a message and an
 * optional client CA; its port, or -1. */
static int
impostor(struct tu_proc *p, const char *dir, const char *msg, const char *client_ca)
{
	char line[64];
	char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/e2e/impostor.py",
			 "127.0.0.1", (char *)dir, "0", (char *)msg,
			 (char *)client_ca, NULL };

	if (tu_spawn(p, argv, line, sizeof(line)) < 0 || strncmp(line, "READY ", 6))
		return -1;
	return atoi(line + 6);
}

static struct tu_proc imp;     /* stopped by teardown, even on failure */

static void
stop(struct tu_proc *p)
{
	/* impostor.py runs until SIGTERM. */
	if (p->pid > 0)
		kill(p->pid, SIGTERM);
	tu_stop(p);
}

static int
stop_impostor(void **state)
{
	(void)state;
	stop(&imp);
	return 0;
}

static void
test_probe__maintenance_by_facts_not_text(void **state)
{
	char dir[] = "/tmp/strata-probe.XXXXXX";
	struct talos_target t = { .addr = "127.0.0.1", .timeout_ms = 3000,
				  .connect_timeout_ms = 1000 };
	struct talos_status st = { 0 };
	struct tu_proc *p = &imp;
	struct err e = ERR_INIT;
	char *tag = NULL, *ca;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* Unimplemented with any text, no client-certificate request:
	 * maintenance mode. */
	t.port = impostor(p, dir, "nothing to do with maintenance", NULL);
	assert_true(t.port > 0);
	assert_int_equal(talos_probe(&t, &tag, &st, &e), TALOS_MAINTENANCE);
	assert_true(st.maintenance);
	assert_false(st.cert_requested);
	/* The probe saw a certificate; a send pinned to it reaches that
	 * machine, a send pinned to another certificate sends nothing. */
	{
		char pin[65], *calls;
		struct talos_status st2 = { 0 };
		char *details = NULL;

		assert_int_equal(strlen(st.cert_sha256), 64);
		memcpy(pin, st.cert_sha256, sizeof(pin));
		t.pin_sha256 = pin;
		assert_int_equal(talos_apply_configuration(&t, "k: v", 4,
							   &details, &st2, &e), 0);
		free(details);
		pin[0] = pin[0] == '0' ? '1' : '0';
		assert_int_equal(talos_apply_configuration(&t, "k: v", 4,
							   &details, &st2, &e), -1);
		assert_int_equal(e.kind, ERRK_TLS_TRUST);
		assert_non_null(strstr(e.msg, "not the one it showed a moment ago"));
		t.pin_sha256 = NULL;
		calls = tu_slurp(dir, "calls.jsonl");
		assert_non_null(calls);
		/* one ApplyConfiguration: the pinned one to the same machine */
		assert_non_null(strstr(calls, "ApplyConfiguration"));
		assert_null(strstr(strstr(calls, "ApplyConfiguration") + 1,
				   "ApplyConfiguration"));
		free(calls);
	}
	stop(p);
	/* The upstream text, but the server asks for a client certificate
	 * (apid does, maintenance never): not maintenance. */
	assert_int_equal(tu_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt "
			       "ec_paramgen_curve:P-256 -nodes -keyout c.key -out c.pem "
			       "-days 2 -subj /O=x 2>/dev/null", dir), 0);
	ca = xasprintf("%s/c.pem", dir);
	t.port = impostor(p, dir, "API is not implemented in maintenance mode", ca);
	assert_true(t.port > 0);
	assert_int_equal(talos_probe(&t, &tag, &st, &e), TALOS_FOREIGN);
	assert_true(st.cert_requested);
	assert_false(st.maintenance);
	stop(p);
	free(ca);
	/* Nothing there: down, and worth waiting for. */
	assert_int_equal(talos_probe(&t, &tag, &st, &e), TALOS_DOWN);
	assert_true(talos_status_transient(&st));
	assert_null(tag);
	tu_sh("rm -rf %s", dir);
}

/* A CA in dir, a server certificate from it for 127.0.0.1 (srv.pem/key)
 * and an os:admin client certificate (adm.pem/key) into cr. */
static void
race_certs(const char *dir, struct talos_creds *cr)
{
	assert_int_equal(tu_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt "
			       "ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
			       "-days 2 -subj /O=talos 2>/dev/null && "
			       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			       "-keyout srv.key -out srv.csr -subj /CN=node 2>/dev/null && "
			       "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > srv.ext && "
			       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			       "-days 2 -extfile srv.ext -out srv.pem 2>/dev/null && "
			       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
			       "-keyout adm.key -out adm.csr -subj /O=os:admin 2>/dev/null && "
			       "printf 'extendedKeyUsage=clientAuth\\n' > adm.ext && "
			       "openssl x509 -req -in adm.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			       "-days 2 -extfile adm.ext -out adm.pem 2>/dev/null", dir), 0);
	cr->ca_pem = tu_slurp(dir, "ca.pem");
	cr->crt_pem = tu_slurp(dir, "adm.pem");
	cr->key_pem = tu_slurp(dir, "adm.key");
}

/* talos_probe against tests/unit/probe_race.py in mode (NULL: the
 * install race); its connections' log back in *conns. */
static int
race_probe(const char *mode, char **tag, char **conns)
{
	char dir[] = "/tmp/strata-race.XXXXXX";
	char line[64];
	char *argv[] = { "/usr/bin/python3", SRCDIR "/tests/unit/probe_race.py",
			 dir, (char *)mode, NULL };
	struct talos_creds cr = { 0 };
	struct talos_target t = { .addr = "127.0.0.1", .timeout_ms = 5000,
				  .connect_timeout_ms = 2000, .creds = &cr };
	struct talos_status st = { 0 };
	struct tu_proc *p = &imp;
	struct err e = ERR_INIT;
	int kind;

	assert_non_null(mkdtemp(dir));
	race_certs(dir, &cr);
	assert_int_equal(tu_spawn(p, argv, line, sizeof(line)), 0);
	assert_int_equal(strncmp(line, "READY ", 6), 0);
	t.port = atoi(line + 6);
	*tag = NULL;
	kind = talos_probe(&t, tag, &st, &e);
	*conns = tu_slurp(dir, "conns.txt");
	stop(p);
	free(cr.ca_pem);
	free(cr.crt_pem);
	free(cr.key_pem);
	tu_sh("rm -rf %s", dir);
	return kind;
}

/* A node that installs between the probe's looks: the mTLS look meets the
 * maintenance server, the look without credentials the installed node's
 * apid (it asks for a client certificate). One more mTLS look tells it is
 * ours (commit 63141a8; before it: TALOS_FOREIGN, and apply stopped with
 * "another cluster's node"). tests/unit/probe_race.py serves the first
 * connection as maintenance mode, every later one as apid: no timing. */
static void
test_probe__node_that_installs_between_the_looks_is_up(void **state)
{
	char *tag, *conns;

	(void)state;
	assert_int_equal(race_probe(NULL, &tag, &conns), TALOS_UP);
	assert_non_null(tag);
	assert_string_equal(tag, "v1.12.11");
	/* it did meet both: maintenance first, then apid twice */
	assert_string_equal(conns, "maintenance\napid\napid\n");
	free(conns);
	free(tag);
}

/* Our node's apid going away right after the handshake (the reboot of an
 * upgrade, right after its reply; a re-run's first look meets it, CI
 * t111): the hang-up alone is no proof of another CA, so the probe looks
 * again, finds nothing listening and says down (the phase waits), not
 * foreign. A server that hangs up on every look is still foreign. */
static void
test_probe__apid_going_away_is_down_not_foreign(void **state)
{
	char *tag, *conns;

	(void)state;
	assert_int_equal(race_probe("hangup-gone", &tag, &conns), TALOS_DOWN);
	assert_null(tag);
	assert_string_equal(conns, "hangup\n");
	free(conns);
	assert_int_equal(race_probe("hangup-always", &tag, &conns), TALOS_FOREIGN);
	assert_null(tag);
	assert_string_equal(conns, "hangup\nhangup\nhangup\n");
	free(conns);
}

/* HTTP secrets: only over a pin, a store-replacing CA or an explicit
 * insecure, and only when OpenSSL does the checks. */
static void
test_trust__http_secret_needs_verification(void **state)
{
	struct trust_http_peer p = { .host = "pve:8006",
				     .secret = "the API token",
				     .openssl = true };
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(trust_http_send(&p, &e), -1);
	assert_int_equal(e.kind, ERRK_REFUSED);
	assert_int_equal(e.code, ERR_USAGE);
	assert_non_null(strstr(e.msg, "no way to verify the server pve:8006"));
	assert_non_null(strstr(e.msg, "the API token"));
	p.tls = TRUST_TLS_PIN;
	assert_int_equal(trust_http_send(&p, &e), 0);
	p.tls = TRUST_TLS_CA;
	assert_int_equal(trust_http_send(&p, &e), 0);
	p.tls = TRUST_TLS_INSECURE;
	assert_int_equal(trust_http_send(&p, &e), 0);
	/* Not OpenSSL: the pin and the CA would be ignored. */
	p.tls = TRUST_TLS_PIN;
	p.openssl = false;
	p.tls_error = "libcurl 8 uses GnuTLS/3, not OpenSSL";
	assert_int_equal(trust_http_send(&p, &e), -1);
	assert_int_equal(e.kind, ERRK_REFUSED);
	assert_non_null(strstr(e.msg, "not OpenSSL; refusing to send the API token to pve:8006"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trust__cluster_peer_always_gets_it),
		cmocka_unit_test(test_trust__maintenance_only_for_a_fresh_node),
		cmocka_unit_test(test_trust__journal_installed),
		cmocka_unit_test(test_trust__http_secret_needs_verification),
		cmocka_unit_test_teardown(test_probe__maintenance_by_facts_not_text,
					  stop_impostor),
		cmocka_unit_test_teardown(test_probe__node_that_installs_between_the_looks_is_up,
					  stop_impostor),
		cmocka_unit_test_teardown(test_probe__apid_going_away_is_down_not_foreign,
					  stop_impostor),
	};

	return cmocka_run_group_tests_name("trust", tests, NULL, NULL);
}
