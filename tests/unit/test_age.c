/*
 * age: Bech32 key encodings from the spec, every C2SP test kit vector with
 * its expected outcome and payload hash, round trips (empty, one byte,
 * chunk boundaries, passphrase), interoperability with Debian's `age` CLI
 * in both directions, and clear failures for a wrong key or a cut file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "age/age.h"
#include "age/bech32.h"
#include "util/fs.h"
#include "testutil.h"

#define KIT SRCDIR "/../shared/reference/age/testkit"
#define KIT_ID "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/strata-age-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	return tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static void
test_age__bech32_spec_examples(void **state)
{
	struct err err = ERR_INIT;
	struct buf hrp = BUF_INIT, data = BUF_INIT;
	char *rec = NULL, *enc;

	(void)state;
	assert_int_equal(age_identity_recipient(&rec,
		"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
		&err), 0);
	assert_string_equal(rec, "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj");
	free(rec);
	assert_int_equal(age_identity_recipient(&rec, KIT_ID, &err), 0);
	assert_string_equal(rec, "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef");
	free(rec);
	assert_int_equal(bech32_decode(&hrp, &data, KIT_ID), 0);
	assert_string_equal(hrp.ptr, "age-secret-key-");
	assert_int_equal(data.len, 32);
	assert_memory_equal(data.ptr,
		"\xca\x16\x26\x25\x2c\x53\xcf\x1a\x4d\xc4\x66\x95\xe7\xfc\xc4\x65"
		"\x94\xcb\x4c\xca\xde\xdb\x67\x12\xdf\xda\x07\x53\xf3\xae\x35\x5e", 32);
	enc = bech32_encode("age-secret-key-", data.ptr, data.len, 1);
	assert_string_equal(enc, KIT_ID);
	free(enc);
	buf_reset(&hrp);
	buf_reset(&data);
	/* Mixed case, a flipped character, a bad character: refused. */
	assert_int_equal(bech32_decode(&hrp, &data,
		"AGE-SECRET-KEY-1egtzVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"), -1);
	assert_int_equal(bech32_decode(&hrp, &data,
		"age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryeq"), -1);
	assert_int_equal(bech32_decode(&hrp, &data,
		"age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryeb"), -1);
	assert_int_equal(data.len, 0);
	/* A wrong hrp is not an identity, and the message names no secret. */
	assert_int_equal(age_identity_recipient(&rec,
		"age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef", &err), -1);
	assert_non_null(strstr(err.msg, "not an age X25519 identity"));
	buf_release(&hrp);
	buf_release(&data);
}

static void
test_age__keygen_shapes(void **state)
{
	struct err err = ERR_INIT;
	char *id, *rec, *rec2;

	(void)state;
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	assert_int_equal(strlen(id), 74);
	assert_memory_equal(id, "AGE-SECRET-KEY-1", 16);
	assert_int_equal(strlen(rec), 62);
	assert_memory_equal(rec, "age1", 4);
	assert_int_equal(age_identity_recipient(&rec2, id, &err), 0);
	assert_string_equal(rec, rec2);
	free(rec2);
	free(rec);
	age_free_secret(id);
}

/* ---- test kit ---- */

struct vector {
	char expect[32];
	char payload[65];
	char *ids[4];
	size_t n_ids;
	char *pws[4];
	size_t n_pws;
	int zlib;
	int unknown;
	struct buf body;
};

static void
vector_free(struct vector *v)
{
	for (size_t i = 0; i < v->n_ids; i++)
		free(v->ids[i]);
	for (size_t i = 0; i < v->n_pws; i++)
		free(v->pws[i]);
	buf_release(&v->body);
}

