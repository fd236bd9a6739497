/*
 * isolate: run a step that puts secrets through libfyaml in a child
 * process, so the long-lived process never holds libfyaml's copies.
 *
 * libfyaml 0.7 has no allocator hook: its copy of the input, its tokens,
 * atoms and emitter buffers are freed unwiped, so a parse or emit of
 * secrets.yaml, a machine config, a talosconfig or a kubeconfig leaves the
 * CA keys and tokens in freed heap. isolate_run forks; the child runs fn,
 * sends its result (a byte string) and its error over a pipe and _exits,
 * taking every copy with it; the parent reads the result into a secret
 * buf (wiped on release). The child sees the parent's memory as it was at
 * the fork (copy on write) and changes nothing in it.
 *
 * fn must not depend on other threads (only the forking thread exists in
 * the child) and writes its result only into out. isolate_run is for a
 * moment with no other thread (gen, before the node pools start): a fork
 * while another thread holds a lock (malloc's, ASan's allocator's) can
 * leave the child stuck on it (seen: ASan builds, 8 node threads).
 *
 * isolate_spawn is for any thread: it runs a fresh copy of the binary
 * (posix_spawn of /proc/self/exe, nothing inherited but the pipes), which
 * reads the input bytes from its stdin, calls the function and answers
 * the same way. The function gets a struct buf * holding the input as
 * ctx and must be listed with ISOLATE_OP(fn) in its file: the child
 * calls only a listed function (its index in the binary's list). The
 * child serves before main runs (a constructor in isolate.c), so unit
 * test binaries serve too.
 *
 * A result of several values is packed with isolate_put_* and read back,
 * in the same order, with isolate_get_* (a string is NULL or NUL-ended;
 * strings come back malloc'd; the caller frees, secret_strfree for
 * secrets). A truncated or malformed pack reads as a failure.
 */
#ifndef STRATA_UTIL_ISOLATE_H
#define STRATA_UTIL_ISOLATE_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

typedef int (*isolate_fn)(void *ctx, struct buf *out, struct err *err);

/* fn's return value and error, with out appended to; or an error when the
 * child could not be started or died. */
int isolate_run(isolate_fn fn, void *ctx, struct buf *out, struct err *err);

int isolate_spawn(isolate_fn fn, const void *in, size_t inlen, struct buf *out,
		  struct err *err);

#define ISOLATE_OP(fn)                                                  \
	static const isolate_fn isolate_op_##fn                         \
		__attribute__((used, section("isolate_ops"))) = fn

void isolate_put_str(struct buf *b, const char *s);
void isolate_put_mem(struct buf *b, const void *p, size_t len);
void isolate_put_long(struct buf *b, long long v);

struct isolate_reader {
	const char *p;
	size_t left;
	int bad;
};

void isolate_reader_init(struct isolate_reader *r, const struct buf *b);
char *isolate_get_str(struct isolate_reader *r);
/* Appends the bytes to out. */
void isolate_get_mem(struct isolate_reader *r, struct buf *out);
long long isolate_get_long(struct isolate_reader *r);

#endif
