/* Unit tests for src/state (the journal) and the config parsers of
 * src/plan/observe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan/observe.h"
#include "state/state.h"
#include "util/buf.h"
#include "util/fs.h"

#include "testutil.h"

static void
test_state__round_trip_and_mode(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st, st2;
	struct err e = ERR_INIT;
	struct vm_spec s = { 0 }, *v = NULL;
	size_t n = 0;
	struct stat sb;
	char *path;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_load(&st, dir, &e), 0);
	assert_false(state_phase_done(&st, "vms"));
	s.name = "lab-cp-1";
	s.vmid = 1000;
	s.node = "pve1";
	s.cores = 2;
	s.memory_mib = 4096;
	s.disk_gib = 32;
	s.mac = "BC:24:11:00:00:01";
	s.tags = "controlplane;strata-lab;talos";
	s.role = "controlplane";
	assert_int_equal(state_vm_record(&st, &s, &e), 0);
	assert_int_equal(state_phase_mark(&st, "vms", true, &e), 0);
	state_release(&st);

	path = xasprintf("%s/state.json", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(state_load(&st2, dir, &e), 0);
	assert_true(state_phase_done(&st2, "vms"));
	state_vms(&st2, &v, &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].name, "lab-cp-1");
	assert_int_equal(v[0].vmid, 1000);
	assert_string_equal(v[0].mac, "BC:24:11:00:00:01");
	assert_int_equal(v[0].memory_mib, 4096);
	vm_specs_free(v, n);
	assert_int_equal(state_vm_forget(&st2, "lab-cp-1", &e), 0);
	state_vms(&st2, &v, &n);
	assert_int_equal(n, 0);
	vm_specs_free(v, n);
	state_release(&st2);

	/* A corrupt journal is an error that says what to do, never reset. */
	assert_int_equal(fs_write_atomic(path, "{\"vms\": [", 9, 0600, &e), 0);
	assert_true(state_load(&st, dir, &e) < 0);
	assert_non_null(strstr(e.msg, "is corrupt"));
	state_release(&st);
	free(path);
	tu_sh("rm -rf %s", dir);
}

/* MACs chosen for VMs about to be created: journaled, survive a reload,
 * kept when the VM's record is forgotten (a replace), listed with the
 * applied ones for collision checks, deleted on request. */
static void
test_state__chosen_macs(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;
	struct vm_spec s = { 0 };
	char **all = NULL, *m;
	size_t n = 0, i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_load(&st, dir, &e), 0);
	assert_null(state_mac_get(&st, "lab-w-1"));
	assert_int_equal(state_mac_set(&st, "lab-w-1", "02:00:00:00:00:01", &e), 0);
	s.name = "lab-cp-1";
	s.vmid = 1000;
	s.mac = "BC:24:11:00:00:02";
	assert_int_equal(state_vm_record(&st, &s, &e), 0);
	state_release(&st);
	assert_int_equal(state_load(&st, dir, &e), 0);
	m = state_mac_get(&st, "lab-w-1");
	assert_string_equal(m, "02:00:00:00:00:01");
	free(m);
	state_macs_all(&st, &all, &n);
	assert_int_equal(n, 2);
	assert_true((!strcmp(all[0], "02:00:00:00:00:01") && !strcmp(all[1], "BC:24:11:00:00:02")) ||
		    (!strcmp(all[1], "02:00:00:00:00:01") && !strcmp(all[0], "BC:24:11:00:00:02")));
	for (i = 0; i < n; i++)
		free(all[i]);
	free(all);
	assert_int_equal(state_vm_forget(&st, "lab-w-1", &e), 0);
	m = state_mac_get(&st, "lab-w-1");
	assert_non_null(m);
	free(m);
	assert_int_equal(state_mac_set(&st, "lab-w-1", NULL, &e), 0);
	assert_null(state_mac_get(&st, "lab-w-1"));
	state_release(&st);
	tu_sh("rm -rf %s", dir);
}

/* Several keys in one save; a set that changes nothing does not write
 * (the roll journals a node's steps this way, bench/upgrade.sh). */
