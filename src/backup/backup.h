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
 * Both directions stream: a backup reads each file in 64 KiB pieces into
 * the age writer, whose chunks go straight to the new file through
 * fs_atomic_*; a restore decrypts chunk by chunk into a streaming tar
 * reader. Memory stays a few chunks whatever the size of the folder (an
 * etcd snapshot of hundreds of MiB included).
 *
 * Restore unpacks into a temporary sibling of the target and renames it
 * into place only after every entry was judged (names, types, a
 * config.yml at the top) and the whole age file verified; on any failure
 * the temporary folder is removed, so nothing is left half-restored. It
 * never writes into an existing folder.
 */
#ifndef STRATA_BACKUP_BACKUP_H
#define STRATA_BACKUP_BACKUP_H

#include <stddef.h>

#include "util/err.h"

struct backup_stats {
	size_t files, dirs;
	size_t bytes;              /* file contents, before encryption */
	size_t skipped;            /* symlinks and other non-files left out */
	size_t snapshots_left_out; /* ENV/etcd/NAME.snapshot not archived */
	size_t written;            /* bytes of the age file */
};

struct backup_keys {
	const char *const *recipients;   /* age1... */
	size_t n_recipients;
	const char *passphrase;          /* or NULL */
	const char *etcd_snapshot;       /* "etcd/NAME" to include, or NULL */
};

/*
 * Archive env_dir (etcd snapshots, ENV/etcd/NAME.snapshot, left out but
 * keys->etcd_snapshot), encrypt it and write it to path, a new file
 * (0600; -ERR_EXISTS if path exists). Nothing is left at path on failure.
 */
int backup_write(const char *path, const char *env_dir,
		 const struct backup_keys *keys, struct backup_stats *st,
		 struct err *err);

struct restore_keys {
	const char *const *identities;   /* identity file texts or keys */
	size_t n_identities;
	const char *passphrase;          /* or NULL */
};

/*
 * Decrypt the age file at age_path, check the archive in it, and unpack
 * it as dest_dir, which must not exist (created 0700; files 0600, or 0644
 * as archived, folders 0700). Nothing is left on any failure.
 */
int backup_restore(const char *age_path, const char *dest_dir,
		   const struct restore_keys *keys, struct backup_stats *st,
		   struct err *err);

#endif
