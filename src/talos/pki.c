#include "talos/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

EVP_PKEY *
pki_key_new(enum pki_alg alg)
{
	switch (alg) {
	case PKI_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case PKI_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case PKI_RSA4096:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	}
	return NULL;
}

static const EVP_MD *
sign_md(EVP_PKEY *key)
{
	return EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
}

static int
random_serial(X509 *crt)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int
add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static X509 *
cert_base(EVP_PKEY *key, const char *org, long hours)
{
	X509 *crt = X509_new();
	X509_NAME *name;

	if (!crt)
		return NULL;
	name = X509_get_subject_name(crt);
	if (X509_set_version(crt, 2) != 1 || random_serial(crt) < 0 ||
	    !X509_gmtime_adj(X509_getm_notBefore(crt), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(crt), hours * 3600L) ||
	    X509_set_pubkey(crt, key) != 1)
		goto fail;
	if (org && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
		(const unsigned char *)org, -1, -1, 0) != 1)
		goto fail;
	return crt;
fail:
	X509_free(crt);
	return NULL;
}

X509 *
pki_ca_new(EVP_PKEY *key, const char *org, long hours)
{
	unsigned char ski[20];
	ASN1_OCTET_STRING *os = NULL;
	X509 *crt;

	if (!(crt = cert_base(key, org, hours)))
		return NULL;
	if (X509_set_issuer_name(crt, X509_get_subject_name(crt)) != 1 ||
	    add_ext(crt, crt, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(crt, crt, NID_key_usage,
		    "critical,digitalSignature,keyCertSign") < 0 ||
	    add_ext(crt, crt, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    RAND_bytes(ski, sizeof(ski)) != 1 ||
	    !(os = ASN1_OCTET_STRING_new()) ||
	    !ASN1_OCTET_STRING_set(os, ski, sizeof(ski)) ||
	    X509_add1_ext_i2d(crt, NID_subject_key_identifier, os, 0, 0) != 1 ||
	    X509_sign(crt, key, sign_md(key)) <= 0)
		goto fail;
	ASN1_OCTET_STRING_free(os);
	return crt;
fail:
	ASN1_OCTET_STRING_free(os);
	X509_free(crt);
	return NULL;
}

X509 *
pki_client_new(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *org,
	       long hours)
{
	X509 *crt;

	if (!(crt = cert_base(key, org, hours)))
		return NULL;
	if (X509_set_issuer_name(crt, X509_get_subject_name(ca)) != 1 ||
	    add_ext(crt, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(crt, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(crt, ca, NID_ext_key_usage, "clientAuth") < 0 ||
	    (X509_get0_subject_key_id(ca) &&
	     add_ext(crt, ca, NID_authority_key_identifier, "keyid:always") < 0) ||
	    X509_sign(crt, ca_key, sign_md(ca_key)) <= 0) {
		X509_free(crt);
		return NULL;
	}
	return crt;
}

static int
bio_to_buf(struct buf *out, BIO *bio)
{
	char *p;
	long n = BIO_get_mem_data(bio, &p);

	if (n <= 0)
		return -1;
	buf_add(out, p, (size_t)n);
	return 0;
}

int
pki_cert_pem(struct buf *out, X509 *crt)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r = -1;

	if (bio && PEM_write_bio_X509(bio, crt) == 1)
		r = bio_to_buf(out, bio);
	BIO_free(bio);
	return r;
}

int
pki_key_pem(struct buf *out, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int ok = 0, r = -1;

	if (!bio)
		return -1;
	if (EVP_PKEY_is_a(key, "ED25519"))
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL,
							  0, NULL, NULL);
	if (ok == 1)
		r = bio_to_buf(out, bio);
	{
		char *p;
		long n = BIO_get_mem_data(bio, &p);

		if (n > 0)
			OPENSSL_cleanse(p, (size_t)n);
	}
	BIO_free(bio);
	return r;
}

X509 *
pki_cert_from_pem(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *crt = NULL;

	if (bio)
		crt = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return crt;
}

/*
 * Decode with the key type and DER structure the PEM label names. The
 * generic search (PEM_read_bio_PrivateKey) sets up every decoder of every
 * key type for each key, about 0.3 ms a key; this one only those of one
 * type. NULL (with the error queue as it was) when the first PEM block is
 * not what its label says, and the caller falls back to the generic search,
 * which would have read that same first block.
 */
static EVP_PKEY *
key_from_pem_hinted(const char *pem, size_t len)
{
	static const struct {
		const char *label, *type, *structure;
	} hints[] = {
		{ "EC PRIVATE KEY", "EC", "type-specific" },
		{ "RSA PRIVATE KEY", "RSA", "type-specific" },
		{ "PRIVATE KEY", "ED25519", "PrivateKeyInfo" },
	};
	const char *begin = strstr(pem, "-----BEGIN "), *end;
	OSSL_DECODER_CTX *dctx;
	EVP_PKEY *key = NULL;
	size_t i, n;
	BIO *bio;

	if (!begin)
		return NULL;
	begin += strlen("-----BEGIN ");
	if (!(end = strstr(begin, "-----")))
		return NULL;
	n = (size_t)(end - begin);
	for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strlen(hints[i].label) == n &&
		    memcmp(hints[i].label, begin, n) == 0)
			break;
	if (i == sizeof(hints) / sizeof(hints[0]))
		return NULL;
	ERR_set_mark();
	dctx = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", hints[i].structure,
					     hints[i].type, EVP_PKEY_KEYPAIR,
					     NULL, NULL);
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!dctx || !bio || OSSL_DECODER_from_bio(dctx, bio) != 1) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	BIO_free(bio);
	OSSL_DECODER_CTX_free(dctx);
	ERR_pop_to_mark();
	return key;
}

EVP_PKEY *
pki_key_from_pem(const char *pem, size_t len)
{
	static const char ed[] = "ED25519 PRIVATE KEY";
	struct buf tmp = BUF_INIT;
	EVP_PKEY *key = NULL;
	BIO *bio;
	const char *p;

	/* Upstream labels PKCS#8 Ed25519 keys "ED25519 PRIVATE KEY". */
	buf_add(&tmp, pem, len);
	while ((p = strstr(tmp.ptr, ed)) != NULL) {
		size_t off = (size_t)(p - tmp.ptr), skip = strlen("ED25519 ");

		memmove(tmp.ptr + off, tmp.ptr + off + skip,
			tmp.len - off - skip + 1);
		tmp.len -= skip;
	}
	if (!(key = key_from_pem_hinted(tmp.ptr, tmp.len))) {
		bio = BIO_new_mem_buf(tmp.ptr, (int)tmp.len);
		if (bio)
			key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	buf_release_secret(&tmp);
	return key;
}

char *
pki_b64(const void *data, size_t len, int url)
{
	char *s = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)s, data, (int)len);
	if (url)
		for (char *p = s; *p; p++) {
			if (*p == '+')
				*p = '-';
			else if (*p == '/')
				*p = '_';
		}
	return s;
}

int
pki_unb64(struct buf *out, const char *s)
{
	size_t len = strlen(s), pad = 0;
	unsigned char *tmp;
	int n;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	tmp = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(tmp);
		return -1;
	}
	buf_add(out, tmp, (size_t)n - pad);
	OPENSSL_cleanse(tmp, (size_t)n);
	free(tmp);
	return 0;
}
