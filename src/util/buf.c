#include "util/buf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char buf_empty[1];

static void
oom(void)
{
	fputs("fatal: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

void
buf_init(struct buf *b)
{
	b->ptr = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->secret = false;
}

void
buf_release(struct buf *b)
{
	bool secret = b->secret;

	if (b->cap && secret)
		OPENSSL_cleanse(b->ptr, b->cap);
	if (b->cap)
		free(b->ptr);
	buf_init(b);
	b->secret = secret;
}

void
buf_release_secret(struct buf *b)
{
	if (b->cap)
		OPENSSL_cleanse(b->ptr, b->cap);
	buf_release(b);
}

void
buf_reset(struct buf *b)
{
	if (b->cap && b->secret)
		OPENSSL_cleanse(b->ptr, b->len);
	b->len = 0;
	if (b->cap)
		b->ptr[0] = '\0';
}

void
secret_free(void *p, size_t n)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

void
secret_strfree(char *s)
{
	if (s)
		secret_free(s, strlen(s));
}

void
buf_grow(struct buf *b, size_t extra)
{
	size_t want = b->len + extra + 1;
	size_t cap;

	if (want <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	if (b->cap && b->secret) {
		/* realloc may leave the old block behind, unwiped. */
		char *p = xmalloc(cap);

		memcpy(p, b->ptr, b->len + 1);
		OPENSSL_cleanse(b->ptr, b->cap);
		free(b->ptr);
		b->ptr = p;
	} else if (b->cap) {
		b->ptr = xrealloc(b->ptr, cap);
	} else {
		b->ptr = xmalloc(cap);
		b->ptr[0] = '\0';
	}
	b->cap = cap;
}

void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (!len)
		return;
	buf_grow(b, len);
	memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_addch(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n <= 0)
		return;
	buf_grow(b, (size_t)n);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(b, fmt, ap);
	va_end(ap);
}

char *
buf_detach(struct buf *b, size_t *len)
{
	char *p;

	bool secret = b->secret;

	if (len)
		*len = b->len;
	if (!b->cap)
		p = xstrdup("");
	else
		p = b->ptr;
	buf_init(b);
	b->secret = secret;
	return p;
}
