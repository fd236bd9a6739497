/*
 * backup: the env folder as one age-encrypted archive, and back.
 *
 * An archive is a ustar of every regular file and folder under the env
 * folder (secrets.yaml, talosconfig, kubeconfig, state.json, config.yml,
 * nodes/, patches/, gitops/ ...), minus the lock and strata's temp files;
 * names are relative to the folder. It is encrypted with the age format
 * (src/age) to X25519 recipients and/or a passphrase, so `age -d` opens it
 * and `tar -x` unpacks it without strata.
 *
 * Restore decrypts and checks everything first (names, types, a
 * config.yml at the top) and writes nothing until all of it is good; it
 * never writes into an existing folder.
 */
#ifndef STRATA_BACKUP_BACKUP_H
#define STRATA_BACKUP_BACKUP_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct backup_stats {
	size_t files, dirs;
	size_t bytes;              /* file contents, before encryption */
	size_t skipped;            /* symlinks and other non-files left out */
	size_t snapshots_left_out; /* ENV/etcd/NAME.snapshot not archived */
};

/* The ustar archive of env_dir (secret buffer: wipe it). etcd snapshots
 * (ENV/etcd/NAME.snapshot files) are left out, except keep_snapshot ("etcd/NAME",
 * or NULL for none). */
int backup_archive(struct buf *tar, const char *env_dir,
		   const char *keep_snapshot, struct backup_stats *st,
		   struct err *err);

struct backup_keys {
	const char *const *recipients;   /* age1... */
	size_t n_recipients;
	const char *passphrase;          /* or NULL */
	const char *etcd_snapshot;       /* "etcd/NAME" to include, or NULL */
};

/* Archive env_dir and encrypt it; out is the age file. */
int backup_make(struct buf *out, const char *env_dir,
		const struct backup_keys *keys, struct backup_stats *st,
		struct err *err);

struct restore_keys {
	const char *const *identities;   /* identity file texts or keys */
	size_t n_identities;
	const char *passphrase;          /* or NULL */
};

/*
 * Decrypt an age file, check the archive in it, and unpack it into
 * dest_dir, which must not exist (created 0700; files at most 0600 or
 * 0644 as archived, folders 0700). Nothing is written on any failure.
 */
int backup_restore(const void *age, size_t len, const char *dest_dir,
		   const struct restore_keys *keys, struct backup_stats *st,
		   struct err *err);

#endif
