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

struct env;
struct state;
struct plan_out;

int vps_plan_machines(struct env *e, struct state *st, struct plan_out *o,
		      struct err *err);
int vps_status_machines(struct env *e, struct state *st, const char *env_arg,
			bool json, bool health);

#endif
