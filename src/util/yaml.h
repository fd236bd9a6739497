/*
 * yaml: parse YAML with libfyaml without anything printed; the first error
 * comes back as "LINE:COL: message" in err.
 */
#ifndef STRATA_UTIL_YAML_H
#define STRATA_UTIL_YAML_H

#include <stddef.h>

#include "util/err.h"

struct fy_document;

struct fy_document *yaml_parse(const char *text, size_t len, struct err *err);

#endif
