/*
 * plan: what the hypervisor should hold (from the config), what it holds
 * (from Proxmox), and the ordered actions between them.
 *
 * Ownership: a VM belongs to environment E only when all three hold:
 * its tags include "strata-E", its description carries the marker line
 * "managed-by=strata env=E", and its id lies in E's VM id range. A VM that
 * fails any of them is never changed or deleted; if it sits on an id E
 * wants, the plan reports a conflict instead of creating.
 *
 * Change vs drift: both mean "live differs from config". A difference is
 * drift when the live value also differs from what strata last applied
 * (recorded in state.json), i.e. someone changed it in Proxmox by hand.
 */
#ifndef STRATA_PLAN_PLAN_H
#define STRATA_PLAN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"
#include "util/err.h"

/* The properties strata manages on a VM. */
struct vm_spec {
	char *name;
	int vmid;
	char *node;          /* Proxmox node */
	int cores;
	int memory_mib;
	int disk_gib;
	char *mac;           /* upper case, or NULL when Proxmox chooses */
	char *tags;          /* sorted, ';'-separated, lower case */
	char *role;          /* controlplane, worker, vm (observed: from tags) */
	char *status;        /* observed only: running, stopped */
	bool vmid_fixed;     /* desired only: the config names this id */
	bool owned;          /* observed only */
	char *foreign_why;   /* observed only: why it is not ours */
	int pending_cores;   /* observed only: waiting for a restart (0: none) */
	int pending_memory_mib;
	/* cloud-init VMs (role vm, ph_civm.c): the id of the nocloud seed
	 * (desired: from the config; observed: from the seed ISO on ide2)
	 * and the `sshkeys` value as Proxmox holds it */
	char *ci_seed;
	char *ci_keys;
	bool marker;         /* observed only: the description has our marker */
};

enum action_kind {
	ACT_NONE = 0,
	ACT_CREATE,
	ACT_UPDATE,
	ACT_REPLACE,
	ACT_DELETE,
	ACT_CONFLICT,        /* wanted id is held by a VM we do not own */
};

struct field_change {
	const char *field;   /* cores, memory, disk, tags, mac, name, node,
			      * ssh_keys, cloud-init */
	char *from, *to;
	bool drift;
	bool restart;        /* takes effect when the (running) VM restarts */
	bool pending;        /* already pending in Proxmox: nothing to send */
};

#define PLAN_MAX_CHANGES 8

struct action {
	enum action_kind kind;
	struct vm_spec want;     /* empty for delete */
	struct vm_spec have;     /* empty for create */
	struct field_change ch[PLAN_MAX_CHANGES];
	size_t n_ch;
	char *reason;            /* replace/conflict/delete explanation */
	bool restart;            /* some change waits for a restart */
};

struct plan {
	char *env;
	struct action *v;
	size_t n;
	size_t creates, updates, replaces, deletes, conflicts, unchanged;
	size_t restarts;         /* VMs with changes that wait for a restart */
	bool restart_never;      /* proxmox.restart: never (set by the caller) */
	char *pool;              /* proxmox.pool, when the config names one */
	bool pool_missing;       /* not in GET /pools: apply creates it */
};

/* Tags and description marker for environment env. */
char *plan_tags(const char *env, const char *role);
char *plan_marker(const char *env);
/* Does this description carry env's marker line? */
bool plan_has_marker(const char *description, const char *env);

/* Desired VMs from the config, in config order (control planes first). */
int plan_desired(const struct config *cfg, struct vm_spec **out, size_t *n,
		 struct err *err);

/*
 * Keep VM ids stable across config edits: a node whose id the config does
 * not fix keeps the id state.json recorded for its name; new nodes take
 * the lowest id of the range that nobody (config, journal) holds. So
 * shrinking a pool or dropping a node from a list never renumbers the
 * others.
 */
int plan_stick_ids(struct vm_spec *want, size_t nwant,
		   const struct vm_spec *applied, size_t napplied,
		   int base, int count, struct err *err);

/*
 * Diff. `have` are the VMs Proxmox reports (with owned/foreign_why set),
 * `applied` what state.json recorded as last applied (may be NULL/0).
 * Actions come out in a stable order: conflicts, creates and changes in
 * config order, then deletes by vmid.
 */
int plan_diff(struct plan *out, const char *env,
	      const struct vm_spec *want, size_t nwant,
	      const struct vm_spec *have, size_t nhave,
	      const struct vm_spec *applied, size_t napplied, struct err *err);

void plan_print(const struct plan *p, FILE *fp, bool color);
/* JSON document (schema in docs/plan.md). Caller frees. */
char *plan_to_json(const struct plan *p);
/* "create", "update", "replace", "delete", "conflict", "unchanged". */
const char *plan_kind_word(enum action_kind k);

void plan_release(struct plan *p);
void vm_spec_release(struct vm_spec *s);
void vm_specs_free(struct vm_spec *v, size_t n);
void vm_spec_copy(struct vm_spec *dst, const struct vm_spec *src);

/* A vm_spec as a JSON object (json_null() for an empty spec). */
struct json_t;
struct json_t *vm_spec_json(const struct vm_spec *s);

/* For status: one line per VM in have[] with changes pending in Proxmox. */
void plan_print_pending(const struct vm_spec *have, size_t n, bool never,
			FILE *fp);

/* Normalise a tag string the way Proxmox stores it. Caller frees. */
char *plan_normalise_tags(const char *tags);

#endif
