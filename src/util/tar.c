#include "util/tar.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512

static void
octal(char *dst, size_t width, unsigned long long v)
{
	/* width-1 digits and a NUL, zero padded, as ustar wants. */
	snprintf(dst, width, "%0*llo", (int)width - 1, v);
}

static unsigned int
checksum(const unsigned char *h)
{
	unsigned int sum = 0;
	size_t i;

	for (i = 0; i < BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum;
}

/* Split name into ustar's prefix (155) and name (100) at a '/'. */
static int
split_name(const char *name, char prefix[156], char base[101])
{
	size_t n = strlen(name);
	const char *cut;

	prefix[0] = 0;
	if (n <= 100) {
		memcpy(base, name, n + 1);
		return 0;
	}
	if (n > 255)
		return -1;
	for (cut = name + n - 1; cut > name; cut--) {
		if (*cut != '/' || (size_t)(cut - name) > 155)
			continue;
		if (strlen(cut + 1) <= 100 && cut[1]) {
			memcpy(prefix, name, (size_t)(cut - name));
			prefix[cut - name] = 0;
			strcpy(base, cut + 1);
			return 0;
		}
	}
	return -1;
}

int
tar_header(struct buf *ar, const char *name, size_t len, mode_t mode,
	   enum tar_type type, struct err *err)
{
	unsigned char h[BLOCK];
	char prefix[156], base[101];

	if (type == TAR_OTHER || split_name(name, prefix, base) < 0)
		return err_set(err, ERR_FAIL, "'%s': name too long for a tar entry",
			       name);
	if (type == TAR_DIR)
		len = 0;
	memset(h, 0, sizeof(h));
	memcpy(h, base, strlen(base));
	octal((char *)h + 100, 8, mode & 07777);
	octal((char *)h + 108, 8, 0);           /* uid */
	octal((char *)h + 116, 8, 0);           /* gid */
	octal((char *)h + 124, 12, len);
	octal((char *)h + 136, 12, 0);          /* mtime: reproducible */
	h[156] = type == TAR_DIR ? '5' : '0';
	memcpy(h + 257, "ustar", 6);            /* "ustar\0" */
	memcpy(h + 263, "00", 2);
	memcpy(h + 345, prefix, strlen(prefix));
	snprintf((char *)h + 148, 8, "%06o", checksum(h));
	h[155] = ' ';
	buf_add(ar, h, BLOCK);
	return 0;
}

void
tar_pad(struct buf *ar, size_t len)
{
	static const unsigned char zero[BLOCK];

	buf_add(ar, zero, (BLOCK - len % BLOCK) % BLOCK);
}

size_t
tar_entry_bytes(size_t len)
{
	return BLOCK + (len + BLOCK - 1) / BLOCK * BLOCK;
}

int
tar_add(struct buf *ar, const char *name, const void *data, size_t len,
	mode_t mode, enum tar_type type, struct err *err)
{
	int r;

	if ((r = tar_header(ar, name, len, mode, type, err)) < 0)
		return r;
	if (type == TAR_FILE && len) {
		buf_add(ar, data, len);
		tar_pad(ar, len);
	}
	return 0;
}

void
tar_finish(struct buf *ar)
{
	unsigned char z[2 * BLOCK];

	memset(z, 0, sizeof(z));
	buf_add(ar, z, sizeof(z));
}

void
tar_reader_init(struct tar_reader *r, const void *ar, size_t len)
{
	r->p = ar;
	r->len = len;
	r->off = 0;
}

static int
parse_octal(const unsigned char *s, size_t width, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < width && s[i] == ' ')
		i++;
	for (; i < width && s[i] >= '0' && s[i] <= '7'; i++)
		v = v * 8 + (unsigned long long)(s[i] - '0');
	if (i < width && s[i] != 0 && s[i] != ' ')
		return -1;
	*out = v;
	return 0;
}

static bool
all_zero(const unsigned char *h)
{
	size_t i;

	for (i = 0; i < BLOCK; i++)
		if (h[i])
			return false;
	return true;
}

/* One header block at byte off: 1 and e (e->data unset), 0 for a zero
 * block (the end), or -1. */
