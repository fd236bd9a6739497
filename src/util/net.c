#include "util/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

bool
net_is_private(uint32_t a)
{
	return net_in(a, 0x0a000000u, 8) || net_in(a, 0xac100000u, 12) ||
	       net_in(a, 0xc0a80000u, 16) || net_in(a, 0x64400000u, 10);
}

int
net_source_toward(const char *ip, int port, uint32_t *out)
{
	struct sockaddr_in to, me;
	socklen_t len = sizeof(me);
	uint32_t a;
	int fd, r = -1;

	if (!net_ipv4_parse(ip, &a)) {
		errno = EINVAL;
		return -1;
	}
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((uint16_t)port);
	to.sin_addr.s_addr = htonl(a);
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&me, &len) == 0) {
		*out = ntohl(me.sin_addr.s_addr);
		r = 0;
	}
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return r;
}
