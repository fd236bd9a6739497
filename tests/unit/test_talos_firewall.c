/*
 * The Talos host firewall: config checks (config/firewall.c) and the
 * documents written into each node's config (talos/firewall.c), which must
 * validate against the upstream Talos schema when it is at hand.
 */
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
#include "config/firewall.h"
#include "config/validate.h"
#include "talos/firewall.h"
#include "talos/fwsource.h"
#include "talos/tyaml.h"
#include "util/fs.h"
#include "util/net.h"

#define SCHEMA SRCDIR "/../shared/reference/talos/config.schema.json"

static const char vps_base[] =
	"name: edge\nplatform: vps\n"
	"vps:\n  host: 198.51.100.23\n  ssh:\n    key_file: /k\n"
	"    host_fingerprint: \"SHA256:Qm3d9pX2vL7kTzR1aB4cN8eF0gH6jK5sW3yU2iO7pE8\"\n"
	"  disk: /dev/sda\n"
	"network:\n  cidr: 198.51.100.0/24\n  gateway: 198.51.100.1\n"
	"nodes:\n  controlplane:\n    count: 1\n";

static const char pve_base[] =
	"name: lab\nplatform: proxmox\n"
	"proxmox:\n  endpoint: https://127.0.0.1:8006\n  token_id: \"a@pve!b\"\n"
	"  token_secret: ${PVE_TOKEN_SECRET}\n  tls: {fingerprint: \"aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\"}\n"
	"  nodes: [pve1]\n  vmid: {base: 1000, count: 50}\n"
	"network:\n  cidr: 10.0.0.0/24\n  gateway: 10.0.0.1\n"
	"kubernetes:\n  vip: 10.0.0.10\n"
	"nodes:\n  controlplane: {count: 1, ip_start: 10.0.0.11}\n"
	"  workers: {count: 2, ip_start: 10.0.0.21}\n";

/* Load base + extra; returns the config and fills diag's text into msgs. */
static struct config *
load(const char *base, const char *extra, char *msgs, size_t n)
{
	struct config *cfg = NULL;
	struct diag d;
	struct buf text = BUF_INIT;
	char *mem = NULL;
	size_t len = 0;
	FILE *fp;

	buf_adds(&text, base);
	buf_adds(&text, extra);
	diag_init(&d, "config.yml");
	config_load_mem(&cfg, "/tmp/strata-fw/config.yml", text.ptr, text.len, &d,
			CONFIG_NO_SIBLINGS | CONFIG_OFFLINE);
	fp = open_memstream(&mem, &len);
	diag_print(&d, fp);
	fclose(fp);
	snprintf(msgs, n, "%s", mem ? mem : "");
	free(mem);
	diag_release(&d);
	buf_release(&text);
	return cfg;
}

static void
test_firewall__vps_needs_admin_cidrs(void **state)
{
	char msgs[4096];
	struct config *cfg;

	(void)state;
	cfg = load(vps_base, "", msgs, sizeof(msgs));
	assert_non_null(strstr(msgs, "error: platform: platform 'vps' puts the "
			       "Talos API (50000)"));
	config_free(cfg);
	/* Said in words: allowed, with a warning. */
	cfg = load(vps_base, "firewall:\n  allow_admin_from_anywhere: true\n",
		   msgs, sizeof(msgs));
	assert_null(strstr(msgs, "error:"));
	assert_non_null(strstr(msgs, "warning: firewall.allow_admin_from_anywhere: "
			       "the Talos API (50000) and the Kubernetes API (6443) "
			       "accept connections from any address"));
	config_free(cfg);
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n",
		   msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	config_free(cfg);
}

static void
test_firewall__bad_entries_named_at_their_position(void **state)
{
	char msgs[4096];
	struct config *cfg;

	(void)state;
	cfg = load(vps_base,
		   "firewall:\n"
		   "  admin_cidrs: [203.0.113.0/24, 10.0.0.300/8, 1.2.3.4]\n"
		   "  open_ports: [443/tcp, 6443/tcp, 2000-2500/tcp, 80, 443/sctp,\n"
		   "               8000-9000/udp, 8443/udp, 9/tcp]\n"
		   "  allow_admin_from_anywhere: true\n", msgs, sizeof(msgs));
	if (getenv("FW_DEBUG"))
		fprintf(stderr, "%s", msgs);
	assert_non_null(strstr(msgs, "config.yml:16:33: error: firewall.admin_cidrs[1]: "
			       "'10.0.0.300/8' is not an IPv4 network"));
	assert_non_null(strstr(msgs, "firewall.admin_cidrs[2]: '1.2.3.4' is not"));
	assert_non_null(strstr(msgs, "firewall.open_ports[1]: '6443/tcp' would open "
			       "6443/tcp to any address; it is the Kubernetes API"));
	assert_non_null(strstr(msgs, "firewall.open_ports[2]: '2000-2500/tcp' would "
			       "open 2379/tcp to any address; it is etcd"));
	assert_non_null(strstr(msgs, "firewall.open_ports[3]: '80' is not PORT/PROTO"));
	assert_non_null(strstr(msgs, "firewall.open_ports[4]: '443/sctp' is not"));
	assert_non_null(strstr(msgs, "firewall.open_ports[6]: '8443/udp' overlaps"));
	assert_null(strstr(msgs, "open_ports[7]"));
	assert_non_null(strstr(msgs, "firewall.allow_admin_from_anywhere: set together "
			       "with firewall.admin_cidrs"));
	config_free(cfg);
}

