/*
 * schema: the table that describes config.yml. One entry per key gives its
 * type, where it lands in struct config, its range and its documentation,
 * so decoding, unknown-key suggestions and `strata validate --keys` all
 * come from the same place.
 */
#ifndef STRATA_CONFIG_SCHEMA_H
#define STRATA_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

struct fy_node;
struct dctx;

enum ftype {
	T_STR,       /* any scalar string */
	T_NAME,      /* DNS label */
	T_INT,       /* decimal integer within [min, max] */
	T_BOOL,      /* true / false */
	T_ENUM,      /* one of enums[], stored as int index */
	T_IPV4,
	T_CIDR,
	T_MAC,
	T_URL,       /* http(s):// URL */
	T_MIB,       /* size stored in MiB: 4096, "4GiB", "512MiB" */
	T_GIB,       /* size stored in GiB: 64, "64GiB", "1TiB" */
	T_STRLIST,   /* list of strings (a single string is refused) */
	T_STR_OR_LIST, /* one string or a list of strings */
	T_SECRET,    /* "${VAR}", "file:PATH" or a literal */
	T_DURATION,  /* Go duration: 30s, 10m, 1h30m */
	T_MAP,       /* nested mapping described by sub, at base + off */
	T_LIST,      /* sequence of sub mappings; pointer at off, size_t count at off2 */
	T_CUSTOM,    /* decoded by fn */
};

#define F_REQUIRED 0x1

struct schema;

struct field {
	const char *key;
	enum ftype type;
	size_t off;
	size_t off2;
	const struct schema *sub;
	long min, max;
	const char *const *enums;
	unsigned flags;
	int (*fn)(struct dctx *c, struct fy_node *n, void *dst, const char *path);
	const char *doc;
};

struct schema {
	const char *what;
	const struct field *fields;
	size_t elem_size;            /* for T_LIST elements */
};

extern const struct schema config_schema;

/* Print every key with its type and documentation (docs/config.md source). */
void schema_print_keys(FILE *fp);

#endif
