#include "plan/mac.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>

#include "util/net.h"

void
mac_rand_system(void *ctx, unsigned char *b, size_t n)
{
	size_t got = 0;

	(void)ctx;
	while (got < n) {
		ssize_t k = getrandom(b + got, n - got, 0);

		if (k > 0)
			got += (size_t)k;
	}
}

bool
mac_is_local(const char *mac)
{
	char norm[18];
	unsigned int first;

	if (!mac || !net_mac_parse(mac, norm) || sscanf(norm, "%2x", &first) != 1)
		return false;
	return (first & 0x03) == 0x02;
}

static bool
is_taken(const char *mac, const char *const *taken, size_t n)
{
	char norm[18];
	size_t i;

	for (i = 0; i < n; i++)
		if (taken[i] && net_mac_parse(taken[i], norm) &&
		    !strcasecmp(norm, mac))
			return true;
	return false;
}

int
mac_pick(char out[18], const char *const *taken, size_t n_taken,
	 mac_rand_fn rnd, void *ctx, struct err *err)
{
	int tries;

	for (tries = 0; tries < 64; tries++) {
		unsigned char b[6];

		rnd(ctx, b, sizeof(b));
		b[0] = (unsigned char)((b[0] & 0xFC) | 0x02);  /* unicast, local */
		snprintf(out, 18, "%02X:%02X:%02X:%02X:%02X:%02X",
			 b[0], b[1], b[2], b[3], b[4], b[5]);
		if (!is_taken(out, taken, n_taken))
			return 0;
	}
	out[0] = '\0';
	return err_set(err, ERR_FAIL, "no free MAC address after %d tries; the "
		       "random source repeats itself (check getrandom)", tries);
}
