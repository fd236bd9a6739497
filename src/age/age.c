/*
 * age: the age v1 format on OpenSSL 3. The rules (and the test kit
 * outcome each one produces) are in ../shared/reference/age/FACTS.md.
 */
#include "age/age.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "age/bech32.h"
#include "util/num.h"

#define VERSION_LINE "age-encryption.org/v1"
#define X25519_LABEL "age-encryption.org/v1/X25519"
#define SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"
#define CHUNK 65536
#define TAG 16
#define FILE_KEY 16
#define MAX_STANZAS 256

/* ---- primitives (OpenSSL) ---- */

static int
hkdf(unsigned char out[32], const void *ikm, size_t ikm_len,
     const void *salt, size_t salt_len, const char *info)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5], *q = p;
	int ok;

	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikm_len);
	/* No salt is HKDF's zero-length salt (32 zero bytes). */
	if (salt_len)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 (void *)salt, salt_len);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						 (void *)info, strlen(info));
	*q = OSSL_PARAM_construct_end();
	ok = ctx && EVP_KDF_derive(ctx, out, 32, p) == 1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -1;
}

/*
 * ChaCha20-Poly1305 with an empty AAD. Sealing writes len + 16 bytes;
 * opening reads len bytes (ciphertext then tag) and writes len - 16.
 */
static int
aead(int seal, unsigned char *out, const unsigned char key[32],
     const unsigned char nonce[12], const unsigned char *in, size_t len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	size_t body = seal ? len : len - TAG;
	int n = 0, ok = 0;

	if (!c || (!seal && len < TAG) || body > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, NULL, NULL,
			      seal) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, seal) != 1)
		goto out;
	if (!seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG,
					 (void *)(in + body)) != 1)
		goto out;
	if (body && EVP_CipherUpdate(c, out, &n, in, (int)body) != 1)
		goto out;
	if (EVP_CipherFinal_ex(c, out + n, &n) != 1)
		goto out;
	if (seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG,
					out + body) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static EVP_PKEY *
x25519_key(const unsigned char scalar[32])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, scalar, 32);
}

static int
x25519_public(unsigned char pub[32], const unsigned char scalar[32])
{
	EVP_PKEY *k = x25519_key(scalar);
	size_t n = 32;
	int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32;

	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

/*
 * X25519(scalar, point). Fails when the result is all zero (a low-order
 * point): OpenSSL refuses to derive it, and we check again.
 */
static int
x25519(unsigned char out[32], const unsigned char scalar[32],
       const unsigned char point[32])
{
	EVP_PKEY *priv = x25519_key(scalar);
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL,
						    point, 32);
	EVP_PKEY_CTX *ctx = priv ? EVP_PKEY_CTX_new(priv, NULL) : NULL;
	unsigned char zero[32] = { 0 };
	size_t n = 32;
	int ok;

	ok = ctx && pub && EVP_PKEY_derive_init(ctx) == 1 &&
	     EVP_PKEY_derive_set_peer_ex(ctx, pub, 0) == 1 &&
	     EVP_PKEY_derive(ctx, out, &n) == 1 && n == 32 &&
	     CRYPTO_memcmp(out, zero, 32) != 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
	if (!ok)
		OPENSSL_cleanse(out, 32);
	return ok ? 0 : -1;
}

static int
scrypt_wrap_key(unsigned char out[32], const char *pass,
		const unsigned char salt[16], int log_n)
{
	unsigned char s[sizeof(SCRYPT_LABEL) - 1 + 16];
	uint64_t n = (uint64_t)1 << log_n;

	memcpy(s, SCRYPT_LABEL, sizeof(SCRYPT_LABEL) - 1);
	memcpy(s + sizeof(SCRYPT_LABEL) - 1, salt, 16);
	/* Memory is 128 * N * r; allow that plus slack. */
	return EVP_PBE_scrypt(pass, strlen(pass), s, sizeof(s), n, 8, 1,
			      128 * 8 * (n + 2) + (1u << 20), out, 32) == 1
		       ? 0 : -1;
}

/* ---- base64 (OpenSSL's codec; age's rules on top) ---- */

static int
b64_char(int c)
{
	return isalnum(c) || c == '+' || c == '/';
}

/* Unpadded standard base64. */
static void
b64_add(struct buf *out, const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3);

	buf_grow(out, n);
	EVP_EncodeBlock((unsigned char *)out->ptr + out->len, data, (int)len);
	while (n && out->ptr[out->len + n - 1] == '=')
		n--;
	out->len += n;
	out->ptr[out->len] = '\0';
}

/*
 * Decode s[0..n) as canonical unpadded base64 into out (appended).
 * padded != 0 wants the padded form instead (the armor).
 */
static int
b64_decode(struct buf *out, const char *s, size_t n, int padded)
{
	struct buf tmp = BUF_INIT, check = BUF_INIT;
	size_t body = n, pad = 0;
	int r = -1, got;

	if (padded) {
		while (body && s[body - 1] == '=' && pad < 2) {
			body--;
			pad++;
		}
		if (n % 4)
			return -1;
	} else if (n % 4 == 1) {
		return -1;
	}
	for (size_t i = 0; i < body; i++)
		if (!b64_char((unsigned char)s[i]))
			return -1;
	buf_add(&tmp, s, body);
	while (tmp.len % 4)
		buf_addch(&tmp, '=');
	buf_grow(out, tmp.len / 4 * 3);
	got = tmp.len ? EVP_DecodeBlock((unsigned char *)out->ptr + out->len,
					(unsigned char *)tmp.ptr, (int)tmp.len)
		      : 0;
	if (got < 0)
		goto done;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	for (size_t i = body; i < tmp.len; i++)
		got--;
	/* Canonical: encoding the bytes again gives the same text. */
	b64_add(&check, out->ptr + out->len, (size_t)got);
	if (check.len != body || memcmp(check.ptr, s, body) != 0) {
		OPENSSL_cleanse(out->ptr + out->len, (size_t)got);
		goto done;
	}
	out->len += (size_t)got;
	out->ptr[out->len] = '\0';
	r = 0;
done:
	buf_release_secret(&check);
	buf_release(&tmp);
	return r;
}

