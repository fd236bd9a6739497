/*
 * Unit tests for src/provider/proxmox/cloudinit and src/ansible/inventory:
 * the sshkeys encoding (FACTS.md §6), the SSH key check against the real
 * ssh-keygen, the nocloud seed (user-data passes the real `cloud-init
 * schema`; instance-id follows the contents) and the inventory (read by
 * the real ansible-inventory). A missing peer is a skip, never a pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ansible/inventory.h"
#include "config/config.h"
#include "config/validate.h"
#include "provider/proxmox/cloudinit.h"
#include "testutil.h"
#include "util/err.h"

/* A real key (ssh-keygen -t ed25519), public half only. */
#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgAdjnI ops@laptop"
#define KEY2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx4b1Hn8qV0Z1u2xKp9T3mR7yWc5dE6fA8sL0jN4oQB ops@laptop"

static char tmpdir[64];

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/strata-ci.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	return tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static void
put(const char *name, const char *text, size_t len)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(p);
}

static bool
have(const char *prog)
{
	return tu_sh("command -v %s >/dev/null 2>&1", prog) == 0;
}

static struct config *
load(const char *key, const char *extra)
{
	struct config *cfg = NULL;
	struct diag diag;
	char *text = xasprintf(
		"name: ci\nplatform: proxmox\n"
		"proxmox:\n  endpoint: https://pve:8006\n  token_id: a@pve!b\n"
		"  token_secret: ${CI_UNSET}\n  nodes: [pve]\n  tls: {insecure: true}\n"
		"  vmid: {base: 5000}\n"
		"network:\n  cidr: 10.9.0.0/24\n  gateway: 10.9.0.1\n"
		"  nameservers: [10.9.0.1, 9.9.9.9]\n"
		"vms:\n  - name: app-1\n    image: https://example.org/x.img\n"
		"    ip: 10.9.0.80\n    user: ubuntu\n    ssh_keys: ['%s']\n"
		"    packages: [nginx]\n"
		"    ansible:\n      groups: [web, db]\n"
		"      vars: {http_port: 8080, app_env: prod, list: [1, 2]}\n%s",
		key, extra);

	diag_init(&diag, "config.yml");
	if (config_load_mem(&cfg, "/nonexistent/ci/config.yml", text, strlen(text),
			    &diag, CONFIG_OFFLINE | CONFIG_NO_SIBLINGS) != 0) {
		diag_print(&diag, stderr);
		fail_msg("config does not load");
	}
	diag_release(&diag);
	free(text);
	return cfg;
}

static void
test_cloudinit__sshkeys_encoding(void **state)
{
	struct str_list l;
	char *keys[] = { (char *)"ssh-ed25519 AB+/= a@b c", (char *)"x~*'()!._-y" };
	struct buf b = BUF_INIT;

	l.v = keys;
	l.n = 2;
	ci_sshkeys_encode(&b, &l);
	assert_string_equal(b.ptr, "ssh-ed25519%20AB%2B%2F%3D%20a%40b%20c%0A"
			    "x~*'()!._-y%0A");
	buf_release(&b);
	buf_init(&b);
	ci_ipconfig(&b, "10.9.0.80", 24, "10.9.0.1");
	assert_string_equal(b.ptr, "ip=10.9.0.80/24,gw=10.9.0.1");
	buf_release(&b);
}

/* Each case is judged by ssh-keygen -l too: our check and the real one
 * agree on every input. */
static void
test_cloudinit__ssh_key_check_agrees_with_ssh_keygen(void **state)
{
	static const struct { const char *key; int ok; } cases[] = {
		{ KEY1, 1 },
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgAdjnI", 1 },
		{ KEY2, 1 },
		/* a byte after the key, a 31-byte key */
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgAdjnIAA== x", 0 },
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAH4/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgAdjk= x", 0 },
		{ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgA", 0 },
		{ "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAII/ju4X+W8wLO77ttE6VOUYWyE3iGoI0R5mAGYgAdjnI x", 0 },
		{ "ssh-ed25519 not*base64 x", 0 },
		{ "ssh-ed25519", 0 },
	};
	char why[128];
	size_t i;
	bool peer = have("ssh-keygen");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ours = ci_ssh_key_check(cases[i].key, why, sizeof(why)) == 0;

		if (ours != cases[i].ok)
			fail_msg("case %zu '%s': ours says %d (%s)", i, cases[i].key,
				 ours, ours ? "" : why);
		if (peer) {
			put("k.pub", cases[i].key, strlen(cases[i].key));
			int real = tu_sh("ssh-keygen -l -f '%s/k.pub' >/dev/null 2>&1",
					 tmpdir) == 0;

			if (real != ours)
				fail_msg("case %zu: ssh-keygen says %d, we say %d",
					 i, real, ours);
		}
	}
	if (!peer)
		skip();
}

