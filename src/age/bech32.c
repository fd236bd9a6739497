/* bech32: BIP173 encoding without the 90-character limit (age keys). */
#include "age/bech32.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t
polymod_step(uint32_t chk, unsigned v)
{
	static const uint32_t gen[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa,
					 0x3d4233dd, 0x2a1462b3 };
	uint32_t top = chk >> 25;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static uint32_t
hrp_polymod(const char *hrp, size_t n)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (unsigned)tolower((unsigned char)hrp[i]) >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (unsigned)tolower((unsigned char)hrp[i]) & 31);
	return chk;
}

char *
bech32_encode(const char *hrp, const void *data, size_t len, int upper)
{
	const unsigned char *p = data;
	size_t hn = strlen(hrp);
	struct buf out = BUF_INIT;
	uint32_t chk = hrp_polymod(hrp, hn), acc = 0;
	int bits = 0;

	for (size_t i = 0; i < hn; i++)
		buf_addch(&out, (char)tolower((unsigned char)hrp[i]));
	buf_addch(&out, '1');
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			unsigned v = (acc >> bits) & 31;
			chk = polymod_step(chk, v);
			buf_addch(&out, charset[v]);
		}
	}
	if (bits > 0) {
		unsigned v = (acc << (5 - bits)) & 31;
		chk = polymod_step(chk, v);
		buf_addch(&out, charset[v]);
	}
	acc = 0;
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		buf_addch(&out, charset[(chk >> (5 * (5 - i))) & 31]);
	if (upper)
		for (size_t i = 0; i < out.len; i++)
			out.ptr[i] = (char)toupper((unsigned char)out.ptr[i]);
	return buf_detach(&out, NULL);
}

int
bech32_decode(struct buf *hrp_out, struct buf *data, const char *s)
{
	size_t n = strlen(s), sep, start = data->len;
	int lower = 0, upper = 0, bits = 0;
	uint32_t chk, acc = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126)
			return -1;
		if (islower(c))
			lower = 1;
		if (isupper(c))
			upper = 1;
	}
	if (lower && upper)
		return -1;
	const char *one = strrchr(s, '1');
	if (!one || one == s || (size_t)(s + n - one) < 7)
		return -1;
	sep = (size_t)(one - s);
	chk = hrp_polymod(s, sep);
	for (size_t i = sep + 1; i < n; i++) {
		const char *pos = strchr(charset, tolower((unsigned char)s[i]));
		if (!pos || !*pos)
			goto bad;
		unsigned v = (unsigned)(pos - charset);
		chk = polymod_step(chk, v);
		if (i + 6 >= n)
			continue;  /* checksum characters */
		acc = (acc << 5) | v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			buf_addch(data, (char)((acc >> bits) & 0xff));
		}
	}
	/* Leftover bits must be fewer than 5 and all zero. */
	if (chk != 1 || bits >= 5 || (acc & ((1u << bits) - 1)) != 0)
		goto bad;
	for (size_t i = 0; i < sep; i++)
		buf_addch(hrp_out, (char)tolower((unsigned char)s[i]));
	return 0;
bad:
	if (data->len > start)
		OPENSSL_cleanse(data->ptr + start, data->len - start);
	data->len = start;
	if (data->cap)
		data->ptr[start] = '\0';
	return -1;
}