/* ---- keys ---- */

void
age_free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static int
decode_key(unsigned char key[32], const char *s, const char *hrp)
{
	struct buf h = BUF_INIT, d = BUF_INIT;
	int r = -1;

	if (bech32_decode(&h, &d, s) == 0 && strcmp(h.ptr, hrp) == 0 &&
	    d.len == 32) {
		memcpy(key, d.ptr, 32);
		r = 0;
	}
	buf_release(&h);
	buf_release_secret(&d);
	return r;
}

int
age_recipient_check(const char *s)
{
	unsigned char k[32];

	return decode_key(k, s, "age");
}

int
age_keygen(char **identity, char **recipient, struct err *err)
{
	unsigned char sk[32], pk[32];

	*identity = *recipient = NULL;
	if (RAND_bytes(sk, sizeof(sk)) != 1 || x25519_public(pk, sk) < 0) {
		OPENSSL_cleanse(sk, sizeof(sk));
		return err_set(err, ERR_FAIL, "age: cannot generate an X25519 key");
	}
	*identity = bech32_encode("age-secret-key-", sk, 32, 1);
	*recipient = bech32_encode("age", pk, 32, 0);
	OPENSSL_cleanse(sk, sizeof(sk));
	return 0;
}

/*
 * The keys of an identity string: one key, or the lines of an identity
 * file. Adds each 32-byte scalar to keys. Returns the count, or -1 naming
 * the bad line in err (never its text).
 */
static int
parse_identities(struct buf *keys, const char *text, size_t which,
		 struct err *err)
{
	const char *p = text;
	int count = 0, lineno = 0;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *line;
		unsigned char k[32];

		lineno++;
		while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (n && p[0] != '#') {
			line = xstrndup(p, n);
			if (decode_key(k, line, "age-secret-key-") < 0) {
				age_free_secret(line);
				err_set(err, ERR_USAGE,
					"age: identity %zu, line %d: not an age "
					"X25519 identity (AGE-SECRET-KEY-1...)",
					which + 1, lineno);
				return -1;
			}
			age_free_secret(line);
			buf_add(keys, k, 32);
			OPENSSL_cleanse(k, 32);
			count++;
		}
		p += e ? (size_t)(e - p) + 1 : n;
		if (!e)
			break;
	}
	if (!count) {
		err_set(err, ERR_USAGE, "age: identity %zu holds no key", which + 1);
		return -1;
	}
	return count;
}

int
age_identity_recipient(char **recipient, const char *identity,
		       struct err *err)
{
	struct buf keys = BUF_INIT;
	unsigned char pk[32];
	int r;

	*recipient = NULL;
	if ((r = parse_identities(&keys, identity, 0, err)) < 0)
		return -1;
	r = x25519_public(pk, (unsigned char *)keys.ptr);
	buf_release_secret(&keys);
	if (r < 0)
		return err_set(err, ERR_FAIL, "age: cannot derive the public key");
	*recipient = bech32_encode("age", pk, 32, 0);
	return 0;
}

/* ---- encryption ---- */

static void
stanza_body(struct buf *out, const unsigned char *body, size_t len)
{
	struct buf b = BUF_INIT;
	size_t i;

	b64_add(&b, body, len);
	for (i = 0; i + 64 <= b.len; i += 64) {
		buf_add(out, b.ptr + i, 64);
		buf_addch(out, '\n');
	}
	/* The last line is shorter than 64, possibly empty. */
	buf_add(out, b.ptr + i, b.len - i);
	buf_addch(out, '\n');
	buf_release(&b);
}

static int
x25519_stanza(struct buf *hdr, const unsigned char fk[FILE_KEY],
	      const unsigned char recipient[32])
{
	unsigned char e[32], share[64], ss[32], wrap[32], body[FILE_KEY + TAG];
	static const unsigned char zero_nonce[12];
	int r = -1;

	if (RAND_bytes(e, 32) != 1 || x25519_public(share, e) < 0)
		goto out;
	memcpy(share + 32, recipient, 32);
	if (x25519(ss, e, recipient) < 0 ||
	    hkdf(wrap, ss, 32, share, 64, X25519_LABEL) < 0 ||
	    aead(1, body, wrap, zero_nonce, fk, FILE_KEY) < 0)
		goto out;
	buf_adds(hdr, "-> X25519 ");
	b64_add(hdr, share, 32);
	buf_addch(hdr, '\n');
	stanza_body(hdr, body, sizeof(body));
	r = 0;
out:
	OPENSSL_cleanse(e, sizeof(e));
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	return r;
}

/*
 * Streaming encryption. The header (version line and stanzas) is built
 * first; start() adds the MAC line, sends the header and the payload
 * nonce to the sink and keeps only the payload key. Plaintext is held
 * until a whole chunk is there and more follows, so the last chunk (full
 * or not) is the one sealed with the final flag.
 */
struct age_writer {
	age_sink_fn sink;
	void *ctx;
	unsigned char pkey[32];
	uint64_t counter;
	unsigned char *chunk;        /* CHUNK plaintext bytes (wiped) */
	unsigned char *sealed;       /* CHUNK + TAG */
	size_t fill;
	bool failed;
};

