#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata plan ENV [-o json]\n"
	"\n"
	"Compare the live Proxmox state with ENV/config.yml and print what\n"
	"apply would do: create, update in place (cores, memory, disk grow,\n"
	"tags, MAC), replace (placement or disk shrink), delete (VMs this\n"
	"environment owns that the config no longer names) and drift (values\n"
	"changed in Proxmox by hand). VMs strata does not own are never\n"
	"touched; one that holds a wanted VM id is reported as a conflict.\n"
	"Reads only: /cluster/resources once, then the config and pending\n"
	"values of owned VMs (and /pools when proxmox.pool is set). A change\n"
	"to a running VM's cores or memory is shown as needing a restart.\n"
	"\n"
	"  -o json     print the plan as JSON (schema in docs/plan.md)\n"
	"  -h, --help  show this help\n";

int
cmd_plan(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct plan plan = { 0 };
	struct err err = ERR_INIT;
	const char *env = NULL;
	int json = 0, i, r, rc = 1;

	if (cmd_wants_help(argc, argv, usage))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, usage)) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[i], usage)) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error(usage, "missing ENV");
	if ((r = env_open(&e, env, ENV_PROXMOX, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = env_plan(&e, &st, &plan, &err)) < 0) {
		out_error("plan '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if (json) {
		char *s = plan_to_json(&plan);

		puts(s);
		free(s);
	} else {
		plan_print(&plan, stdout, out_color());
	}
	rc = 0;
out:
	plan_release(&plan);
	state_release(&st);
	env_close(&e);
	return rc;
}
