#include "config/firewall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/net.h"

static int
parse_port(const char *s, const char *end, int *out)
{
	long v = 0;

	if (s == end || end - s > 5)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = (int)v;
	return 0;
}

int
fw_port_parse(struct fw_port *out, const char *s)
{
	const char *slash = strchr(s, '/'), *dash;

	memset(out, 0, sizeof(*out));
	if (!slash || (strcmp(slash + 1, "tcp") && strcmp(slash + 1, "udp")))
		return -1;
	snprintf(out->proto, sizeof(out->proto), "%s", slash + 1);
	dash = memchr(s, '-', (size_t)(slash - s));
	if (dash) {
		if (parse_port(s, dash, &out->lo) < 0 ||
		    parse_port(dash + 1, slash, &out->hi) < 0 || out->lo > out->hi)
			return -1;
	} else {
		if (parse_port(s, slash, &out->lo) < 0)
			return -1;
		out->hi = out->lo;
	}
	return 0;
}

static void __attribute__((format(printf, 5, 6)))
report(struct config *cfg, struct diag *diag, enum diag_level lvl,
       const char *path, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int line, col;

	config_pos(cfg, path, &line, &col);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	diag_add(diag, lvl, line, col, path, "%s", b.ptr);
	buf_release(&b);
}

/* Ports the rules strata writes keep to the admins or the cluster. */
static const struct { int lo, hi; const char *what; } reserved[] = {
	{ 50000, 50000, "the Talos API: list who may reach it in firewall.admin_cidrs" },
	{ 6443, 6443, "the Kubernetes API: list who may reach it in firewall.admin_cidrs" },
	{ 50001, 50001, "trustd, open to the cluster's nodes only" },
	{ 2379, 2380, "etcd, open to the control planes only" },
	{ 10250, 10250, "the kubelet API, open to the cluster's nodes only" },
};

void
config_check_firewall(struct config *cfg, struct diag *diag)
{
	const struct firewall_config *fw = &cfg->firewall;
	struct fw_port *seen = xcalloc(fw->open_ports.n + 1, sizeof(*seen));
	char path[96];
	size_t i, j, k;

	cfg->firewall.given = config_node_at(cfg, "firewall") != NULL;
	for (i = 0; i < fw->admin_cidrs.n; i++) {
		uint32_t a;
		int pfx;

		snprintf(path, sizeof(path), "firewall.admin_cidrs[%zu]", i);
		if (!net_cidr_parse(fw->admin_cidrs.v[i], &a, &pfx))
			report(cfg, diag, DIAG_ERROR, path,
			       "'%s' is not an IPv4 network such as 198.51.100.0/24 "
			       "(a single address is a.b.c.d/32)", fw->admin_cidrs.v[i]);
	}
	for (i = 0; i < fw->open_ports.n; i++) {
		struct fw_port *p = &seen[i];

		snprintf(path, sizeof(path), "firewall.open_ports[%zu]", i);
		if (fw_port_parse(p, fw->open_ports.v[i]) < 0) {
			report(cfg, diag, DIAG_ERROR, path,
			       "'%s' is not PORT/PROTO or LO-HI/PROTO (ports 1-65535, "
			       "proto tcp or udp), e.g. 443/tcp", fw->open_ports.v[i]);
			p->proto[0] = 0;
			continue;
		}
		for (k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++) {
			if (!strcmp(p->proto, "tcp") && p->lo <= reserved[k].hi &&
			    reserved[k].lo <= p->hi) {
				report(cfg, diag, DIAG_ERROR, path, "'%s' would open "
				       "%d/tcp to any address; it is %s",
				       fw->open_ports.v[i], reserved[k].lo,
				       reserved[k].what);
				break;
			}
		}
		/* Talos refuses overlapping ranges in one rule (FACTS-metal §4). */
		for (j = 0; j < i; j++) {
			if (seen[j].proto[0] && !strcmp(seen[j].proto, p->proto) &&
			    seen[j].lo <= p->hi && p->lo <= seen[j].hi) {
				report(cfg, diag, DIAG_ERROR, path,
				       "'%s' overlaps an earlier entry of open_ports",
				       fw->open_ports.v[i]);
				break;
			}
		}
	}
	free(seen);
	if (fw->try_timeout) {
		long long ms = clock_parse_duration(fw->try_timeout);

		/* the decoder reported a malformed one already */
		if (ms >= 0 && (ms < 10000 || ms > 600000))
			report(cfg, diag, DIAG_ERROR, "firewall.try_timeout",
			       "'%s' is out of range: strata needs at least 10s "
			       "to reconnect and confirm a change, and at most "
			       "10m keeps a lock-out short", fw->try_timeout);
	}
	if (fw->strata_address) {
		uint32_t a = 0, net;
		int pfx;
		bool in = false;

		net_ipv4_parse(fw->strata_address, &a);   /* T_IPV4: checked */
		for (i = 0; i < fw->admin_cidrs.n; i++)
			if (net_cidr_parse(fw->admin_cidrs.v[i], &net, &pfx) &&
			    net_in(a, net, pfx))
				in = true;
		if (fw->allow_admin_from_anywhere)
			report(cfg, diag, DIAG_WARNING, "firewall.strata_address",
			       "%s", "has no effect: allow_admin_from_anywhere "
			       "admits every address");
		else if (!in)
			report(cfg, diag, DIAG_ERROR, "firewall.strata_address",
			       "%s is not in firewall.admin_cidrs: the nodes' "
			       "firewall would drop strata's connections to the "
			       "Talos API (50000) and the Kubernetes API (6443); "
			       "add %s/32 to admin_cidrs", fw->strata_address,
			       fw->strata_address);
	}
	if (fw->allow_admin_from_anywhere && fw->admin_cidrs.n)
		report(cfg, diag, DIAG_ERROR, "firewall.allow_admin_from_anywhere",
		       "%s", "set together with firewall.admin_cidrs; keep one");
	else if (fw->allow_admin_from_anywhere)
		report(cfg, diag, DIAG_WARNING, "firewall.allow_admin_from_anywhere",
		       "%s", "the Talos API (50000) and the Kubernetes API (6443) "
		       "accept connections from any address");
	else if (cfg->platform == PLATFORM_VPS && !fw->admin_cidrs.n &&
		 config_node_at(cfg, "vps"))
		report(cfg, diag, DIAG_ERROR,
		       fw->given ? "firewall" : "platform",
		       "%s", "platform 'vps' puts the Talos API (50000) and the "
		       "Kubernetes API (6443) on a public address: list the "
		       "networks that may reach them in firewall.admin_cidrs (e.g. "
		       "[198.51.100.7/32]), or say firewall.allow_admin_from_anywhere: "
		       "true to leave them open to every address");
}
