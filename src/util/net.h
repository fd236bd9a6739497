/*
 * net: IPv4 addresses, CIDRs and MACs as text, strictly parsed.
 * Addresses are uint32_t in host byte order.
 */
#ifndef STRATA_UTIL_NET_H
#define STRATA_UTIL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Dotted quad, no leading zeros, no spaces. */
bool net_ipv4_parse(const char *s, uint32_t *out);
/* "a.b.c.d/n" with host bits zero. *out_addr is the network. */
bool net_cidr_parse(const char *s, uint32_t *out_addr, int *out_prefix);
/* "a.b.c.d/n" with any host bits (an interface address). */
bool net_ifaddr_parse(const char *s, uint32_t *out_addr, int *out_prefix);
uint32_t net_mask(int prefix);
bool net_in(uint32_t addr, uint32_t net, int prefix);
/* Writes the dotted quad into buf (at least 16 bytes). */
const char *net_ipv4_str(uint32_t addr, char *buf);
/* Six colon-separated hex pairs; normalised to upper case into out[18]. */
bool net_mac_parse(const char *s, char *out);
/* True when two CIDRs share any address. */
bool net_overlap(uint32_t a, int pa, uint32_t b, int pb);
/* RFC 1918 and the shared address space 100.64.0.0/10 (CGNAT): addresses a
 * NAT usually stands in front of. */
bool net_is_private(uint32_t addr);
/*
 * The local address this machine sends from toward ip:port (the kernel's
 * route lookup: a UDP socket connected there, nothing sent). 0, or -1 when
 * there is no route (errno set).
 */
int net_source_toward(const char *ip, int port, uint32_t *out);

#endif
