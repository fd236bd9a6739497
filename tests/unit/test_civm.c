/*
 * Unit tests for src/provider/proxmox/civm: the seed file name and reading
 * its id back from ide2 (only this env's, this VM's, well formed), and the
 * plan's summary of an `sshkeys` value (FACTS.md §6 encoding decoded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "provider/proxmox/civm.h"

static void
test_civm__seed_id_round_trip(void **state)
{
	char *f = civm_seed_file("lab", "app-1", "0123456789ab");
	char *drive, *id;

	(void)state;
	assert_string_equal(f, "strata.lab.app-1.seed-0123456789ab.iso");
	drive = malloc(strlen(f) + 64);
	strcpy(drive, "local:iso/");
	strcat(drive, f);
	strcat(drive, ",media=cdrom");
	id = civm_seed_of_drive(drive, "lab", "app-1");
	assert_non_null(id);
	assert_string_equal(id, "0123456789ab");
	free(id);
	/* another VM's, another env's: not this VM's seed */
	assert_null(civm_seed_of_drive(drive, "lab", "app-10"));
	assert_null(civm_seed_of_drive(drive, "lab2", "app-1"));
	assert_true(civm_is_seed_volid("local:iso/strata.lab.app-1.seed-ffffffffffff.iso",
				       "lab", "app-1"));
	free(drive);
	free(f);
}

static void
test_civm__not_a_seed(void **state)
{
	(void)state;
	assert_null(civm_seed_of_drive(NULL, "lab", "a"));
	assert_null(civm_seed_of_drive("local-lvm:vm-5000-cloudinit,media=cdrom", "lab", "a"));
	assert_null(civm_seed_of_drive("local:iso/strata.lab.a.seed-0123.iso,media=cdrom", "lab", "a"));
	assert_null(civm_seed_of_drive("local:iso/strata.lab.a.cidata.iso", "lab", "a"));
	assert_false(civm_is_seed_volid("local:iso/strata.lab.a.seed-0123456789ab.isox", "lab", "a"));
}

static void
test_civm__keys_summary(void **state)
{
	char *s;

	(void)state;
	s = civm_keys_summary("ssh-ed25519%20AAAAC3Nza%20ops%40laptop%0Assh-rsa%20AAAAB3%20ci%20runner%0A");
	assert_string_equal(s, "2 keys: ops@laptop, ci runner");
	free(s);
	s = civm_keys_summary("ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIabcdefgh");
	assert_string_equal(s, "1 key: ...abcdefgh");
	free(s);
	s = civm_keys_summary(NULL);
	assert_string_equal(s, "no keys");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_civm__seed_id_round_trip),
		cmocka_unit_test(test_civm__not_a_seed),
		cmocka_unit_test(test_civm__keys_summary),
	};

	return cmocka_run_group_tests_name("civm", tests, NULL, NULL);
}
