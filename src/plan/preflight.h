/*
 * preflight: is Layer 0 (the Proxmox cluster as it stands) ready for this
 * plan? Run by plan and apply before any write, and by 'strata
 * preflight'. Every problem is collected (never the first only), each
 * saying what to fix: the config key to change, or the hypervisor
 * setting with the pveum/pvesh command. Errors stop apply; warnings do
 * not. docs/preflight.md lists the checks.
 *
 *	preflight_needs(cfg, plan, &nodes, &paths);   what to read
 *	layer0_read(pve, &l0, nodes, paths, ...);     provider/proxmox/layer0.h
 *	preflight_check(&pf, cfg, plan, &l0);
 */
#ifndef STRATA_PLAN_PREFLIGHT_H
#define STRATA_PLAN_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "config/config.h"
#include "plan/plan.h"
#include "provider/proxmox/layer0.h"

enum pf_level { PF_ERROR = 0, PF_WARNING };

struct pf_problem {
	enum pf_level level;
	char *check;          /* node, bridge, storage, space, cpu, memory, privilege */
	char *what;           /* what is wrong */
	char *fix;            /* what to do */
};

struct preflight {
	struct pf_problem *v;
	size_t n, errors, warnings;
	size_t nodes_checked, paths_checked;
};

/* The nodes whose bridges and storages the checks read (every node a VM
 * of the plan is on) and the ACL paths whose privileges they need.
 * Caller frees both with preflight_strv_free. */
void preflight_needs(const struct config *cfg, const struct plan *plan,
		     char ***nodes, size_t *n_nodes, char ***paths, size_t *n_paths);
void preflight_strv_free(char **v, size_t n);

/* Check plan against l0 into out (never fails: problems are the result). */
void preflight_check(struct preflight *out, const struct config *cfg,
		     const struct plan *plan, const struct layer0 *l0);
void preflight_release(struct preflight *pf);

/* Human lines ("error: preflight: ... : fix") through util/out. */
void preflight_print(const struct preflight *pf);
/* {"ok", "errors", "warnings", "problems": [{level, check, what, fix}]} */
json_t *preflight_to_json(const struct preflight *pf);

#endif