static void
nonce_for(unsigned char cn[12], uint64_t i, int last)
{
	memset(cn, 0, 12);
	for (int b = 0; b < 8; b++)
		cn[3 + b] = (unsigned char)(i >> (56 - 8 * b));
	cn[11] = last ? 1 : 0;
}

/* Wipes the file key and releases hdr either way. */
static int
writer_start(struct age_writer **wp, struct buf *hdr, unsigned char fk[FILE_KEY],
	     age_sink_fn sink, void *ctx, struct err *err)
{
	struct age_writer *w = xcalloc(1, sizeof(*w));
	unsigned char mkey[32], mac[32], nonce[16];
	unsigned int mlen = 32;
	int r = -1;

	w->sink = sink;
	w->ctx = ctx;
	w->chunk = xmalloc(CHUNK);
	w->sealed = xmalloc(CHUNK + TAG);
	buf_adds(hdr, "---");
	if (hkdf(mkey, fk, FILE_KEY, NULL, 0, "header") < 0 ||
	    !HMAC(EVP_sha256(), mkey, 32, (unsigned char *)hdr->ptr, hdr->len,
		  mac, &mlen) ||
	    RAND_bytes(nonce, 16) != 1 ||
	    hkdf(w->pkey, fk, FILE_KEY, nonce, 16, "payload") < 0) {
		err_set(err, ERR_FAIL, "age: encryption failed");
		goto out;
	}
	buf_addch(hdr, ' ');
	b64_add(hdr, mac, 32);
	buf_addch(hdr, '\n');
	buf_add(hdr, nonce, 16);
	if (sink(ctx, hdr->ptr, hdr->len, err) < 0)
		goto out;
	*wp = w;
	w = NULL;
	r = 0;
out:
	OPENSSL_cleanse(mkey, sizeof(mkey));
	OPENSSL_cleanse(fk, FILE_KEY);
	buf_release(hdr);
	age_writer_free(w);
	return r;
}

static int
seal_chunk(struct age_writer *w, int last, struct err *err)
{
	unsigned char cn[12];

	nonce_for(cn, w->counter, last);
	if (aead(1, w->sealed, w->pkey, cn, w->chunk, w->fill) < 0) {
		w->failed = true;
		return err_set(err, ERR_FAIL, "age: encryption failed");
	}
	if (w->sink(w->ctx, w->sealed, w->fill + TAG, err) < 0) {
		w->failed = true;
		return -1;
	}
	w->counter++;
	w->fill = 0;
	return 0;
}

int
age_writer_write(struct age_writer *w, const void *data, size_t len,
		 struct err *err)
{
	const unsigned char *p = data;

	if (w->failed)
		return err_set(err, ERR_FAIL, "age: the stream already failed");
	while (len) {
		size_t n;

		if (w->fill == CHUNK && seal_chunk(w, 0, err) < 0)
			return -1;
		n = CHUNK - w->fill < len ? CHUNK - w->fill : len;
		memcpy(w->chunk + w->fill, p, n);
		w->fill += n;
		p += n;
		len -= n;
	}
	return 0;
}

int
age_writer_close(struct age_writer *w, struct err *err)
{
	int r = w->failed ? err_set(err, ERR_FAIL, "age: the stream already "
				    "failed") : seal_chunk(w, 1, err);

	age_writer_free(w);
	return r;
}

void
age_writer_free(struct age_writer *w)
{
	if (!w)
		return;
	OPENSSL_cleanse(w->pkey, sizeof(w->pkey));
	secret_free(w->chunk, CHUNK);
	secret_free(w->sealed, CHUNK + TAG);
	free(w);
}

/* The version line and one X25519 stanza per recipient. */
static int
header_recipients(struct buf *hdr, unsigned char fk[FILE_KEY],
		  const char *const *recipients, size_t n, struct err *err)
{
	unsigned char pk[32];

	if (n == 0)
		return err_set(err, ERR_USAGE, "age: no recipient to encrypt to");
	if (RAND_bytes(fk, FILE_KEY) != 1)
		return err_set(err, ERR_FAIL, "age: no random bytes");
	buf_adds(hdr, VERSION_LINE "\n");
	for (size_t i = 0; i < n; i++) {
		if (decode_key(pk, recipients[i], "age") < 0)
			return err_set(err, ERR_USAGE,
				       "age: '%s' is not an age X25519 recipient "
				       "(age1...)", recipients[i]);
		if (x25519_stanza(hdr, fk, pk) < 0)
			return err_set(err, ERR_USAGE,
				       "age: cannot encrypt to '%s' (a low-order "
				       "key?)", recipients[i]);
	}
	return 0;
}

/* The version line and the one scrypt stanza. */
static int
header_passphrase(struct buf *hdr, unsigned char fk[FILE_KEY],
		  const char *passphrase, int log_n, struct err *err)
{
	unsigned char salt[16], wrap[32], body[FILE_KEY + TAG];
	static const unsigned char zero_nonce[12];
	int r = 0;

	if (!log_n)
		log_n = AGE_SCRYPT_LOG_N;
	if (log_n < 1 || log_n > AGE_SCRYPT_MAX_LOG_N)
		return err_set(err, ERR_USAGE,
			       "age: scrypt work factor %d is out of range 1..%d",
			       log_n, AGE_SCRYPT_MAX_LOG_N);
	if (!*passphrase)
		return err_set(err, ERR_USAGE, "age: the passphrase is empty");
	if (RAND_bytes(fk, FILE_KEY) != 1 || RAND_bytes(salt, 16) != 1 ||
	    scrypt_wrap_key(wrap, passphrase, salt, log_n) < 0 ||
	    aead(1, body, wrap, zero_nonce, fk, FILE_KEY) < 0) {
		r = err_set(err, ERR_FAIL, "age: scrypt key derivation failed");
	} else {
		buf_adds(hdr, VERSION_LINE "\n-> scrypt ");
		b64_add(hdr, salt, 16);
		buf_addf(hdr, " %d\n", log_n);
		stanza_body(hdr, body, sizeof(body));
	}
	OPENSSL_cleanse(wrap, sizeof(wrap));
	return r;
}

