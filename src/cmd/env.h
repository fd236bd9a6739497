/*
 * env: what plan, apply, destroy and status share: an opened environment
 * (config, lock, Proxmox connection) and the plan against live state.
 */
#ifndef STRATA_CMD_ENV_H
#define STRATA_CMD_ENV_H

#include <stdbool.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "plan/plan.h"
#include "state/state.h"
#include "util/err.h"
#include "util/fs.h"

struct pve;
struct pve_opts;
struct pve_conns;

#define ENV_LOCK    0x1   /* take ENV/.lock: the command changes things */
#define ENV_PROXMOX 0x2   /* connect to the Proxmox API */
#define ENV_VMS_OK  0x4   /* vms[] is no error (commands that work for them:
			   * template); apply's refusal of them stays */
#define ENV_PROVIDER 0x8  /* the platform's API if it has one (Proxmox) */

struct env {
	char *dir;
	struct config *cfg;
	struct fs_lock lock;
	char *token;          /* resolved secret; wiped on close */
	char *ca_file;
	/* With ENV_PROXMOX (provider/proxmox/proxmox.h), else NULL */
	struct pve_opts *pve_opts;
	struct pve *pve;
	struct pve_conns *conns;    /* connections of pve_opts' clients */
};

int env_open(struct env *e, const char *env_arg, unsigned flags, struct err *err);
/* Desired VMs with their ids made stable by the journal (plan_stick_ids). */
int env_desired(struct env *e, struct state *st, struct vm_spec **want,
		size_t *nw, struct err *err);
int env_plan(struct env *e, struct state *st, struct plan *plan, struct err *err);
/* The VMs Proxmox holds in or tagged for this environment. */
int observe_env(struct env *e, struct vm_spec **out, size_t *n, struct err *err);
/* The plan on stdout, or as a "plan" event with -o json. */
void env_show_plan(const struct plan *plan, bool json);

/*
 * What apply and destroy did: VMs created, changed (updated or replaced)
 * and deleted, counted from the VM phase's step events as they finish
 * (so also when the command stopped half-way); kept: VMs the plan left
 * unchanged; Talos nodes whose applied config changed (the journal before
 * and after). env_tally_start registers the counting event sink (event_end
 * drops it).
 */
struct env_tally {
	char **talos_before;        /* config_sha256 per config node, or NULL */
	size_t n_talos;
	size_t vm_created, vm_changed, vm_deleted;   /* from events */
	size_t created, changed, deleted, kept, talos_applied;
	bool started;               /* set by the caller once phases ran */
	/* A platform without a VM plan (vps): the line counts machines,
	 * installed (the journal's "installed" appeared in this run), reset
	 * (talos-reset's step events) and the others (unchanged). */
	bool machines;
	const char *provider;       /* "proxmox", "vps" (the summary's) */
	bool *installed_before;
	char *written;              /* nodes rescue-install wrote, "\n"-ended */
	size_t m_installed, m_reset, m_unchanged;
	/* node steps of the rolls done (their "ok" step events) */
	size_t roll_talos, roll_k8s, roll_images;
};
void env_tally_start(struct env_tally *t, struct env *e, struct state *st);
void env_tally_finish(struct env_tally *t, struct env *e, struct state *st,
		      size_t unchanged);
void env_tally_release(struct env_tally *t);
/*
 * The closing line and summary event of apply/destroy: "==> lab: apply
 * complete: 3 VMs created, ... in 42.1s", what was kept; on failure the
 * re-run hint when resumable. result: "done", "dry_run", "refused",
 * "failed", "interrupted". extra (may be NULL) is merged into the event.
 */
void env_summary(const char *command, const char *env_name, const char *env_arg,
		 const char *result, int exit_code, const struct env_tally *t,
		 const char *kept, json_t *extra);

/* Ask on the terminal unless yes; false when not a terminal. */
bool env_confirm(const char *question, bool yes);
/* Start ENV/history's record of this command (state/history.h), with the
 * plan it is about to execute; call once the command goes ahead. */
struct history;
int env_history_open(struct history **out, struct env *e, const char *command,
		     const struct plan *plan, struct err *err);

/*
 * Preflight (env_preflight.c): read Layer 0 for this plan and check it,
 * every problem printed. stop: a problem is an error (apply), else a note
 * says apply would stop (plan). env_preflight_run fills pf and l0 for
 * 'strata preflight' and 'strata hypervisor' (l0_flags: layer0.h).
 */
struct preflight;
struct layer0;
int env_preflight(struct env *e, const struct plan *plan, bool stop, struct err *err);
int env_preflight_run(struct env *e, const struct plan *plan, struct preflight *pf,
		      struct layer0 *l0, unsigned l0_flags, struct err *err);

void env_close(struct env *e);

/* The phase engine's provider for the config's platform (phase/provider.h),
 * or an error saying that command cannot drive that platform yet. */
struct provider;
int cmd_provider(const struct provider **out, const struct config *cfg,
		 const char *command, struct err *err);

#endif