static void
test_firewall__try_timeout_range(void **state)
{
	static const char *const bad[] = { "5s", "11m" };
	char msgs[4096], extra[128];
	struct config *cfg;
	size_t i;

	(void)state;
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n"
		   "  try_timeout: 10s\n", msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_string_equal(cfg->firewall.try_timeout, "10s");
	config_free(cfg);
	for (i = 0; i < 2; i++) {
		snprintf(extra, sizeof(extra), "firewall:\n  admin_cidrs: "
			 "[203.0.113.0/24]\n  try_timeout: %s\n", bad[i]);
		cfg = load(vps_base, extra, msgs, sizeof(msgs));
		assert_non_null(strstr(msgs, "error: firewall.try_timeout: "));
		assert_non_null(strstr(msgs, "is out of range"));
		config_free(cfg);
	}
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n"
		   "  try_timeout: soon\n", msgs, sizeof(msgs));
	assert_non_null(strstr(msgs, "'soon' is not a duration"));
	assert_null(strstr(msgs, "out of range"));
	config_free(cfg);
}

static char *
docs_for(const struct config *cfg, const char *node)
{
	struct ydocs p = { 0 };
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	const struct node *n = config_node(cfg, node);

	assert_non_null(n);
	talos_firewall_docs(&p, cfg, n);
	assert_int_equal(ydocs_emit(&out, &p, &err), 0);
	ydocs_release(&p);
	return buf_detach(&out, NULL);
}

static void
schema_check(const char *yaml)
{
	static const char script[] =
		"import json, sys, yaml, jsonschema\n"
		"schema = json.load(open(sys.argv[1]))\n"
		"for d in yaml.safe_load_all(open(sys.argv[2])):\n"
		"    jsonschema.validate(d, schema)\n";
	char tmp[] = "/tmp/strata-fw-XXXXXX", cmd[512];
	int fd;

	if (!fs_exists(SCHEMA) ||
	    system("/usr/bin/python3 -c 'import jsonschema, yaml' 2>/dev/null") != 0) {
		print_message("skip schema check: needs %s and python3-jsonschema\n",
			      SCHEMA);
		return;
	}
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"%s\" '%s' '%s'",
		 "import json, sys, yaml, jsonschema\n"
		 "schema = json.load(open(sys.argv[1]))\n"
		 "[jsonschema.validate(d, schema) for d in yaml.safe_load_all(open(sys.argv[2]))]",
		 SCHEMA, tmp);
	(void)script;
	assert_int_equal(system(cmd), 0);
	unlink(tmp);
}

static void
test_firewall__vps_documents(void **state)
{
	char msgs[4096];
	struct config *cfg;
	char *y;

	(void)state;
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24, 192.0.2.7/32]\n"
		   "  open_ports: [443/tcp, 30000-32767/tcp, 51820/udp]\n",
		   msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_true(talos_firewall_wanted(cfg));
	y = docs_for(cfg, "edge-cp-1");
	if (getenv("FW_DEBUG"))
		fprintf(stderr, "%s", y);
	assert_non_null(strstr(y, "kind: NetworkDefaultActionConfig\ningress: block\n"));
	/* 50000 and 6443: the admins and the node itself, nobody else. */
	assert_non_null(strstr(y, "name: apid\nportSelector:\n    ports:\n    - 50000\n"
			       "    protocol: tcp\ningress:\n-   subnet: 203.0.113.0/24\n"
			       "-   subnet: 192.0.2.7/32\n-   subnet: 198.51.100.23/32\n---"));
	assert_non_null(strstr(y, "name: kube-apiserver\nportSelector:\n    ports:\n"
			       "    - 6443\n    protocol: tcp\ningress:\n-   subnet: 203.0.113.0/24\n"
			       "-   subnet: 192.0.2.7/32\n-   subnet: 198.51.100.23/32\n---"));
	assert_non_null(strstr(y, "name: trustd\nportSelector:\n    ports:\n    - 50001\n"
			       "    protocol: tcp\ningress:\n-   subnet: 198.51.100.23/32\n"));
	assert_non_null(strstr(y, "name: etcd\nportSelector:\n    ports:\n    - 2379-2380\n"));
	assert_non_null(strstr(y, "name: cilium-vxlan\nportSelector:\n    ports:\n    - 8472\n"
			       "    protocol: udp\n"));
	assert_non_null(strstr(y, "name: open-tcp\nportSelector:\n    ports:\n    - 443\n"
			       "    - 30000-32767\n    protocol: tcp\ningress:\n-   subnet: 0.0.0.0/0\n"));
	assert_non_null(strstr(y, "name: open-udp\nportSelector:\n    ports:\n    - 51820\n"));
	/* No rule anywhere opens 50000 or 6443 to 0.0.0.0/0. */
	assert_int_equal(strstr(y, "0.0.0.0/0") - strstr(y, "name: open-tcp") > 0, 1);
	schema_check(y);
	free(y);
	config_free(cfg);
}

