/*
 * fs: the only way strata writes files.
 *
 * fs_write_atomic writes to "<path>.tmp.<pid>", fsyncs it, renames it over
 * path and fsyncs the directory, so a reader sees the old file or the new
 * one, never a torn one. Modes: FS_MODE_SECRET (0600) for anything holding
 * key material or tokens, FS_MODE_PUBLIC (0644) otherwise.
 */
#ifndef STRATA_UTIL_FS_H
#define STRATA_UTIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

#define FS_MODE_SECRET 0600
#define FS_MODE_PUBLIC 0644
#define FS_MODE_DIR_PRIVATE 0700

int fs_write_atomic(const char *path, const void *data, size_t len,
		    mode_t mode, struct err *err);
/* Write only when the contents differ; *changed tells which (may be NULL). */
int fs_write_if_changed(const char *path, const void *data, size_t len,
			mode_t mode, bool *changed, struct err *err);
/* Read a whole file into out (appended). Files over max bytes are refused. */
int fs_read_file(struct buf *out, const char *path, size_t max,
		 struct err *err);
bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
/* mkdir -p with the given mode for directories it creates. */
int fs_mkdir_p(const char *path, mode_t mode, struct err *err);
/* Join two path parts with one '/'. Caller frees. */
char *fs_join(const char *a, const char *b);

/*
 * Environment lock: O_EXCL creation of ENV/.lock holding "pid host\n".
 * A lock whose pid is gone on this host is stale and taken over.
 */
struct fs_lock {
	char *path;
	int held;
};
int fs_lock_acquire(struct fs_lock *lk, const char *dir, struct err *err);
void fs_lock_release(struct fs_lock *lk);

#endif
