/*
 * pki: the X.509 pieces Talos needs, on OpenSSL 3 EVP: key generation,
 * self-signed CAs in upstream's shape (O only, random serial and SKI,
 * CA:TRUE critical, serverAuth+clientAuth, no AKI), client certs signed by
 * a CA, PEM in and out, and base64 of whole PEM texts.
 */
#ifndef STRATA_TALOS_PKI_H
#define STRATA_TALOS_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

enum pki_alg { PKI_ED25519, PKI_P256, PKI_RSA4096 };

EVP_PKEY *pki_key_new(enum pki_alg alg);
/* Self-signed CA; org may be NULL for an empty subject. */
X509 *pki_ca_new(EVP_PKEY *key, const char *org, long hours);
/* Client cert (clientAuth only, DigitalSignature, AKI = CA SKI). */
X509 *pki_client_new(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key,
		     const char *org, long hours);

int pki_cert_pem(struct buf *out, X509 *crt);
/* EC and RSA keys as traditional PEM, Ed25519 as PKCS#8 "PRIVATE KEY". */
int pki_key_pem(struct buf *out, EVP_PKEY *key);
X509 *pki_cert_from_pem(const char *pem, size_t len);
/* Reads every label Talos writes, "ED25519 PRIVATE KEY" included. */
EVP_PKEY *pki_key_from_pem(const char *pem, size_t len);

/* Standard base64, padded, one line. url != 0 selects the URL alphabet. */
char *pki_b64(const void *data, size_t len, int url);
/* Decode standard base64 into out; returns 0 or -1 on bad input. */
int pki_unb64(struct buf *out, const char *s);

#endif