static void
test_firewall__proxmox_only_when_asked(void **state)
{
	char msgs[4096];
	struct config *cfg;
	char *y;

	(void)state;
	cfg = load(pve_base, "", msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_false(talos_firewall_wanted(cfg));
	config_free(cfg);
	cfg = load(pve_base, "firewall:\n  admin_cidrs: [10.0.0.0/24]\n", msgs,
		   sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_true(talos_firewall_wanted(cfg));
	/* A worker: every node on the cluster ports, but no etcd rule. */
	y = docs_for(cfg, "lab-w-1");
	assert_null(strstr(y, "name: etcd"));
	assert_non_null(strstr(y, "name: kubelet\nportSelector:\n    ports:\n    - 10250\n"
			       "    protocol: tcp\ningress:\n-   subnet: 10.0.0.11/32\n"
			       "-   subnet: 10.0.0.21/32\n-   subnet: 10.0.0.22/32\n"));
	schema_check(y);
	free(y);
	/* A control plane: etcd from the control planes only. */
	y = docs_for(cfg, "lab-cp-1");
	assert_non_null(strstr(y, "name: etcd\nportSelector:\n    ports:\n    - 2379-2380\n"
			       "    protocol: tcp\ningress:\n-   subnet: 10.0.0.11/32\n---"));
	schema_check(y);
	free(y);
	config_free(cfg);
}

/* A node on loopback: strata's own address toward it is 127.0.0.1. */
static const char lo_base[] =
	"name: edge\nplatform: vps\n"
	"vps:\n  host: 127.0.0.9\n  ssh:\n    key_file: /k\n"
	"    host_fingerprint: \"SHA256:Qm3d9pX2vL7kTzR1aB4cN8eF0gH6jK5sW3yU2iO7pE8\"\n"
	"  disk: /dev/sda\n"
	"network:\n  cidr: 127.0.0.0/24\n  gateway: 127.0.0.1\n"
	"nodes:\n  controlplane:\n    count: 1\n";

static void
test_firewall__strata_source(void **state)
{
	char msgs[4096];
	struct config *cfg;
	struct fw_source src;
	struct err err = ERR_INIT;
	uint32_t a;

	(void)state;
	assert_true(net_ipv4_parse("10.1.2.3", &a) && net_is_private(a));
	assert_true(net_ipv4_parse("172.31.0.1", &a) && net_is_private(a));
	assert_true(net_ipv4_parse("100.100.0.1", &a) && net_is_private(a));
	assert_true(net_ipv4_parse("172.32.0.1", &a) && !net_is_private(a));
	assert_true(net_ipv4_parse("127.0.0.1", &a) && !net_is_private(a));

	cfg = load(lo_base, "firewall:\n  admin_cidrs: [127.0.0.0/8]\n", msgs,
		   sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_int_equal(talos_firewall_source(cfg, "127.0.0.9", &src, &err), 0);
	assert_string_equal(src.local, "127.0.0.1");
	assert_string_equal(src.seen, "127.0.0.1");
	assert_true(src.admitted && !src.configured && !src.nat);
	assert_int_equal(talos_firewall_check_sources(cfg, &err), 0);
	config_free(cfg);

	/* strata outside: refused before anything, naming address and CIDRs */
	cfg = load(lo_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n", msgs,
		   sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_true(talos_firewall_check_sources(cfg, &err) < 0);
	assert_non_null(strstr(err.msg, "node 'edge-cp-1': strata connects to "
			       "127.0.0.9 from 127.0.0.1 (its own address toward "
			       "the node); firewall.admin_cidrs: [203.0.113.0/24] "
			       "does not admit it"));
	assert_non_null(strstr(err.msg, "Add 127.0.0.1/32 to firewall.admin_cidrs"));
	config_free(cfg);

	/* the address a NAT shows the node, said in the config and admitted */
	err_clear(&err);
	cfg = load(lo_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n"
		   "  strata_address: 203.0.113.5\n", msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	assert_int_equal(talos_firewall_source(cfg, "127.0.0.9", &src, &err), 0);
	assert_string_equal(src.seen, "203.0.113.5");
	assert_true(src.configured && src.admitted);
	assert_int_equal(talos_firewall_check_sources(cfg, &err), 0);
	config_free(cfg);

	/* validate: strata_address must be one admin_cidrs admits */
	cfg = load(lo_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n"
		   "  strata_address: 198.51.100.9\n", msgs, sizeof(msgs));
	assert_non_null(strstr(msgs, "error: firewall.strata_address: 198.51.100.9 "
			       "is not in firewall.admin_cidrs"));
	config_free(cfg);

	/* A public node. What strata's own address toward it is depends on
	 * the machine's routes (none in a network namespace, a private or a
	 * public address on a host), so the verdicts are checked from given
	 * local addresses. */
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n",
		   msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	{
		struct buf w = BUF_INIT;

		/* behind a NAT (a private local address): a warning that
		 * names the NAT, not an error; nothing to check it against */
		err_clear(&err);
		assert_int_equal(talos_firewall_source_from(
			cfg, "198.51.100.23", "10.1.2.3", &src, &err), 0);
		assert_true(src.nat && !src.admitted && !src.configured);
		assert_string_equal(src.seen, "10.1.2.3");
		assert_int_equal(talos_firewall_judge(cfg, "edge-cp-1",
			"198.51.100.23", &src, &w, &err), 0);
		assert_non_null(w.ptr);
		assert_non_null(strstr(w.ptr, "firewall: node 'edge-cp-1': strata "
			"connects to 198.51.100.23 from 10.1.2.3 (its own address "
			"toward the node; a private address: through a NAT the node "
			"sees the NAT's public address instead); "
			"firewall.admin_cidrs: [203.0.113.0/24]. Make sure "
			"admin_cidrs lists the NAT's public address"));
		buf_release(&w);

		/* a public local address outside admin_cidrs: no NAT to blame,
		 * refused before anything is applied */
		err_clear(&err);
		assert_int_equal(talos_firewall_source_from(
			cfg, "198.51.100.23", "192.0.2.2", &src, &err), 0);
		assert_true(!src.nat && !src.admitted);
		assert_true(talos_firewall_judge(cfg, "edge-cp-1",
			"198.51.100.23", &src, &w, &err) < 0);
		assert_true(w.len == 0);
		assert_non_null(strstr(err.msg, "node 'edge-cp-1': strata connects "
			"to 198.51.100.23 from 192.0.2.2 (its own address toward "
			"the node); firewall.admin_cidrs: [203.0.113.0/24] does "
			"not admit it"));
		assert_non_null(strstr(err.msg, "Add 192.0.2.2/32 to "
			"firewall.admin_cidrs"));

		/* the same address inside admin_cidrs: admitted, silent */
		err_clear(&err);
		assert_int_equal(talos_firewall_source_from(
			cfg, "198.51.100.23", "203.0.113.77", &src, &err), 0);
		assert_true(src.admitted && !src.nat);
		assert_int_equal(talos_firewall_judge(cfg, "edge-cp-1",
			"198.51.100.23", &src, &w, &err), 0);
		assert_true(w.len == 0);
		buf_release(&w);
	}
	config_free(cfg);

	/* strata_address set behind the NAT: checked instead, no warning */
	cfg = load(vps_base, "firewall:\n  admin_cidrs: [203.0.113.0/24]\n"
		   "  strata_address: 203.0.113.5\n", msgs, sizeof(msgs));
	assert_string_equal(msgs, "");
	{
		struct buf w = BUF_INIT;

		err_clear(&err);
		assert_int_equal(talos_firewall_source_from(
			cfg, "198.51.100.23", "10.1.2.3", &src, &err), 0);
		assert_true(src.configured && src.admitted && !src.nat);
		assert_string_equal(src.seen, "203.0.113.5");
		assert_int_equal(talos_firewall_judge(cfg, "edge-cp-1",
			"198.51.100.23", &src, &w, &err), 0);
		assert_true(w.len == 0);
		buf_release(&w);
	}
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_firewall__vps_needs_admin_cidrs),
		cmocka_unit_test(test_firewall__bad_entries_named_at_their_position),
		cmocka_unit_test(test_firewall__try_timeout_range),
		cmocka_unit_test(test_firewall__vps_documents),
		cmocka_unit_test(test_firewall__proxmox_only_when_asked),
		cmocka_unit_test(test_firewall__strata_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