int
age_writer_open(struct age_writer **w, const char *const *recipients,
		size_t n, const char *passphrase, int log_n, age_sink_fn sink,
		void *ctx, struct err *err)
{
	struct buf hdr = BUF_INIT;
	unsigned char fk[FILE_KEY];
	int r;

	*w = NULL;
	if (passphrase)
		r = header_passphrase(&hdr, fk, passphrase, log_n, err);
	else
		r = header_recipients(&hdr, fk, recipients, n, err);
	if (r < 0) {
		OPENSSL_cleanse(fk, sizeof(fk));
		buf_release(&hdr);
		return r;
	}
	return writer_start(w, &hdr, fk, sink, ctx, err);
}

static int
buf_sink(void *ctx, const void *data, size_t len, struct err *err)
{
	(void)err;
	buf_add(ctx, data, len);
	return 0;
}

/* The whole file into out; out is left as it was on failure. */
static int
encrypt_all(struct buf *out, const void *in, size_t len,
	    const char *const *recipients, size_t n, const char *passphrase,
	    int log_n, struct err *err)
{
	struct age_writer *w;
	size_t start = out->len;

	int r = age_writer_open(&w, recipients, n, passphrase, log_n, buf_sink,
				out, err);

	if (r == 0 && (r = age_writer_write(w, in, len, err)) < 0)
		age_writer_free(w);
	else if (r == 0)
		r = age_writer_close(w, err);
	if (r < 0 && start < out->len) {
		out->len = start;
		out->ptr[start] = '\0';
	}
	return r < 0 ? -1 : 0;
}

int
age_encrypt(struct buf *out, const void *in, size_t len,
	    const char *const *recipients, size_t n, struct err *err)
{
	return encrypt_all(out, in, len, recipients, n, NULL, 0, err);
}

int
age_encrypt_passphrase(struct buf *out, const void *in, size_t len,
		       const char *passphrase, int log_n, struct err *err)
{
	return encrypt_all(out, in, len, NULL, 0, passphrase, log_n, err);
}

void
age_armor(struct buf *out, const void *in, size_t len)
{
	char *b = xmalloc(4 * ((len + 2) / 3) + 1);
	size_t n = (size_t)EVP_EncodeBlock((unsigned char *)b, in, (int)len);

	buf_adds(out, ARMOR_BEGIN "\n");
	for (size_t i = 0; i < n; i += 64) {
		buf_add(out, b + i, n - i > 64 ? 64 : n - i);
		buf_addch(out, '\n');
	}
	buf_adds(out, ARMOR_END "\n");
	free(b);
}

/* ---- decryption ---- */

struct stanza {
	char **args;        /* args[0] is the type */
	size_t nargs;
	struct buf body;
};

struct header {
	struct stanza st[MAX_STANZAS];
	size_t n;
	size_t mac_len;     /* header bytes the MAC covers (through "---") */
	unsigned char mac[32];
	size_t end;         /* offset of the payload nonce */
};

static void
header_free(struct header *h)
{
	for (size_t i = 0; i < h->n; i++) {
		for (size_t a = 0; a < h->st[i].nargs; a++)
			free(h->st[i].args[a]);
		free(h->st[i].args);
		buf_release(&h->st[i].body);
	}
}

static int
fail(enum age_fail *f, enum age_fail kind, struct err *err, const char *msg)
{
	*f = kind;
	return err_set(err, kind == AGE_FAIL_KEY ? ERR_USAGE : ERR_FAIL, "age: %s",
		       msg);
}

/*
 * The line at *pos: sets line/n and moves *pos past its LF. Header lines
 * must end with LF; loose (the armor) also takes a last line without LF
 * and strips a CR before the LF.
 */
static int
line_at(const char *in, size_t len, size_t *pos, const char **line,
	size_t *n, int loose)
{
	const char *e;

	if (*pos >= len)
		return -1;
	*line = in + *pos;
	e = memchr(*line, '\n', len - *pos);
	if (!e && !loose)
		return -1;
	*n = e ? (size_t)(e - *line) : len - *pos;
	*pos += *n + (e ? 1 : 0);
	if (loose && *n && (*line)[*n - 1] == '\r')
		(*n)--;
	return 0;
}

#define next_line(in, len, pos, line, n) line_at(in, len, pos, line, n, 0)
#define armor_line(in, len, pos, line, n) line_at(in, len, pos, line, n, 1)

static int
valid_log_n(const char *s)
{
	int n;

	/* one or two digits, no leading zero */
	if (s[0] == '0' || strlen(s) > 2 || num_parse_int(s, 1, 99, &n) < 0)
		return -1;
	return n;
}

