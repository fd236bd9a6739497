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

/* The streamed check gives the same verdict and file SHA-256 whatever the
 * pieces (1 byte, 31, 32, 33, odd sizes), and catches a changed byte and
 * a cut stream. */
static void
test_snapshot_check_streamed(void **state)
{
	static unsigned char snap[4096 + 32];
	static const size_t steps[] = { 1, 7, 31, 32, 33, 500, 4128 };
	struct err e = ERR_INIT;
	char want[65], got[65];
	unsigned char md[32];
	unsigned int n = 0;
	size_t s, off, i;

	(void)state;
	for (i = 0; i < 4096; i++)
		snap[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(EVP_Digest(snap, 4096, snap + 4096, &n, EVP_sha256(),
				    NULL), 1);
	assert_int_equal(EVP_Digest(snap, sizeof(snap), md, &n, EVP_sha256(),
				    NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct etcd_snap_check k;

		etcd_snap_check_init(&k);
		for (off = 0; off < sizeof(snap); off += steps[s])
			etcd_snap_check_add(&k, snap + off,
					    sizeof(snap) - off < steps[s]
						    ? sizeof(snap) - off : steps[s]);
		assert_int_equal(etcd_snap_check_final(&k, got, &e), 0);
		assert_string_equal(got, want);
	}
	for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct etcd_snap_check k;

		snap[4100] ^= 1;     /* inside the trailer */
		etcd_snap_check_init(&k);
		for (off = 0; off < sizeof(snap); off += steps[s])
			etcd_snap_check_add(&k, snap + off,
					    sizeof(snap) - off < steps[s]
						    ? sizeof(snap) - off : steps[s]);
		assert_true(etcd_snap_check_final(&k, got, &e) < 0);
		assert_non_null(strstr(e.msg, "does not match"));
		snap[4100] ^= 1;
	}
	{
		struct etcd_snap_check k;

		etcd_snap_check_init(&k);
		etcd_snap_check_add(&k, snap, 4096);
		assert_true(etcd_snap_check_final(&k, got, &e) < 0);
		assert_non_null(strstr(e.msg, "sha256 checksum not found"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_member_id),
		cmocka_unit_test(test_snapshot_check),
		cmocka_unit_test(test_snapshot_check_streamed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
