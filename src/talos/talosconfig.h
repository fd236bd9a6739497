/*
 * talosconfig: the Talos client config for one cluster, with an admin
 * client cert (Ed25519, O=os:admin, clientAuth only, 1 year) signed by the
 * OS CA of the secrets bundle.
 *
 * Given the previous talosconfig text, its admin cert and key are reused
 * while the cert is still signed by this OS CA and valid for more than 30
 * days, so regenerating gives the same bytes.
 */
#ifndef STRATA_TALOS_TALOSCONFIG_H
#define STRATA_TALOS_TALOSCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "talos/secrets.h"
#include "util/buf.h"
#include "util/err.h"

struct talosconfig_input {
	const char *context;               /* cluster name */
	const char *const *endpoints;      /* control-plane addresses; n >= 1 */
	size_t n_endpoints;
	const char *const *nodes;          /* n >= 1 */
	size_t n_nodes;
	const char *previous;              /* old talosconfig text or NULL */
	size_t previous_len;
	const char *role;                  /* the cert's role; NULL: os:admin
	                                    * (os:etcd:backup for strata etcd) */
};

int talos_talosconfig_build(struct buf *out, const struct talosconfig_input *in,
			    const struct talos_secrets *s, bool *reused,
			    struct err *err);

#endif