/* Structural rules of the stanzas we know (FACTS.md section 3). */
static const char *
check_stanza(const struct stanza *s)
{
	struct buf tmp = BUF_INIT;
	const char *bad = NULL;

	if (strcmp(s->args[0], "X25519") == 0) {
		if (s->nargs != 2)
			bad = "X25519 stanza needs exactly one argument";
		else if (b64_decode(&tmp, s->args[1], strlen(s->args[1]), 0) < 0 ||
			 tmp.len != 32)
			bad = "X25519 share is not canonical base64 of 32 bytes";
		else if (s->body.len != FILE_KEY + TAG)
			bad = "X25519 stanza body is not 32 bytes";
	} else if (strcmp(s->args[0], "scrypt") == 0) {
		int log_n;

		if (s->nargs != 3)
			bad = "scrypt stanza needs exactly two arguments";
		else if (b64_decode(&tmp, s->args[1], strlen(s->args[1]), 0) < 0 ||
			 tmp.len != 16)
			bad = "scrypt salt is not canonical base64 of 16 bytes";
		else if ((log_n = valid_log_n(s->args[2])) < 0)
			bad = "scrypt work factor is not a decimal number";
		else if (log_n > AGE_SCRYPT_MAX_LOG_N)
			bad = "scrypt work factor is above 22 (refused: it would "
			      "take too long)";
		else if (s->body.len != FILE_KEY + TAG)
			bad = "scrypt stanza body is not 32 bytes";
	}
	buf_release(&tmp);
	return bad;
}

static int
parse_header(struct header *h, const char *in, size_t len, enum age_fail *f,
	     struct err *err)
{
	size_t pos = 0, n, lstart;
	const char *line, *bad;
	int scrypt = 0;

	if (len == 0)
		return fail(f, AGE_FAIL_HEADER, err, "the file is empty");
	if (next_line(in, len, &pos, &line, &n) < 0 ||
	    n != strlen(VERSION_LINE) || memcmp(line, VERSION_LINE, n) != 0) {
		if (len >= 19 && memcmp(in, "age-encryption.org/", 19) == 0)
			return fail(f, AGE_FAIL_HEADER, err,
				    "unsupported age version (only v1 is known)");
		return fail(f, AGE_FAIL_HEADER, err,
			    "not an age file (no 'age-encryption.org/v1' line)");
	}
	for (;;) {
		lstart = pos;
		if (next_line(in, len, &pos, &line, &n) < 0)
			return fail(f, AGE_FAIL_HEADER, err,
				    "the header is truncated (no '---' MAC line)");
		if (n >= 3 && memcmp(line, "---", 3) == 0) {
			struct buf mac = BUF_INIT;

			if (n != 4 + 43 || line[3] != ' ' ||
			    b64_decode(&mac, line + 4, 43, 0) < 0 || mac.len != 32) {
				buf_release(&mac);
				return fail(f, AGE_FAIL_HEADER, err,
					    "the header MAC line is malformed");
			}
			memcpy(h->mac, mac.ptr, 32);
			buf_release(&mac);
			h->mac_len = lstart + 3;
			h->end = pos;
			break;
		}
		if (n < 4 || memcmp(line, "-> ", 3) != 0)
			return fail(f, AGE_FAIL_HEADER, err,
				    "malformed header line (want '-> ' or '---')");
		if (h->n == MAX_STANZAS)
			return fail(f, AGE_FAIL_HEADER, err, "too many stanzas");
		struct stanza *s = &h->st[h->n++];
		buf_init(&s->body);
		/* Arguments: one or more runs of VCHAR split by single spaces. */
		const char *a = line + 3, *end = line + n;
		while (a <= end) {
			const char *sp = memchr(a, ' ', (size_t)(end - a));
			size_t an = sp ? (size_t)(sp - a) : (size_t)(end - a);

			if (an == 0)
				return fail(f, AGE_FAIL_HEADER, err,
					    "empty stanza argument");
			for (size_t i = 0; i < an; i++)
				if ((unsigned char)a[i] < 0x21 ||
				    (unsigned char)a[i] > 0x7e)
					return fail(f, AGE_FAIL_HEADER, err,
						    "bad character in a stanza "
						    "argument (CRLF line ends?)");
			s->args = xrealloc(s->args, (s->nargs + 1) * sizeof(char *));
			s->args[s->nargs++] = xstrndup(a, an);
			a += an + 1;
			if (!sp)
				break;
		}
		/* Body: full 64-column lines, ended by a shorter (maybe empty) one. */
		struct buf text = BUF_INIT;
		for (;;) {
			if (next_line(in, len, &pos, &line, &n) < 0 || n > 64) {
				buf_release(&text);
				return fail(f, AGE_FAIL_HEADER, err,
					    "stanza body is truncated or has a "
					    "line over 64 columns");
			}
			buf_add(&text, line, n);
			if (n < 64)
				break;
		}
		int bad_b64 = b64_decode(&s->body, text.ptr, text.len, 0) < 0;
		buf_release(&text);
		if (bad_b64)
			return fail(f, AGE_FAIL_HEADER, err,
				    "stanza body is not canonical unpadded base64");
		if ((bad = check_stanza(s)))
			return fail(f, AGE_FAIL_HEADER, err, bad);
		if (strcmp(s->args[0], "scrypt") == 0)
			scrypt++;
	}
	if (h->n == 0)
		return fail(f, AGE_FAIL_HEADER, err, "the header has no stanza");
	if (scrypt && h->n > 1)
		return fail(f, AGE_FAIL_HEADER, err,
			    "an scrypt stanza must be the only stanza");
	return 0;
}

static int
unwrap(unsigned char fk[FILE_KEY], const struct header *h,
       const struct buf *keys, const struct age_keys *k, enum age_fail *f,
       struct err *err)
{
	static const unsigned char zero_nonce[12];
	unsigned char ss[32], salt[64], wrap[32], out[FILE_KEY];
	struct buf tmp = BUF_INIT;
	int r = 1;

