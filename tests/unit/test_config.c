/* Unit tests for src/config: typed loading, defaults, pool expansion,
 * positions, secrets. The examples/ folder is the fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/decode.h"
#include "config/validate.h"
#include "util/buf.h"
#include "util/err.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

/* Examples load as gen loads them (CONFIG_OFFLINE): vps and the
 * cloud-init VM example are refused by validate until apply can do them. */
static struct config *
load_example(const char *name, struct diag *d)
{
	struct config *cfg = NULL;
	char *dir = xasprintf("%s/examples/%s", SRCDIR, name);
	int r;

	diag_init(d, "config.yml");
	r = config_load_env_opts(&cfg, dir, d, CONFIG_OFFLINE);
	if (r != 0) {
		diag_print(d, stderr);
		fail_msg("example %s does not validate", name);
	}
	free(dir);
	return cfg;
}

static struct config *
load_text(const char *text, struct diag *d)
{
	struct config *cfg = NULL;

	diag_init(d, "config.yml");
	config_load_mem(&cfg, "/nonexistent/env/config.yml", text, strlen(text),
			d, CONFIG_NO_SIBLINGS);
	return cfg;
}

static void
test_config__prod_pools_expand_with_vip_and_placement(void **state)
{
	struct diag d;
	struct config *cfg = load_example("prod", &d);

	assert_int_equal(cfg->platform, PLATFORM_PROXMOX);
	assert_int_equal(cfg->n_nodes, 8);
	assert_int_equal(cfg->n_controlplanes, 3);
	assert_string_equal(cfg->nodes[0].name, "prod-cp-1");
	assert_string_equal(cfg->nodes[0].ip, "10.20.0.11");
	assert_string_equal(cfg->nodes[2].ip, "10.20.0.13");
	assert_string_equal(cfg->nodes[3].name, "prod-w-1");
	assert_string_equal(cfg->nodes[7].ip, "10.20.0.25");
	assert_int_equal(cfg->nodes[0].role, ROLE_CONTROLPLANE);
	assert_int_equal(cfg->nodes[3].role, ROLE_WORKER);
	/* round-robin placement over the pool's list */
	assert_string_equal(cfg->nodes[0].placement, "pve");
	assert_string_equal(cfg->nodes[1].placement, "pve2");
	assert_string_equal(cfg->nodes[2].placement, "pve3");
	assert_string_equal(cfg->nodes[6].placement, "pve");
	/* VM ids allocated from the base, in node order */
	assert_int_equal(cfg->nodes[0].vmid, 4000);
	assert_int_equal(cfg->nodes[7].vmid, 4007);
	assert_int_equal(cfg->nodes[3].memory_mib, 32 * 1024);
	assert_int_equal(cfg->nodes[3].disk_gib, 200);
	assert_string_equal(cfg->kubernetes.endpoint, "https://10.20.0.10:6443");
	assert_int_equal(cfg->kubernetes.cni, CNI_CILIUM);
	assert_false(cfg->kubernetes.kube_proxy);
	assert_false(cfg->kubernetes.allow_scheduling_on_controlplanes);
	assert_int_equal(cfg->proxmox.vlan, 20);
	assert_string_equal(cfg->proxmox.disk_storage, "ceph-vm");
	/* fingerprint normalised: colons removed, lower case */
	assert_int_equal(strlen(cfg->proxmox.tls.fingerprint), 64);
	assert_null(strchr(cfg->proxmox.tls.fingerprint, ':'));
	assert_int_equal(cfg->proxmox.token_secret.kind, SECRET_ENV);
	assert_string_equal(cfg->proxmox.token_secret.text, "PVE_TOKEN_SECRET");
	assert_true(cfg->gitops.enabled);
	assert_string_equal(cfg->gitops.branch, "main");
	assert_string_equal(cfg->gitops.interval, "5m");   /* the seed's default */
	assert_string_equal(cfg->gitops.path, "clusters/prod");
	assert_non_null(cfg->gitops.known_hosts);
	assert_int_equal(d.errors, 0);
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__defaults_follow_talos_version(void **state)
{
	struct diag d;
	struct config *cfg = load_example("homelab", &d);

	assert_string_equal(cfg->talos.version, "v1.12.11");
	assert_int_equal(cfg->talos.minor, 12);
	assert_string_equal(cfg->kubernetes.version, "1.35.4");
	assert_string_equal(cfg->kubernetes.cluster_name, "homelab");
	assert_string_equal(cfg->kubernetes.pod_subnet, "10.244.0.0/16");
	assert_string_equal(cfg->kubernetes.service_subnet, "10.96.0.0/12");
	assert_string_equal(cfg->kubernetes.dns_domain, "cluster.local");
	assert_string_equal(cfg->kubernetes.cni_version, "1.18.4");
	assert_string_equal(cfg->proxmox.bridge, "vmbr0");
	assert_string_equal(cfg->proxmox.iso_storage, "local");
	assert_string_equal(cfg->proxmox.cpu_type, "x86-64-v2-AES");
	assert_int_equal(cfg->network.discovery, DISCOVERY_GUEST_AGENT);
	/* the guest agent extension is added when nothing was chosen */
	assert_int_equal(cfg->talos.extensions.n, 1);
	assert_string_equal(cfg->talos.extensions.v[0], "siderolabs/qemu-guest-agent");
	assert_int_equal(cfg->network.nameservers.n, 1);
	assert_string_equal(cfg->network.nameservers.v[0], "192.168.1.1");
	assert_string_equal(cfg->nodes[1].name, "homelab-w-1");
	assert_string_equal(cfg->nodes[0].install_disk, "/dev/sda");
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__n100_explicit_nodes_patches_components(void **state)
{
	struct diag d;
	struct config *cfg = load_example("prox-n100", &d);

	assert_int_equal(cfg->n_nodes, 3);
	assert_string_equal(cfg->nodes[1].name, "n100-w-1");
	assert_string_equal(cfg->nodes[1].mac, "BC:24:11:30:00:21");
	assert_string_equal(cfg->nodes[2].placement, "n100-c");
	assert_int_equal(cfg->nodes[1].cores, 3);
	assert_int_equal(cfg->nodes[0].memory_mib, 6144);
	assert_int_equal(cfg->talos.n_patches, 2);
	assert_string_equal(cfg->talos.patches[0].file, "patches/longhorn-mounts.yaml");
	assert_null(cfg->talos.patches[1].inline_yaml == NULL ? "missing" : NULL);
	assert_non_null(strstr(cfg->talos.patches[1].inline_yaml, "vm.max_map_count"));
	assert_true(cfg->components.longhorn);
	assert_true(cfg->components.nfs);
	assert_string_equal(cfg->components.ingress, "nginx");
	assert_string_equal(cfg->components.tunnel, "cloudflared");
	assert_int_equal(cfg->components.tunnel_token.kind, SECRET_ENV);
	assert_true(cfg->components.monitoring);
	assert_int_equal(cfg->proxmox.token_secret.kind, SECRET_FILE);
	/* the CA file is not in the example (the token file is checked only
	 * with CONFIG_CHECK_SECRETS, as validate does); ingress-nginx is
	 * retired; metrics-server needs kubelet serving certificates */
	assert_int_equal(d.warnings, 3);
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__vps_single_node_schedules_on_controlplane(void **state)
{
	struct diag d;
	struct config *cfg = load_example("vps-single", &d);

	assert_int_equal(cfg->platform, PLATFORM_VPS);
	assert_int_equal(cfg->n_nodes, 1);
	assert_string_equal(cfg->nodes[0].ip, "198.51.100.23");
	assert_true(cfg->kubernetes.allow_scheduling_on_controlplanes);
	assert_int_equal(cfg->network.discovery, DISCOVERY_STATIC);
	assert_true(cfg->network.gateway_onlink);
	assert_string_equal(cfg->vps.rescue, "hetzner");
	assert_string_equal(cfg->kubernetes.endpoint, "https://198.51.100.23:6443");
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__vm_only_environment(void **state)
{
	struct diag d, v;
	struct config *cfg = load_example("ubuntu-vm", &d), *vcfg = NULL;
	char *dir = xasprintf("%s/examples/ubuntu-vm", SRCDIR);

	/* validate (no CONFIG_OFFLINE) takes it: apply imports image VMs. */
	diag_init(&v, "config.yml");
	assert_int_equal(config_load_env_opts(&vcfg, dir, &v, 0), 0);
	assert_int_equal(v.errors, 0);
	config_free(vcfg);
	diag_release(&v);
	free(dir);

	assert_int_equal(cfg->n_nodes, 0);
	assert_int_equal(cfg->n_vms, 1);
	assert_string_equal(cfg->vms[0].name, "app-1");
	assert_int_equal(cfg->vms[0].vmid, 5000);
	assert_int_equal(cfg->vms[0].memory_mib, 4096);
	assert_int_equal(cfg->vms[0].groups.n, 2);
	assert_int_equal(cfg->vms[0].n_vars, 2);
	assert_string_equal(cfg->vms[0].vars[0].key, "http_port");
	assert_string_equal(cfg->vms[0].vars[0].value, "8080");
	assert_string_equal(cfg->vms[0].placement, "pve");
	config_free(cfg);
	diag_release(&d);
}

static const char minimal[] =
	"name: t\n"
	"platform: proxmox\n"
	"proxmox:\n"
	"  endpoint: https://pve:8006\n"
	"  token_id: a@pam!b\n"
	"  token_secret: ${STRATA_TEST_SECRET}\n"
	"  tls: {insecure: true}\n"
	"  nodes: [pve]\n"
	"  vmid: {base: 100, count: 5}\n"
	"network: {cidr: 10.1.0.0/24, gateway: 10.1.0.1}\n"
	"nodes:\n"
	"  controlplane:\n"
	"    nodes:\n"
	"      - {name: c1, ip: 10.1.0.5, vmid: 100}\n"
	"  workers: {count: 2, ip_start: 10.1.0.20, memory: 2048}\n";

static void
test_config__explicit_vmids_are_skipped_when_allocating(void **state)
{
	struct diag d;
	struct config *cfg = load_text(minimal, &d);

	assert_non_null(cfg);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.warnings, 1); /* insecure */
	assert_int_equal(cfg->nodes[0].vmid, 100);
	assert_int_equal(cfg->nodes[1].vmid, 101);
	assert_int_equal(cfg->nodes[2].vmid, 102);
	assert_string_equal(cfg->nodes[2].ip, "10.1.0.21");
	assert_string_equal(cfg->kubernetes.endpoint, "https://10.1.0.5:6443");
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__secret_resolution(void **state)
{
	struct diag d;
	struct config *cfg = load_text(minimal, &d);
	struct err e = ERR_INIT;
	char *v = NULL;

	unsetenv("STRATA_TEST_SECRET");
	assert_int_equal(config_secret_resolve(&v, cfg, &cfg->proxmox.token_secret,
					       "proxmox.token_secret", &e), -ERR_USAGE);
	assert_string_equal(e.msg, "proxmox.token_secret: environment variable "
				   "'STRATA_TEST_SECRET' is not set");
	setenv("STRATA_TEST_SECRET", "s3cret", 1);
	assert_int_equal(config_secret_resolve(&v, cfg, &cfg->proxmox.token_secret,
					       "proxmox.token_secret", &e), 0);
	assert_string_equal(v, "s3cret");
	free(v);
	config_free(cfg);
	diag_release(&d);
}


/* validate's secret check: an unset variable is an error at its position;
 * a set one passes; the value never reaches a message. */
static void
test_config__check_secrets_flag(void **state)
{
	struct diag d;
	struct config *cfg = NULL;
	size_t i;

	unsetenv("STRATA_TEST_SECRET");
	diag_init(&d, "config.yml");
	assert_int_equal(config_load_mem(&cfg, "/nonexistent/env/config.yml",
					 minimal, strlen(minimal), &d,
					 CONFIG_NO_SIBLINGS | CONFIG_CHECK_SECRETS), -1);
	assert_int_equal(d.errors, 1);
	for (i = 0; i < d.n; i++)
		if (d.v[i].level == DIAG_ERROR) {
			assert_int_equal(d.v[i].line, 6);
			assert_int_equal(d.v[i].col, 17);
			assert_non_null(strstr(d.v[i].msg, "'STRATA_TEST_SECRET' is not set"));
		}
	config_free(cfg);
	diag_release(&d);

	setenv("STRATA_TEST_SECRET", "s3cret-value", 1);
	diag_init(&d, "config.yml");
	assert_int_equal(config_load_mem(&cfg, "/nonexistent/env/config.yml",
					 minimal, strlen(minimal), &d,
					 CONFIG_NO_SIBLINGS | CONFIG_CHECK_SECRETS), 0);
	for (i = 0; i < d.n; i++)
		assert_null(strstr(d.v[i].msg, "s3cret-value"));
	config_free(cfg);
	diag_release(&d);
	unsetenv("STRATA_TEST_SECRET");
}

/* An inline talos patch using an anchor defined elsewhere is copied out
 * resolved: the generated patch holds the values, not a dangling alias. */
static void
test_config__patch_aliases_resolved(void **state)
{
	static const char text[] =
		"name: t\n"
		"platform: proxmox\n"
		"proxmox:\n"
		"  endpoint: https://pve:8006\n"
		"  token_id: a@pam!b\n"
		"  token_secret: ${STRATA_TEST_SECRET}\n"
		"  tls: {insecure: true}\n"
		"  nodes: [pve]\n"
		"  vmid: {base: 100, count: 5}\n"
		"network: {cidr: 10.1.0.0/24, gateway: &gw 10.1.0.1}\n"
		"talos:\n"
		"  patches:\n"
		"    - machine:\n"
		"        sysctls: &sys {vm.max_map_count: \"262144\"}\n"
		"    - machine:\n"
		"        kubelet: {extraArgs: {node-ip: *gw}}\n"
		"        sysfs:\n"
		"          <<: *sys\n"
		"nodes:\n"
		"  controlplane: {count: 1, ip_start: 10.1.0.5}\n";
	struct diag d;
	struct config *cfg = load_text(text, &d);

	assert_non_null(cfg);
	if (d.errors)
		diag_print(&d, stderr);
	assert_int_equal(d.errors, 0);
	assert_int_equal(cfg->talos.n_patches, 2);
	assert_null(strchr(cfg->talos.patches[1].inline_yaml, '*'));
	assert_non_null(strstr(cfg->talos.patches[1].inline_yaml, "node-ip: 10.1.0.1"));
	assert_non_null(strstr(cfg->talos.patches[1].inline_yaml, "vm.max_map_count: \"262144\""));
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__positions_resolve_display_paths(void **state)
{
	struct diag d;
	struct config *cfg = load_text(minimal, &d);
	int line, col;

	config_pos(cfg, "proxmox.tls.insecure", &line, &col);
	assert_int_equal(line, 7);
	assert_int_equal(col, 19);
	config_pos(cfg, "nodes.controlplane.nodes[0].ip", &line, &col);
	assert_int_equal(line, 14);
	assert_int_equal(col, 24);
	/* a missing leaf falls back to its parent */
	config_pos(cfg, "nodes.workers.cores", &line, &col);
	assert_int_equal(line, 15);
	config_free(cfg);
	diag_release(&d);
}

static void
test_config__all_errors_collected_in_one_run(void **state)
{
	struct diag d;
	struct config *cfg;
	char *bad = xstrdup(minimal);
	char *p;

	p = strstr(bad, "10.1.0.5");
	memcpy(p, "10.1.9.5", 8);          /* outside the network */
	p = strstr(bad, "count: 2");
	memcpy(p, "count: x", 8);          /* not an integer */
	p = strstr(bad, "a@pam!b");
	memcpy(p, "a-pam-b", 7);           /* not a token id */
	cfg = load_text(bad, &d);
	assert_int_equal(d.errors, 3);
	config_free(cfg);
	diag_release(&d);
	free(bad);
}

static void
test_config__suggestions(void **state)
{
	const char *keys[] = { "cores", "memory", "disk", "count" };

	assert_string_equal(decode_suggest("cors", keys, 4), "cores");
	assert_string_equal(decode_suggest("memroy", keys, 4), "memory");
	assert_null(decode_suggest("flux", keys, 4));
}

static void
test_config__manifests_prune(void **state)
{
	struct diag d;
	struct config *cfg = load_text(minimal, &d);
	struct buf b = BUF_INIT;

	/* default on, as talosctl v1.13 */
	assert_true(cfg->kubernetes.manifests_prune);
	config_free(cfg);
	diag_release(&d);
	buf_addf(&b, "%skubernetes: {manifests_prune: false}\n"
		 "talos: {version: v1.13.9}\n", minimal);
	cfg = load_text(b.ptr, &d);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.warnings, 1);   /* insecure */
	assert_false(cfg->kubernetes.manifests_prune);
	config_free(cfg);
	diag_release(&d);
	buf_reset(&b);
	/* v1.12 does not prune: a key set there warns */
	buf_addf(&b, "%skubernetes: {manifests_prune: true}\n", minimal);
	cfg = load_text(b.ptr, &d);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.warnings, 2);
	config_free(cfg);
	diag_release(&d);
	buf_reset(&b);
	buf_addf(&b, "%skubernetes: {manifests_prune: \"no\"}\n", minimal);
	cfg = load_text(b.ptr, &d);
	assert_int_equal(d.errors, 1);
	config_free(cfg);
	diag_release(&d);
	buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config__prod_pools_expand_with_vip_and_placement),
		cmocka_unit_test(test_config__defaults_follow_talos_version),
		cmocka_unit_test(test_config__n100_explicit_nodes_patches_components),
		cmocka_unit_test(test_config__vps_single_node_schedules_on_controlplane),
		cmocka_unit_test(test_config__vm_only_environment),
		cmocka_unit_test(test_config__explicit_vmids_are_skipped_when_allocating),
		cmocka_unit_test(test_config__secret_resolution),
		cmocka_unit_test(test_config__check_secrets_flag),
		cmocka_unit_test(test_config__patch_aliases_resolved),
		cmocka_unit_test(test_config__positions_resolve_display_paths),
		cmocka_unit_test(test_config__all_errors_collected_in_one_run),
		cmocka_unit_test(test_config__suggestions),
		cmocka_unit_test(test_config__manifests_prune),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
