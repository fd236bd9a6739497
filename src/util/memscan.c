#include "util/memscan.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MASK 0xa5
#define CHUNK (1u << 20)
#define MAP_MAX (1ull << 30)   /* bigger: ASan's shadow, reserved space */
#define NEEDLES_MAX 16

/* Under ASan: where the block at addr was allocated and freed. */
extern void __asan_describe_address(void *addr) __attribute__((weak));

struct needle {
	unsigned char x[256];   /* the bytes XOR MASK */
	size_t len;
};

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t
parse_needles(const char *s, struct needle *nd)
{
	size_t n = 0;

	while (*s && n < NEEDLES_MAX) {
		struct needle *k = &nd[n];

		k->len = 0;
		while (*s && *s != ',') {
			int hi = hexval(s[0]), lo = s[1] ? hexval(s[1]) : -1;

			if (hi < 0 || lo < 0 || k->len == sizeof(k->x))
				return 0;
			k->x[k->len++] = (unsigned char)((hi << 4 | lo) ^ MASK);
			s += 2;
		}
		if (k->len >= 8)
			n++;
		if (*s == ',')
			s++;
	}
	return n;
}

static int
match(const unsigned char *p, const struct needle *k)
{
	for (size_t i = 0; i < k->len; i++)
		if ((p[i] ^ MASK) != k->x[i])
			return 0;
	return 1;
}

/* Search [lo, hi) of our memory, reading it into win. Found count. */
static int
scan_range(int mem, uintptr_t lo, uintptr_t hi, unsigned char *win,
	   const struct needle *nd, size_t n, const char *what)
{
	size_t over = 0, i;
	int found = 0;

	for (i = 0; i < n; i++)
		if (nd[i].len - 1 > over)
			over = nd[i].len - 1;
	for (uintptr_t at = lo; at < hi;) {
		size_t want = hi - at < CHUNK ? hi - at : CHUNK;
		ssize_t got = pread(mem, win, want, (off_t)at);

		if (got <= 0) {
			at += 4096;   /* an unreadable page */
			continue;
		}
		for (i = 0; i < n; i++) {
			unsigned char first = nd[i].x[0] ^ MASK;
			const unsigned char *p = win, *end = win + got;

			while ((p = memchr(p, first, (size_t)(end - p))) &&
			       (size_t)(end - p) >= nd[i].len) {
				if (match(p, &nd[i])) {
					uintptr_t a = at + (uintptr_t)(p - win);

					found++;
					fprintf(stderr, "memscan: secret %zu "
						"at %#lx (%s)\n", i,
						(unsigned long)a, what);
					if (__asan_describe_address)
						__asan_describe_address(
							(void *)a);
				}
				p++;
			}
		}
		/* Overlap so a value across chunks is seen. */
		if ((size_t)got > over && at + (size_t)got < hi)
			at += (size_t)got - over;
		else
			at += (size_t)got;
	}
	return found;
}

int
memscan_at_exit(int status)
{
	const char *spec = getenv("STRATA_TEST_MEMSCAN");
	struct needle nd[NEEDLES_MAX];
	unsigned char *win;
	char line[512];
	size_t n;
	FILE *maps;
	int mem, found = 0;

	if (!spec || !*spec)
		return status;
	if (!(n = parse_needles(spec, nd))) {
		fprintf(stderr, "memscan: STRATA_TEST_MEMSCAN: hex values of "
			"8 to 256 bytes, separated by commas\n");
		return 125;
	}
	/* Test mode only: /proc/self/mem of a non-dumpable process is
	 * root's. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	win = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	maps = fopen("/proc/self/maps", "re");
	if (win == MAP_FAILED || mem < 0 || !maps) {
		fprintf(stderr, "memscan: cannot read /proc/self/mem\n");
		return 125;
	}
	while (fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perm[5] = "", path[400] = "";

		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %399[^\n]", &lo, &hi,
			   perm, path) < 3)
			continue;
		/* Private writable memory: heap, anonymous, stacks, .data/.bss.
		 * Not our window, not the kernel's vvar/vsyscall. */
		if (perm[0] != 'r' || perm[1] != 'w' || perm[3] != 'p' ||
		    hi - lo > MAP_MAX || (uintptr_t)lo == (uintptr_t)win ||
		    !strncmp(path, "[vvar", 5) || !strncmp(path, "[vsys", 5))
			continue;
		found += scan_range(mem, lo, hi, win, nd, n,
				    *path ? path : "anonymous");
	}
	fclose(maps);
	close(mem);
	memset(win, 0, CHUNK);
	munmap(win, CHUNK);
	if (found) {
		fprintf(stderr, "memscan: %d copies of secret values in "
			"memory at exit\n", found);
		return 125;
	}
	fprintf(stderr, "memscan: %zu secret values, no copy in memory\n", n);
	return status;
}