static void
test_state__talos_setv(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;
	char *path, *v;
	struct state_kv kv[] = { { "talos_version", "v1.12.11" },
				 { "installer", "img" }, { "staged_sha256", NULL } };

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = fs_join(dir, "state.json");
	assert_int_equal(state_load(&st, dir, &e), 0);
	assert_int_equal(state_talos_set(&st, "cp-1", "staged_sha256", "ab", &e), 0);
	assert_int_equal(state_talos_setv(&st, "cp-1", kv, 3, &e), 0);
	v = state_talos_get(&st, "cp-1", "installer");
	assert_string_equal(v, "img");
	free(v);
	assert_null(state_talos_get(&st, "cp-1", "staged_sha256"));
	/* on disk */
	state_release(&st);
	assert_int_equal(state_load(&st, dir, &e), 0);
	v = state_talos_get(&st, "cp-1", "talos_version");
	assert_string_equal(v, "v1.12.11");
	free(v);
	/* nothing changes: nothing written (the removed file stays away) */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(state_talos_setv(&st, "cp-1", kv, 3, &e), 0);
	assert_int_equal(state_talos_set(&st, "cp-1", "installer", "img", &e), 0);
	assert_int_equal(state_talos_set(&st, "cp-1", "nothing", NULL, &e), 0);
	assert_false(fs_exists(path));
	assert_int_equal(state_talos_set(&st, "cp-1", "installer", "img2", &e), 0);
	assert_true(fs_exists(path));
	state_release(&st);
	free(path);
	tu_sh("rm -rf %s", dir);
}

#define FIXTURES SRCDIR "/tests/unit/fixtures"

/* dir/state.json := a fixture written by an earlier strata. */
static void
put_fixture(const char *dir, const char *name)
{
	tu_sh("cp %s/%s %s/state.json", FIXTURES, name, dir);
}

/* A journal of format 1 (Proxmox VMs under "vms"): read as machines with
 * provider proxmox; reading writes nothing; the next save writes format
 * 2 (no "vms"), which reads back the same. */
static void
test_state__v1_proxmox_migrated(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;
	struct vm_spec *v = NULL;
	char **macs, *before, *after, *p;
	size_t n = 0, i, round;

	(void)state;
	assert_non_null(mkdtemp(dir));
	put_fixture(dir, "state-v1-proxmox.json");
	before = tu_slurp(dir, "state.json");
	for (round = 0; round < 2; round++) {
		assert_int_equal(state_load(&st, dir, &e), 0);
		state_vms(&st, &v, &n);
		assert_int_equal(n, 2);
		for (i = 0; i < n; i++)
			if (!strcmp(v[i].name, "lab-cp-1")) {
				assert_int_equal(v[i].vmid, 1000);
				assert_string_equal(v[i].node, "pve1");
				assert_int_equal(v[i].memory_mib, 4096);
				assert_string_equal(v[i].mac, "BC:24:11:5E:00:01");
				assert_string_equal(v[i].role, "controlplane");
			} else {
				assert_string_equal(v[i].name, "lab-vm-1");
				assert_string_equal(v[i].ci_seed, "9f86d081884c7d65");
			}
		vm_specs_free(v, n);
		p = state_machine_get(&st, "lab-vm-1", "provider");
		assert_string_equal(p, "proxmox");
		free(p);
		state_macs_all(&st, &macs, &n);
		assert_int_equal(n, 3);   /* the reserved one and both VMs' */
		for (i = 0; i < n; i++)
			free(macs[i]);
		free(macs);
		p = state_talos_get(&st, "lab-cp-1", "installed");
		assert_string_equal(p, "mtls");
		free(p);
		assert_true(state_phase_done(&st, "bootstrap"));
		if (round == 0) {
			/* loading alone wrote nothing */
			after = tu_slurp(dir, "state.json");
			assert_string_equal(after, before);
			free(after);
			assert_int_equal(state_phase_mark(&st, "cni", true, &e), 0);
			after = tu_slurp(dir, "state.json");
			assert_null(strstr(after, "\"vms\""));
			assert_non_null(strstr(after, "\"format_version\": 2"));
			assert_non_null(strstr(after, "\"machines\""));
			free(after);
		}
		state_release(&st);
	}
	free(before);
	tu_sh("rm -rf %s", dir);
}

/* Format 1 of a VPS: the rescue install was under talos.<node>; read, it
 * is the machine's (provider vps), and no VM. */
static void
test_state__v1_vps_migrated(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;
	struct vm_spec *v = NULL;
	size_t n = 9;
	char *p, *after;

	(void)state;
	assert_non_null(mkdtemp(dir));
	put_fixture(dir, "state-v1-vps.json");
	assert_int_equal(state_load(&st, dir, &e), 0);
	p = state_machine_get(&st, "edge-cp-1", "rescue");
	assert_string_equal(p, "rebooted");
	free(p);
	p = state_machine_get(&st, "edge-cp-1", "image_sha256");
	assert_string_equal(p, "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730");
	free(p);
	p = state_machine_get(&st, "edge-cp-1", "provider");
	assert_string_equal(p, "vps");
	free(p);
	assert_null(state_talos_get(&st, "edge-cp-1", "rescue"));
	p = state_talos_get(&st, "edge-cp-1", "config_sha256");
	assert_non_null(p);
	free(p);
	p = state_talos_get(&st, "edge-cp-1", "firewall_sha256");
	assert_non_null(p);
	free(p);
	state_vms(&st, &v, &n);
	assert_int_equal(n, 0);
	vm_specs_free(v, n);
	/* a write from the rescue install: format 2 on disk */
	assert_int_equal(state_machine_set(&st, "edge-cp-1", "vps", "rescue",
					   "writing", &e), 0);
	state_release(&st);
	after = tu_slurp(dir, "state.json");
	assert_non_null(strstr(after, "\"format_version\": 2"));
	assert_null(strstr(after, "\"rebooted\""));
	free(after);
	assert_int_equal(state_load(&st, dir, &e), 0);
	p = state_machine_get(&st, "edge-cp-1", "rescue");
	assert_string_equal(p, "writing");
	free(p);
	/* a forgotten machine takes its record along */
	assert_int_equal(state_vm_forget(&st, "edge-cp-1", &e), 0);
	assert_null(state_machine_get(&st, "edge-cp-1", "provider"));
	state_release(&st);
	tu_sh("rm -rf %s", dir);
}

