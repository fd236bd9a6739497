#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/env.h"
#include "phase/phase.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata destroy ENV [--yes] [--purge-state]\n"
	"\n"
	"Hard-stop and delete (with purge) every VM this environment owns, all\n"
	"in parallel. A VM is owned only when it carries the strata-ENV tag,\n"
	"strata's marker in its description and an id in the env's range;\n"
	"nothing else is touched. There is no ACPI wait: a guest that ignores\n"
	"shutdown does not hold destroy up.\n"
	"The env folder keeps its secrets (secrets.yaml, talosconfig) so the\n"
	"cluster can be rebuilt with the same identity, unless --purge-state.\n"
	"\n"
	"  -y, --yes          do not ask (needed when stdin is not a terminal)\n"
	"      --purge-state  also remove generated files and secrets from ENV\n"
	"                     (config.yml and patches you wrote stay)\n"
	"  -h, --help         show this help\n";

static const char *const generated[] = {
	"state.json", "secrets.yaml", "talosconfig", "kubeconfig",
	"controlplane.yaml", "worker.yaml", NULL,
};

static void
purge_state(const char *dir)
{
	char *p, *cmd;
	size_t i;

	for (i = 0; generated[i]; i++) {
		p = fs_join(dir, generated[i]);
		unlink(p);
		free(p);
	}
	/* nodes/ holds only generated per-node configs. */
	cmd = xasprintf("rm -rf '%s/nodes'", dir);
	if (system(cmd) != 0)
		out_warn("could not remove %s/nodes", dir);
	free(cmd);
}

int
cmd_destroy(int argc, char **argv)
{
	struct apply_ctx c;
	struct env e;
	struct err err = ERR_INIT;
	const char *env = NULL;
	bool yes = false, purge = false;
	size_t i;
	int r, rc = 1;

	if (cmd_wants_help(argc, argv, usage))
		return 0;
	for (i = 1; i < (size_t)argc; i++) {
		if (!strcmp(argv[i], "-y") || !strcmp(argv[i], "--yes"))
			yes = true;
		else if (!strcmp(argv[i], "--purge-state"))
			purge = true;
		else if ((r = cmd_positional(&env, argv[i], usage)) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error(usage, "missing ENV");

	memset(&c, 0, sizeof(c));
	phase_install_signals();
	if ((r = env_open(&e, env, ENV_PROXMOX | ENV_LOCK, &err)) < 0 ||
	    (r = state_load(&c.st, e.dir, &err)) < 0)
		goto fail;
	c.cfg = e.cfg;
	c.pve = e.pve;
	c.pve_opts = e.pve_opts;
	c.max_parallel = 32;
	/* Destroy = a plan with nothing wanted: every owned VM is a delete. */
	{
		struct vm_spec *have = NULL;
		size_t nh = 0;

		r = observe_env(&e, &have, &nh, &err);
		if (r == 0)
			r = plan_diff(&c.plan, e.cfg->name, NULL, 0, have, nh, NULL, 0, &err);
		vm_specs_free(have, nh);
		if (r < 0)
			goto fail;
		for (i = 0; i < c.plan.n; i++) {
			free(c.plan.v[i].reason);
			c.plan.v[i].reason = xstrdup("destroy: hard stop, delete with purge");
		}
	}
	if (!c.plan.deletes) {
		out_note("%s owns no VMs in Proxmox; nothing to destroy", e.cfg->name);
	} else {
		plan_print(&c.plan, stdout, out_color());
		fflush(stdout);
		if (!env_confirm("Destroy these VMs?", yes)) {
			out_note("nothing changed");
			rc = 2;
			goto out;
		}
		if ((r = phase_run_list((const struct phase *const[]){
					&ph_vms, &ph_cidata_sweep }, 2, &c, &err)) < 0)
			goto fail;
	}
	/* The next apply builds a new cluster: install and bootstrap again. */
	if (!purge && (r = state_cluster_forget(&c.st, &err)) < 0)
		goto fail;
	if (purge) {
		purge_state(e.dir);
		out_note("removed generated files and secrets from %s", e.dir);
	}
	rc = 0;
	goto out;
fail:
	out_error("destroy '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	plan_release(&c.plan);
	state_release(&c.st);
	env_close(&e);
	return rc;
}
