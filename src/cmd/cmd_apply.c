#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "phase/phase.h"
#include "util/clock.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata apply ENV [--yes] [--dry-run] [--parallel N] [--timeout D]\n"
	"\n"
	"Make the live state match ENV/config.yml. Generates the Talos files,\n"
	"prints the plan (VM changes, and nodes whose Talos config changed since\n"
	"it was applied), asks for confirmation (unless --yes), then runs the\n"
	"phases in order:\n"
	"  talos-config   secrets (once), machine configs, talosconfig generated\n"
	"  iso            the Talos ISO is in ISO storage (downloaded once)\n"
	"  cidata         each new node's config on a cidata ISO, uploaded\n"
	"                 (proxmox.first_boot: cidata, the default)\n"
	"  vms            VMs created, updated, replaced and deleted, in parallel\n"
	"  start          every VM running\n"
	"  talos-install  each node confirmed over mTLS at its static address\n"
	"                 after installing from its cidata ISO (or, with\n"
	"                 first_boot: maintenance, its config applied in\n"
	"                 maintenance mode); then it boots from disk, ISOs\n"
	"                 detached, the cidata ISO deleted\n"
	"  cidata-sweep   no cidata ISO of this env left in the ISO storage\n"
	"  bootstrap      etcd bootstrapped once on the first control plane\n"
	"  kubernetes     ENV/kubeconfig fetched; every node registered\n"
	"Each step is journaled in ENV/state.json; an interrupted apply (Ctrl-C,\n"
	"kill, lost connection) is resumed by running it again, without\n"
	"duplicating a VM. A second apply on the same ENV refuses while the\n"
	"first holds ENV/.lock.\n"
	"\n"
	"  -y, --yes        do not ask (needed when stdin is not a terminal)\n"
	"  -n, --dry-run    print the phases and what they would do; change nothing\n"
	"  -j, --parallel N at most N VMs at a time (default 16)\n"
	"  -t, --timeout D  bound on each wait for nodes and APIs, e.g. 90s, 10m\n"
	"                   (default 15m)\n"
	"  -h, --help       show this help\n"
	"\n"
	"Exit status: 0 done, 1 failed, 2 usage or config error, 3 interrupted.\n";

static const struct phase *const apply_phases[] = {
	&ph_talos_gen,
	&ph_iso,
	&ph_cidata,
	&ph_vms,
	&ph_start,
	&ph_talos_install,
	&ph_cidata_sweep,
	&ph_talos_bootstrap,
	&ph_kubernetes,
};

int
cmd_apply(int argc, char **argv)
{
	struct apply_ctx c;
	struct env e;
	struct err err = ERR_INIT;
	const char *env = NULL;
	bool yes = false, dry = false;
	long long wait_ms = 15 * 60 * 1000LL;
	size_t talos_changes = 0;
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
		} else if ((!strcmp(argv[i], "-t") || !strcmp(argv[i], "--timeout")) &&
			   i + 1 < argc) {
			wait_ms = clock_parse_duration(argv[++i]);
			if (wait_ms <= 0)
				return cmd_usage_error(usage, "--timeout takes a "
						       "duration such as 90s or 10m");
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
	c.env_dir = e.dir;
	c.wait_ms = wait_ms;
	if ((r = apply_iso_target(&c, &err)) < 0)
		goto fail;
	if ((r = env_plan(&e, &c.st, &c.plan, &err)) < 0)
		goto fail;
	plan_print(&c.plan, stdout, out_color());
	/* Generating is offline and idempotent: do it now, so the changes
	 * to running nodes are known before asking. */
	if (!dry && e.cfg->n_nodes &&
	    (r = talos_gen_for_apply(&c, &err)) < 0)
		goto fail;
	talos_changes = talos_config_changes(&c, stdout);
	fflush(stdout);
	if (c.plan.conflicts) {
		err_set(&err, ERR_FAIL, "%zu VM id conflict%s with VMs strata does "
			"not own; change proxmox.vmid or the VM ids in the config",
			c.plan.conflicts, c.plan.conflicts == 1 ? "" : "s");
		goto fail;
	}
	if (!dry && (c.plan.creates || c.plan.updates || c.plan.replaces ||
		     c.plan.deletes || talos_changes) &&
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
	cidata_release(&c);
	talos_creds_release(&c.creds);
	env_close(&e);
	return rc;
}
