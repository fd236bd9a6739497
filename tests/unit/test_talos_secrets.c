/*
 * Secrets bundle: upstream fixtures load, a fresh bundle has upstream's
 * algorithms and subjects, every CA verifies with `openssl verify`, the
 * file is 0600 and never regenerated, corrupt files are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "talos/pki.h"
#include "talos/secrets.h"
#include "util/fs.h"

#define REF SRCDIR "/../shared/reference/talos/fixtures"

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/strata-secrets-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
load_fixture(const char *path, const char *sa_alg)
{
	struct talos_secrets *s = NULL;
	struct err err = ERR_INIT;
	bool created = true;

	if (!fs_exists(path)) {
		print_message("skip: %s absent\n", path);
		skip();
	}
	if (talos_secrets_load_or_create(&s, path, &created, &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(created);
	assert_true(EVP_PKEY_is_a(s->os.key, "ED25519"));
	assert_true(EVP_PKEY_is_a(s->service_account.key, sa_alg));
	assert_null(s->service_account.crt);
	assert_string_equal(s->cluster_id, "0raF93qnkMvF-FZNuvyGozXNdLiT2FOWSlyBaW4PR-w=");
	talos_secrets_free(s);
}

static void
test_secrets__stability_fixture_loads(void **state)
{
	(void)state;
	load_fixture(REF "/stability/secrets.yaml", "EC");
}

/* Encoding the loaded fixture gives its bytes back (its comment aside). */
static void
test_secrets__fixture_reencodes_byte_identical(void **state)
{
	struct talos_secrets *s = NULL;
	struct buf in = BUF_INIT, out = BUF_INIT;
	struct err err = ERR_INIT;
	const char *body;

	(void)state;
	if (!fs_exists(REF "/stability/secrets.yaml"))
		skip();
	assert_int_equal(fs_read_file(&in, REF "/stability/secrets.yaml", 1 << 20, &err), 0);
	assert_int_equal(talos_secrets_parse(&s, in.ptr, in.len, &err), 0);
	assert_int_equal(talos_secrets_encode(&out, s, &err), 0);
	body = in.ptr[0] == '#' ? strchr(in.ptr, '\n') + 1 : in.ptr;
	assert_string_equal(out.ptr, body);
	buf_release(&in);
	buf_release(&out);
	talos_secrets_free(s);
}

static void
test_secrets__secrets_fixture_loads(void **state)
{
	struct talos_secrets *s = NULL;
	struct err err = ERR_INIT;
	bool created;

	(void)state;
	if (!fs_exists(REF "/secrets/secrets.yaml"))
		skip();
	if (talos_secrets_load_or_create(&s, REF "/secrets/secrets.yaml", &created, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(EVP_PKEY_is_a(s->service_account.key, "EC"));
	assert_non_null(s->secretbox_secret);
	talos_secrets_free(s);
}

static char *
subject(X509 *crt)
{
	return X509_NAME_oneline(X509_get_subject_name(crt), NULL, 0);
}

/* Write crt to a file and run `openssl verify -CAfile crt crt`. */
static void
openssl_verify(X509 *crt, const char *name)
{
	struct buf pem = BUF_INIT;
	struct err err = ERR_INIT;
	char path[128], cmd[512];

	assert_int_equal(pki_cert_pem(&pem, crt), 0);
	snprintf(path, sizeof(path), "%s/%s.crt", tmpdir, name);
	assert_int_equal(fs_write_atomic(path, pem.ptr, pem.len, 0644, &err), 0);
	snprintf(cmd, sizeof(cmd),
		 "openssl verify -x509_strict -CAfile '%s' '%s' >/dev/null 2>&1",
		 path, path);
	assert_int_equal(system(cmd), 0);
	buf_release(&pem);
}

static void
check_ca(X509 *crt, EVP_PKEY *key, const char *alg, const char *subj,
	 const char *name)
{
	char *s = subject(crt);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(crt);

	assert_true(EVP_PKEY_is_a(key, alg));
	assert_string_equal(s, subj);
	OPENSSL_free(s);
	assert_int_equal(X509_check_ca(crt), 1);
	assert_non_null(ski);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_null(X509_get0_authority_key_id(crt));
	assert_true(X509_get_extended_key_usage(crt) & XKU_SSL_CLIENT);
	assert_true(X509_get_extended_key_usage(crt) & XKU_SSL_SERVER);
	/* 10 years: notAfter - notBefore = 87600 h */
	{
		int days, secs;

		assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(crt),
						X509_get0_notAfter(crt)), 1);
		assert_int_equal(days, 3650);
		assert_int_equal(secs, 0);
	}
	openssl_verify(crt, name);
}

