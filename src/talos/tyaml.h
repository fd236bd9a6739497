/*
 * tyaml: the small set of libfyaml helpers the Talos generators share:
 * multi-document parse and emit (go-yaml-like: block style, 4-space indent,
 * "---" between documents) and node building.
 */
#ifndef STRATA_TALOS_TYAML_H
#define STRATA_TALOS_TYAML_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct fy_document;
struct fy_node;

struct ydocs {
	struct fy_document **v;
	size_t n;
};

#define YDOCS_INIT { NULL, 0 }

/* Parse every document of a YAML stream. Empty documents are skipped. */
int ydocs_parse(struct ydocs *out, const char *text, size_t len,
		struct err *err);
void ydocs_push(struct ydocs *d, struct fy_document *doc);
void ydocs_release(struct ydocs *d);
/* Append a deep copy of every document of src to out (scalars are shared,
 * read-only, between the copies). */
void ydocs_clone(struct ydocs *out, const struct ydocs *src);
/* Emit all documents, block style, 4-space indent, "---" between them. */
int ydocs_emit(struct buf *out, const struct ydocs *d, struct err *err);
/* Semantic equality of two streams (same documents, same trees). */
bool ydocs_equal(const struct ydocs *a, const struct ydocs *b);

/* A new scalar holding a copy of s (an empty string stays a string). */
struct fy_node *y_str(struct fy_document *doc, const char *s);
struct fy_node *y_map(struct fy_document *doc);
struct fy_node *y_seq(struct fy_document *doc);
/* Append key: val to map (val owned by the map afterwards). */
void y_put(struct fy_node *map, const char *key, struct fy_node *val);
void y_puts(struct fy_node *map, const char *key, const char *val);
/*
 * y_puts for key material and tokens: the scalar refers to val instead of
 * copying it (libfyaml frees its copies unwiped), so val must outlive the
 * document; the caller wipes it (secret_strfree).
 */
void y_puts_secret(struct fy_node *map, const char *key, const char *val);
/* The value of key in map, or NULL. */
struct fy_node *y_get(struct fy_node *map, const char *key);
/* Scalar text of map[key] as a NUL-terminated malloc'd string, or NULL. */
char *y_get_str(struct fy_node *map, const char *key);

#endif