static void
load_vector(struct vector *v, const struct buf *raw)
{
	const char *p = raw->ptr, *end = raw->ptr + raw->len;

	memset(v, 0, sizeof(*v));
	buf_init(&v->body);
	while (p < end && *p != '\n') {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(e - p));
		size_t kn = (size_t)(colon - p);
		char *val = xstrndup(colon + 2, (size_t)(e - colon - 2));

		assert_non_null(e);
		assert_non_null(colon);
		if (kn == 6 && !memcmp(p, "expect", 6))
			snprintf(v->expect, sizeof(v->expect), "%s", val);
		else if (kn == 7 && !memcmp(p, "payload", 7))
			snprintf(v->payload, sizeof(v->payload), "%s", val);
		else if (kn == 8 && !memcmp(p, "identity", 8) && v->n_ids < 4)
			v->ids[v->n_ids++] = xstrdup(val);
		else if (kn == 10 && !memcmp(p, "passphrase", 10) && v->n_pws < 4)
			v->pws[v->n_pws++] = xstrdup(val);
		else if (kn == 10 && !memcmp(p, "compressed", 10))
			v->zlib = strcmp(val, "zlib") == 0;
		else if (!((kn == 7 && !memcmp(p, "armored", 7)) ||
			   (kn == 8 && !memcmp(p, "file key", 8)) ||
			   (kn == 7 && !memcmp(p, "comment", 7))))
			v->unknown = 1;
		free(val);
		p = e + 1;
	}
	p++;
	if (v->zlib) {
		uLongf n = 4u << 20;
		unsigned char *tmp = xmalloc(n);

		assert_int_equal(uncompress(tmp, &n, (const Bytef *)p,
					    (uLong)(end - p)), Z_OK);
		buf_add(&v->body, tmp, n);
		free(tmp);
	} else {
		buf_add(&v->body, p, (size_t)(end - p));
	}
}

static const char *
fail_name(enum age_fail f)
{
	switch (f) {
	case AGE_OK: return "success";
	case AGE_FAIL_NO_MATCH: return "no match";
	case AGE_FAIL_HMAC: return "HMAC failure";
	case AGE_FAIL_HEADER: return "header failure";
	case AGE_FAIL_PAYLOAD: return "payload failure";
	case AGE_FAIL_ARMOR: return "armor failure";
	case AGE_FAIL_KEY: return "bad key";
	}
	return "?";
}

