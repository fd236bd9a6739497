/*
 * Shared set-up of the commands that act on an environment: load and
 * check the config (printing its diagnostics), take the env lock, resolve
 * the Proxmox token and connect, read the journal, observe and plan.
 */
#include "cmd/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan/observe.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

int
env_open(struct env *e, const char *env_arg, unsigned flags, struct err *err)
{
	struct diag diag;
	int r;

	memset(e, 0, sizeof(*e));
	/* Every command opening an env may load its secrets. */
	if ((r = proc_protect_secrets(err)) < 0)
		return r;
	e->dir = cmd_env_dir(env_arg);
	diag_init(&diag, "config.yml");
	r = config_load_env(&e->cfg, e->dir, &diag);
	if (r < 0 || diag.warnings) {
		diag_print(&diag, stderr);
		if (r < 0)
			diag_summary(&diag, stderr);
	}
	diag_release(&diag);
	if (r < 0)
		return err_set(err, ERR_USAGE, "'%s' has config errors; "
			       "'strata validate %s' lists them", e->dir, env_arg);
	if ((r = fs_root_open(e->dir, false, err)) < 0)
		return r;
	if (flags & ENV_LOCK) {
		if ((r = fs_lock_acquire(&e->lock, e->dir, err)) < 0)
			return r;
	}
	if ((flags & ENV_PROXMOX) && e->cfg->platform != PLATFORM_PROXMOX)
		return err_set(err, ERR_USAGE,
			       "this command needs platform 'proxmox'; '%s' is '%s'",
			       e->cfg->name, platform_name(e->cfg->platform));
	if (flags & ENV_PROXMOX) {
		const struct proxmox_config *px = &e->cfg->proxmox;
		char *ca = NULL;

		if ((r = config_secret_resolve(&e->token, e->cfg, &px->token_secret,
					       "proxmox.token_secret", err)) < 0)
			return r;
		if (px->tls.ca_file)
			ca = px->tls.ca_file[0] == '/' ? xstrdup(px->tls.ca_file)
						       : fs_join(e->dir, px->tls.ca_file);
		e->ca_file = ca;
		e->pve_opts.endpoint = px->endpoint;
		e->pve_opts.token_id = px->token_id;
		e->pve_opts.token_secret = e->token;
		e->pve_opts.ca_file = ca;
		e->pve_opts.fingerprint = px->tls.fingerprint;
		e->pve_opts.insecure = px->tls.insecure;
		if (getenv("STRATA_POLL_MS"))
			e->pve_opts.poll_ms = atol(getenv("STRATA_POLL_MS"));
		if ((r = pve_new(&e->pve, &e->pve_opts, err)) < 0)
			return r;
	}
	return 0;
}

int
env_desired(struct env *e, struct state *st, struct vm_spec **want, size_t *nw,
	    struct err *err)
{
	struct vm_spec *applied = NULL;
	size_t na = 0;
	int r;

	if ((r = plan_desired(e->cfg, want, nw, err)) < 0)
		return r;
	state_vms(st, &applied, &na);
	r = plan_stick_ids(*want, *nw, applied, na, e->cfg->proxmox.vmid_base,
			   e->cfg->proxmox.vmid_count, err);
	vm_specs_free(applied, na);
	return r;
}

int
env_plan(struct env *e, struct state *st, struct plan *plan, struct err *err)
{
	struct vm_spec *want = NULL, *have = NULL, *applied = NULL;
	size_t nw = 0, nh = 0, na = 0;
	int r;

	if ((r = env_desired(e, st, &want, &nw, err)) == 0 &&
	    (r = observe_env(e, &have, &nh, err)) == 0) {
		state_vms(st, &applied, &na);
		r = plan_diff(plan, e->cfg->name, want, nw, have, nh, applied, na, err);
	}
	vm_specs_free(want, nw);
	vm_specs_free(have, nh);
	vm_specs_free(applied, na);
	return r;
}

int
observe_env(struct env *e, struct vm_spec **out, size_t *n, struct err *err)
{
	return observe_proxmox(e->pve, e->cfg->name, e->cfg->proxmox.vmid_base,
			       e->cfg->proxmox.vmid_count, out, n, err);
}

bool
env_confirm(const char *question, bool yes)
{
	char answer[16];

	if (yes)
		return true;
	if (!isatty(STDIN_FILENO)) {
		out_error("not a terminal: pass --yes to confirm");
		return false;
	}
	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		return false;
	return answer[0] == 'y' || answer[0] == 'Y';
}

void
env_close(struct env *e)
{
	pve_free(e->pve);
	secret_strfree(e->token);
	free(e->ca_file);
	fs_lock_release(&e->lock);
	fs_root_close();
	config_free(e->cfg);
	free(e->dir);
	memset(e, 0, sizeof(*e));
}
