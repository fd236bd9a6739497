#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

int
num_parse_int_n(const char *s, size_t n, int min, int max, int *out)
{
	char tmp[32], *end;
	size_t i;
	long v;

	if (!s || n == 0 || n >= sizeof(tmp))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] == '-' && i == 0 && n > 1)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return -1;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	v = strtol(tmp, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int
num_parse_int(const char *s, int min, int max, int *out)
{
	return s ? num_parse_int_n(s, strlen(s), min, max, out) : -1;
}
