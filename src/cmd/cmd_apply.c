#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "phase/phase.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata apply ENV [--yes] [--dry-run] [--parallel N]\n"
	"\n"
	"Make the live state match ENV/config.yml. Prints the plan, asks for\n"
	"confirmation (unless --yes), then runs the phases in order:\n"
	"  iso     the Talos ISO is in ISO storage (downloaded once)\n"
	"  vms     VMs created, updated, replaced and deleted, in parallel\n"
	"  start   every VM running\n"
	"Each step is journaled in ENV/state.json; an interrupted apply (Ctrl-C,\n"
	"kill, lost connection) is resumed by running it again, without\n"
	"duplicating a VM. A second apply on the same ENV refuses while the\n"
	"first holds ENV/.lock.\n"
	"\n"
	"  -y, --yes        do not ask (needed when stdin is not a terminal)\n"
	"  -n, --dry-run    print the phases and what they would do; change nothing\n"
	"  -j, --parallel N at most N VMs at a time (default 16)\n"
	"  -h, --help       show this help\n"
	"\n"
	"Exit status: 0 done, 1 failed, 2 usage or config error, 3 interrupted.\n";

static const struct phase *const apply_phases[] = {
	&ph_iso,
	&ph_vms,
	&ph_start,
};

int
cmd_apply(int argc, char **argv)
{
	struct apply_ctx c;
	struct env e;
	struct err err = ERR_INIT;
	const char *env = NULL;
	bool yes = false, dry = false;
	int parallel = 16, i, r, rc = 1;

	if (cmd_wants_help(argc, argv, usage))
		return 0;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-y") || !strcmp(argv[i], "--yes")) {
			yes = true;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--dry-run")) {
			dry = true;
		} else if ((!strcmp(argv[i], "-j") || !strcmp(argv[i], "--parallel")) &&
			   i + 1 < argc) {
			parallel = atoi(argv[++i]);
			if (parallel < 1 || parallel > 256)
				return cmd_usage_error(usage, "--parallel takes 1..256");
		} else if ((r = cmd_positional(&env, argv[i], usage)) != 0) {
			return r;
		}
	}
	if (!env)
		return cmd_usage_error(usage, "missing ENV");

	memset(&c, 0, sizeof(c));
	phase_install_signals();
	if ((r = env_open(&e, env, ENV_PROXMOX | (dry ? 0 : ENV_LOCK), &err)) < 0)
		goto fail;
	if ((r = state_load(&c.st, e.dir, &err)) < 0)
		goto fail;
	c.cfg = e.cfg;
	c.pve = e.pve;
	c.pve_opts = e.pve_opts;
	c.dry_run = dry;
	c.max_parallel = parallel;
	if ((r = apply_iso_target(&c, &err)) < 0)
		goto fail;
	if ((r = env_plan(&e, &c.st, &c.plan, &err)) < 0)
		goto fail;
	plan_print(&c.plan, stdout, out_color());
	fflush(stdout);
	if (c.plan.conflicts) {
		err_set(&err, ERR_FAIL, "%zu VM id conflict%s with VMs strata does "
			"not own; change proxmox.vmid or the VM ids in the config",
			c.plan.conflicts, c.plan.conflicts == 1 ? "" : "s");
		goto fail;
	}
	if (!dry && (c.plan.creates || c.plan.updates || c.plan.replaces ||
		     c.plan.deletes) &&
	    !env_confirm("Apply these changes?", yes)) {
		out_note("nothing changed");
		rc = yes || !isatty(0) ? 2 : 1;
		goto out;
	}
	if ((r = phase_run_list(apply_phases,
				sizeof(apply_phases) / sizeof(apply_phases[0]),
				&c, &err)) < 0)
		goto fail;
	out_step("%s: %s", e.cfg->name, dry ? "dry run done, nothing changed"
					    : "apply complete");
	rc = 0;
	goto out;
fail:
	out_error("apply '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	plan_release(&c.plan);
	state_release(&c.st);
	free(c.iso_volid);
	free(c.iso_url);
	env_close(&e);
	return rc;
}
