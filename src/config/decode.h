/*
 * decode: walk a libfyaml node tree against a schema (schema.h), filling a
 * struct and reporting every problem to the diag with its position.
 * Internal to the config module.
 */
#ifndef STRATA_CONFIG_DECODE_H
#define STRATA_CONFIG_DECODE_H

#include "config/config.h"
#include "config/schema.h"

struct dctx {
	struct config *cfg;
	struct diag *diag;
};

/* Position of a node: a scalar's own token, else its first key or item. */
void decode_node_pos(struct fy_node *n, int *line, int *col);
void decode_error(struct dctx *c, struct fy_node *n, const char *path,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void decode_warn(struct dctx *c, struct fy_node *n, const char *path,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Decode mapping n into base using schema s. */
void decode_map(struct dctx *c, struct fy_node *n, void *base,
		const struct schema *s, const char *path);
/* Scalar text of n, or NULL (with an error) when n is not a scalar. */
const char *decode_scalar(struct dctx *c, struct fy_node *n, const char *path,
			  const char *want);
/* "a mapping", "a list", "a scalar" or "nothing", for "expected X, got Y". */
const char *decode_kind_name(struct fy_node *n);
/* Edit distance, capped; for "did you mean". */
int decode_distance(const char *a, const char *b);
const char *decode_suggest(const char *word, const char *const *cands, size_t n);

#endif