static void
sha256_hex(char out[65], const void *p, size_t n)
{
	unsigned char md[32];
	unsigned int mdn;

	EVP_Digest(p, n, md, &mdn, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void
test_age__testkit_vectors(void **state)
{
	DIR *d = opendir(KIT);
	struct dirent *de;
	int run = 0, bad = 0;
	size_t manifest = 0;

	(void)state;
	if (!d) {
		print_message("skipped: %s is absent\n", KIT);
		skip();
	}
	{
		struct buf m = BUF_INIT;
		struct err err = ERR_INIT;

		assert_int_equal(fs_read_file(&m, KIT "/MANIFEST.tsv", 1 << 20, &err), 0);
		for (size_t i = 0; i < m.len; i++)
			manifest += m.ptr[i] == '\n';
		manifest--;   /* the column line */
		buf_release(&m);
	}
	while ((de = readdir(d))) {
		struct buf raw = BUF_INIT, out = BUF_INIT;
		struct err err = ERR_INIT;
		struct vector v;
		enum age_fail f;
		char path[512], hash[65];

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "MANIFEST.tsv"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", KIT, de->d_name);
		assert_int_equal(fs_read_file(&raw, path, 8 << 20, &err), 0);
		load_vector(&v, &raw);
		buf_release(&raw);
		if (v.unknown) {
			print_message("ignored %s: unknown keys\n", de->d_name);
			vector_free(&v);
			continue;
		}
		struct age_keys k = { (const char *const *)v.ids, v.n_ids,
				      (const char *const *)v.pws, v.n_pws };
		age_decrypt_keys(&out, v.body.ptr, v.body.len, &k, &f, &err);
		if (strcmp(fail_name(f), v.expect) != 0) {
			print_message("%s: expected '%s', got '%s' (%s)\n",
				      de->d_name, v.expect, fail_name(f), err.msg);
			bad++;
		} else if (v.payload[0]) {
			sha256_hex(hash, out.ptr, out.len);
			if (strcmp(hash, v.payload) != 0) {
				print_message("%s: payload hash %s, want %s\n",
					      de->d_name, hash, v.payload);
				bad++;
			}
		}
		run++;
		buf_release(&out);
		vector_free(&v);
	}
	closedir(d);
	print_message("test kit: %d vectors, %d wrong\n", run, bad);
	assert_int_equal(bad, 0);
	assert_int_equal((size_t)run, manifest);
}

/* ---- round trips and failures ---- */

static void
roundtrip(size_t len)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	unsigned char *in = xmalloc(len + 1);
	char *id, *rec;

	for (size_t i = 0; i < len; i++)
		in[i] = (unsigned char)(i * 7 + (i >> 9));
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	const char *r[1] = { rec }, *ids[1] = { id };
	assert_int_equal(age_encrypt(&enc, in, len, r, 1, &err), 0);
	/* Header + nonce + chunks of 64 KiB + 16 (one empty chunk if empty). */
	size_t chunks = len ? (len + 65535) / 65536 : 1;
	assert_true(enc.len > len + 16 * chunks + 16);
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
	assert_int_equal(dec.len, len);
	if (len)
		assert_memory_equal(dec.ptr, in, len);
	buf_release(&dec);
	/* Armored too. */
	struct buf arm = BUF_INIT;
	age_armor(&arm, enc.ptr, enc.len);
	assert_int_equal(age_decrypt(&dec, arm.ptr, arm.len, ids, 1, &err), 0);
	assert_int_equal(dec.len, len);
	buf_release(&arm);
	buf_release(&dec);
	buf_release(&enc);
	free(rec);
	age_free_secret(id);
	free(in);
}

static void
test_age__roundtrip_sizes(void **state)
{
	(void)state;
	roundtrip(0);
	roundtrip(1);
	roundtrip(65535);
	roundtrip(65536);
	roundtrip(65537);
	roundtrip(3 * 65536 + 100);
}

static int
have_age(void)
{
	return tu_sh("command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1") == 0;
}

/* A source that hands out at most step bytes a call (1..13, varying). */
struct trickle {
	const unsigned char *p;
	size_t len, off, step;
};

static int
trickle_read(void *ctx, void *dst, size_t cap, size_t *got, struct err *err)
{
	struct trickle *t = ctx;
	size_t n = t->step % 13 + 1;

	(void)err;
	t->step++;
	if (n > cap)
		n = cap;
	if (n > t->len - t->off)
		n = t->len - t->off;
	memcpy(dst, t->p + t->off, n);
	t->off += n;
	*got = n;
	return 0;
}

static int
sink_buf(void *ctx, const void *data, size_t len, struct err *err)
{
	(void)err;
	buf_add(ctx, data, len);
	return 0;
}

/* Read everything from a reader over enc given step by step; -1 on failure. */
static int
stream_decrypt(struct buf *out, const struct buf *enc, const char *id,
	       enum age_fail *f)
{
	struct err err = ERR_INIT;
	struct trickle t = { (const unsigned char *)enc->ptr, enc->len, 0, 0 };
	const char *ids[1] = { id };
	struct age_keys k = { ids, 1, NULL, 0 };
	struct age_reader *rd;
	unsigned char piece[1000];
	size_t got;
	int r;

	if (age_reader_open(&rd, &k, trickle_read, &t, f, &err) < 0)
		return -1;
	while ((r = age_reader_read(rd, piece, sizeof(piece), &got, &err)) == 0 && got)
		buf_add(out, piece, got);
	age_reader_free(rd);
	return r;
}

/*
 * The streaming writer and reader: writes of uneven sizes make the same
 * plaintext as one age_encrypt, chunk boundaries included (a last chunk
 * that is exactly full is the final one); a reader fed a few bytes at a
 * time gives it back; a file cut at any chunk boundary, or anywhere, never
 * reaches the verified end; age(1) decrypts what the writer made.
 */
static void
test_age__stream(void **state)
{
	static const size_t sizes[] = { 0, 1, 65536, 65537, 2 * 65536, 3 * 65536 + 5 };
	static const size_t writes[] = { 1, 7, 65535, 3, 4096, 100000 };
	struct err err = ERR_INIT;
	char *id, *rec;

	(void)state;
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	const char *r[1] = { rec };
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = sizes[s], off = 0, w = 0;
		unsigned char *in = xmalloc(len + 1);
		struct buf enc = BUF_INIT, dec = BUF_INIT;
		struct age_writer *aw;
		enum age_fail f;

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 13 + (i >> 11));
		assert_int_equal(age_writer_open(&aw, r, 1, NULL, 0, sink_buf, &enc, &err), 0);
		while (off < len) {
			size_t n = writes[w++ % 6];

			if (n > len - off)
				n = len - off;
			assert_int_equal(age_writer_write(aw, in + off, n, &err), 0);
			off += n;
		}
		assert_int_equal(age_writer_close(aw, &err), 0);
		/* header + nonce + ceil(len / 64 KiB) chunks (one if empty) */
		size_t chunks = len ? (len + 65535) / 65536 : 1;
		const char *mac = strstr(enc.ptr, "\n---");
		assert_non_null(mac);
		size_t hdr = (size_t)(strchr(mac + 1, '\n') + 1 - enc.ptr);
		assert_int_equal(enc.len, hdr + 16 + len + 16 * chunks);
		/* the in-memory decryption agrees */
		const char *ids[1] = { id };
		assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
		assert_int_equal(dec.len, len);
		buf_reset(&dec);
		assert_int_equal(stream_decrypt(&dec, &enc, id, &f), 0);
		assert_int_equal(dec.len, len);
		if (len)
			assert_memory_equal(dec.ptr, in, len);
		/* cut at each chunk boundary and one byte short of the end */
		for (size_t c = 1; c <= chunks; c++) {
			struct buf cut = BUF_INIT;
			size_t at = c < chunks ? hdr + 16 + c * (65536 + 16) : enc.len - 1;

			buf_add(&cut, enc.ptr, at);
			buf_reset(&dec);
			assert_int_equal(stream_decrypt(&dec, &cut, id, &f), -1);
			assert_int_equal(f, AGE_FAIL_PAYLOAD);
			buf_release(&cut);
		}
		if (s == 5 && have_age()) {
			char path[160], key[160];
			struct buf out = BUF_INIT;

			snprintf(path, sizeof(path), "%s/stream.age", tmpdir);
			snprintf(key, sizeof(key), "%s/stream.key", tmpdir);
			assert_int_equal(fs_write_atomic(path, enc.ptr, enc.len, 0600, &err), 0);
			assert_int_equal(fs_write_atomic(key, id, strlen(id), 0600, &err), 0);
			assert_int_equal(tu_sh("age -d -i %s -o %s.out %s", key, path, path), 0);
			strcat(path, ".out");
			assert_int_equal(fs_read_file(&out, path, 1 << 20, &err), 0);
			assert_int_equal(out.len, len);
			assert_memory_equal(out.ptr, in, len);
			buf_release(&out);
		}
		buf_release(&enc);
		buf_release(&dec);
		free(in);
	}
	free(rec);
	age_free_secret(id);
}

