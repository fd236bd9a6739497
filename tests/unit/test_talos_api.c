/* Unit tests for src/talos/api (talosconfig credentials, failure kinds),
 * src/kube/kubeapi (kubeconfig reading) and src/util/clock (durations).
 * The calls themselves run against the lab simulator in tests/e2e. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "talos/api.h"
#include "talos/pki.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/grpc.h"

#include "testutil.h"

static char dir[] = "/tmp/strata-tapi.XXXXXX";
static char *ca_b64, *crt_b64, *key_b64, *key_ed_b64;

static char *
b64_file(const char *name, bool upstream_label)
{
	char *text = tu_slurp(dir, name), *out, *p;

	assert_non_null(text);
	if (upstream_label) {
		/* talosctl writes Ed25519 keys as "ED25519 PRIVATE KEY". */
		struct buf b = BUF_INIT;

		for (p = text; *p; p++) {
			if (!strncmp(p, "PRIVATE KEY", 11))
				buf_add(&b, "ED25519 ", 8);
			buf_add(&b, p, 1);
		}
		buf_add(&b, "", 1);
		free(text);
		text = b.ptr;
	}
	out = pki_b64(text, strlen(text), 0);
	free(text);
	return out;
}

static int
setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	if (tu_sh("cd %s && openssl genpkey -algorithm ed25519 -out ca.key 2>/dev/null && "
		  "openssl req -x509 -new -key ca.key -subj /O=talos -days 2 -out ca.pem 2>/dev/null && "
		  "openssl genpkey -algorithm ed25519 -out adm.key 2>/dev/null && "
		  "openssl req -new -key adm.key -subj /O=os:admin -out adm.csr 2>/dev/null && "
		  "openssl x509 -req -in adm.csr -CA ca.pem -CAkey ca.key -days 2 "
		  "-CAcreateserial -out adm.pem 2>/dev/null", dir) != 0)
		return -1;
	ca_b64 = b64_file("ca.pem", false);
	crt_b64 = b64_file("adm.pem", false);
	key_b64 = b64_file("adm.key", false);
	key_ed_b64 = b64_file("adm.key", true);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tu_sh("rm -rf %s", dir);
	free(ca_b64);
	free(crt_b64);
	free(key_b64);
	free(key_ed_b64);
	return 0;
}

static char *
talosconfig(const char *context, const char *ca, const char *crt,
	    const char *key)
{
	return xasprintf("context: prod\n"
			 "contexts:\n"
			 "    %s:\n"
			 "        endpoints: [10.0.0.11]\n"
			 "        nodes: [10.0.0.11]\n"
			 "        ca: %s\n"
			 "        crt: %s\n"
			 "        key: %s\n", context, ca, crt, key);
}

