/*
 * talos/fwsource: where strata stands toward a node's host firewall. The
 * apid (50000) and kube-apiserver (6443) rules admit firewall.admin_cidrs
 * and the nodes (talos/firewall.h); strata itself must be among them, or
 * the first config applied, or a firewall change, shuts it out of its own
 * node.
 *
 * The address the node sees strata connect from is, without a NAT or VPN
 * in between, strata's own local address toward the node (the kernel's
 * route to it). Behind a NAT (a private local address, a public node)
 * the node sees the NAT's public address, which strata cannot know:
 * firewall.strata_address says it, and is checked instead.
 *
 *	if (talos_firewall_check_sources(cfg, err) < 0)   // before applying
 *		return -1;
 */
#ifndef STRATA_TALOS_FWSOURCE_H
#define STRATA_TALOS_FWSOURCE_H

#include <stdbool.h>

#include "config/config.h"
#include "util/buf.h"
#include "util/err.h"

struct fw_source {
	char local[16];    /* strata's own address toward the node, or "" */
	char seen[16];     /* what the node sees: strata_address, else local */
	bool configured;   /* seen is firewall.strata_address */
	bool nat;          /* local is private, the node public, no
			    * strata_address: the node sees a NAT's address */
	bool admitted;     /* seen is in admin_cidrs, is a node, or the APIs
			    * are open to any address */
};

/* Where strata stands toward node_ip. -1: no route to it (err says). */
int talos_firewall_source(const struct config *cfg, const char *node_ip,
			  struct fw_source *out, struct err *err);

/* The same from a known local address (local_ip: strata's address toward
 * the node, as the kernel's route gives it). */
int talos_firewall_source_from(const struct config *cfg, const char *node_ip,
			       const char *local_ip, struct fw_source *out,
			       struct err *err);

/* "strata connects to IP from A (...); firewall.admin_cidrs: [..]" */
void talos_firewall_source_say(struct buf *b, const struct config *cfg,
			       const char *node_ip, const struct fw_source *s);

/* What to do about it: "Add A/32 to firewall.admin_cidrs ..." */
void talos_firewall_source_advice(struct buf *b, const struct fw_source *s);

/*
 * Before anything is applied: for every node with an address, when its
 * firewall (talos_firewall_wanted) would not admit strata, an error that
 * names strata's address, the admin_cidrs and what to do; behind a NAT
 * (fw_source.nat) a warning instead. 0 when nothing stands in the way.
 */
int talos_firewall_check_sources(const struct config *cfg, struct err *err);

/* One node's verdict: 0 when admitted; 0 with the warning text added to
 * warning behind a NAT; else -1 with err naming address, CIDRs and what
 * to do. */
int talos_firewall_judge(const struct config *cfg, const char *name,
			 const char *node_ip, const struct fw_source *s,
			 struct buf *warning, struct err *err);

#endif