static void
test_age__multiple_recipients(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	char *id1, *rec1, *id2, *rec2;

	(void)state;
	assert_int_equal(age_keygen(&id1, &rec1, &err), 0);
	assert_int_equal(age_keygen(&id2, &rec2, &err), 0);
	const char *r[2] = { rec1, rec2 };
	assert_int_equal(age_encrypt(&enc, "hi", 2, r, 2, &err), 0);
	const char *ids[1] = { id2 };
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
	assert_string_equal(dec.ptr, "hi");
	buf_release(&dec);
	/* An identity file's text with comments works as one identity. */
	char *file = xasprintf("# created: now\n# public key: %s\n\n%s\n", rec1, id1);
	ids[0] = file;
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
	assert_string_equal(dec.ptr, "hi");
	age_free_secret(file);
	buf_release(&dec);
	buf_release(&enc);
	/* A bad recipient is named in the error. */
	const char *badr[1] = { "age1notakey" };
	assert_int_equal(age_encrypt(&enc, "hi", 2, badr, 1, &err), -1);
	assert_non_null(strstr(err.msg, "'age1notakey' is not an age X25519 recipient"));
	assert_int_equal(enc.len, 0);
	free(rec1);
	free(rec2);
	age_free_secret(id1);
	age_free_secret(id2);
}

