/*
 * Shared set-up of the commands that act on an environment: load and
 * check the config (printing its diagnostics), take the env lock, resolve
 * the Proxmox token and connect, read the journal, observe and plan.
 */
#include "cmd/env.h"
#include "state/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phase/phase.h"
#include "phase/provider.h"
#include "plan/observe.h"
#include "provider/proxmox/apply.h"
#include "provider/proxmox/proxmox.h"
#include "trust/trust.h"
#include "util/buf.h"
#include "util/event.h"
#include "util/fs.h"
#include "util/num.h"
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
	r = config_load_env_opts(&e->cfg, e->dir, &diag,
				 (flags & ENV_VMS_OK) ? CONFIG_OFFLINE : 0);
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
	if ((flags & ENV_PROVIDER) && e->cfg->platform == PLATFORM_PROXMOX)
		flags |= ENV_PROXMOX;
	if ((flags & ENV_PROXMOX) && e->cfg->platform != PLATFORM_PROXMOX)
		return err_set(err, ERR_USAGE,
			       "this command needs platform 'proxmox'; '%s' is '%s'",
			       e->cfg->name, platform_name(e->cfg->platform));
	if (flags & ENV_PROXMOX) {
		const struct proxmox_config *px = &e->cfg->proxmox;
		char *ca = NULL;

		if ((r = config_secret_resolve(&e->token, e->cfg, &px->token_secret,
					       "proxmox.token_secret", err)) < 0) {
			/* what the config names is missing: a config error
			 * (exit 2) whether an env var or a file */
			err->code = ERR_USAGE;
			return r;
		}
		if (px->tls.ca_file)
			ca = px->tls.ca_file[0] == '/' ? xstrdup(px->tls.ca_file)
						       : fs_join(e->dir, px->tls.ca_file);
		e->ca_file = ca;
		e->pve_opts = xcalloc(1, sizeof(*e->pve_opts));
		e->pve_opts->endpoint = px->endpoint;
		e->pve_opts->token_id = px->token_id;
		e->pve_opts->token_secret = e->token;
		e->pve_opts->ca_file = ca;
		e->pve_opts->fingerprint = px->tls.fingerprint;
		e->pve_opts->insecure = px->tls.insecure;
		/* STRATA_POLL_MS caps the task poll interval (a debugging knob) */
		if (getenv("STRATA_POLL_MS")) {
			int ms;

			if (num_parse_int(getenv("STRATA_POLL_MS"), 1, 600000,
					  &ms) == 0)
				e->pve_opts->poll_ms = ms;
			else
				out_warn("STRATA_POLL_MS: '%s' is not a number "
					 "of milliseconds from 1 to 600000; "
					 "ignored", getenv("STRATA_POLL_MS"));
		}
		/* Every client of this endpoint (the VM phase makes one per
		 * VM) shares connections and TLS sessions (proxmox.h). */
		e->conns = pve_conns_new();
		e->pve_opts->conns = e->conns;
		if ((r = pve_new(&e->pve, e->pve_opts, err)) < 0)
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
		civm_adopt(st, e->cfg, have, nh);
		r = plan_diff(plan, e->cfg->name, want, nw, have, nh, applied, na, err);
		if (r == 0)
			civm_unconfirmed(st, plan);
		if (r == 0)
			r = civm_plan_check(e->pve, e->cfg, plan, err);
	}
	plan->restart_never = e->cfg->proxmox.restart == RESTART_NEVER;
	if (r == 0 && e->cfg->proxmox.pool)
		r = observe_pool(e->pve, e->cfg->proxmox.pool, plan, err);
	vm_specs_free(want, nw);
	vm_specs_free(have, nh);
	vm_specs_free(applied, na);
	return r;
}

int
observe_env(struct env *e, struct vm_spec **out, size_t *n, struct err *err)
{
	return observe_proxmox_flags(e->pve, e->pve_opts, e->cfg->name,
				     e->cfg->proxmox.vmid_base,
				     e->cfg->proxmox.vmid_count, 0, out, n, err);
}

/* Counts the VM phase's finished items from its step events (their
 * results are the words docs/json.md lists), on vps the nodes
 * rescue-install wrote and talos-reset reset, and the rolls' node steps. */
