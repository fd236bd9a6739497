/*
 * tar: POSIX ustar archives in memory, regular files and directories only
 * (what an env folder holds). GNU tar and bsdtar read what tar_add writes;
 * tar_next reads theirs back as long as entries stay within ustar (names
 * up to 255 bytes through the prefix field, sizes under 8 GiB).
 *
 *	struct buf ar = BUF_INIT;
 *	tar_add(&ar, "nodes/", NULL, 0, 0700, TAR_DIR);
 *	tar_add(&ar, "nodes/cp-1.yaml", data, len, 0600, TAR_FILE);
 *	tar_finish(&ar);
 *
 *	struct tar_reader r; struct tar_entry e;
 *	tar_reader_init(&r, ar.ptr, ar.len);
 *	while ((rc = tar_next(&r, &e, err)) > 0) ...   (0 at the end, <0 bad)
 *
 * Readers must still judge the names (tar_name_safe) before writing.
 */
#ifndef STRATA_UTIL_TAR_H
#define STRATA_UTIL_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

enum tar_type { TAR_FILE = 0, TAR_DIR, TAR_OTHER };

int tar_add(struct buf *ar, const char *name, const void *data, size_t len,
	    mode_t mode, enum tar_type type, struct err *err);
/* tar_add in two steps, for contents appended by the caller: the header,
 * then exactly len bytes, then tar_pad(len). */
int tar_header(struct buf *ar, const char *name, size_t len, mode_t mode,
	       enum tar_type type, struct err *err);
void tar_pad(struct buf *ar, size_t len);
/* Bytes one entry of len content bytes takes in the archive. */
size_t tar_entry_bytes(size_t len);
/* The two zero blocks that end an archive. */
void tar_finish(struct buf *ar);

struct tar_entry {
	char name[258];            /* prefix "/" name; a directory ends in "/" */
	enum tar_type type;
	mode_t mode;
	const void *data;          /* borrowed from the archive */
	size_t size;
};

struct tar_reader {
	const unsigned char *p;
	size_t len, off;
};

void tar_reader_init(struct tar_reader *r, const void *ar, size_t len);
/* 1 and the next entry, 0 at the end of the archive, or -1 (err). */
int tar_next(struct tar_reader *r, struct tar_entry *e, struct err *err);

/*
 * The same read from a stream (an archive being decrypted): entries come
 * with tar_stream_next (e->data is NULL), their bytes with
 * tar_stream_data (*got 0 at the entry's end); what is not read is
 * skipped. read fills up to cap bytes, *got 0 at the end of input.
 */
typedef int (*tar_read_fn)(void *ctx, void *buf, size_t cap, size_t *got,
			   struct err *err);
struct tar_stream {
	tar_read_fn read;
	void *ctx;
	unsigned long long left;   /* bytes of the current entry not read */
	size_t pad;                /* and the padding after them */
	unsigned long long off;    /* bytes of the archive read */
	bool in_entry;
	char name[258];
};
void tar_stream_init(struct tar_stream *s, tar_read_fn read, void *ctx);
/* 1 and the next entry, 0 at the end marker, or -1 (err). */
int tar_stream_next(struct tar_stream *s, struct tar_entry *e,
		    struct err *err);
int tar_stream_data(struct tar_stream *s, void *buf, size_t cap, size_t *got,
		    struct err *err);

/* A relative path with no "..", no empty or "." component, no leading '/'. */
bool tar_name_safe(const char *name);

#endif