	for (size_t i = 0; r > 0 && i < keys->len / 32; i++) {
		const unsigned char *sk = (unsigned char *)keys->ptr + 32 * i;

		if (x25519_public(salt + 32, sk) < 0) {
			r = fail(f, AGE_FAIL_KEY, err, "bad identity");
			break;
		}
		for (size_t s = 0; r > 0 && s < h->n; s++) {
			const struct stanza *st = &h->st[s];

			if (strcmp(st->args[0], "X25519") != 0)
				continue;   /* others are ignored (grease) */
			buf_reset(&tmp);
			b64_decode(&tmp, st->args[1], strlen(st->args[1]), 0);
			memcpy(salt, tmp.ptr, 32);
			if (x25519(ss, sk, salt) < 0) {
				r = fail(f, AGE_FAIL_HEADER, err,
					 "X25519 share is a low-order point");
				break;
			}
			if (hkdf(wrap, ss, 32, salt, 64, X25519_LABEL) == 0 &&
			    aead(0, out, wrap, zero_nonce,
				 (unsigned char *)st->body.ptr, st->body.len) == 0) {
				memcpy(fk, out, FILE_KEY);
				r = 0;
			}
		}
	}
	for (size_t i = 0; r > 0 && i < k->n_passphrases; i++) {
		for (size_t s = 0; r > 0 && s < h->n; s++) {
			const struct stanza *st = &h->st[s];
			int log_n;

			if (strcmp(st->args[0], "scrypt") != 0)
				continue;
			buf_reset(&tmp);
			b64_decode(&tmp, st->args[1], strlen(st->args[1]), 0);
			/* check_stanza refused any other work factor */
			log_n = valid_log_n(st->args[2]);
			if (log_n < 0 || scrypt_wrap_key(wrap, k->passphrases[i],
							 (unsigned char *)tmp.ptr,
							 log_n) < 0) {
				r = fail(f, AGE_FAIL_HEADER, err,
					 "scrypt key derivation failed");
				break;
			}
			if (aead(0, out, wrap, zero_nonce,
				 (unsigned char *)st->body.ptr, st->body.len) == 0) {
				memcpy(fk, out, FILE_KEY);
				r = 0;
			}
		}
	}
	if (r > 0)
		r = fail(f, AGE_FAIL_NO_MATCH, err,
			 k->n_passphrases && !k->n_identities
				 ? "wrong passphrase, or the file was not "
				   "encrypted with one"
				 : "no identity matches any recipient of the file "
				   "(wrong key?)");
	OPENSSL_cleanse(ss, sizeof(ss));
	OPENSSL_cleanse(wrap, sizeof(wrap));
	OPENSSL_cleanse(out, sizeof(out));
	buf_release(&tmp);
	return r;
}

/* Strict PEM (FACTS.md section 5). Appends the binary file to bin. */
static int
dearmor(struct buf *bin, const char *in, size_t len, enum age_fail *f,
	struct err *err)
{
	struct buf text = BUF_INIT;
	size_t pos = 0, n;
	const char *line;
	int r = -1, short_seen = 0;

	while (pos < len && isspace((unsigned char)in[pos]))
		pos++;
	if (armor_line(in, len, &pos, &line, &n) < 0 ||
	    n != strlen(ARMOR_BEGIN) || memcmp(line, ARMOR_BEGIN, n) != 0)
		goto bad;
	for (;;) {
		if (armor_line(in, len, &pos, &line, &n) < 0)
			goto bad;
		if (n == strlen(ARMOR_END) && memcmp(line, ARMOR_END, n) == 0)
			break;
		/* Every line but the last has 64 columns. */
		if (n == 0 || n > 64 || short_seen)
			goto bad;
		if (n < 64)
			short_seen = 1;
		buf_add(&text, line, n);
	}
	for (; pos < len; pos++)
		if (!isspace((unsigned char)in[pos]))
			goto bad;
	if (!text.len || b64_decode(bin, text.ptr, text.len, 1) < 0)
		goto bad;
	r = 0;
	goto out;
bad:
	fail(f, AGE_FAIL_ARMOR, err,
	     "malformed ASCII armor (line lengths, base64, or text around it)");
out:
	buf_release(&text);
	return r;
}

static int
is_armored(const char *in, size_t len)
{
	size_t i = 0;

	while (i < len && isspace((unsigned char)in[i]))
		i++;
	return len - i >= 11 && memcmp(in + i, "-----BEGIN ", 11) == 0;
}

/*
 * Streaming decryption. The header is read up to its MAC line (at most
 * HEADER_MAX bytes), checked and unwrapped before any payload is looked
 * at; then each chunk is read with one byte of look-ahead (a chunk is the
 * last one when nothing follows it) and verified before a byte of it is
 * handed out. The end of the file is only good once age_reader_read
 * returned 0. An armored file is dearmored in memory first (ARMOR_MAX).
 */
#define HEADER_MAX (1u << 20)
#define ARMOR_MAX (256u << 20)
#define READ_STEP 65536

struct age_reader {
	age_source_fn src;
	void *ctx;
	struct buf mem;              /* the dearmored file, when armored */
	size_t mem_off;
	bool use_mem, eof;
	unsigned char *in;           /* raw bytes read ahead */
	size_t in_len, in_cap;
	unsigned char pkey[32];
	uint64_t counter;
	unsigned char *pt;           /* the current chunk's plaintext (wiped) */
	size_t pt_len, pt_off;
	bool final_seen, failed;
	enum age_fail *fail;
};