/* A journal from a newer strata is refused, not half-understood. */
static void
test_state__newer_format_refused(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct state st;
	struct err e = ERR_INIT;
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = fs_join(dir, "state.json");
	assert_int_equal(fs_write_atomic(path, "{\"format_version\": 3}", 21,
					 0600, &e), 0);
	assert_true(state_load(&st, dir, &e) < 0);
	assert_non_null(strstr(e.msg, "journal format 3, written by a newer strata"));
	state_release(&st);
	free(path);
	tu_sh("rm -rf %s", dir);
}

static void
test_observe__parsers(void **state)
{
	char *m;

	assert_int_equal(observe_disk_gib("local-lvm:vm-100-disk-0,discard=on,iothread=1,size=32G,ssd=1"), 32);
	assert_int_equal(observe_disk_gib("local:100/vm-100-disk-0.qcow2,size=1T"), 1024);
	assert_int_equal(observe_disk_gib("local-lvm:vm-100-disk-0,size=2048M"), 2);
	assert_int_equal(observe_disk_gib("none,media=cdrom"), 0);
	assert_int_equal(observe_disk_gib(NULL), 0);
	m = observe_net_mac("virtio=bc:24:11:aa:bb:cc,bridge=vmbr0,firewall=1,tag=20");
	assert_string_equal(m, "BC:24:11:AA:BB:CC");
	free(m);
	m = observe_net_mac("bridge=vmbr0,virtio=BC:24:11:00:00:02");
	assert_string_equal(m, "BC:24:11:00:00:02");
	free(m);
	assert_null(observe_net_mac("bridge=vmbr0"));
	assert_null(observe_net_mac(NULL));
}

struct recorder {
	struct state *st;
	int i, rc;
};

static void *
record_one(void *arg)
{
	struct recorder *r = arg;
	struct err e = ERR_INIT;
	char name[32], mac[18];

	snprintf(name, sizeof(name), "lab-w-%d", r->i);
	snprintf(mac, sizeof(mac), "02:00:00:00:01:%02x", r->i);
	r->rc = state_mac_set(r->st, name, mac, &e);
	return NULL;
}

/* 64 threads record at once (the VM phase's jobs): group commit writes
 * them in few saves, and every one is on disk when its call returns. */
static void
test_state__concurrent_records_all_saved(void **state)
{
	char dir[] = "/tmp/strata-state.XXXXXX";
	struct recorder rec[64];
	pthread_t th[64];
	struct state st, st2;
	struct err e = ERR_INIT;
	int i;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(state_load(&st, dir, &e), 0);
	for (i = 0; i < 64; i++) {
		rec[i] = (struct recorder){ .st = &st, .i = i };
		assert_int_equal(pthread_create(&th[i], NULL, record_one, &rec[i]), 0);
	}
	for (i = 0; i < 64; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rec[i].rc, 0);
	}
	assert_int_equal(state_load(&st2, dir, &e), 0);
	for (i = 0; i < 64; i++) {
		char name[32], want[18], *m;

		snprintf(name, sizeof(name), "lab-w-%d", i);
		snprintf(want, sizeof(want), "02:00:00:00:01:%02x", i);
		m = state_mac_get(&st2, name);
		assert_non_null(m);
		assert_string_equal(m, want);
		free(m);
	}
	assert_true(st.saved == st.changed && st.changed == 64);
	state_release(&st);
	state_release(&st2);
	tu_sh("rm -rf %s", dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state__round_trip_and_mode),
		cmocka_unit_test(test_state__chosen_macs),
		cmocka_unit_test(test_state__talos_setv),
		cmocka_unit_test(test_state__concurrent_records_all_saved),
		cmocka_unit_test(test_state__v1_proxmox_migrated),
		cmocka_unit_test(test_state__v1_vps_migrated),
		cmocka_unit_test(test_state__newer_format_refused),
		cmocka_unit_test(test_observe__parsers),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
