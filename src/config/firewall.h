/*
 * config/firewall: the checks of the firewall section (validate) and the
 * parser of its open_ports entries ("443/tcp", "30000-32767/udp"), shared
 * with talos/firewall.c, which writes the rules.
 */
#ifndef STRATA_CONFIG_FIREWALL_H
#define STRATA_CONFIG_FIREWALL_H

#include "config/config.h"
#include "config/diag.h"

struct fw_port {
	int lo, hi;
	char proto[4];             /* "tcp" or "udp" */
};

/* 0, or -1 with why (a static string) set. */
int fw_port_parse(struct fw_port *out, const char *s);

/* Report every problem of cfg->firewall into diag. */
void config_check_firewall(struct config *cfg, struct diag *diag);

#endif
