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

/*
 * Expand aliases and merge keys in place, as YAML readers do, so a subtree
 * can be copied out on its own. Refuses, through fn, an alias without its
 * anchor, a merge key on anything but aliases of mappings, and aliases
 * that expand past a bound (a "billion laughs" file). 0 or -1.
 */
int yaml_resolve(struct fy_document *doc, yaml_error_fn fn, void *ctx);

struct fy_diag_cfg;
/* A diagnostics config that prints nothing and has no colours (libfyaml's
 * own default asks whether stderr is a terminal, three times per call). */
void yaml_diag_cfg(struct fy_diag_cfg *c);
/* An empty document for building trees, sharing one quiet diag (for the
 * thread that generates configs; not for concurrent use). */
struct fy_document *yaml_new_document(void);
/* That shared quiet diag (for emitters). */
struct fy_diag *yaml_quiet_diag(void);

#endif
