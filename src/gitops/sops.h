/*
 * sops: SOPS-encrypted Kubernetes Secrets with age keys, the form Flux's
 * kustomize-controller decrypts (its `decryption.provider: sops`).
 *
 * A file keeps apiVersion, kind and metadata in clear; every value under a
 * key matching encrypted_regex `^(data|stringData)$` becomes
 * ENC[AES256_GCM,data:..,iv:..,tag:..,type:str]: AES-256-GCM with the data
 * key, a 32-byte random IV and the value's key path joined by ':' (plus a
 * trailing ':') as additional data. The data key (32 random bytes) is
 * age-encrypted (armored) to each recipient under sops.age. sops.mac is the
 * upper-case hex SHA-512 of every value in document order, encrypted the
 * same way with sops.lastmodified as additional data.
 */
#ifndef STRATA_GITOPS_SOPS_H
#define STRATA_GITOPS_SOPS_H

#include <stddef.h>
#include <time.h>

#include "util/buf.h"
#include "util/err.h"

#define SOPS_VERSION "3.9.4"   /* the sops format version we write */

struct sops_entry {
	const char *key;
	const char *value;
};

/*
 * Write an encrypted Secret (type Opaque, the entries under stringData, in
 * sorted key order) to out, for age recipients. now is the lastmodified
 * time. Keys are sorted at every level so the MAC is the same in file
 * order (the sops CLI) and in sorted order (kustomize-controller decrypts
 * the built object as JSON).
 */
int sops_secret_encrypt(struct buf *out, const char *name, const char *ns,
			const struct sops_entry *e, size_t n,
			const char *const *recipients, size_t nr, time_t now,
			struct err *err);

/* A decrypted file: every value by its path ("stringData:token"). */
struct sops_plain {
	char **paths;
	char **values;             /* secret: wiped by sops_plain_release */
	size_t n;
	char **recipients;         /* the sops.age recipients, in order */
	size_t nr;
};

/*
 * Decrypt a sops YAML document with an age identity (or identity file
 * text), checking every value's tag and the MAC.
 */
int sops_decrypt(struct sops_plain *out, const char *text, size_t len,
		 const char *identity, struct err *err);
const char *sops_plain_get(const struct sops_plain *p, const char *path);
void sops_plain_release(struct sops_plain *p);

#endif