static void
test_cloudinit__seed_contents(void **state)
{
	struct config *cfg = load(KEY1, "");
	struct ci_seed s = CI_SEED_INIT;
	struct err err = ERR_INIT;
	struct fy_document *ud;
	const char *v;

	assert_int_equal(ci_seed_make(&s, cfg, &cfg->vms[0], &err), 0);
	assert_memory_equal(s.user_data.ptr, "#cloud-config\n", 14);
	assert_non_null(ud = fy_document_build_from_string(NULL, s.user_data.ptr,
							   s.user_data.len));
	v = fy_node_get_scalar0(fy_node_by_path(fy_document_root(ud), "/hostname", FY_NT, 0));
	assert_string_equal(v, "app-1");
	assert_string_equal(fy_node_get_scalar0(fy_node_by_path(fy_document_root(ud),
		"/users/0/name", FY_NT, 0)), "ubuntu");
	assert_string_equal(fy_node_get_scalar0(fy_node_by_path(fy_document_root(ud),
		"/users/0/ssh_authorized_keys/0", FY_NT, 0)), KEY1);
	/* the base packages first, then the config's */
	assert_string_equal(fy_node_get_scalar0(fy_node_by_path(fy_document_root(ud),
		"/packages/0", FY_NT, 0)), "qemu-guest-agent");
	assert_string_equal(fy_node_get_scalar0(fy_node_by_path(fy_document_root(ud),
		"/packages/2", FY_NT, 0)), "nginx");
	fy_document_destroy(ud);
	assert_non_null(strstr(s.network_config.ptr, "- 10.9.0.80/24\n"));
	assert_non_null(strstr(s.network_config.ptr, "via: 10.9.0.1\n"));
	assert_non_null(strstr(s.network_config.ptr, "- 9.9.9.9\n"));
	assert_non_null(strstr(s.meta_data.ptr, "local-hostname: app-1\n"));
	if (have("cloud-init")) {
		put("user-data", s.user_data.ptr, s.user_data.len);
		assert_int_equal(tu_sh("cloud-init schema -c '%s/user-data' >/dev/null",
				       tmpdir), 0);
	}
	ci_seed_release(&s);
	config_free(cfg);
	if (!have("cloud-init"))
		skip();
}

/* A changed SSH key is a new instance-id: cloud-init runs again. */
static void
test_cloudinit__instance_id_follows_contents(void **state)
{
	struct config *a = load(KEY1, ""), *b = load(KEY1, ""),
		*c = load("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8m1xW6kXbXgqv7yH8cW3hUQn2y3t8R3n9zq7QvYg8s x", "");
	struct ci_seed sa = CI_SEED_INIT, sb = CI_SEED_INIT, sc = CI_SEED_INIT;
	struct err err = ERR_INIT;

	assert_int_equal(ci_seed_make(&sa, a, &a->vms[0], &err), 0);
	assert_int_equal(ci_seed_make(&sb, b, &b->vms[0], &err), 0);
	assert_int_equal(ci_seed_make(&sc, c, &c->vms[0], &err), 0);
	assert_string_equal(sa.meta_data.ptr, sb.meta_data.ptr);
	assert_string_not_equal(sa.meta_data.ptr, sc.meta_data.ptr);
	ci_seed_release(&sa);
	ci_seed_release(&sb);
	ci_seed_release(&sc);
	config_free(a);
	config_free(b);
	config_free(c);
}

static void
test_cloudinit__inventory_reads_with_ansible_inventory(void **state)
{
	struct config *cfg = load(KEY1, "  - name: db-1\n    image: https://example.org/x.img\n"
				  "    ip: 10.9.0.81\n    ansible: {groups: [db]}\n");
	struct buf inv = BUF_INIT;
	struct err err = ERR_INIT;
	char *out;

	assert_int_equal(ansible_inventory(&inv, cfg, &err), 0);
	put("inventory.yml", inv.ptr, inv.len);
	buf_release(&inv);
	config_free(cfg);
	if (!have("ansible-inventory"))
		skip();
	assert_int_equal(tu_sh("cd '%s' && ANSIBLE_INVENTORY_UNPARSED_FAILED=1 "
			       "ANSIBLE_LOCAL_TEMP=%s/t ANSIBLE_HOME=%s/h "
			       "ansible-inventory -i inventory.yml --list > list.json",
			       tmpdir, tmpdir, tmpdir), 0);
	out = tu_slurp(tmpdir, "list.json");
	/* host vars typed as written, both hosts in db, app-1 in web */
	assert_int_equal(tu_sh("python3 -c 'import json,sys; d=json.load(open(\"%s/list.json\"));"
			       "h=d[\"_meta\"][\"hostvars\"];"
			       "assert h[\"app-1\"][\"ansible_host\"]==\"10.9.0.80\";"
			       "assert h[\"app-1\"][\"ansible_user\"]==\"ubuntu\";"
			       "assert h[\"app-1\"][\"http_port\"]==8080;"
			       "assert h[\"app-1\"][\"list\"]==[1,2];"
			       "assert h[\"db-1\"][\"ansible_user\"]==\"debian\";"
			       "assert sorted(d[\"db\"][\"hosts\"])==[\"app-1\",\"db-1\"];"
			       "assert d[\"web\"][\"hosts\"]==[\"app-1\"]'", tmpdir), 0);
	free(out);
}

/* The same seed makes the same image bytes, a second later too: an
 * unchanged seed is never rewritten or uploaded again. */
static void
test_cloudinit__seed_iso_is_deterministic(void **state)
{
	struct config *cfg = load(KEY1, "");
	struct ci_seed s = CI_SEED_INIT;
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct err err = ERR_INIT;

	assert_int_equal(ci_seed_make(&s, cfg, &cfg->vms[0], &err), 0);
	assert_int_equal(ci_seed_iso(&a, &s, &err), 0);
	sleep(2);
	assert_int_equal(ci_seed_iso(&b, &s, &err), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.ptr, b.ptr, a.len);
	buf_release(&a);
	buf_release(&b);
	ci_seed_release(&s);
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cloudinit__sshkeys_encoding),
		cmocka_unit_test(test_cloudinit__ssh_key_check_agrees_with_ssh_keygen),
		cmocka_unit_test(test_cloudinit__seed_contents),
		cmocka_unit_test(test_cloudinit__instance_id_follows_contents),
		cmocka_unit_test(test_cloudinit__seed_iso_is_deterministic),
		cmocka_unit_test(test_cloudinit__inventory_reads_with_ansible_inventory),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
