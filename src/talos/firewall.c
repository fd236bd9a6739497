#include "talos/firewall.h"

#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/firewall.h"
#include "util/buf.h"
#include "util/yaml.h"

bool
talos_firewall_wanted(const struct config *cfg)
{
	return cfg->platform == PLATFORM_VPS || cfg->firewall.given;
}

static struct fy_document *
rule_doc(const char *name, const char *const *ports, size_t n_ports,
	 const char *proto, struct fy_node **ingress)
{
	struct fy_document *doc = yaml_new_document();
	struct fy_node *root, *sel, *seq;
	size_t i;

	if (!doc)
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_puts(root, "apiVersion", "v1alpha1");
	y_puts(root, "kind", "NetworkRuleConfig");
	y_puts(root, "name", name);
	sel = y_map(doc);
	seq = y_seq(doc);
	for (i = 0; i < n_ports; i++) {
		/* A single port is an integer; a range "lo-hi" a string. */
		fy_node_sequence_append(seq, y_str(doc, ports[i]));
	}
	y_put(sel, "ports", seq);
	y_puts(sel, "protocol", proto);
	y_put(root, "portSelector", sel);
	*ingress = y_seq(doc);
	y_put(root, "ingress", *ingress);
	return doc;
}

static void
add_subnet(struct fy_node *ingress, const char *cidr)
{
	struct fy_document *doc = fy_node_document(ingress);
	struct fy_node *m = y_map(doc);

	y_puts(m, "subnet", cidr);
	fy_node_sequence_append(ingress, m);
}

/* One /32 per node (control planes only when cp_only). */
static void
add_nodes(struct fy_node *ingress, const struct config *cfg, bool cp_only)
{
	size_t i;

	for (i = 0; i < cfg->n_nodes; i++) {
		char cidr[40];

		if (!cfg->nodes[i].ip ||
		    (cp_only && cfg->nodes[i].role != ROLE_CONTROLPLANE))
			continue;
		snprintf(cidr, sizeof(cidr), "%s/32", cfg->nodes[i].ip);
		add_subnet(ingress, cidr);
	}
}

static void
admin_rule(struct ydocs *p, const struct config *cfg, const char *name,
	   const char *port)
{
	struct fy_node *ing;
	struct fy_document *doc = rule_doc(name, &port, 1, "tcp", &ing);
	size_t i;

	if (cfg->firewall.admin_cidrs.n)
		for (i = 0; i < cfg->firewall.admin_cidrs.n; i++)
			add_subnet(ing, cfg->firewall.admin_cidrs.v[i]);
	else if (cfg->firewall.allow_admin_from_anywhere)
		add_subnet(ing, "0.0.0.0/0");
	add_nodes(ing, cfg, false);
	ydocs_push(p, doc);
}

static void
nodes_rule(struct ydocs *p, const struct config *cfg, const char *name,
	   const char *const *ports, size_t n, const char *proto, bool cp_only)
{
	struct fy_node *ing;
	struct fy_document *doc = rule_doc(name, ports, n, proto, &ing);

	add_nodes(ing, cfg, cp_only);
	ydocs_push(p, doc);
}

static void
open_rule(struct ydocs *p, const struct config *cfg, const char *proto)
{
	const char *ports[64];
	char name[16];
	size_t i, n = 0;
	struct fy_node *ing;
	struct fy_document *doc;
	struct buf tmp = BUF_INIT;
	char **keep = xcalloc(cfg->firewall.open_ports.n + 1, sizeof(char *));

	for (i = 0; i < cfg->firewall.open_ports.n && n < 64; i++) {
		struct fw_port fp;

		if (fw_port_parse(&fp, cfg->firewall.open_ports.v[i]) < 0 ||
		    strcmp(fp.proto, proto))
			continue;
		buf_reset(&tmp);
		if (fp.lo == fp.hi)
			buf_addf(&tmp, "%d", fp.lo);
		else
			buf_addf(&tmp, "%d-%d", fp.lo, fp.hi);
		keep[n] = buf_detach(&tmp, NULL);
		ports[n] = keep[n];
		n++;
	}
	if (n) {
		snprintf(name, sizeof(name), "open-%s", proto);
		doc = rule_doc(name, ports, n, proto, &ing);
		add_subnet(ing, "0.0.0.0/0");
		ydocs_push(p, doc);
	}
	for (i = 0; i < n; i++)
		free(keep[i]);
	free(keep);
	buf_release(&tmp);
}

void
talos_firewall_docs(struct ydocs *p, const struct config *cfg,
		    const struct node *n)
{
	static const char *const trustd[] = { "50001" };
	static const char *const kubelet[] = { "10250" };
	static const char *const etcd[] = { "2379-2380" };
	static const char *const vxlan[] = { "8472" };
	static const char *const health[] = { "4240" };
	static const char *const flannel[] = { "4789" };
	struct fy_document *doc = yaml_new_document();
	struct fy_node *root;

	if (!doc)
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_puts(root, "apiVersion", "v1alpha1");
	y_puts(root, "kind", "NetworkDefaultActionConfig");
	y_puts(root, "ingress", "block");
	ydocs_push(p, doc);

	admin_rule(p, cfg, "apid", "50000");
	admin_rule(p, cfg, "kube-apiserver", "6443");
	nodes_rule(p, cfg, "trustd", trustd, 1, "tcp", false);
	nodes_rule(p, cfg, "kubelet", kubelet, 1, "tcp", false);
	if (n->role == ROLE_CONTROLPLANE)
		nodes_rule(p, cfg, "etcd", etcd, 1, "tcp", true);
	if (cfg->kubernetes.cni == CNI_CILIUM) {
		nodes_rule(p, cfg, "cilium-vxlan", vxlan, 1, "udp", false);
		nodes_rule(p, cfg, "cilium-health", health, 1, "tcp", false);
	} else if (cfg->kubernetes.cni == CNI_FLANNEL) {
		nodes_rule(p, cfg, "flannel-vxlan", flannel, 1, "udp", false);
	}
	open_rule(p, cfg, "tcp");
	open_rule(p, cfg, "udp");
}
