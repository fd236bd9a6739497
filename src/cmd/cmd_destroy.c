#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "cmd/envrun.h"
#include "phase/phase.h"
#include "plan/observe.h"
#include "provider/proxmox/apply.h"
#include "state/history.h"
#include "util/event.h"
#include "util/num.h"
#include "util/out.h"


static const char *const generated[] = {
	"state.json", "secrets.yaml", "talosconfig", "kubeconfig",
	"controlplane.yaml", "worker.yaml", NULL,
};

/* Remove the generated files, relative to the env folder (fs_remove
 * follows no link); nodes/ holds only generated per-node configs. */
static int
purge_state(const char *dir, struct err *err)
{
	char *p;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && generated[i]; i++) {
		p = fs_join(dir, generated[i]);
		r = fs_remove(p, err);
		free(p);
	}
	if (r == 0) {
		p = fs_join(dir, "nodes");
		r = fs_remove(p, err);
		free(p);
	}
	return r < 0 ? err_wrap(err, "purge-state") : 0;
}

int
cmd_destroy(int argc, char **argv)
{
	struct env_run run;
	struct apply_ctx *c = &run.c;
	struct env *e = &run.e;
	struct err *err = &run.err;
	const char *env = NULL, *result = "failed";
	bool yes = false, purge = false;
	size_t i;
	int json = 0, parallel = 32, a, r, rc = 1;

	if (cmd_wants_help(argc, argv, "destroy"))
		return 0;
	for (a = 1; a < argc; a++) {
		if ((r = cmd_output_flag(argc, argv, &a, &json, "destroy")) == 2)
			return r;
		if (r == 1)
			continue;
		if (!strcmp(argv[a], "-y") || !strcmp(argv[a], "--yes"))
			yes = true;
		else if (!strcmp(argv[a], "--purge-state"))
			purge = true;
		else if (!strcmp(argv[a], "-j") || !strcmp(argv[a], "--parallel")) {
			if (a + 1 >= argc)
				return cmd_usage_error("destroy", "%s takes a number", argv[a]);
			if (num_parse_int(argv[++a], 1, 256, &parallel) < 0)
				return cmd_usage_error("destroy", "--parallel takes 1..256, "
						       "not '%s'", argv[a]);
		}
		else if ((r = cmd_positional(&env, argv[a], "destroy")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("destroy", "missing ENV");

	if (json)
		event_sink_add(event_sink_stdout, NULL);
	event_begin("destroy", NULL);
	phase_install_signals();
	if ((r = env_run_open(&run, env, ENV_PROVIDER | ENV_LOCK, "destroy")) < 0 ||
	    (r = env_run_provider(&run)) < 0)
		goto fail;
	/* A hard stop and a delete per VM, their tasks followed per node
	 * (pve_watch): threads mostly wait; each holds one connection. */
	c->max_parallel = parallel;
	/* as many requests in flight as VM jobs run at once (32 to 128) */
	pve_conns_width(e->conns, (size_t)parallel);
	c->env_dir = e->dir;
	env_tally_start(&run.tally, e, &c->st);
	run.tallying = true;
	if (!c->provider->vm_plan) {
		/* Machines the config names (vps): Talos Reset on each. */
		char *tc = fs_join(e->dir, "talosconfig");

		r = fs_exists(tc) ? talos_creds_load(&c->creds, tc, err) : 0;
		free(tc);
		if (r < 0)
			goto fail;
		if (!c->creds.context) {
			out_note("%s has no talosconfig: strata installed nothing "
				 "here; nothing to destroy", e->cfg->name);
		} else {
			FILE *fp = json ? stderr : stdout;  /* -o json: events */

			fprintf(fp, "Talos Reset (reboot into maintenance mode; STATE "
				"and EPHEMERAL wiped, the cluster's data is gone):\n");
			if (c->provider->destroy_machines)
				c->provider->destroy_machines(c, fp, json);
			else
				for (i = 0; i < e->cfg->n_nodes; i++)
					fprintf(fp, "  - %-20s %s\n", e->cfg->nodes[i].name,
						e->cfg->nodes[i].ip);
			fflush(fp);
			if (!env_confirm("Reset these nodes?", yes)) {
				result = "refused";
				rc = yes || !isatty(STDIN_FILENO) ? 2 : 1;
				goto out;
			}
			run.tally.started = true;
		}
		if ((r = env_history_open(&run.hist, e, "destroy", run.plan, err)) < 0)
			goto fail;
		if (c->creds.context &&
		    (r = phase_run_list(c->provider->destroy, c->provider->n_destroy,
					c, err)) < 0)
			goto fail;
		goto forget;
	}
	/* Destroy = a plan with nothing wanted: every owned VM is a delete. */
	{
		struct vm_spec *have = NULL;
		size_t nh = 0;

		/* What waits for a restart does not matter to a delete. */
		r = observe_proxmox_flags(e->pve, e->pve_opts, e->cfg->name,
					  e->cfg->proxmox.vmid_base,
					  e->cfg->proxmox.vmid_count, OBSERVE_NO_PENDING,
					  &have, &nh, err);
		if (r == 0)
			civm_adopt(&c->st, e->cfg, have, nh);
		if (r == 0)
			r = plan_diff(run.plan, e->cfg->name, NULL, 0, have, nh,
				      NULL, 0, err);
		vm_specs_free(have, nh);
		if (r < 0)
			goto fail;
		for (i = 0; i < run.plan->n; i++) {
			free(run.plan->v[i].reason);
			run.plan->v[i].reason =
				xstrdup("destroy: hard stop, delete with purge");
		}
	}
	if (!run.plan->deletes) {
		out_note("%s owns no VMs in Proxmox; nothing to destroy", e->cfg->name);
		if ((r = env_history_open(&run.hist, e, "destroy", run.plan, err)) < 0)
			goto fail;
	} else {
		env_show_plan(run.plan, json);
		if (!env_confirm("Destroy these VMs?", yes)) {
			result = "refused";
			rc = yes || !isatty(STDIN_FILENO) ? 2 : 1;
			goto out;
		}
		run.tally.started = true;
		if ((r = env_history_open(&run.hist, e, "destroy", run.plan, err)) < 0)
			goto fail;
		if ((r = phase_run_list(c->provider->destroy,
					c->provider->n_destroy, c, err)) < 0)
			goto fail;
	}
forget:
	/* The next apply builds a new cluster: install and bootstrap again. */
	if (!purge && (r = state_cluster_forget(&c->st, err)) < 0)
		goto fail;
	if (purge) {
		if ((r = purge_state(e->dir, err)) < 0)
			goto fail;
		out_note("removed generated files and secrets from %s", e->dir);
	}
	result = "done";
	rc = 0;
	goto out;
fail:
	rc = env_run_failed(&run, "destroy", env, &result);
out:
	env_run_end(&run, "destroy", env, result, rc, 0,
		    !strcmp(result, "done")
		    ? (purge ? "config.yml, the patches you wrote and history/"
			     : "secrets.yaml, talosconfig and config.yml (same "
			       "cluster identity on the next apply; --purge-state "
			       "removes them)")
		    : NULL);
	return rc;
}
