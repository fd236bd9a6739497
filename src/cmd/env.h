/*
 * env: what plan, apply, destroy and status share: an opened environment
 * (config, lock, Proxmox connection) and the plan against live state.
 */
#ifndef STRATA_CMD_ENV_H
#define STRATA_CMD_ENV_H

#include <stdbool.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "plan/plan.h"
#include "provider/proxmox/proxmox.h"
#include "state/state.h"
#include "util/err.h"
#include "util/fs.h"

#define ENV_LOCK    0x1   /* take ENV/.lock: the command changes things */
#define ENV_PROXMOX 0x2   /* connect to the Proxmox API */

struct env {
	char *dir;
	struct config *cfg;
	struct fs_lock lock;
	char *token;          /* resolved secret; wiped on close */
	char *ca_file;
	struct pve_opts pve_opts;
	struct pve *pve;
};

int env_open(struct env *e, const char *env_arg, unsigned flags, struct err *err);
/* Desired VMs with their ids made stable by the journal (plan_stick_ids). */
int env_desired(struct env *e, struct state *st, struct vm_spec **want,
		size_t *nw, struct err *err);
int env_plan(struct env *e, struct state *st, struct plan *plan, struct err *err);
/* The VMs Proxmox holds in or tagged for this environment. */
int observe_env(struct env *e, struct vm_spec **out, size_t *n, struct err *err);
/* Ask on the terminal unless yes; false when not a terminal. */
bool env_confirm(const char *question, bool yes);
void env_close(struct env *e);

#endif
