/*
 * strata preflight ENV [-o json]: the Layer-0 checks plan and apply run,
 * on their own (plan/preflight.h, docs/preflight.md). Read-only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "plan/preflight.h"
#include "provider/proxmox/layer0.h"
#include "util/out.h"

int
cmd_preflight(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct plan plan = { 0 };
	struct preflight pf = { 0 };
	struct layer0 l0;
	struct err err = ERR_INIT;
	const char *env = NULL;
	int json = 0, i, r, rc = 1;

	memset(&l0, 0, sizeof(l0));
	if (cmd_wants_help(argc, argv, "preflight"))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, "preflight")) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[i], "preflight")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("preflight", "missing ENV");
	if ((r = env_open(&e, env, ENV_PROXMOX, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = env_plan(&e, &st, &plan, &err)) < 0 ||
	    (r = env_preflight_run(&e, &plan, &pf, &l0, 0, &err)) < 0) {
		out_error("preflight '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if (json) {
		json_t *o = preflight_to_json(&pf);
		char *s;

		json_object_set_new(o, "nodes", json_integer((json_int_t)pf.nodes_checked));
		json_object_set_new(o, "privilege_paths", json_integer((json_int_t)pf.paths_checked));
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(o);
	} else {
		preflight_print(&pf);
		printf("preflight %s: %zu node%s, %zu privilege path%s checked: ", e.cfg->name,
		       pf.nodes_checked, pf.nodes_checked == 1 ? "" : "s",
		       pf.paths_checked, pf.paths_checked == 1 ? "" : "s");
		if (!pf.errors && !pf.warnings)
			printf("ok\n");
		else
			printf("%zu error%s, %zu warning%s%s\n", pf.errors,
			       pf.errors == 1 ? "" : "s", pf.warnings,
			       pf.warnings == 1 ? "" : "s",
			       pf.errors ? " (apply would stop)" : "");
	}
	rc = pf.errors ? 1 : 0;
out:
	preflight_release(&pf);
	layer0_release(&l0);
	plan_release(&plan);
	state_release(&st);
	env_close(&e);
	return rc;
}
