#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "cmd/machines.h"
#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "util/event.h"
#include "util/out.h"


/* The Proxmox provider's plan_machines (phase/provider.h): the VM plan
 * against the live API, then the preflight of Layer 0. */
int
plan_vms(struct env *e, struct state *st, struct plan_out *o, struct err *err)
{
	struct plan plan = { 0 };
	int r;

	if ((r = env_plan(e, st, &plan, err)) < 0 ||
	    (r = env_preflight(e, &plan, false, err)) < 0)
		goto out;
	o->changes = plan.creates + plan.updates + plan.replaces + plan.deletes +
		     plan.conflicts;
	if (o->json || o->event) {
		char *s = plan_to_json(&plan);
		json_t *doc = json_loads(s, 0, NULL);

		free(s);
		if (doc && o->rolls)
			json_object_set(doc, "rolls", o->rolls);
		if (doc && o->event) {
			json_object_set_new(doc, "node_removals", scale_plan_json(&plan));
			event_plan(doc);
		} else if (doc) {
			json_object_set_new(doc, "node_removals", scale_plan_json(&plan));
			s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			json_decref(doc);
			fprintf(o->fp, "%s\n", s);
			free(s);
		}
	} else {
		plan_print(&plan, o->fp, out_color());
		scale_plan_print(&plan, e->cfg, o->fp);
	}
out:
	plan_release(&plan);
	return r;
}

int
cmd_plan(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct err err = ERR_INIT;
	const struct provider *p = NULL;
	const char *env = NULL;
	int json = 0, i, r, rc = 1;
	json_t *rolls = NULL;

	if (cmd_wants_help(argc, argv, "plan"))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, "plan")) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[i], "plan")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("plan", "missing ENV");
	if ((r = env_open(&e, env, ENV_PROVIDER, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = cmd_provider(&p, e.cfg, "plan", &err)) < 0) {
		out_error("plan '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	/* -o json: the rolls go into the one document ("rolls",
	 * docs/json.md), so they are decided first; their text on stderr */
	if (json && upgrade_check(e.cfg, &st, e.dir, 1, stderr, &rolls, &err) < 0) {
		out_error("plan '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if ((r = p->plan_machines(&e, &st, &(struct plan_out){ .fp = stdout,
							      .json = json,
							      .rolls = rolls,
							      .look_rescue = true },
				  &err)) < 0) {
		out_error("plan '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if (!json && upgrade_check(e.cfg, &st, e.dir, 1, stdout, NULL, &err) < 0) {
		out_error("plan '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	rc = 0;
out:
	json_decref(rolls);
	state_release(&st);
	env_close(&e);
	return rc;
}
