/*
 * provider: what a platform gives the one phase engine (docs/architecture.md,
 * "One phase engine, two platforms").
 *
 * A provider names its apply and destroy phase lists (its own machine
 * phases with the shared Talos, Kubernetes and addon phases between them)
 * and the few hooks the shared phases need about a node's machine. The
 * shared phases (ph_talos.c, ph_cni.c, ph_gitops.c, addon_job.c) call these
 * hooks and never a provider's own API: Proxmox is src/provider/proxmox/
 * provider.c.
 *
 * A machine is opened per node on that node's worker thread of
 * talos-install and closed on the same thread, so it may hold a client
 * of its own (a Proxmox connection is not shared between threads).
 */
#ifndef STRATA_PHASE_PROVIDER_H
#define STRATA_PHASE_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"
#include "trust/trust.h"
#include "util/err.h"

struct apply_ctx;
struct phase;
struct progress;
struct machine;                 /* the provider's own, opaque here */
struct env;                     /* cmd/env.h: an opened environment */
struct state;

/* Where plan_machines shows its plan: text on fp, or (json) the plan -o
 * json document on fp, or (event) that document as apply's plan event.
 * changes: set to how many machines apply would change (or refuse). */
struct json_t;
struct plan_out {
	FILE *fp;
	bool json;
	bool event;
	size_t changes;
	bool look_rescue;   /* vps, strata plan: SSH to a node's rescue system
			     * to check its disk, read-only (apply's own plan
			     * does not: rescue-install checks it) */
	struct json_t *rolls;       /* borrowed: set as "rolls" in the JSON */
};

struct provider {
	const char *name;           /* "proxmox", "vps" */
	/* apply and destroy plan VMs against the Proxmox API (the plan,
	 * the ISO target, VM id conflicts); false: machines the config
	 * names, nothing to plan. */
	bool vm_plan;
	const struct phase *const *apply;
	size_t n_apply;
	const struct phase *const *destroy;
	size_t n_destroy;           /* destroy NULL: destroy cannot drive it yet */

	/* c->pstate, the provider's own part of an apply or destroy (its
	 * client, its plan, what its phases hand each other), made from
	 * the opened environment once c->cfg is set, and freed (NULL:
	 * the provider has none). */
	int (*ctx_open)(struct apply_ctx *c, struct env *e, struct err *err);
	void (*ctx_close)(struct apply_ctx *c);

	/* The machine that carries node nd (0), or an error naming what is
	 * missing. */
	int (*machine_open)(struct apply_ctx *c, const struct node *nd,
			    struct machine **m, struct err *err);
	void (*machine_close)(struct machine *m);
	/* For messages: "vm 101". */
	const char *(*machine_label)(const struct machine *m);
	/* Where the fresh machine answers in maintenance mode and how that
	 * address was learnt (trust.h weighs it). ERR_NOTFOUND: not known
	 * yet, ask again. */
	int (*discover)(struct apply_ctx *c, struct machine *m, char **ip,
			enum trust_addr *src, struct err *err);
	/* Every node gets its config at boot from the provider, never over
	 * the network in maintenance mode (NULL: never). */
	bool (*config_at_boot)(const struct apply_ctx *c);
	/* This node's boot-time config is still attached (NULL: never). */
	bool (*boot_config_pending)(struct apply_ctx *c, const char *node);
	/* Why a config_at_boot node never came up, after the wait ran out. */
	int (*boot_stuck_error)(const struct apply_ctx *c, struct machine *m,
				const char *took, const struct err *last,
				struct err *err);
	/* The node answers over mTLS from its disk: what the machine needs
	 * after the install (Proxmox: boot from disk, the ISOs detached,
	 * the cidata ISO deleted). Journaled by the provider; idempotent. */
	int (*after_install)(struct apply_ctx *c, struct machine *m,
			     struct progress *pr, size_t idx, struct err *err);

	/*
	 * strata plan ENV (and apply, before it asks, on a platform without
	 * a VM plan): what apply would do to this platform's machines,
	 * found read-only (the journal, the platform's API, a look at each
	 * node's Talos API; nothing written, no config sent). 0, or
	 * negative (err).
	 */
	int (*plan_machines)(struct env *e, struct state *st,
			     struct plan_out *o, struct err *err);
	/*
	 * strata status ENV: the machines next to the config, their Talos,
	 * etcd and Kubernetes node, the addons, and with health the health
	 * gate. Prints its own errors (prefixed "status 'ENV'"); returns the
	 * exit status.
	 */
	int (*status_machines)(struct env *e, struct state *st,
			       const char *env_arg, bool json, bool health);
	/*
	 * destroy of a platform without a VM plan, before it asks: what its
	 * destroy list would do to each node's machine, found read-only
	 * (c->creds loaded), printed on fp, and with json also as the plan
	 * event (docs/json.md). NULL: the nodes are listed by name.
	 */
	void (*destroy_machines)(struct apply_ctx *c, FILE *fp, bool json);
};

/* The provider of a platform, or NULL when apply cannot drive it yet. */
const struct provider *provider_for(enum platform p);

extern const struct provider provider_proxmox;
extern const struct provider provider_vps;
/* provider/vps/provider.c: the rescue write of the metal image. */
extern const struct phase ph_rescue_install;
/* provider/vps/provider.c: destroy by Talos Reset. */
extern const struct phase ph_talos_reset;

#endif
