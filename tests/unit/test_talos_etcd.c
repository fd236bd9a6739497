/* Unit tests for src/talos/etcd: member ids as talosctl shows them and the
 * snapshot's SHA-256 trailer. The calls run against the simulator (t100+). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <string.h>

#include "talos/etcd.h"

static void
test_member_id(void **state)
{
	struct err e = ERR_INIT;
	char hex[17];
	uint64_t id = 0;

	(void)state;
	etcd_member_id_format(0x1a2bULL, hex);
	assert_string_equal(hex, "0000000000001a2b");
	etcd_member_id_format(UINT64_MAX, hex);
	assert_string_equal(hex, "ffffffffffffffff");
	assert_int_equal(etcd_member_id_parse("0000000000001a2b", &id, &e), 0);
	assert_true(id == 0x1a2bULL);
	assert_int_equal(etcd_member_id_parse("FFFFFFFFFFFFFFFF", &id, &e), 0);
	assert_true(id == UINT64_MAX);
	assert_int_equal(etcd_member_id_parse("1a2b", &id, &e), 0);
	assert_true(id == 0x1a2bULL);
	assert_true(etcd_member_id_parse("10000000000000000", &id, &e) < 0);
	assert_non_null(strstr(e.msg, "not an etcd member id"));
	assert_true(etcd_member_id_parse("xyz", &id, &e) < 0);
	assert_true(etcd_member_id_parse("-1", &id, &e) < 0);
	assert_true(etcd_member_id_parse("", &id, &e) < 0);
}

static void
test_snapshot_check(void **state)
{
	static unsigned char snap[1024 + 32];
	struct err e = ERR_INIT;
	unsigned int n = 0;

	(void)state;
	memset(snap, 0x5a, 1024);
	assert_int_equal(EVP_Digest(snap, 1024, snap + 1024, &n, EVP_sha256(),
				    NULL), 1);
	assert_int_equal(etcd_snapshot_check(snap, sizeof(snap), &e), 0);
	/* not pages + 32 */
	assert_true(etcd_snapshot_check(snap, 1024, &e) < 0);
	assert_non_null(strstr(e.msg, "sha256 checksum not found"));
	assert_true(etcd_snapshot_check(snap, 10, &e) < 0);
	/* one byte changed */
	snap[100] ^= 1;
	assert_true(etcd_snapshot_check(snap, sizeof(snap), &e) < 0);
	assert_non_null(strstr(e.msg, "does not match"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_id),
		cmocka_unit_test(test_snapshot_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
