/*
 * bech32: the BIP173 encoding as age uses it for keys: no length limit,
 * one case per string, checksum over the lower-case form, 8-bit data with
 * no leftover padding bits.
 */
#ifndef STRATA_AGE_BECH32_H
#define STRATA_AGE_BECH32_H

#include <stddef.h>

#include "util/buf.h"

/*
 * Encode data under hrp. upper != 0 writes the whole string upper case
 * (identities). Returns a malloc'd string; the caller frees (and wipes it
 * when data is secret).
 */
char *bech32_encode(const char *hrp, const void *data, size_t len, int upper);

/*
 * Decode s into the lower-case hrp (appended to hrp_out) and the data bytes
 * (appended to data). Returns 0, or -1 on a malformed string: mixed case,
 * a bad character, a bad checksum or padding bits left over.
 */
int bech32_decode(struct buf *hrp_out, struct buf *data, const char *s);

#endif
