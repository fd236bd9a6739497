/* Unit tests for src/plan/preflight.c and src/provider/proxmox/layer0.c:
 * Layer-0 answers parsed as the API shapes them, and each check on a
 * hand-made plan (privileges grouped by path, download alternatives,
 * shared storage space, content lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "plan/plan.h"
#include "plan/preflight.h"
#include "provider/proxmox/layer0.h"
#include "util/buf.h"

static const char *const ALL_VMS =
	"[\"VM.Audit\",\"VM.Allocate\",\"VM.Config.CPU\",\"VM.Config.Memory\","
	"\"VM.Config.Disk\",\"VM.Config.CDROM\",\"VM.Config.Network\","
	"\"VM.Config.HWType\",\"VM.Config.Options\",\"VM.PowerMgmt\"]";

static json_t *
J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	assert_non_null(j);
	return j;
}

static void
perm(struct layer0 *l0, const char *path, const char *privs_json)
{
	json_t *list = J(privs_json), *privs = json_object(), *ans = json_object(), *v;
	size_t i;

	json_array_foreach(list, i, v)
		json_object_set_new(privs, json_string_value(v), json_integer(1));
	json_object_set_new(ans, path, privs);
	layer0_add_perm(l0, path, ans);
	json_decref(ans);
	json_decref(list);
}

struct fixture {
	struct config cfg;
	char *nodes[2];
	struct plan plan;
	struct layer0 l0;
};

static void
setup_fx(struct fixture *f, const char *disk_storage_json)
{
	struct vm_spec want[2];
	json_t *j;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->cfg.name = "lab";
	f->cfg.dir = "/tmp/lab";
	f->cfg.proxmox.token_id = "strata@pve!lab";
	f->cfg.proxmox.disk_storage = "local-lvm";
	f->cfg.proxmox.iso_storage = "local";
	f->cfg.proxmox.bridge = "vmbr0";
	f->cfg.proxmox.first_boot = FIRST_BOOT_MAINTENANCE;
	f->cfg.network.discovery = DISCOVERY_STATIC;
	f->nodes[0] = "pve1";
	f->nodes[1] = "pve2";
	f->cfg.proxmox.nodes.v = f->nodes;
	f->cfg.proxmox.nodes.n = 2;
	f->cfg.n_nodes = 2;
	memset(want, 0, sizeof(want));
	for (i = 0; i < 2; i++) {
		want[i].name = xasprintf("lab-%zu", i + 1);
		want[i].vmid = 1000 + (int)i;
		want[i].node = xstrdup(f->nodes[i]);
		want[i].cores = 4;
		want[i].memory_mib = 4096;
		want[i].disk_gib = 30;
		want[i].tags = plan_tags("lab", "worker");
		want[i].role = xstrdup("worker");
	}
	{
		struct err err = ERR_INIT;

		assert_int_equal(plan_diff(&f->plan, "lab", want, 2, NULL, 0, NULL, 0, &err), 0);
	}
	vm_spec_release(&want[0]);
	vm_spec_release(&want[1]);
	/* /nodes: pve1 reports stats as integers, pve2 as strings */
	j = J("[{\"node\":\"pve1\",\"status\":\"online\",\"maxcpu\":8,\"maxmem\":17179869184,"
	      "\"mem\":1073741824,\"cpu\":0.05},"
	      "{\"node\":\"pve2\",\"status\":\"online\",\"maxcpu\":\"8\",\"maxmem\":\"17179869184\"}]");
	layer0_set_nodes(&f->l0, j);
	json_decref(j);
	f->l0.version = xstrdup("9.1.2");
	f->l0.major = 9;
	for (i = 0; i < 2; i++) {
		struct l0_node *n = &f->l0.nodes[i];

		/* bridge_vlan_aware as the JSON API may type it: 1, true, "1" */
		j = J("[{\"iface\":\"eno1\",\"type\":\"eth\"},"
		      "{\"iface\":\"vmbr0\",\"type\":\"bridge\",\"bridge_ports\":\"eno1\",\"active\":1,"
		      "\"bridge_vlan_aware\":\"1\"}]");
		layer0_set_network(n, j);
		json_decref(j);
		j = J(disk_storage_json);
		layer0_set_storage(n, j);
		json_decref(j);
		n->has_iso = 1;
	}
	perm(&f->l0, "/vms", ALL_VMS);
	perm(&f->l0, "/storage/local-lvm", "[\"Datastore.AllocateSpace\",\"Datastore.Audit\"]");
	perm(&f->l0, "/storage/local", "[\"Datastore.Audit\",\"Datastore.AllocateTemplate\"]");
	perm(&f->l0, "/sdn/zones/localnetwork/vmbr0", "[\"SDN.Use\"]");
	perm(&f->l0, "/nodes/pve1", "[]");
	perm(&f->l0, "/nodes/pve2", "[\"Sys.AccessNetwork\"]");
	perm(&f->l0, "/", "[]");
}