static int
raw_read(struct age_reader *rd, void *dst, size_t cap, size_t *got,
	 struct err *err)
{
	if (rd->use_mem) {
		size_t n = rd->mem.len - rd->mem_off;

		*got = n < cap ? n : cap;
		memcpy(dst, rd->mem.ptr + rd->mem_off, *got);
		rd->mem_off += *got;
		return 0;
	}
	if (rd->src(rd->ctx, dst, cap, got, err) < 0)
		return -1;
	return 0;
}

/* Append up to READ_STEP bytes to b; sets rd->eof at the end. */
static int
read_more(struct age_reader *rd, struct buf *b, struct err *err)
{
	size_t got;

	buf_grow(b, READ_STEP);
	if (raw_read(rd, b->ptr + b->len, READ_STEP, &got, err) < 0)
		return -1;
	b->len += got;
	b->ptr[b->len] = '\0';
	if (!got)
		rd->eof = true;
	return 0;
}

/* True once b holds a whole "---" MAC line (it starts a line, not the file). */
static bool
header_complete(const struct buf *b)
{
	const char *p = b->ptr, *end = b->ptr + b->len;

	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		p++;
		if (end - p >= 3 && !memcmp(p, "---", 3))
			return memchr(p, '\n', (size_t)(end - p)) != NULL;
	}
	return false;
}

/* Read ahead until CHUNK + TAG + 1 bytes are there or the file ended. */
static int
fill(struct age_reader *rd, struct err *err)
{
	while (!rd->eof && rd->in_len < CHUNK + TAG + 1) {
		size_t got;

		if (raw_read(rd, rd->in + rd->in_len, rd->in_cap - rd->in_len,
			     &got, err) < 0)
			return -1;
		rd->in_len += got;
		if (!got)
			rd->eof = true;
	}
	return 0;
}

static void
consume(struct age_reader *rd, size_t n)
{
	memmove(rd->in, rd->in + n, rd->in_len - n);
	rd->in_len -= n;
}

static int
reader_fail(struct age_reader *rd, enum age_fail kind, struct err *err,
	    const char *msg)
{
	rd->failed = true;
	return fail(rd->fail, kind, err, msg);
}

static int
next_chunk(struct age_reader *rd, struct err *err)
{
	unsigned char cn[12];
	size_t take;

	if (fill(rd, err) < 0) {
		rd->failed = true;
		return -1;
	}
	if (rd->in_len == 0)
		return reader_fail(rd, AGE_FAIL_PAYLOAD, err, rd->counter == 0
				   ? "the file is truncated (no payload)"
				   : "the file is truncated (no final chunk)");
	take = rd->in_len > CHUNK + TAG ? CHUNK + TAG : rd->in_len;
	if (take < TAG)
		return reader_fail(rd, AGE_FAIL_PAYLOAD, err,
				   "the file is truncated (partial chunk)");
	nonce_for(cn, rd->counter, 0);
	if (take < CHUNK + TAG || aead(0, rd->pt, rd->pkey, cn, rd->in, take) < 0) {
		nonce_for(cn, rd->counter, 1);
		if (aead(0, rd->pt, rd->pkey, cn, rd->in, take) < 0)
			return reader_fail(rd, AGE_FAIL_PAYLOAD, err,
					   take < CHUNK + TAG
					   ? "the file is truncated or altered "
					     "(last chunk does not verify)"
					   : "the file is altered (a chunk does "
					     "not verify)");
		if (take == TAG && rd->counter > 0)
			return reader_fail(rd, AGE_FAIL_PAYLOAD, err,
					   "the final chunk is empty");
		rd->final_seen = true;
	}
	rd->pt_len = take - TAG;
	rd->pt_off = 0;
	consume(rd, take);
	rd->counter++;
	return 0;
}

int
age_reader_read(struct age_reader *rd, void *dst, size_t cap, size_t *got,
		struct err *err)
{
	size_t n;

	*got = 0;
	if (rd->failed)
		return err_set(err, ERR_FAIL, "age: the stream already failed");
	while (rd->pt_off == rd->pt_len) {
		if (rd->final_seen) {
			if (fill(rd, err) < 0) {
				rd->failed = true;
				return -1;
			}
			if (rd->in_len)
				return reader_fail(rd, AGE_FAIL_PAYLOAD, err,
						   "data follows the final chunk");
			return 0;
		}
		if (next_chunk(rd, err) < 0)
			return -1;
	}
	n = rd->pt_len - rd->pt_off < cap ? rd->pt_len - rd->pt_off : cap;
	memcpy(dst, rd->pt + rd->pt_off, n);
	rd->pt_off += n;
	*got = n;
	return 0;
}

void
age_reader_free(struct age_reader *rd)
{
	if (!rd)
		return;
	OPENSSL_cleanse(rd->pkey, sizeof(rd->pkey));
	secret_free(rd->pt, CHUNK);
	free(rd->in);
	buf_release(&rd->mem);
	free(rd);
}

/* The first bytes: armored? Then the whole file, dearmored, in memory. */
static int
maybe_dearmor(struct age_reader *rd, struct buf *hb, struct err *err)
{
	struct buf text = BUF_INIT;
	size_t i;
	int r = 0;

	for (;;) {
		for (i = 0; i < hb->len && isspace((unsigned char)hb->ptr[i]); i++)
			;
		if (rd->eof || (i < hb->len && hb->len - i >= 11) ||
		    hb->len > HEADER_MAX)
			break;
		if (read_more(rd, hb, err) < 0)
			return -1;
	}
	if (!is_armored(hb->ptr, hb->len))
		return 0;
	buf_add(&text, hb->ptr, hb->len);
	while (!rd->eof && r == 0) {
		if (text.len > ARMOR_MAX)
			r = fail(rd->fail, AGE_FAIL_ARMOR, err, "an armored file "
				 "over 256 MiB (decrypt it with age, or keep "
				 "backups binary)");
		else
			r = read_more(rd, &text, err);
	}
	if (r == 0 && (r = dearmor(&rd->mem, text.ptr, text.len, rd->fail,
				   err)) == 0) {
		rd->use_mem = true;
		rd->eof = false;
		buf_reset(hb);
		r = read_more(rd, hb, err);
	}
	buf_release(&text);
	return r;
}

