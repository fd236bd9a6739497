/*
 * iso: a small ISO9660 image built in memory with libisofs.
 *
 * File names are kept as given through Rock Ridge and Joliet (plain ISO9660
 * would turn "user-data" into "USER_DAT.;1"). The image never touches the
 * disk: file contents are read from the caller's memory through our own
 * libisofs stream (not a libisofs memory stream, which would free a copy
 * unwiped), and the image is collected into a buffer the caller owns.
 *
 * The image is a function of its files alone: every timestamp (volume,
 * Rock Ridge, directory records) is fixed at 2000-01-01T00:00:00Z.
 *
 * Callers holding secrets wipe the result with buf_release_secret. What
 * libisofs keeps in its own ring buffer while writing is freed by libisofs
 * unwiped; the fifo is set to its minimum (64 KiB) to keep that small.
 */
#ifndef STRATA_UTIL_ISO_H
#define STRATA_UTIL_ISO_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct iso_file {
	const char *name;       /* in the root directory */
	const void *data;       /* borrowed; read while iso_build runs */
	size_t len;
};

/*
 * Append to out an ISO9660 image with volume id volid (at most 32 of
 * [A-Za-z0-9_-]) holding files in its root. Returns 0 or -1 with err set.
 */
int iso_build(struct buf *out, const char *volid, const struct iso_file *files,
	      size_t n, struct err *err);

#endif
