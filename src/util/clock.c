#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <time.h>

long long
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
clock_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long long
clock_parse_duration(const char *s)
{
	long long total = 0, v;
	int units = 0;

	if (!s || !*s)
		return -1;
	while (*s) {
		if (!isdigit((unsigned char)*s))
			return -1;
		for (v = 0; isdigit((unsigned char)*s); s++) {
			v = v * 10 + (*s - '0');
			if (v > 10LL * 365 * 24 * 3600)
				return -1;
		}
		switch (*s) {
		case '\0':
			if (units)      /* "1m30" is ambiguous */
				return -1;
			return v * 1000;
		case 's':
			v *= 1000;
			break;
		case 'm':
			v *= 60 * 1000;
			break;
		case 'h':
			v *= 3600 * 1000;
			break;
		default:
			return -1;
		}
		s++;
		units++;
		total += v;
	}
	return total;
}
