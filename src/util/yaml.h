/*
 * yaml: parse YAML with libfyaml without anything printed.
 *
 * yaml_parse_each hands every parse error to fn (1-based line and column,
 * message without its trailing newline); *ndiag (may be NULL) gets the
 * number of diagnostics libfyaml produced, errors or not, so a caller can
 * tell an empty input (NULL document, no diagnostics) from a broken one.
 * yaml_parse is the common case: the first error as "LINE:COL: message".
 */
#ifndef STRATA_UTIL_YAML_H
#define STRATA_UTIL_YAML_H

#include <stddef.h>

#include "util/err.h"

struct fy_document;

typedef void (*yaml_error_fn)(void *ctx, int line, int col, const char *msg);

struct fy_document *yaml_parse_each(const char *text, size_t len,
				    yaml_error_fn fn, void *ctx, size_t *ndiag);
struct fy_document *yaml_parse(const char *text, size_t len, struct err *err);

#endif
