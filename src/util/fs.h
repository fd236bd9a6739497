/*
 * fs: the only way strata writes files.
 *
 * The environment folder is the root of everything strata writes. It is
 * opened once (fs_root_open: O_DIRECTORY|O_NOFOLLOW, refused unless owned
 * by the user and not writable by group or others) and every write to a
 * path inside it is made relative to that descriptor, one component at a
 * time with O_NOFOLLOW: a symlink inside the folder where strata writes
 * (ENV/nodes -> elsewhere) is refused, never followed. Paths outside the
 * root (tests, a folder being created) resolve their parent directory
 * normally and then follow the same rules from there.
 *
 * fs_write_atomic creates a temporary file with a random name and O_EXCL
 * in the target's directory, writes and fsyncs it, renames it over the
 * target and fsyncs the directory, so a reader sees the old file or the
 * new one, never a torn one. Modes: FS_MODE_SECRET (0600) for anything
 * holding key material or tokens, FS_MODE_PUBLIC (0644) otherwise.
 * Reads (fs_read_file) follow symlinks: a user may link a token file.
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

/*
 * Open dir as the process's env root (replacing a previous one). Refuses
 * a symlink, a folder owned by someone else, and one writable by group or
 * others (each with the command that fixes it); with fix_mode (init, which
 * creates the folder) the mode is set to 0700 instead.
 */
int fs_root_open(const char *dir, bool fix_mode, struct err *err);
void fs_root_close(void);

int fs_write_atomic(const char *path, const void *data, size_t len,
		    mode_t mode, struct err *err);
/* fs_write_atomic that never replaces: -ERR_EXISTS when path exists. */
int fs_create_atomic(const char *path, const void *data, size_t len,
		     mode_t mode, struct err *err);
/*
 * The same, written piece by piece (a snapshot streamed from a node):
 * open makes the temporary file (mode, O_EXCL, in path's directory; with
 * !replace an existing path is -ERR_EXISTS), write appends, commit
 * fsyncs, renames (or links, never replacing) and fsyncs the directory;
 * abort removes the temporary file. Commit and abort both release w;
 * after a failed open there is nothing to release.
 */
struct fs_atomic {
	int dfd, fd;
	char *tmp, *path, *name;
	bool replace;
	size_t written;
};
int fs_atomic_open(struct fs_atomic *w, const char *path, mode_t mode,
		   bool replace, struct err *err);
int fs_atomic_write(struct fs_atomic *w, const void *data, size_t len,
		    struct err *err);
int fs_atomic_commit(struct fs_atomic *w, struct err *err);
void fs_atomic_abort(struct fs_atomic *w);
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
/*
 * Remove a file, or a directory and the files in it (one level: strata's
 * folders hold files only), without following a symlink: a link is
 * removed itself. An absent path is not an error.
 */
int fs_remove(const char *path, struct err *err);
/* "a/b/../c/./d/" -> "a/c/d" lexically (symlinks are not resolved); a
 * path that climbs out of the env folder this way is then outside it.
 * Caller frees. */
char *fs_path_normalise(const char *path);
/* Join two path parts with one '/'. Caller frees. */
char *fs_join(const char *a, const char *b);
/* The temporary name fs_write_atomic would use next for name (random). */
char *fs_temp_name(const char *name);

/*
 * Environment lock: an flock(2) on ENV/.lock held for the life of the
 * process (the kernel releases it when the process dies, however it dies).
 * "pid host" is written into the file as information for the message a
 * second process prints; the file is never unlinked.
 */
struct fs_lock {
	int fd;
	int held;
};
int fs_lock_acquire(struct fs_lock *lk, const char *dir, struct err *err);
void fs_lock_release(struct fs_lock *lk);

#endif
