/*
 * upgrade: the rules of a Talos or Kubernetes version change, without I/O.
 *
 * Supported paths (FACTS-day2 §4a, §4b): Talos moves within a minor or to
 * the next minor only, never back; Kubernetes the same (go-kubernetes
 * Path.IsSupported: same minor or minor + 1). The installer image a node
 * gets is the one `strata gen` writes into machine.install.image.
 */
#ifndef STRATA_TALOS_UPGRADE_H
#define STRATA_TALOS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "util/err.h"

struct semver {
	int major, minor, patch;
};

/* "v1.12.11" or "1.35.4" (a leading v optional; a pre-release suffix
 * such as "-alpha.1" is ignored). 0, or -1 when it is not a version. */
int semver_parse(struct semver *v, const char *s);
/* <0, 0, >0 as a is before, equal to, after b. */
int semver_cmp(const struct semver *a, const struct semver *b);

/*
 * May a node at `from` go to `to`? 1: yes, and it is a change; 0: the
 * same version; -1: no, why[] says why and what to do instead. what is
 * "Talos" or "Kubernetes" (both follow the same rule).
 */
int upgrade_path(const char *what, const char *from, const char *to,
		 char *why, size_t whylen);

/* The installer image for cfg (machine.install.image): talos.installer_image
 * if given, else the Image Factory's for the schematic and version. Caller
 * frees. */
char *upgrade_installer(const struct config *cfg, struct err *err);

#endif