static void
test_age__wrong_identity_and_truncated(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	unsigned char data[100000];
	char *id, *rec, *other, *orec;

	(void)state;
	memset(data, 'x', sizeof(data));
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	assert_int_equal(age_keygen(&other, &orec, &err), 0);
	const char *r[1] = { rec }, *good[1] = { id }, *wrong[1] = { other };
	assert_int_equal(age_encrypt(&enc, data, sizeof(data), r, 1, &err), 0);

	buf_adds(&dec, "keep");
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, wrong, 1, &err), -1);
	assert_string_equal(err.msg, "age: no identity matches any recipient of the file (wrong key?)");
	assert_null(strstr(err.msg, other));
	assert_string_equal(dec.ptr, "keep");   /* nothing written */

	/* Cut in the payload: a payload failure, nothing released. */
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len - 1000, good, 1, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_string_equal(dec.ptr, "keep");
	/* Cut at a chunk boundary: no final chunk. */
	size_t hdr = enc.len - sizeof(data) - 2 * 16 - 16;
	assert_int_equal(age_decrypt(&dec, enc.ptr, hdr + 16 + 65552, good, 1, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	/* Cut in the header. */
	assert_int_equal(age_decrypt(&dec, enc.ptr, 40, good, 1, &err), -1);
	assert_non_null(strstr(err.msg, "header is truncated"));
	assert_string_equal(dec.ptr, "keep");
	/* A flipped payload byte. */
	enc.ptr[enc.len - 5] ^= 1;
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, good, 1, &err), -1);
	assert_non_null(strstr(err.msg, "does not verify"));
	/* A flipped header byte (in the stanza argument) breaks the MAC. */
	enc.ptr[enc.len - 5] ^= 1;
	char *share = strstr(enc.ptr, "X25519 ") + 7;
	share[3] = share[3] == 'A' ? 'B' : 'A';
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, good, 1, &err), -1);
	assert_string_equal(dec.ptr, "keep");
	/* A malformed identity: named by position, never by text. */
	const char *junk[1] = { "AGE-SECRET-KEY-1NOPE" };
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, junk, 1, &err), -1);
	assert_string_equal(err.msg, "age: identity 1, line 1: not an age X25519 identity (AGE-SECRET-KEY-1...)");
	buf_release(&dec);
	buf_release(&enc);
	free(rec);
	free(orec);
	age_free_secret(id);
	age_free_secret(other);
}

static void
test_age__passphrase(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, dec = BUF_INIT;

	(void)state;
	assert_int_equal(age_encrypt_passphrase(&enc, "secret data", 11, "hunter2", 10, &err), 0);
	assert_non_null(strstr(enc.ptr, "-> scrypt "));
	assert_non_null(strstr(enc.ptr, " 10\n"));
	assert_int_equal(age_decrypt_passphrase(&dec, enc.ptr, enc.len, "hunter2", &err), 0);
	assert_string_equal(dec.ptr, "secret data");
	buf_reset(&dec);
	assert_int_equal(age_decrypt_passphrase(&dec, enc.ptr, enc.len, "hunter3", &err), -1);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_int_equal(dec.len, 0);
	assert_true(age_encrypt_passphrase(&enc, "x", 1, "pw", 23, &err) < 0);
	assert_non_null(strstr(err.msg, "out of range"));
	buf_release(&dec);
	buf_release(&enc);
}

/* ---- the age CLI as an oracle (have_age above) ---- */

