/* sops: SOPS files on OpenSSL (AES-256-GCM, SHA-512) and our age. */
#include "gitops/sops.h"

#include <libfyaml.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "age/age.h"
#include "util/yaml.h"

#define ENCRYPTED_REGEX "^(data|stringData)$"
#define IV_LEN 32
#define TAG_LEN 16

/* ---- base64, padded (sops uses Go's StdEncoding) ---- */

static void
b64(struct buf *out, const unsigned char *p, size_t n)
{
	buf_grow(out, 4 * ((n + 2) / 3));
	out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->ptr + out->len,
					    p, (int)n);
	out->ptr[out->len] = '\0';
}

static int
unb64(struct buf *out, const char *s, size_t n)
{
	size_t pad = 0;
	int got;

	if (n % 4)
		return -1;
	if (n == 0)
		return 0;
	pad = (s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
	buf_grow(out, n / 4 * 3);
	got = EVP_DecodeBlock((unsigned char *)out->ptr + out->len,
			      (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got < pad)
		return -1;
	out->len += (size_t)got - pad;
	out->ptr[out->len] = '\0';
	return 0;
}

/* ---- AES-256-GCM with a 32-byte IV ---- */

static int
gcm(int enc, unsigned char *out, const unsigned char key[32],
    const unsigned char iv[IV_LEN], const char *aad, const unsigned char *in,
    size_t len, unsigned char tag[TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, ok = 0;

	if (!c || len > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) != 1)
		goto out;
	if (*aad && EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad,
				     (int)strlen(aad)) != 1)
		goto out;
	if (len && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(c, out + n, &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static int
enc_value(struct buf *out, const unsigned char key[32], const char *aad,
	  const char *plain)
{
	size_t n = strlen(plain);
	unsigned char iv[IV_LEN], tag[TAG_LEN], *ct = xmalloc(n + 1);
	int r = -1;

	if (RAND_bytes(iv, IV_LEN) != 1 ||
	    gcm(1, ct, key, iv, aad, (const unsigned char *)plain, n, tag) < 0)
		goto out;
	buf_adds(out, "ENC[AES256_GCM,data:");
	b64(out, ct, n);
	buf_adds(out, ",iv:");
	b64(out, iv, IV_LEN);
	buf_adds(out, ",tag:");
	b64(out, tag, TAG_LEN);
	buf_adds(out, ",type:str]");
	r = 0;
out:
	free(ct);
	return r;
}

/* Parse and decrypt ENC[AES256_GCM,data:D,iv:I,tag:T,type:X]. */
static int
dec_value(struct buf *plain, const unsigned char key[32], const char *aad,
	  const char *s)
{
	struct buf d = BUF_INIT, iv = BUF_INIT, tag = BUF_INIT;
	const char *p, *q, *e;
	int r = -1;

	if (strncmp(s, "ENC[AES256_GCM,data:", 20) != 0)
		return -1;
	p = s + 20;
	if (!(q = strstr(p, ",iv:")) || unb64(&d, p, (size_t)(q - p)) < 0)
		goto out;
	p = q + 4;
	if (!(q = strstr(p, ",tag:")) || unb64(&iv, p, (size_t)(q - p)) < 0 ||
	    iv.len != IV_LEN)
		goto out;
	p = q + 5;
	if (!(q = strstr(p, ",type:")) || unb64(&tag, p, (size_t)(q - p)) < 0 ||
	    tag.len != TAG_LEN)
		goto out;
	if (!(e = strchr(q, ']')) || e[1])
		goto out;
	buf_grow(plain, d.len);
	if (gcm(0, (unsigned char *)plain->ptr + plain->len, key,
		(unsigned char *)iv.ptr, aad, (unsigned char *)d.ptr, d.len,
		(unsigned char *)tag.ptr) < 0) {
		/* Unverified plaintext may have been written: wipe it. */
		OPENSSL_cleanse(plain->ptr + plain->len, d.len);
		plain->ptr[plain->len] = '\0';
		goto out;
	}
	plain->len += d.len;
	plain->ptr[plain->len] = '\0';
	r = 0;
out:
	buf_release(&d);
	buf_release(&iv);
	buf_release(&tag);
	return r;
}

static void
sha512_hex(char out[129], const struct buf *data)
{
	unsigned char md[64];
	unsigned int n;

	/* Fails only without memory (or a broken OpenSSL): die, as
	 * xmalloc does, rather than use an unset digest. */
	if (EVP_Digest(data->ptr, data->len, md, &n, EVP_sha512(), NULL) != 1)
		abort();
	for (int i = 0; i < 64; i++)
		sprintf(out + 2 * i, "%02X", md[i]);
}

static void
rfc3339(char out[32], time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- encrypt ---- */

int
sops_secret_encrypt(struct buf *out, const char *name, const char *ns,
		    const struct sops_entry *e, size_t n,
		    const char *const *recipients, size_t nr, time_t now,
		    struct err *err)
{
	struct buf macin = BUF_INIT, doc = BUF_INIT, ak = BUF_INIT, arm = BUF_INIT;
	unsigned char key[32];
	char when[32], mac[129];
	int r = -1;

	if (nr == 0)
		return err_set(err, ERR_USAGE, "sops: no age recipient");
	for (size_t i = 1; i < n; i++)
		if (strcmp(e[i - 1].key, e[i].key) >= 0)
			return err_set(err, ERR_FAIL, "sops: entries are not in sorted key order");
	if (RAND_bytes(key, sizeof(key)) != 1)
		return err_set(err, ERR_FAIL, "sops: no random bytes");
	rfc3339(when, now);
	/*
	 * The MAC covers every value in document order. Keys are written
	 * sorted at every level: the sops CLI hashes in file order, while
	 * kustomize-controller decrypts the built object marshalled to JSON
	 * (sorted keys); only a sorted file gives both the same MAC.
	 */
	buf_addf(&macin, "v1Secret%s%s", name, ns);
	buf_addf(&doc, "apiVersion: v1\nkind: Secret\nmetadata:\n    name: %s\n"
		 "    namespace: %s\nstringData:\n", name, ns);
	for (size_t i = 0; i < n; i++) {
		char *aad = xasprintf("stringData:%s:", e[i].key);

		buf_addf(&doc, "    %s: ", e[i].key);
		r = enc_value(&doc, key, aad, e[i].value);
		free(aad);
		if (r < 0) {
			err_set(err, ERR_FAIL, "sops: encryption failed");
			goto out;
		}
		buf_addch(&doc, '\n');
		buf_adds(&macin, e[i].value);
	}
	buf_adds(&macin, "Opaque");
	buf_adds(&doc, "type: Opaque\nsops:\n    age:\n");
	for (size_t i = 0; i < nr; i++) {
		buf_reset(&ak);
		buf_reset(&arm);
		if ((r = age_encrypt(&ak, key, sizeof(key), &recipients[i], 1, err)) < 0) {
			err_wrap(err, "sops: data key");
			goto out;
		}
		age_armor(&arm, ak.ptr, ak.len);
		buf_addf(&doc, "        - recipient: %s\n          enc: |\n",
			 recipients[i]);
		for (char *l = arm.ptr; *l;) {
			char *nl = strchr(l, '\n');
			buf_adds(&doc, "            ");
			buf_add(&doc, l, (size_t)(nl - l) + 1);
			l = nl + 1;
		}
	}
	sha512_hex(mac, &macin);
	buf_addf(&doc, "    lastmodified: \"%s\"\n    mac: ", when);
	r = -1;
	if (enc_value(&doc, key, when, mac) < 0) {
		err_set(err, ERR_FAIL, "sops: MAC encryption failed");
		goto out;
	}
	buf_addf(&doc, "\n    encrypted_regex: ^(data|stringData)$\n"
		 "    version: %s\n", SOPS_VERSION);
	buf_add(out, doc.ptr, doc.len);
	r = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	buf_release_secret(&macin);
	buf_release(&doc);
	buf_release(&ak);
	buf_release(&arm);
	return r;
}

/* ---- decrypt ---- */

static const char *
scalar(struct fy_node *n, size_t *len)
{
	if (!n || fy_node_get_type(n) != FYNT_SCALAR)
		return NULL;
	return fy_node_get_scalar(n, len);
}

static char *
scalar_dup(struct fy_node *n)
{
	size_t len;
	const char *s = scalar(n, &len);

	return s ? xstrndup(s, len) : NULL;
}

struct walk {
	const unsigned char *key;
	regex_t re;
	struct buf macin;
	struct sops_plain *out;
	const char *path[32];
	size_t depth;
	int bad;
};

static void
walk_node(struct walk *w, struct fy_node *n, int encrypted)
{
	void *it = NULL;

	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING: {
		struct fy_node_pair *p;

		while ((p = fy_node_mapping_iterate(n, &it)) != NULL && !w->bad) {
			char *k = scalar_dup(fy_node_pair_key(p));

			if (!k || w->depth == 32) {
				free(k);
				w->bad = 1;
				break;
			}
			if (w->depth == 0 && !strcmp(k, "sops")) {
				free(k);
				continue;
			}
			w->path[w->depth++] = k;
			walk_node(w, fy_node_pair_value(p),
				  encrypted || regexec(&w->re, k, 0, NULL, 0) == 0);
			w->depth--;
			free(k);
		}
		break;
	}
	case FYNT_SEQUENCE: {
		struct fy_node *c;

		while ((c = fy_node_sequence_iterate(n, &it)) != NULL && !w->bad)
			walk_node(w, c, encrypted);
		break;
	}
	case FYNT_SCALAR: {
		struct buf path = BUF_INIT, plain = BUF_INIT;
		char *v = scalar_dup(n);

		for (size_t i = 0; i < w->depth; i++)
			buf_addf(&path, "%s:", w->path[i]);
		if (encrypted) {
			if (dec_value(&plain, w->key, path.ptr, v) < 0)
				w->bad = 1;
		} else if (fy_node_get_style(n) == FYNS_PLAIN &&
			   (!strcmp(v, "true") || !strcmp(v, "false"))) {
			buf_adds(&plain, v[0] == 't' ? "True" : "False");
		} else {
			buf_adds(&plain, v);
		}
		free(v);
		buf_add(&w->macin, plain.ptr, plain.len);
		if (path.len)
			path.ptr[--path.len] = '\0';
		w->out->paths = xrealloc(w->out->paths, (w->out->n + 1) * sizeof(char *));
		w->out->values = xrealloc(w->out->values, (w->out->n + 1) * sizeof(char *));
		w->out->paths[w->out->n] = buf_detach(&path, NULL);
		w->out->values[w->out->n++] = buf_detach(&plain, NULL);
		break;
	}
	default:
		break;
	}
}

int
sops_decrypt(struct sops_plain *out, const char *text, size_t len,
	     const char *identity, struct err *err)
{
	struct fy_document *doc = yaml_parse(text, len, err);
	struct fy_node *root, *sops, *age, *c;
	struct buf key = BUF_INIT, mac = BUF_INIT;
	struct walk w = { 0 };
	char *when = NULL, *mac_enc = NULL, *regex = NULL, want[129];
	void *it = NULL;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (!doc)
		return err_wrap(err, "sops: parse");
	root = fy_document_root(doc);
	sops = root ? fy_node_mapping_lookup_by_string(root, "sops", 4) : NULL;
	age = sops ? fy_node_mapping_lookup_by_string(sops, "age", 3) : NULL;
	if (!age || fy_node_get_type(age) != FYNT_SEQUENCE) {
		err_set(err, ERR_FAIL, "sops: no sops.age block (not a sops file with age keys)");
		goto out;
	}
	when = scalar_dup(fy_node_mapping_lookup_by_string(sops, "lastmodified", 12));
	mac_enc = scalar_dup(fy_node_mapping_lookup_by_string(sops, "mac", 3));
	regex = scalar_dup(fy_node_mapping_lookup_by_string(sops, "encrypted_regex", 15));
	if (!when || !mac_enc) {
		err_set(err, ERR_FAIL, "sops: sops.lastmodified or sops.mac is missing");
		goto out;
	}
	while ((c = fy_node_sequence_iterate(age, &it)) != NULL) {
		char *rec = scalar_dup(fy_node_mapping_lookup_by_string(c, "recipient", 9));
		char *enc = scalar_dup(fy_node_mapping_lookup_by_string(c, "enc", 3));
		struct err e2 = ERR_INIT;

		if (rec) {
			out->recipients = xrealloc(out->recipients,
						   (out->nr + 1) * sizeof(char *));
			out->recipients[out->nr++] = rec;
		}
		if (enc && key.len == 0 &&
		    age_decrypt(&key, enc, strlen(enc), &identity, 1, &e2) == 0 &&
		    key.len != 32) {
			buf_release_secret(&key);
		}
		free(enc);
	}
	if (key.len != 32) {
		err_set(err, ERR_FAIL, "sops: the age identity opens none of the %zu data keys", out->nr);
		goto out;
	}
	if (regcomp(&w.re, regex ? regex : ENCRYPTED_REGEX, REG_EXTENDED | REG_NOSUB) != 0) {
		err_set(err, ERR_FAIL, "sops: encrypted_regex does not compile");
		goto out;
	}
	w.key = (unsigned char *)key.ptr;
	w.out = out;
	walk_node(&w, root, 0);
	regfree(&w.re);
	if (w.bad) {
		err_set(err, ERR_FAIL, "sops: a value does not decrypt (altered, or a key path changed)");
		goto out;
	}
	sha512_hex(want, &w.macin);
	if (dec_value(&mac, (unsigned char *)key.ptr, when, mac_enc) < 0 ||
	    mac.len != 128 || CRYPTO_memcmp(mac.ptr, want, 128) != 0) {
		err_set(err, ERR_FAIL, "sops: the MAC does not match (the file was altered)");
		goto out;
	}
	r = 0;
out:
	if (r < 0)
		sops_plain_release(out);
	buf_release_secret(&w.macin);
	buf_release_secret(&key);
	buf_release(&mac);
	free(when);
	free(mac_enc);
	free(regex);
	fy_document_destroy(doc);
	return r;
}

const char *
sops_plain_get(const struct sops_plain *p, const char *path)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->paths[i], path))
			return p->values[i];
	return NULL;
}

void
sops_plain_release(struct sops_plain *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->paths[i]);
		age_free_secret(p->values[i]);
	}
	for (size_t i = 0; i < p->nr; i++)
		free(p->recipients[i]);
	free(p->paths);
	free(p->values);
	free(p->recipients);
	memset(p, 0, sizeof(*p));
}
