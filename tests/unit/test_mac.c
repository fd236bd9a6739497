/* Unit tests for src/plan/mac: the MACs strata chooses for new VMs stay
 * unicast and locally administered and never repeat one already taken
 * (in the environment's journal or on a VM seen in Proxmox). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "plan/mac.h"
#include "util/net.h"

/* A scripted random source: replays seq (6 bytes per MAC) in a loop. */
struct script {
	const unsigned char *seq;
	size_t len, pos;
};

static void
scripted(void *ctx, unsigned char *b, size_t n)
{
	struct script *s = ctx;

	for (size_t i = 0; i < n; i++)
		b[i] = s->seq[s->pos++ % s->len];
}

static void
test_mac__local_unicast(void **state)
{
	char m[18], norm[18];
	unsigned int first;

	(void)state;
	for (int i = 0; i < 2000; i++) {
		struct err e = ERR_INIT;

		assert_int_equal(mac_pick(m, NULL, 0, mac_rand_system, NULL, &e), 0);
		assert_true(net_mac_parse(m, norm));
		assert_string_equal(m, norm);            /* upper case, canonical */
		assert_int_equal(sscanf(m, "%2x", &first), 1);
		assert_int_equal(first & 1, 0);          /* unicast */
		assert_int_equal(first & 2, 2);          /* locally administered */
		assert_true(mac_is_local(m));
		/* Proxmox's macaddr format: ^[a-f0-9][02468ace] */
		assert_non_null(strchr("26AE", m[1]));
	}
	/* Any byte the source gives is forced into the range. */
	{
		static const unsigned char ff[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
		struct script s = { ff, sizeof(ff), 0 };
		struct err e = ERR_INIT;

		assert_int_equal(mac_pick(m, NULL, 0, scripted, &s, &e), 0);
		assert_string_equal(m, "FE:FF:FF:FF:FF:FF");
	}
	assert_false(mac_is_local("BC:24:11:00:00:01"));   /* Proxmox's OUI */
	assert_false(mac_is_local("03:00:00:00:00:01"));   /* multicast */
	assert_false(mac_is_local("not a mac"));
}

static void
test_mac__never_a_taken_one(void **state)
{
	/* The source first gives the env's MAC (in another case and
	 * spelling), then a foreign VM's, then a fresh one. */
	static const unsigned char seq[] = {
		0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
		0x06, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
		0x0A, 0x01, 0x02, 0x03, 0x04, 0x05,
	};
	const char *taken[] = { "02:11:22:33:44:55", NULL, "06:aa:bb:cc:dd:ee" };
	struct script s = { seq, sizeof(seq), 0 };
	struct err e = ERR_INIT;
	char m[18];

	(void)state;
	assert_int_equal(mac_pick(m, taken, 3, scripted, &s, &e), 0);
	assert_string_equal(m, "0A:01:02:03:04:05");
	assert_int_equal(s.pos, 18);

	/* A source that only repeats taken ones: an error, not a duplicate. */
	{
		struct script same = { seq, 6, 0 };

		assert_int_equal(mac_pick(m, taken, 3, scripted, &same, &e), -ERR_FAIL);
		assert_string_equal(m, "");
		assert_non_null(strstr(e.msg, "no free MAC"));
	}
	/* Many picks, each added to the taken set: all distinct. */
	{
		static char many[500][18];
		const char *t[500];

		for (int i = 0; i < 500; i++) {
			struct err e2 = ERR_INIT;

			assert_int_equal(mac_pick(many[i], t, (size_t)i, mac_rand_system,
						  NULL, &e2), 0);
			for (int j = 0; j < i; j++)
				assert_string_not_equal(many[i], many[j]);
			t[i] = many[i];
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac__local_unicast),
		cmocka_unit_test(test_mac__never_a_taken_one),
	};

	return cmocka_run_group_tests_name("mac", tests, NULL, NULL);
}
