/*
 * envrun: what apply (and restore's DR apply) and destroy hold while they
 * run the provider's phases, opened and closed the same way: the
 * environment and its journal, the provider and its own part of the run
 * (ctx_open), the VM plan, the tally and the history record.
 *
 * Calling sequence: env_run_open (after the command line is parsed; run
 * is zeroed first, so env_run_end is safe from then on), the command's
 * own checks, env_run_provider, the phases; on an error env_run_failed;
 * always env_run_end.
 */
#ifndef STRATA_CMD_ENVRUN_H
#define STRATA_CMD_ENVRUN_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/env.h"
#include "phase/phase.h"
#include "plan/plan.h"
#include "util/err.h"

struct env_run {
	struct apply_ctx c;
	struct env e;
	struct plan noplan;         /* a provider without a VM plan: empty */
	struct plan *plan;          /* the provider's VM plan, else &noplan */
	struct env_tally tally;
	bool tallying;              /* env_tally_start ran */
	struct history *hist;
	struct err err;
};

/* env_open(env_arg, flags), the journal loaded, c given the config and
 * the platform's provider for command (cmd_provider). */
int env_run_open(struct env_run *run, const char *env_arg, unsigned flags,
		 const char *command);
/* The provider's ctx_open, if it has one; run->plan its VM plan, if any. */
int env_run_provider(struct env_run *run);
/* Print "COMMAND 'ENV': error", set *result to "interrupted" or
 * "failed"; returns the exit code (err_exit_code). */
int env_run_failed(struct env_run *run, const char *command,
		   const char *env_arg, const char **result);
/* The tally finished (unchanged: VMs the plan kept), the summary line and
 * event (env_summary, with kept), the event stream ended, and everything
 * released. */
void env_run_end(struct env_run *run, const char *command, const char *env_arg,
		 const char *result, int rc, size_t unchanged, const char *kept);

#endif