static void
test_secrets__generated_once_and_reused(void **state)
{
	struct talos_secrets *s = NULL, *s2 = NULL;
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct err err = ERR_INIT;
	char path[128];
	struct stat st;
	bool created = false;

	(void)state;
	snprintf(path, sizeof(path), "%s/secrets.yaml", tmpdir);
	if (talos_secrets_load_or_create(&s, path, &created, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(created);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	check_ca(s->os.crt, s->os.key, "ED25519", "/O=talos", "os");
	check_ca(s->etcd.crt, s->etcd.key, "EC", "/O=etcd", "etcd");
	check_ca(s->k8s.crt, s->k8s.key, "EC", "/O=kubernetes", "k8s");
	check_ca(s->aggregator.crt, s->aggregator.key, "EC", "", "aggregator");
	assert_true(EVP_PKEY_is_a(s->service_account.key, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(s->service_account.key), 4096);
	assert_int_equal(strlen(s->cluster_id), 44);
	assert_null(strpbrk(s->cluster_id, "+/"));
	assert_int_equal(strlen(s->bootstrap_token), 23);
	assert_int_equal(s->bootstrap_token[6], '.');
	assert_int_equal(strspn(s->trustd_token, "abcdefghijklmnopqrstuvwxyz0123456789."), 23);

	assert_int_equal(fs_read_file(&a, path, 1 << 20, &err), 0);
	if (talos_secrets_load_or_create(&s2, path, &created, &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(created);
	assert_int_equal(fs_read_file(&b, path, 1 << 20, &err), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.ptr, b.ptr, a.len);
	assert_string_equal(s->os.key_b64, s2->os.key_b64);
	assert_string_equal(s->cluster_secret, s2->cluster_secret);
	/* Re-encoding the loaded bundle gives the file back. */
	buf_reset(&b);
	assert_int_equal(talos_secrets_encode(&b, s2, &err), 0);
	assert_string_equal(a.ptr, b.ptr);
	buf_release(&a);
	buf_release(&b);
	talos_secrets_free(s);
	talos_secrets_free(s2);
}

static void
expect_refused(const char *text, const char *msg)
{
	struct talos_secrets *s = NULL;
	struct err err = ERR_INIT;
	struct buf before = BUF_INIT, after = BUF_INIT;
	char path[128];
	bool created = true;

	snprintf(path, sizeof(path), "%s/bad.yaml", tmpdir);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
	assert_int_equal(fs_read_file(&before, path, 1 << 20, &err), 0);
	assert_true(talos_secrets_load_or_create(&s, path, &created, &err) < 0);
	assert_null(s);
	assert_false(created);
	if (!strstr(err.msg, msg))
		fail_msg("message '%s' lacks '%s'", err.msg, msg);
	assert_int_equal(fs_read_file(&after, path, 1 << 20, &err), 0);
	assert_string_equal(before.ptr, after.ptr);
	buf_release(&before);
	buf_release(&after);
}

static void
test_secrets__corrupt_refused(void **state)
{
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;
	char *p;

	(void)state;
	expect_refused("", "secrets bundle");
	expect_refused("cluster: [\n", "parse secrets bundle");
	expect_refused("cluster:\n  id: x\n", "missing 'cluster.secret'");
	if (!fs_exists(REF "/stability/secrets.yaml"))
		return;
	assert_int_equal(fs_read_file(&b, REF "/stability/secrets.yaml", 1 << 20, &err), 0);
	/* Truncate in the middle of the os key. */
	p = strstr(b.ptr, "    os:");
	assert_non_null(p);
	p[60] = '\0';
	expect_refused(b.ptr, "certs.os");
	buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets__stability_fixture_loads),
		cmocka_unit_test(test_secrets__secrets_fixture_loads),
		cmocka_unit_test(test_secrets__fixture_reencodes_byte_identical),
		cmocka_unit_test(test_secrets__generated_once_and_reused),
		cmocka_unit_test(test_secrets__corrupt_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
