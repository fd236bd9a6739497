/*
 * num: checked parsing of decimal integers, instead of atoi (which reads
 * "12abc" as 12 and "abc" as 0, so a malformed value passes as a number).
 */
#ifndef STRATA_UTIL_NUM_H
#define STRATA_UTIL_NUM_H

#include <stddef.h>

/*
 * S is a whole decimal number: an optional '-', then digits and nothing
 * else (no blanks, no '+', no empty string), within [MIN, MAX]. Sets *out
 * and returns 0; otherwise -1 and *out is left alone.
 */
int num_parse_int(const char *s, int min, int max, int *out);

/* The same for the first N characters of S (e.g. "8" of "8.4.1"). */
int num_parse_int_n(const char *s, size_t n, int min, int max, int *out);

#endif