static void
tally_sink(const json_t *ev, void *arg)
{
	struct env_tally *t = arg;
	const char *text = json_string_value(json_object_get(ev, "text"));
	const char *ph = json_string_value(json_object_get(ev, "phase"));
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *item = json_string_value(json_object_get(ev, "item"));
	const char *roll = json_string_value(json_object_get(ev, "roll"));

	/* a node step of a roll done (phase talos-upgrade, docs/json.md) */
	if (roll && state && !strcmp(state, "ok")) {
		if (!strcmp(roll, "talos_upgrade"))
			t->roll_talos++;
		else if (!strcmp(roll, "kubernetes_upgrade"))
			t->roll_k8s++;
		else if (!strcmp(roll, "image_roll"))
			t->roll_images++;
	}
	if (text && ph && state && !strcmp(ph, "talos-reset") &&
	    !strcmp(state, "ok") && !strcmp(text, "reset"))
		t->m_reset++;
	if (text && ph && state && item && !strcmp(ph, "rescue-install") &&
	    !strcmp(state, "ok") && !strcmp(text, "written")) {
		char *w = xasprintf("%s%s\n", t->written ? t->written : "", item);

		free(t->written);
		t->written = w;
	}
	if (!text || !ph || !state || (strcmp(ph, "vms") && strcmp(ph, "cloud-init-vms")) ||
	    strcmp(state, "ok"))
		return;
	if (!strcmp(text, "created"))
		t->vm_created++;
	else if (!strcmp(text, "updated") || !strcmp(text, "replaced"))
		t->vm_changed++;
	else if (!strcmp(text, "deleted"))
		t->vm_deleted++;
}

int
env_history_open(struct history **out, struct env *e, const char *command,
		 const struct plan *plan, struct err *err)
{
	char *pj = plan ? plan_to_json(plan) : NULL;
	int r;

	r = history_open(out, e->dir, command, e->cfg->name, STRATA_VERSION, pj,
			 e->cfg->history.keep, err);
	free(pj);
	return r;
}

void
env_show_plan(const struct plan *plan, bool json)
{
	if (json) {
		char *s = plan_to_json(plan);

		event_plan(json_loads(s, 0, NULL));
		free(s);
	} else {
		plan_print(plan, stdout, out_color());
		fflush(stdout);
	}
}

void
env_tally_start(struct env_tally *t, struct env *e, struct state *st)
{
	const struct provider *p;
	size_t i;

	memset(t, 0, sizeof(*t));
	event_sink_add(tally_sink, t);
	t->n_talos = e->cfg->n_nodes;
	t->talos_before = xcalloc(t->n_talos + 1, sizeof(char *));
	t->installed_before = xcalloc(t->n_talos + 1, sizeof(bool));
	for (i = 0; i < t->n_talos; i++) {
		t->talos_before[i] = state_talos_get(st, e->cfg->nodes[i].name,
						     "config_sha256");
		t->installed_before[i] = trust_journal_installed(st,
							e->cfg->nodes[i].name);
	}
	p = provider_for(e->cfg->platform);
	t->machines = p && !p->vm_plan;
	t->provider = p ? p->name : NULL;
}

static bool
str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

static bool
written_by(const struct env_tally *t, const char *name)
{
	size_t n = strlen(name);
	const char *p = t->written;

	for (; p && *p; p = strchr(p, '\n') + 1)
		if (!strncmp(p, name, n) && p[n] == '\n')
			return true;
	return false;
}

void
env_tally_finish(struct env_tally *t, struct env *e, struct state *st,
		 size_t unchanged)
{
	size_t i;

	t->created = t->vm_created;
	t->changed = t->vm_changed;
	t->deleted = t->vm_deleted;
	t->kept = unchanged;
	t->talos_applied = 0;
	t->m_installed = 0;
	for (i = 0; i < t->n_talos && i < e->cfg->n_nodes; i++) {
		char *now = state_talos_get(st, e->cfg->nodes[i].name, "config_sha256");

		if (now && str_differs(now, t->talos_before[i]))
			t->talos_applied++;
		free(now);
		if ((!t->installed_before[i] &&
		     trust_journal_installed(st, e->cfg->nodes[i].name)) ||
		    written_by(t, e->cfg->nodes[i].name))
			t->m_installed++;
	}
	t->m_unchanged = e->cfg->n_nodes - (t->m_reset ? t->m_reset
					    : t->m_installed);
}

void
env_tally_release(struct env_tally *t)
{
	size_t i;

	for (i = 0; t->talos_before && i < t->n_talos; i++)
		free(t->talos_before[i]);
	free(t->talos_before);
	free(t->installed_before);
	free(t->written);
	memset(t, 0, sizeof(*t));
}