static void
test_age__cli_encrypts_we_decrypt(void **state)
{
	struct err err = ERR_INIT;
	struct buf in = BUF_INIT, enc = BUF_INIT, dec = BUF_INIT, key = BUF_INIT;
	char path[160], *id, *rec;

	(void)state;
	if (!have_age()) {
		print_message("skipped: the age CLI is not installed\n");
		skip();
	}
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	snprintf(path, sizeof(path), "%s/key.txt", tmpdir);
	assert_int_equal(fs_write_atomic(path, id, strlen(id), 0600, &err), 0);
	/* 150000 bytes: three chunks, binary and armored. */
	assert_int_equal(tu_sh("head -c 150000 /dev/urandom > %s/plain && "
			       "age -r %s -o %s/bin.age %s/plain && "
			       "age -a -r %s -o %s/arm.age %s/plain",
			       tmpdir, rec, tmpdir, tmpdir, rec, tmpdir, tmpdir), 0);
	snprintf(path, sizeof(path), "%s/plain", tmpdir);
	assert_int_equal(fs_read_file(&in, path, 1 << 20, &err), 0);
	const char *ids[1] = { id };
	snprintf(path, sizeof(path), "%s/bin.age", tmpdir);
	assert_int_equal(fs_read_file(&enc, path, 1 << 20, &err), 0);
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
	assert_int_equal(dec.len, in.len);
	assert_memory_equal(dec.ptr, in.ptr, in.len);
	buf_reset(&dec);
	buf_reset(&enc);
	snprintf(path, sizeof(path), "%s/arm.age", tmpdir);
	assert_int_equal(fs_read_file(&enc, path, 1 << 20, &err), 0);
	assert_int_equal(age_decrypt(&dec, enc.ptr, enc.len, ids, 1, &err), 0);
	assert_int_equal(dec.len, in.len);
	assert_memory_equal(dec.ptr, in.ptr, in.len);
	/* A key age-keygen made decrypts what we encrypt, in its file layout. */
	assert_int_equal(tu_sh("age-keygen -o %s/cli.key 2>/dev/null", tmpdir), 0);
	snprintf(path, sizeof(path), "%s/cli.key", tmpdir);
	assert_int_equal(fs_read_file(&key, path, 1 << 20, &err), 0);
	char *crec;
	assert_int_equal(age_identity_recipient(&crec, key.ptr, &err), 0);
	assert_non_null(strstr(key.ptr, crec));   /* matches "# public key:" */
	free(crec);
	buf_release_secret(&key);
	buf_release(&in);
	buf_release(&enc);
	buf_release(&dec);
	free(rec);
	age_free_secret(id);
}

static void
test_age__we_encrypt_cli_decrypts(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, out = BUF_INIT;
	char path[160], *id, *rec, *rec2;
	unsigned char data[200000];

	(void)state;
	if (!have_age()) {
		print_message("skipped: the age CLI is not installed\n");
		skip();
	}
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i ^ (i >> 8));
	/* Our key and a key age-keygen made, both as recipients. */
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	assert_int_equal(tu_sh("age-keygen -o %s/k2.txt 2>/dev/null", tmpdir), 0);
	char line[128] = "";
	snprintf(line, sizeof(line), "age-keygen -y %s/k2.txt", tmpdir);
	FILE *fp = popen(line, "r");
	assert_non_null(fp);
	assert_non_null(fgets(line, sizeof(line), fp));
	pclose(fp);
	line[strcspn(line, "\n")] = '\0';
	rec2 = line;
	const char *r[2] = { rec, rec2 };
	assert_int_equal(age_encrypt(&enc, data, sizeof(data), r, 2, &err), 0);
	snprintf(path, sizeof(path), "%s/ours.age", tmpdir);
	assert_int_equal(fs_write_atomic(path, enc.ptr, enc.len, 0600, &err), 0);
	snprintf(path, sizeof(path), "%s/ours.key", tmpdir);
	assert_int_equal(fs_write_atomic(path, id, strlen(id), 0600, &err), 0);
	assert_int_equal(tu_sh("age -d -i %s/ours.key -o %s/out1 %s/ours.age", tmpdir, tmpdir, tmpdir), 0);
	assert_int_equal(tu_sh("age -d -i %s/k2.txt -o %s/out2 %s/ours.age", tmpdir, tmpdir, tmpdir), 0);
	snprintf(path, sizeof(path), "%s/out1", tmpdir);
	assert_int_equal(fs_read_file(&out, path, 1 << 20, &err), 0);
	assert_int_equal(out.len, sizeof(data));
	assert_memory_equal(out.ptr, data, sizeof(data));
	buf_reset(&out);
	snprintf(path, sizeof(path), "%s/out2", tmpdir);
	assert_int_equal(fs_read_file(&out, path, 1 << 20, &err), 0);
	assert_int_equal(out.len, sizeof(data));
	/* Armored output of ours is read by age too. */
	struct buf arm = BUF_INIT;
	age_armor(&arm, enc.ptr, enc.len);
	snprintf(path, sizeof(path), "%s/ours.asc", tmpdir);
	assert_int_equal(fs_write_atomic(path, arm.ptr, arm.len, 0600, &err), 0);
	assert_int_equal(tu_sh("age -d -i %s/ours.key -o %s/out3 %s/ours.asc", tmpdir, tmpdir, tmpdir), 0);
	/* age refuses a wrong key on our file (exit 1). */
	assert_int_not_equal(tu_sh("age-keygen -o %s/k3.txt 2>/dev/null && "
				   "age -d -i %s/k3.txt -o %s/out4 %s/ours.age 2>/dev/null",
				   tmpdir, tmpdir, tmpdir, tmpdir), 0);
	buf_release(&arm);
	buf_release(&out);
	buf_release(&enc);
	free(rec);
	age_free_secret(id);
}