static void
test_creds__reads_the_current_context(void **state)
{
	struct talos_creds c;
	struct err e = ERR_INIT;
	char *t = talosconfig("prod", ca_b64, crt_b64, key_b64);
	char *ca = tu_slurp(dir, "ca.pem");

	(void)state;
	assert_int_equal(talos_creds_parse(&c, t, strlen(t), &e), 0);
	assert_string_equal(c.context, "prod");
	assert_string_equal(c.ca_pem, ca);
	assert_non_null(strstr(c.crt_pem, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(strstr(c.key_pem, "-----BEGIN PRIVATE KEY-----"));
	talos_creds_release(&c);
	assert_null(c.key_pem);
	free(ca);
	free(t);
}

static void
test_creds__accepts_upstream_ed25519_label(void **state)
{
	struct talos_creds c;
	struct err e = ERR_INIT;
	char *t = talosconfig("prod", ca_b64, crt_b64, key_ed_b64);

	(void)state;
	assert_int_equal(talos_creds_parse(&c, t, strlen(t), &e), 0);
	/* re-encoded with the label TLS libraries accept */
	assert_non_null(strstr(c.key_pem, "-----BEGIN PRIVATE KEY-----"));
	assert_null(strstr(c.key_pem, "ED25519"));
	talos_creds_release(&c);
	free(t);
}

static void
test_creds__errors_name_what_is_wrong(void **state)
{
	struct talos_creds c;
	struct err e = ERR_INIT;
	char *t;

	(void)state;
	t = talosconfig("other", ca_b64, crt_b64, key_b64);
	assert_int_equal(talos_creds_parse(&c, t, strlen(t), &e), -1);
	assert_non_null(strstr(e.msg, "context 'prod' is not under 'contexts'"));
	free(t);

	err_clear(&e);
	t = talosconfig("prod", ca_b64, crt_b64, "bm90IGEga2V5");
	assert_int_equal(talos_creds_parse(&c, t, strlen(t), &e), -1);
	assert_non_null(strstr(e.msg, "'key' (the client key) is missing or not base64 PEM"));
	free(t);

	err_clear(&e);
	t = talosconfig("prod", "bm90IGEgY2VydA==", crt_b64, key_b64);
	assert_int_equal(talos_creds_parse(&c, t, strlen(t), &e), -1);
	assert_non_null(strstr(e.msg, "'ca' (the OS CA certificate)"));
	free(t);

	err_clear(&e);
	assert_true(talos_creds_load(&c, "/nonexistent/talosconfig", &e) < 0);
	assert_non_null(strstr(e.msg, "/nonexistent/talosconfig"));
}

static void
test_status__transient_or_not(void **state)
{
	struct talos_status st = { 0 };

	(void)state;
	st.code = GRPC_TRANSPORT;
	assert_true(talos_status_transient(&st));       /* refused, reset */
	st.tls = GRPC_TLS_SERVER_UNTRUSTED;
	assert_false(talos_status_transient(&st));      /* wrong cluster */
	st.tls = GRPC_TLS_CLIENT_REJECTED;
	assert_false(talos_status_transient(&st));
	st.tls = GRPC_TLS_NONE;
	st.code = GRPC_UNAVAILABLE;
	assert_true(talos_status_transient(&st));
	st.code = GRPC_DEADLINE_EXCEEDED;
	assert_true(talos_status_transient(&st));
	st.code = GRPC_INVALID_ARGUMENT;
	assert_false(talos_status_transient(&st));
	st.code = GRPC_PERMISSION_DENIED;
	assert_false(talos_status_transient(&st));
}

static void
test_talos__refused_connection_is_transient(void **state)
{
	/* Nothing listens on 127.0.0.1:9 (discard) in the test sandbox. */
	struct talos_target t = { .addr = "127.0.0.1", .port = 9,
				  .timeout_ms = 1000, .connect_timeout_ms = 500 };
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	char *tag = NULL;

	(void)state;
	assert_int_equal(talos_version(&t, &tag, &st, &e), -1);
	assert_null(tag);
	assert_int_equal(st.code, GRPC_TRANSPORT);
	assert_true(talos_status_transient(&st));
	assert_non_null(strstr(e.msg, "/machine.MachineService/Version on 127.0.0.1:9"));
}

static void
test_kubeapi__kubeconfig_fields(void **state)
{
	struct kube_client *kc = NULL;
	struct err e = ERR_INIT;
	char *t;

	(void)state;
	t = xasprintf("apiVersion: v1\nkind: Config\n"
		      "clusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n"
		      "- name: b\n  cluster:\n    server: https://127.0.0.1:6443\n"
		      "    certificate-authority-data: %s\n"
		      "contexts:\n- name: x\n  context: {cluster: b, user: u}\n"
		      "current-context: x\n"
		      "users:\n- name: u\n  user:\n    client-certificate-data: %s\n"
		      "    client-key-data: %s\n", ca_b64, crt_b64, key_b64);
	assert_int_equal(kube_client_from_kubeconfig(&kc, t, strlen(t), 1000, &e), 0);
	assert_string_equal(kube_client_server(kc), "https://127.0.0.1:6443");
	kube_client_free(kc);
	free(t);

	/* The current context's cluster lacks its CA: said so. */
	t = xasprintf("clusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n"
		      "contexts:\n- name: x\n  context: {cluster: a, user: u}\n"
		      "current-context: x\n"
		      "users:\n- name: u\n  user: {client-certificate-data: %s, "
		      "client-key-data: %s}\n", crt_b64, key_b64);
	assert_int_equal(kube_client_from_kubeconfig(&kc, t, strlen(t), 1000, &e), -1);
	assert_null(kc);
	assert_non_null(strstr(e.msg, "the x context lacks certificate-authority-data"));
	free(t);

	err_clear(&e);
	assert_int_equal(kube_client_from_kubeconfig(&kc, "[a", 2, 1000, &e), -1);
	assert_non_null(strstr(e.msg, "kubeconfig"));
}

static void
test_clock__durations(void **state)
{
	(void)state;
	assert_int_equal(clock_parse_duration("90"), 90000);
	assert_int_equal(clock_parse_duration("90s"), 90000);
	assert_int_equal(clock_parse_duration("5m"), 300000);
	assert_int_equal(clock_parse_duration("1h"), 3600000);
	assert_int_equal(clock_parse_duration("1m30s"), 90000);
	assert_int_equal(clock_parse_duration(""), -1);
	assert_int_equal(clock_parse_duration("5x"), -1);
	assert_int_equal(clock_parse_duration("1m30"), -1);
	assert_int_equal(clock_parse_duration("-5s"), -1);
	assert_int_equal(clock_parse_duration("99999999999999s"), -1);
}

/* A maintenance-mode ApplyConfiguration not bound to a probed
 * certificate is refused before any connection (api.h pin_sha256). */
static void
test_talos__unbound_maintenance_send_refused(void **state)
{
	struct talos_target t = { .addr = "127.0.0.1", .port = 9,
				  .connect_timeout_ms = 200 };
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	char *details = NULL;

	(void)state;
	assert_int_equal(talos_apply_configuration(&t, "k: v", 4, &details,
						   &st, &e), -1);
	assert_int_equal(e.kind, ERRK_REFUSED);
	assert_non_null(strstr(e.msg, "no probed certificate"));
	t.pin_sha256 = "abc";   /* not a digest */
	assert_int_equal(talos_apply_configuration(&t, "k: v", 4, &details,
						   &st, &e), -1);
	assert_int_equal(e.kind, ERRK_REFUSED);
	assert_null(details);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creds__reads_the_current_context),
		cmocka_unit_test(test_creds__accepts_upstream_ed25519_label),
		cmocka_unit_test(test_creds__errors_name_what_is_wrong),
		cmocka_unit_test(test_status__transient_or_not),
		cmocka_unit_test(test_talos__refused_connection_is_transient),
		cmocka_unit_test(test_talos__unbound_maintenance_send_refused),
		cmocka_unit_test(test_kubeapi__kubeconfig_fields),
		cmocka_unit_test(test_clock__durations),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