static int
parse_block(const unsigned char *h, size_t off, struct tar_entry *e,
	    unsigned long long *size, struct err *err)
{
	unsigned long long mode, sum;
	char base[101], prefix[156];

	memset(e, 0, sizeof(*e));
	if (all_zero(h))
		return 0;
	if (memcmp(h + 257, "ustar", 5))
		return err_set(err, ERR_FAIL, "entry at byte %zu is not a ustar "
			       "header", off);
	if (parse_octal(h + 148, 8, &sum) < 0 || sum != checksum(h))
		return err_set(err, ERR_FAIL, "entry at byte %zu: bad header "
			       "checksum", off);
	if (parse_octal(h + 124, 12, size) < 0 ||
	    parse_octal(h + 100, 8, &mode) < 0)
		return err_set(err, ERR_FAIL, "entry at byte %zu: bad size or "
			       "mode", off);
	memcpy(base, h, 100);
	base[100] = 0;
	memcpy(prefix, h + 345, 155);
	prefix[155] = 0;
	if (prefix[0])
		snprintf(e->name, sizeof(e->name), "%s/%s", prefix, base);
	else
		snprintf(e->name, sizeof(e->name), "%s", base);
	/* `tar -C DIR -cf - .` names everything "./x": the same as "x". */
	while (e->name[0] == '.' && e->name[1] == '/')
		memmove(e->name, e->name + 2, strlen(e->name + 2) + 1);
	switch (h[156]) {
	case '0':
	case 0:
		e->type = TAR_FILE;
		break;
	case '5':
		e->type = TAR_DIR;
		break;
	default:
		e->type = TAR_OTHER;
		break;
	}
	e->mode = (mode_t)(mode & 07777);
	return 1;
}

int
tar_next(struct tar_reader *r, struct tar_entry *e, struct err *err)
{
	unsigned long long size;
	int rc;

	memset(e, 0, sizeof(*e));
	if (r->off + BLOCK > r->len)
		return err_set(err, ERR_FAIL, "the archive is truncated (no end "
			       "marker)");
	if ((rc = parse_block(r->p + r->off, r->off, e, &size, err)) <= 0)
		return rc;
	if (size > r->len - r->off - BLOCK)
		return err_set(err, ERR_FAIL, "entry '%s' is truncated", e->name);
	e->data = r->p + r->off + BLOCK;
	e->size = (size_t)size;
	r->off += BLOCK + (size + BLOCK - 1) / BLOCK * BLOCK;
	if (r->off > r->len)
		r->off = r->len;
	return 1;
}

/* Exactly n bytes, or "truncated". */
static int
stream_full(struct tar_stream *s, void *dst, size_t n, struct err *err)
{
	unsigned char *p = dst;

	while (n) {
		size_t got;

		if (s->read(s->ctx, p, n, &got, err) < 0)
			return -1;
		if (!got && s->in_entry)
			return err_set(err, ERR_FAIL, "the archive is truncated "
				       "(entry '%s')", s->name);
		if (!got)
			return err_set(err, ERR_FAIL, "the archive is truncated "
				       "(no end marker)");
		p += got;
		n -= got;
		s->off += got;
	}
	return 0;
}

void
tar_stream_init(struct tar_stream *s, tar_read_fn read, void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->read = read;
	s->ctx = ctx;
}

int
tar_stream_data(struct tar_stream *s, void *dst, size_t cap, size_t *got,
		struct err *err)
{
	size_t n = s->left < cap ? (size_t)s->left : cap;

	*got = 0;
	if (n && stream_full(s, dst, n, err) < 0)
		return -1;
	s->left -= n;
	*got = n;
	return 0;
}

int
tar_stream_next(struct tar_stream *s, struct tar_entry *e, struct err *err)
{
	unsigned char h[BLOCK];
	unsigned long long size;
	int rc;

	/* what the caller did not read of the last entry, and its padding */
	while (s->left) {
		size_t got;

		if (tar_stream_data(s, h, sizeof(h), &got, err) < 0)
			return -1;
	}
	if (s->pad && stream_full(s, h, s->pad, err) < 0)
		return -1;
	s->pad = 0;
	s->in_entry = false;
	if (stream_full(s, h, BLOCK, err) < 0)
		return -1;
	if ((rc = parse_block(h, (size_t)(s->off - BLOCK), e, &size, err)) <= 0)
		return rc;
	if (e->type == TAR_DIR)
		size = 0;
	if (size > (unsigned long long)SIZE_MAX)
		return err_set(err, ERR_FAIL, "entry '%s' is too large", e->name);
	e->size = (size_t)size;
	s->left = size;
	s->pad = (BLOCK - size % BLOCK) % BLOCK;
	s->in_entry = true;
	snprintf(s->name, sizeof(s->name), "%s", e->name);
	return 1;
}

bool
tar_name_safe(const char *name)
{
	const char *p = name;

	if (!*name || *name == '/')
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 && slash && slash[1])   /* "a//b" */
			return false;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			break;
		p = slash + 1;
	}
	return true;
}
