/*
 * plan and status of platform vps (phase/provider.h plan_machines and
 * status_machines; docs/vps.md): for each node, what apply would do to
 * its server, found read-only; the servers with their Talos, etcd and
 * Kubernetes node.
 */
#ifndef STRATA_PROVIDER_VPS_MACHINES_H
#define STRATA_PROVIDER_VPS_MACHINES_H

#include <stdbool.h>

#include "util/err.h"

struct apply_ctx;
struct env;
struct plan_out;
struct rescue_facts;
struct state;
struct vps_ssh;

int vps_plan_machines(struct env *e, struct state *st, struct plan_out *o,
		      struct err *err);
/*
 * provider.c: SSH to the rescue system as rescue-install does (host key
 * pinned by vps.ssh.host_fingerprint, vps.ssh.key_file), then its probe
 * and the disk checks, read-only. On success *out is the session, for the
 * caller to close (or to write with).
 */
int vps_rescue_look(const struct apply_ctx *c, struct vps_ssh **out,
		    struct rescue_facts *f, struct err *err);
int vps_status_machines(struct env *e, struct state *st, const char *env_arg,
			bool json, bool health);

#endif