/*
 * Passphrases: age reads them from the terminal only, so it runs under
 * script(1) with the passphrase typed into its pty.
 */
static void
test_age__cli_passphrase_both_ways(void **state)
{
	struct err err = ERR_INIT;
	struct buf enc = BUF_INIT, out = BUF_INIT;
	char path[160];

	(void)state;
	if (!have_age() || tu_sh("command -v script >/dev/null 2>&1") != 0) {
		print_message("skipped: needs the age CLI and script(1)\n");
		skip();
	}
	/* Ours (work factor 2^10) decrypted by age. */
	assert_int_equal(age_encrypt_passphrase(&enc, "from strata\n", 12, "correct horse", 10, &err), 0);
	snprintf(path, sizeof(path), "%s/pw1.age", tmpdir);
	assert_int_equal(fs_write_atomic(path, enc.ptr, enc.len, 0600, &err), 0);
	assert_int_equal(tu_sh("(sleep 1; printf 'correct horse\\n') | timeout 60 script -qec "
			       "'age -d -o %s/pw1.out %s/pw1.age' /dev/null >/dev/null 2>&1",
			       tmpdir, tmpdir), 0);
	snprintf(path, sizeof(path), "%s/pw1.out", tmpdir);
	assert_int_equal(fs_read_file(&out, path, 4096, &err), 0);
	assert_string_equal(out.ptr, "from strata\n");
	/* age's (its default work factor 2^18) decrypted by us. */
	assert_int_equal(tu_sh("printf 'from age\\n' > %s/pw2.in && "
			       "(sleep 1; printf 'correct horse\\n'; sleep 1; printf 'correct horse\\n') | "
			       "timeout 60 script -qec 'age -p -o %s/pw2.age %s/pw2.in' /dev/null >/dev/null 2>&1",
			       tmpdir, tmpdir, tmpdir), 0);
	buf_reset(&enc);
	buf_reset(&out);
	snprintf(path, sizeof(path), "%s/pw2.age", tmpdir);
	assert_int_equal(fs_read_file(&enc, path, 4096, &err), 0);
	assert_non_null(strstr(enc.ptr, "-> scrypt "));
	assert_int_equal(age_decrypt_passphrase(&out, enc.ptr, enc.len, "correct horse", &err), 0);
	assert_string_equal(out.ptr, "from age\n");
	buf_release(&enc);
	buf_release(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_age__bech32_spec_examples),
		cmocka_unit_test(test_age__keygen_shapes),
		cmocka_unit_test(test_age__testkit_vectors),
		cmocka_unit_test(test_age__roundtrip_sizes),
		cmocka_unit_test(test_age__stream),
		cmocka_unit_test(test_age__multiple_recipients),
		cmocka_unit_test(test_age__wrong_identity_and_truncated),
		cmocka_unit_test(test_age__passphrase),
		cmocka_unit_test(test_age__cli_encrypts_we_decrypt),
		cmocka_unit_test(test_age__we_encrypt_cli_decrypts),
		cmocka_unit_test(test_age__cli_passphrase_both_ways),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
