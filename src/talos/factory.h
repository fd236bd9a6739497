/*
 * factory: Image Factory schematic ids and URLs.
 *
 * The id is the lowercase hex SHA-256 of the schematic's canonical YAML,
 * the exact bytes go-yaml v4 writes for it (4-space indent, list items
 * indented under their key, empty fields omitted, list order kept).
 * Only the fields strata sets are supported: extraKernelArgs and
 * systemExtensions.officialExtensions.
 */
#ifndef STRATA_TALOS_FACTORY_H
#define STRATA_TALOS_FACTORY_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define FACTORY_HOST "factory.talos.dev"

struct schematic {
	const char *const *kernel_args;
	size_t n_kernel_args;
	const char *const *extensions;   /* "siderolabs/qemu-guest-agent" */
	size_t n_extensions;
};

/* Canonical YAML of the schematic (appended to out). */
int talos_schematic_yaml(struct buf *out, const struct schematic *s,
			 struct err *err);
/* id: 64 lowercase hex digits + NUL. */
int talos_schematic_id(char id[65], const struct schematic *s,
		       struct err *err);
/*
 * POST the schematic's canonical YAML to <base>/schematics, so the factory
 * serves images of it (it serves only schematics it knows; FACTS.md §f),
 * and check that the id it answers is the one strata computes. id: the
 * factory's answer.
 */
int talos_factory_register(const char *base, const struct schematic *s,
			   char id[65], struct err *err);
/* <base>/image/<id>/<ver>/<platform>-amd64.iso; base NULL:
 * https://factory.talos.dev (a trailing / is dropped). */
char *talos_factory_iso_url(const char *base, const char *id,
			    const char *version, const char *platform);
/* factory.talos.dev/<platform>-installer/<id>:<ver> */
char *talos_factory_installer(const char *id, const char *version,
			      const char *platform);

#endif
