/*
 * buf: a growable byte buffer that is always NUL-terminated.
 *
 * Invariant: `ptr` is never NULL after buf_init or BUF_INIT (it points at a
 * static empty string until the first append). Allocation failure aborts
 * (xmalloc). buf_detach hands the memory to the caller.
 *
 * A buf with `secret` set (keys, tokens, machine configs) never leaves a
 * copy behind: growth allocates, copies and wipes the old block instead of
 * realloc, and reset/release wipe with OPENSSL_cleanse (a plain memset
 * before free is removed by the optimiser). The flag survives release.
 */
#ifndef STRATA_UTIL_BUF_H
#define STRATA_UTIL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *ptr;
	size_t len;
	size_t cap;
	bool secret;
};

extern char buf_empty[];
#define BUF_INIT { buf_empty, 0, 0, false }
#define BUF_INIT_SECRET { buf_empty, 0, 0, true }

void buf_init(struct buf *b);
void buf_release(struct buf *b);
/* buf_release with the old contents wiped first, whatever the flag. */
void buf_release_secret(struct buf *b);
void buf_reset(struct buf *b);
void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addch(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Returns the malloc'd contents (never NULL) and resets b. Caller frees. */
char *buf_detach(struct buf *b, size_t *len);

/* Allocation helpers that abort on out-of-memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The one wipe-and-free for memory that held a secret: OPENSSL_cleanse of
 * n bytes, then free. NULL is fine. secret_strfree wipes strlen(s) bytes.
 */
void secret_free(void *p, size_t n);
void secret_strfree(char *s);

#endif
