/*
 * age: the age v1 file format (age-encryption.org/v1) on OpenSSL 3
 * primitives: X25519 and scrypt recipient stanzas, the header MAC, the
 * STREAM payload (64 KiB ChaCha20-Poly1305 chunks), ASCII armor on read,
 * Bech32 keys (AGE-SECRET-KEY-1... identities, age1... recipients).
 *
 * Interoperable with the `age` CLI both ways and checked against the C2SP
 * test kit (tests/unit/test_age.c). Every key, file key and shared secret
 * is wiped (OPENSSL_cleanse) before its memory is freed. Identities and
 * passphrases never appear in error messages.
 */
#ifndef STRATA_AGE_AGE_H
#define STRATA_AGE_AGE_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* scrypt work factor used when encrypting, and the highest one accepted. */
#define AGE_SCRYPT_LOG_N 18
#define AGE_SCRYPT_MAX_LOG_N 22

/* What kind of failure a decryption met (the test kit's outcomes). */
enum age_fail {
	AGE_OK = 0,
	AGE_FAIL_NO_MATCH,   /* no identity or passphrase opens a stanza */
	AGE_FAIL_HMAC,       /* the header MAC does not verify */
	AGE_FAIL_HEADER,     /* malformed or unsupported header */
	AGE_FAIL_PAYLOAD,    /* a chunk fails to verify, or the file is cut */
	AGE_FAIL_ARMOR,      /* malformed ASCII armor */
	AGE_FAIL_KEY,        /* an identity or recipient string is malformed */
};

/*
 * A new X25519 identity ("AGE-SECRET-KEY-1...", secret) and its recipient
 * ("age1..."). Both malloc'd; free the identity with age_free_secret.
 */
int age_keygen(char **identity, char **recipient, struct err *err);
/* The recipient of an identity (one key, or an identity file's text). */
int age_identity_recipient(char **recipient, const char *identity,
			   struct err *err);
/* 0 when s is an age X25519 recipient (age1...), else -1. */
int age_recipient_check(const char *s);
/* Wipe and free a secret string (NULL-safe). */
void age_free_secret(char *s);

/* Encrypt to n X25519 recipients; out gets the binary age file. */
int age_encrypt(struct buf *out, const void *in, size_t len,
		const char *const *recipients, size_t n, struct err *err);
/* Encrypt with a passphrase (scrypt, 2^log_n; 0 means AGE_SCRYPT_LOG_N). */
int age_encrypt_passphrase(struct buf *out, const void *in, size_t len,
			   const char *passphrase, int log_n, struct err *err);

/*
 * Decrypt a binary or armored age file. Each identity is one key or the
 * text of an identity file (one key per line, '#' comments and empty
 * lines ignored). On failure out is left as it was.
 */
int age_decrypt(struct buf *out, const void *in, size_t len,
		const char *const *identities, size_t n, struct err *err);
int age_decrypt_passphrase(struct buf *out, const void *in, size_t len,
			   const char *passphrase, struct err *err);

/*
 * The general form: identities and passphrases together; *fail says
 * which kind of failure happened. Unlike age_decrypt, on a payload
 * failure out keeps the plaintext of the chunks that verified (what the
 * test kit's payload hash covers); callers must discard it.
 */
struct age_keys {
	const char *const *identities;
	size_t n_identities;
	const char *const *passphrases;
	size_t n_passphrases;
};
int age_decrypt_keys(struct buf *out, const void *in, size_t len,
		     const struct age_keys *keys, enum age_fail *fail,
		     struct err *err);

/*
 * Streaming, for files too large to hold: the writer hands each piece of
 * the age file to sink as it is made (the header at open, then 64 KiB
 * chunks; the last one at close); the reader pulls the file from src
 * (*got 0 at its end) and gives plaintext only from chunks that verified.
 * age_reader_read's *got is 0 exactly once the whole file verified; any
 * plaintext read before that is not trusted until then.
 */
typedef int (*age_sink_fn)(void *ctx, const void *data, size_t len,
			   struct err *err);
typedef int (*age_source_fn)(void *ctx, void *buf, size_t cap, size_t *got,
			     struct err *err);
struct age_writer;
struct age_reader;

/* To n X25519 recipients, or with passphrase when it is not NULL. */
int age_writer_open(struct age_writer **w, const char *const *recipients,
		    size_t n, const char *passphrase, int log_n,
		    age_sink_fn sink, void *ctx, struct err *err);
int age_writer_write(struct age_writer *w, const void *data, size_t len,
		     struct err *err);
/* Seals the final chunk and frees w (either way). */
int age_writer_close(struct age_writer *w, struct err *err);
/* Frees w without finishing the file (NULL-safe). */
void age_writer_free(struct age_writer *w);

int age_reader_open(struct age_reader **rd, const struct age_keys *keys,
		    age_source_fn src, void *ctx, enum age_fail *fail,
		    struct err *err);
int age_reader_read(struct age_reader *rd, void *buf, size_t cap,
		    size_t *got, struct err *err);
void age_reader_free(struct age_reader *rd);

/* Armor an age file (PEM "AGE ENCRYPTED FILE", 64 columns). */
void age_armor(struct buf *out, const void *in, size_t len);

#endif