static void
teardown_fx(struct fixture *f)
{
	plan_release(&f->plan);
	layer0_release(&f->l0);
}

#define STORAGES(lvm) \
	"[{\"storage\":\"local\",\"type\":\"dir\",\"content\":\"iso,vztmpl,import\"," \
	"\"enabled\":1,\"active\":1,\"shared\":0,\"total\":107374182400," \
	"\"used\":0,\"avail\":107374182400}," lvm "]"
#define LVM_OK \
	"{\"storage\":\"local-lvm\",\"type\":\"lvmthin\",\"content\":\"rootdir,images\"," \
	"\"enabled\":true,\"active\":1,\"total\":536870912000,\"used\":0,\"avail\":536870912000}"

static size_t
count(const struct preflight *pf, const char *check, const char *needle)
{
	size_t i, n = 0;

	for (i = 0; i < pf->n; i++)
		if (!strcmp(pf->v[i].check, check) &&
		    (!needle || strstr(pf->v[i].what, needle) || strstr(pf->v[i].fix, needle)))
			n++;
	return n;
}

static void
test_preflight__healthy(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	assert_true(f.l0.nodes[1].has_stats);
	assert_int_equal(f.l0.nodes[1].maxcpu, 8);
	assert_true(layer0_bridge(&f.l0.nodes[0], "vmbr0")->vlan_aware);
	assert_null(layer0_bridge(&f.l0.nodes[0], "eno1"));
	assert_true(layer0_storage_thin(layer0_storage(&f.l0.nodes[0], "local-lvm")));
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	if (pf.n)
		fprintf(stderr, "unexpected: %s: %s\n", pf.v[0].what, pf.v[0].fix);
	assert_int_equal(pf.n, 0);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__version(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	free(f.l0.version);
	f.l0.version = xstrdup("7.4-17");
	f.l0.major = 7;
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.errors, 1);
	assert_int_equal(count(&pf, "version", "Proxmox VE 7.4-17: strata needs 8.0 or later"), 1);
	preflight_release(&pf);
	free(f.l0.version);
	f.l0.version = xstrdup("8.0.2");
	f.l0.major = 8;
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.n, 0);
	preflight_release(&pf);
	free(f.l0.version);
	f.l0.version = NULL;
	f.l0.major = 0;
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.errors, 0);
	assert_int_equal(pf.warnings, 1);
	assert_int_equal(count(&pf, "version", "could not be read"), 1);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__privileges_by_path(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	json_object_del(f.l0.perms[0].privs, "VM.Allocate");
	json_object_del(f.l0.perms[0].privs, "VM.PowerMgmt");
	json_object_del(f.l0.perms[1].privs, "Datastore.AllocateSpace");
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.errors, 2);
	assert_int_equal(count(&pf, "privilege", "lacks on /vms: VM.Allocate (create VMs), "
			       "VM.PowerMgmt (start VMs)"), 1);
	assert_int_equal(count(&pf, "privilege", "lacks on /storage/local-lvm: "
			       "Datastore.AllocateSpace (create VM disks)"), 1);
	assert_int_equal(count(&pf, "privilege", "pveum acl modify /vms --roles "
			       "StrataProvisioner --users strata@pve"), 1);
	preflight_release(&pf);
	teardown_fx(&f);
}

/* A cloud-init VM to create: its ci* keys need VM.Config.Cloudinit, its
 * seed Datastore.AllocateTemplate on ISO storage, its clone VM.Clone on
 * the template, its address the guest agent's privilege. */
