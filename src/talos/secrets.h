/*
 * secrets: the Talos secrets bundle (secrets.yaml) in upstream's layout.
 *
 * talos_secrets_load_or_create reads PATH when it exists and never writes
 * it again; otherwise it generates a fresh bundle (OS CA Ed25519; etcd,
 * k8s, aggregator CAs ECDSA P-256; service-account key RSA-4096; random
 * cluster id/secret, tokens and secretbox secret) and writes it 0600.
 * A partial or corrupt file is an error, never replaced.
 *
 * Certificates and keys keep the exact base64 text they were read with,
 * so machine configs carry the same bytes as the bundle.
 */
#ifndef STRATA_TALOS_SECRETS_H
#define STRATA_TALOS_SECRETS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "util/buf.h"
#include "util/err.h"

struct talos_keypair {
	X509 *crt;                 /* NULL for the service-account key */
	EVP_PKEY *key;
	char *crt_b64;             /* base64 of the whole PEM text */
	char *key_b64;
};

struct talos_secrets {
	char *cluster_id;
	char *cluster_secret;
	char *bootstrap_token;
	char *secretbox_secret;    /* NULL when the bundle has aescbc */
	char *aescbc_secret;
	char *trustd_token;
	struct talos_keypair etcd, k8s, aggregator, service_account, os;
};

int talos_secrets_load_or_create(struct talos_secrets **out, const char *path,
				 bool *created, struct err *err);
/* Parse a bundle from memory. */
int talos_secrets_parse(struct talos_secrets **out, const char *text,
			size_t len, struct err *err);
/* Generate a fresh bundle in memory. */
int talos_secrets_generate(struct talos_secrets **out, struct err *err);
/* Encode as upstream's secrets.yaml. */
int talos_secrets_encode(struct buf *out, const struct talos_secrets *s,
			 struct err *err);
/* Wipes every secret and key. NULL-safe. */
void talos_secrets_free(struct talos_secrets *s);

/* A token "[a-z0-9]{6}.[a-z0-9]{16}" (exposed for tests). */
char *talos_token_new(void);

#endif