int
age_reader_open(struct age_reader **out, const struct age_keys *k,
		age_source_fn src, void *ctx, enum age_fail *f, struct err *err)
{
	struct age_reader *rd = xcalloc(1, sizeof(*rd));
	struct header *h = xcalloc(1, sizeof(*h));
	struct buf keys = BUF_INIT, hb = BUF_INIT;
	unsigned char fk[FILE_KEY], mkey[32], mac[32];
	unsigned int mlen = 32;
	size_t left;
	int r = -1;

	*out = NULL;
	*f = AGE_OK;
	rd->src = src;
	rd->ctx = ctx;
	rd->fail = f;
	for (size_t i = 0; i < k->n_identities; i++)
		if (parse_identities(&keys, k->identities[i], i, err) < 0) {
			*f = AGE_FAIL_KEY;
			goto out;
		}
	if (maybe_dearmor(rd, &hb, err) < 0)
		goto out;
	while (!header_complete(&hb) && !rd->eof && hb.len <= HEADER_MAX)
		if (read_more(rd, &hb, err) < 0)
			goto out;
	if (!header_complete(&hb) && hb.len > HEADER_MAX) {
		fail(f, AGE_FAIL_HEADER, err, "the header is over 1 MiB");
		goto out;
	}
	if (parse_header(h, hb.ptr, hb.len, f, err) < 0 ||
	    unwrap(fk, h, &keys, k, f, err) != 0)
		goto out;
	if (hkdf(mkey, fk, FILE_KEY, NULL, 0, "header") < 0 ||
	    !HMAC(EVP_sha256(), mkey, 32, (const unsigned char *)hb.ptr,
		  h->mac_len, mac, &mlen) ||
	    CRYPTO_memcmp(mac, h->mac, 32) != 0) {
		fail(f, AGE_FAIL_HMAC, err,
		     "the header MAC does not verify (the file was altered)");
		goto out;
	}
	left = hb.len - h->end;
	rd->in_cap = left + 2 * (CHUNK + TAG) + 1;
	rd->in = xmalloc(rd->in_cap);
	memcpy(rd->in, hb.ptr + h->end, left);
	rd->in_len = left;
	if (fill(rd, err) < 0)
		goto out;
	if (rd->in_len < 16) {
		fail(f, AGE_FAIL_HEADER, err,
		     "the file is truncated (payload nonce missing)");
		goto out;
	}
	if (hkdf(rd->pkey, fk, FILE_KEY, rd->in, 16, "payload") < 0) {
		fail(f, AGE_FAIL_PAYLOAD, err, "key derivation failed");
		goto out;
	}
	consume(rd, 16);
	rd->pt = xmalloc(CHUNK);
	*out = rd;
	rd = NULL;
	r = 0;
out:
	OPENSSL_cleanse(fk, sizeof(fk));
	OPENSSL_cleanse(mkey, sizeof(mkey));
	buf_release_secret(&keys);
	buf_release(&hb);
	header_free(h);
	free(h);
	age_reader_free(rd);
	return r;
}

struct mem_src {
	const unsigned char *p;
	size_t len, off;
};

static int
mem_source(void *ctx, void *dst, size_t cap, size_t *got, struct err *err)
{
	struct mem_src *m = ctx;
	size_t n = m->len - m->off < cap ? m->len - m->off : cap;

	(void)err;
	memcpy(dst, m->p + m->off, n);
	m->off += n;
	*got = n;
	return 0;
}

int
age_decrypt_keys(struct buf *out, const void *in, size_t len,
		 const struct age_keys *k, enum age_fail *f, struct err *err)
{
	struct mem_src m = { in, len, 0 };
	struct age_reader *rd;
	size_t got;
	int r;

	if (age_reader_open(&rd, k, mem_source, &m, f, err) < 0)
		return -1;
	do {
		buf_grow(out, CHUNK);
		r = age_reader_read(rd, out->ptr + out->len, CHUNK, &got, err);
		out->len += got;
		out->ptr[out->len] = '\0';
	} while (r == 0 && got);
	age_reader_free(rd);
	return r < 0 ? -1 : 0;
}

static int
decrypt_clean(struct buf *out, const void *in, size_t len,
	      const struct age_keys *k, struct err *err)
{
	struct buf tmp = BUF_INIT;
	enum age_fail f;

	if (age_decrypt_keys(&tmp, in, len, k, &f, err) < 0) {
		buf_release_secret(&tmp);
		return -1;
	}
	buf_add(out, tmp.ptr, tmp.len);
	buf_release_secret(&tmp);
	return 0;
}

int
age_decrypt(struct buf *out, const void *in, size_t len,
	    const char *const *identities, size_t n, struct err *err)
{
	struct age_keys k = { identities, n, NULL, 0 };

	if (n == 0)
		return err_set(err, ERR_USAGE, "age: no identity to decrypt with");
	return decrypt_clean(out, in, len, &k, err);
}

int
age_decrypt_passphrase(struct buf *out, const void *in, size_t len,
		       const char *passphrase, struct err *err)
{
	struct age_keys k = { NULL, 0, &passphrase, 1 };

	return decrypt_clean(out, in, len, &k, err);
}
