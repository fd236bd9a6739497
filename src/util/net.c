#include "util/net.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
net_ipv4_parse(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	int part;

	if (!s)
		return false;
	for (part = 0; part < 4; part++) {
		unsigned n = 0;
		int digits = 0;

		if (part > 0) {
			if (*s != '.')
				return false;
			s++;
		}
		if (s[0] == '0' && isdigit((unsigned char)s[1]))
			return false;
		while (isdigit((unsigned char)*s)) {
			n = n * 10 + (unsigned)(*s - '0');
			if (++digits > 3 || n > 255)
				return false;
			s++;
		}
		if (!digits)
			return false;
		v = (v << 8) | n;
	}
	if (*s)
		return false;
	if (out)
		*out = v;
	return true;
}

uint32_t
net_mask(int prefix)
{
	if (prefix <= 0)
		return 0;
	if (prefix >= 32)
		return 0xffffffffu;
	return ~((1u << (32 - prefix)) - 1);
}

bool
net_ifaddr_parse(const char *s, uint32_t *out_addr, int *out_prefix)
{
	char ip[32];
	const char *slash;
	char *end;
	long p;

	if (!s || !(slash = strchr(s, '/')) || (size_t)(slash - s) >= sizeof(ip))
		return false;
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = '\0';
	if (!isdigit((unsigned char)slash[1]))
		return false;
	p = strtol(slash + 1, &end, 10);
	if (*end || p < 0 || p > 32 || (slash[1] == '0' && slash[2]))
		return false;
	if (!net_ipv4_parse(ip, out_addr))
		return false;
	*out_prefix = (int)p;
	return true;
}

bool
net_cidr_parse(const char *s, uint32_t *out_addr, int *out_prefix)
{
	uint32_t a;
	int p;

	if (!net_ifaddr_parse(s, &a, &p))
		return false;
	if (a & ~net_mask(p))
		return false;
	*out_addr = a;
	*out_prefix = p;
	return true;
}

bool
net_in(uint32_t addr, uint32_t net, int prefix)
{
	return (addr & net_mask(prefix)) == (net & net_mask(prefix));
}

const char *
net_ipv4_str(uint32_t a, char *buf)
{
	snprintf(buf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
	return buf;
}

bool
net_mac_parse(const char *s, char *out)
{
	int i;

	if (!s || strlen(s) != 17)
		return false;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	if (out) {
		for (i = 0; i < 17; i++)
			out[i] = (char)toupper((unsigned char)s[i]);
		out[17] = '\0';
	}
	return true;
}

bool
net_overlap(uint32_t a, int pa, uint32_t b, int pb)
{
	int p = pa < pb ? pa : pb;

	return net_in(a, b, p);
}