void
env_summary(const char *command, const char *env_name, const char *env_arg,
	    const char *result, int exit_code, const struct env_tally *t,
	    const char *kept, json_t *extra)
{
	static const struct env_tally zero;
	struct buf b = BUF_INIT;
	double el = event_elapsed();
	bool resumable = t && t->started && (!strcmp(result, "failed") ||
					     !strcmp(result, "interrupted"));
	bool quiet = !t;            /* stopped before looking at anything */
	json_t *ev;

	if (!t)
		t = &zero;
	if (!strcmp(result, "done"))
		buf_addf(&b, "%s complete: ", command);
	else if (!strcmp(result, "dry_run"))
		buf_addf(&b, "dry run done, nothing changed: ");
	else if (!strcmp(result, "refused"))
		buf_addf(&b, "%s not started, nothing changed: ", command);
	else
		buf_addf(&b, "%s %s after ", command, !strcmp(result, "interrupted")
			 ? "interrupted" : "stopped");
	if (strcmp(result, "done") && strcmp(result, "dry_run") &&
	    strcmp(result, "refused"))
		buf_addf(&b, "%.1fs: ", el);
	if (t->machines && !strcmp(command, "destroy"))
		buf_addf(&b, "%zu machine%s reset, %zu unchanged", t->m_reset,
			 t->m_reset == 1 ? "" : "s", t->m_unchanged);
	else if (t->machines)
		buf_addf(&b, "%zu machine%s installed, %zu unchanged",
			 t->m_installed, t->m_installed == 1 ? "" : "s",
			 t->m_unchanged);
	else
		buf_addf(&b, "%zu VM%s created, %zu changed, %zu deleted, %zu unchanged",
			 t->created, t->created == 1 ? "" : "s", t->changed,
			 t->deleted, t->kept);
	if (t->talos_applied)
		buf_addf(&b, "; Talos config applied to %zu node%s", t->talos_applied,
			 t->talos_applied == 1 ? "" : "s");
	if (!strcmp(result, "done") || !strcmp(result, "dry_run"))
		buf_addf(&b, " in %.1fs", el);
	if (kept)
		buf_addf(&b, "; kept %s", kept);
	if (!quiet)
		out_step("%s: %s", env_name ? env_name : env_arg, b.ptr);
	if (resumable)
		out_note("the journal (state.json) holds what was done: run "
			 "'strata %s %s' again to resume", command, env_arg);
	buf_release(&b);
	ev = json_pack("{s:s, s:o, s:s, s:i, s:b, s:{s:I, s:I, s:I, s:I}, s:I, s:f, s:o}",
		       "command", command,
		       "env", env_name ? json_string(env_name) : json_null(),
		       "result", result, "exit_code", exit_code,
		       "resumable", resumable,
		       "vms", "created", (json_int_t)t->created,
		       "changed", (json_int_t)t->changed,
		       "deleted", (json_int_t)t->deleted,
		       "unchanged", (json_int_t)t->kept,
		       "talos_applied", (json_int_t)t->talos_applied,
		       "elapsed_s", el,
		       "kept", kept ? json_string(kept) : json_null());
	/* The same counts on every platform (docs/json.md); "vms" only
	 * where there are VMs. */
	if (t->machines)
		json_object_del(ev, "vms");
	json_object_set_new(ev, "machines", json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I}",
		"provider", t->provider ? json_string(t->provider) : json_null(),
		"created", (json_int_t)(t->machines ? 0 : t->created),
		"changed", (json_int_t)(t->machines ? 0 : t->changed),
		"deleted", (json_int_t)(t->machines ? 0 : t->deleted),
		"installed", (json_int_t)t->m_installed,
		"reset", (json_int_t)t->m_reset,
		"unchanged", (json_int_t)(t->machines ? t->m_unchanged : t->kept)));
	/* apply: the node steps of each roll done in this run */
	if (!strcmp(command, "apply"))
		json_object_set_new(ev, "rolls", json_pack("{s:I, s:I, s:I}",
			"talos_upgrade", (json_int_t)t->roll_talos,
			"kubernetes_upgrade", (json_int_t)t->roll_k8s,
			"image_roll", (json_int_t)t->roll_images));
	if (extra) {
		json_object_update(ev, extra);
		json_decref(extra);
	}
	event_summary(ev);
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
	pve_conns_free(e->conns);
	free(e->pve_opts);
	secret_strfree(e->token);
	free(e->ca_file);
	fs_lock_release(&e->lock);
	fs_root_close();
	config_free(e->cfg);
	free(e->dir);
	memset(e, 0, sizeof(*e));
}

int
cmd_provider(const struct provider **out, const struct config *cfg,
	     const char *command, struct err *err)
{
	if ((*out = provider_for(cfg->platform)) &&
	    (strcmp(command, "destroy") || (*out)->destroy) &&
	    (strcmp(command, "plan") || (*out)->plan_machines) &&
	    (strcmp(command, "status") || (*out)->status_machines))
		return 0;
	return err_set(err, ERR_FAIL, "%s: platform %s cannot be driven yet "
		       "(strata validate says so too); use platform: proxmox",
		       command, platform_name(cfg->platform));
}
