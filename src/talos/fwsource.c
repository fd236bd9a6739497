#include "talos/fwsource.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "talos/api.h"
#include "talos/firewall.h"
#include "util/net.h"
#include "util/out.h"

static bool
in_admin(const struct config *cfg, uint32_t a)
{
	size_t i;

	if (cfg->firewall.allow_admin_from_anywhere)
		return true;
	for (i = 0; i < cfg->firewall.admin_cidrs.n; i++) {
		uint32_t net;
		int pfx;

		if (net_cidr_parse(cfg->firewall.admin_cidrs.v[i], &net, &pfx) &&
		    net_in(a, net, pfx))
			return true;
	}
	/* the apid rule admits every node's address too */
	for (i = 0; i < cfg->n_nodes; i++) {
		uint32_t n;

		if (cfg->nodes[i].ip && net_ipv4_parse(cfg->nodes[i].ip, &n) &&
		    n == a)
			return true;
	}
	return false;
}

int
talos_firewall_source_from(const struct config *cfg, const char *node_ip,
			   const char *local_ip, struct fw_source *out,
			   struct err *err)
{
	uint32_t local, node, seen;

	memset(out, 0, sizeof(*out));
	if (!net_ipv4_parse(node_ip, &node))
		return err_set(err, ERR_USAGE, "'%s' is not an IPv4 address",
			       node_ip);
	if (!net_ipv4_parse(local_ip, &local))
		return err_set(err, ERR_USAGE, "'%s' is not an IPv4 address",
			       local_ip);
	net_ipv4_str(local, out->local);
	if (cfg->firewall.strata_address &&
	    net_ipv4_parse(cfg->firewall.strata_address, &seen)) {
		out->configured = true;
	} else {
		seen = local;
		out->nat = net_is_private(local) && !net_is_private(node) &&
			   !net_in(node, 0x7f000000u, 8);
	}
	net_ipv4_str(seen, out->seen);
	out->admitted = in_admin(cfg, seen);
	return 0;
}

int
talos_firewall_source(const struct config *cfg, const char *node_ip,
		      struct fw_source *out, struct err *err)
{
	uint32_t local;
	char ls[16];

	memset(out, 0, sizeof(*out));
	if (net_source_toward(node_ip, TALOS_API_PORT, &local) < 0)
		return err_set(err, ERR_FAIL, "no route from this machine to "
			       "%s: %s", node_ip, strerror(errno));
	net_ipv4_str(local, ls);
	return talos_firewall_source_from(cfg, node_ip, ls, out, err);
}

static void
say_cidrs(struct buf *b, const struct config *cfg)
{
	size_t i;

	if (cfg->firewall.allow_admin_from_anywhere) {
		buf_adds(b, "firewall.allow_admin_from_anywhere: true");
		return;
	}
	buf_adds(b, "firewall.admin_cidrs: [");
	for (i = 0; i < cfg->firewall.admin_cidrs.n; i++)
		buf_addf(b, "%s%s", i ? ", " : "", cfg->firewall.admin_cidrs.v[i]);
	buf_adds(b, "]");
}

void
talos_firewall_source_say(struct buf *b, const struct config *cfg,
			  const char *node_ip, const struct fw_source *s)
{
	buf_addf(b, "strata connects to %s from %s (its own address toward "
		 "the node", node_ip, s->local);
	if (s->configured)
		buf_addf(b, "; firewall.strata_address says the node sees it "
			 "as %s", s->seen);
	else if (s->nat)
		buf_adds(b, "; a private address: through a NAT the node sees "
			 "the NAT's public address instead");
	buf_adds(b, "); ");
	say_cidrs(b, cfg);
}

void
talos_firewall_source_advice(struct buf *b, const struct fw_source *s)
{
	if (s->configured)
		buf_addf(b, "firewall.strata_address (%s) is not the address the "
			 "node sees: set it to the one the node does see (a "
			 "NAT's public address) and list that in "
			 "firewall.admin_cidrs, or, with no NAT in between, "
			 "remove strata_address and add %s/32 to admin_cidrs",
			 s->seen, s->local);
	else if (s->nat)
		buf_addf(b, "Add the NAT's public address (the one the node sees "
			 "strata connect from, not %s) to firewall.admin_cidrs "
			 "and set firewall.strata_address to it", s->local);
	else
		buf_addf(b, "Add %s/32 to firewall.admin_cidrs; or, if the node "
			 "sees strata under another address (a NAT or VPN in "
			 "between), set firewall.strata_address to that address "
			 "and list it in admin_cidrs", s->local);
}

int
talos_firewall_judge(const struct config *cfg, const char *name,
		     const char *node_ip, const struct fw_source *s,
		     struct buf *warning, struct err *err)
{
	struct buf b = BUF_INIT;
	int r;

	if (s->admitted)
		return 0;
	talos_firewall_source_say(&b, cfg, node_ip, s);
	if (s->nat) {
		buf_addf(warning, "firewall: node '%s': %s. Make sure "
			 "admin_cidrs lists the NAT's public address, or the "
			 "node's firewall will lock strata out; set "
			 "firewall.strata_address to it to have strata check "
			 "it", name, b.ptr);
		buf_release(&b);
		return 0;
	}
	buf_adds(&b, " does not admit it: the firewall in the node's config "
		 "would drop strata's connections to the Talos API (50000) "
		 "and the Kubernetes API (6443) as soon as it is applied, "
		 "locking strata out of its own node. Nothing was applied. ");
	talos_firewall_source_advice(&b, s);
	r = err_set(err, ERR_USAGE, "node '%s': %s", name, b.ptr);
	buf_release(&b);
	return r;
}

int
talos_firewall_check_sources(const struct config *cfg, struct err *err)
{
	size_t i;

	if (!talos_firewall_wanted(cfg) || cfg->firewall.allow_admin_from_anywhere)
		return 0;
	for (i = 0; i < cfg->n_nodes; i++) {
		const struct node *nd = &cfg->nodes[i];
		struct fw_source s;
		struct buf w = BUF_INIT;
		struct err e = ERR_INIT;
		int r;

		if (!nd->ip)
			continue;
		if (talos_firewall_source(cfg, nd->ip, &s, &e) < 0) {
			/* apply fails on the unreachable node with its own error */
			out_warn("firewall: cannot tell strata's address toward "
				 "node '%s': %s", nd->name, e.msg);
			continue;
		}
		r = talos_firewall_judge(cfg, nd->name, nd->ip, &s, &w, err);
		if (w.len)
			out_warn("%s", w.ptr);
		buf_release(&w);
		if (r < 0)
			return r;
	}
	return 0;
}