static void
test_preflight__cloudinit_vm(void **state)
{
	struct fixture f;
	struct preflight pf;
	struct vm_config vm;
	struct vm_spec want;
	struct err err = ERR_INIT;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	plan_release(&f.plan);
	memset(&want, 0, sizeof(want));
	want.name = xstrdup("app-1");
	want.vmid = 1050;
	want.node = xstrdup("pve1");
	want.cores = 2;
	want.memory_mib = 2048;
	want.disk_gib = 20;
	want.tags = plan_tags("lab", "cloudinit");
	want.role = xstrdup("vm");
	assert_int_equal(plan_diff(&f.plan, "lab", &want, 1, NULL, 0, NULL, 0, &err), 0);
	vm_spec_release(&want);
	memset(&vm, 0, sizeof(vm));
	vm.name = "app-1";
	vm.template_vmid = 9000;
	f.cfg.vms = &vm;
	f.cfg.n_vms = 1;
	perm(&f.l0, "/vms/9000", "[\"VM.Audit\"]");
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(count(&pf, "privilege", "lacks on /vms: VM.Config.Cloudinit"), 1);
	assert_int_equal(count(&pf, "privilege", "VM.GuestAgent.Audit (read a cloud-init VM's address"), 1);
	assert_int_equal(count(&pf, "privilege", "lacks on /vms/9000: VM.Clone (clone the template"), 1);
	preflight_release(&pf);
	/* given them, nothing to report */
	json_object_set_new(f.l0.perms[0].privs, "VM.Config.Cloudinit", json_integer(1));
	json_object_set_new(f.l0.perms[0].privs, "VM.GuestAgent.Audit", json_integer(1));
	json_object_set_new(f.l0.perms[7].privs, "VM.Clone", json_integer(1));
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	if (pf.n)
		fprintf(stderr, "unexpected: %s: %s\n", pf.v[0].what, pf.v[0].fix);
	assert_int_equal(pf.n, 0);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__iso_download_alternatives(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	f.l0.nodes[0].has_iso = 0;   /* pve1 must download: no Sys.AccessNetwork there */
	f.l0.nodes[1].has_iso = 0;   /* pve2 has it */
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.errors, 1);
	assert_int_equal(count(&pf, "privilege", "lacks on /nodes/pve1: Sys.AccessNetwork"), 1);
	preflight_release(&pf);
	/* Sys.Audit + Sys.Modify on / also allow download-url (FACTS.md §7) */
	json_object_set_new(f.l0.perms[6].privs, "Sys.Audit", json_integer(1));
	json_object_set_new(f.l0.perms[6].privs, "Sys.Modify", json_integer(1));
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(pf.errors, 0);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__storage_content_and_space(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	/* "image" is not "images"; a shared dir storage with 50 GiB for 60 */
	setup_fx(&f, STORAGES("{\"storage\":\"local-lvm\",\"type\":\"nfs\",\"content\":\"image,iso\","
			      "\"enabled\":1,\"shared\":1,\"total\":107374182400,\"avail\":53687091200}"));
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(count(&pf, "storage", "does not allow content 'images'"), 2);
	assert_int_equal(count(&pf, "storage", "pvesm set local-lvm --content image,iso,images"), 2);
	assert_int_equal(count(&pf, "space", "shared storage 'local-lvm'"), 1);
	assert_int_equal(count(&pf, "space", "the new disks need 60 GiB"), 1);
	assert_int_equal(pf.errors, 3);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__disabled_vlan_memory(void **state)
{
	struct fixture f;
	struct preflight pf;

	(void)state;
	setup_fx(&f, STORAGES("{\"storage\":\"local-lvm\",\"type\":\"lvmthin\",\"content\":\"images\","
			      "\"enabled\":0,\"active\":0}"));
	f.cfg.proxmox.vlan = 20;
	f.l0.nodes[1].bridges[0].vlan_aware = false;
	f.l0.nodes[0].maxmem = 2048LL << 20;
	preflight_check(&pf, &f.cfg, &f.plan, &f.l0);
	assert_int_equal(count(&pf, "storage", "is disabled"), 2);
	assert_int_equal(count(&pf, "bridge", "node pve2 is not VLAN-aware"), 1);
	assert_int_equal(count(&pf, "memory", "ask for 4096 MiB, the node has 2048 MiB"), 1);
	preflight_release(&pf);
	teardown_fx(&f);
}

static void
test_preflight__needs(void **state)
{
	struct fixture f;
	char **nodes, **paths;
	size_t nn, np, i;
	bool tagged = false;

	(void)state;
	setup_fx(&f, STORAGES(LVM_OK));
	f.cfg.proxmox.vlan = 20;
	preflight_needs(&f.cfg, &f.plan, &nodes, &nn, &paths, &np);
	assert_int_equal(nn, 2);
	for (i = 0; i < np; i++)
		if (!strcmp(paths[i], "/sdn/zones/localnetwork/vmbr0/20"))
			tagged = true;
	assert_true(tagged);
	assert_int_equal(np, 7);   /* /nodes/pve1, /nodes/pve2, /vms, 2 storages, sdn, / */
	preflight_strv_free(nodes, nn);
	preflight_strv_free(paths, np);
	teardown_fx(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preflight__healthy),
		cmocka_unit_test(test_preflight__version),
		cmocka_unit_test(test_preflight__privileges_by_path),
		cmocka_unit_test(test_preflight__cloudinit_vm),
		cmocka_unit_test(test_preflight__iso_download_alternatives),
		cmocka_unit_test(test_preflight__storage_content_and_space),
		cmocka_unit_test(test_preflight__disabled_vlan_memory),
		cmocka_unit_test(test_preflight__needs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
