#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "cmd/envrun.h"
#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "provider/proxmox/proxmox.h"
#include "state/history.h"
#include "talos/fwsource.h"
#include "talos/gen.h"
#include "util/clock.h"
#include "util/event.h"
#include "util/num.h"
#include "util/out.h"



/*
 * Machines the config names (vps): a node the journal has installed that
 * the config no longer names would stay in the cluster, with nobody told.
 * Removing one is not done by apply yet (phase remove-nodes follows the
 * VM plan): refuse before anything is contacted.
 */
static int
machines_removed(const struct env *e, struct state *st, struct err *err)
{
	char **names;
	size_t n, i, k;
	int r = 0;

	state_talos_nodes(st, &names, &n);
	for (i = 0; i < n; i++) {
		char *sha = state_talos_get(st, names[i], "config_sha256");
		bool named = false;

		for (k = 0; k < e->cfg->n_nodes && !named; k++)
			named = strcmp(e->cfg->nodes[k].name, names[i]) == 0;
		if (sha && !named && r == 0)
			r = err_set(err, ERR_USAGE, "node '%s' is installed (journal) "
				    "but config.yml no longer names it: removing a "
				    "%s node is not supported by apply yet; put it "
				    "back in config.yml, or take the whole "
				    "environment down with 'strata destroy'",
				    names[i], e->cfg->platform == PLATFORM_VPS
				    ? "vps" : "machine");
		free(sha);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* Without a terminal to ask and without --yes: decide from what apply
 * would change, writing nothing. Returns the number of changes found. */
static size_t
changes_without_writing(struct apply_ctx *c, const struct plan *plan, FILE *fp,
			struct err *err)
{
	struct gen_result res;
	size_t n = plan->creates + plan->updates + plan->replaces +
		   plan->deletes + (plan->pool_missing ? 1 : 0);

	if (n || !c->cfg->n_nodes)
		return n;
	memset(&res, 0, sizeof(res));
	res.check_only = true;
	if (talos_gen(c->cfg, c->env_dir, &res, err) < 0) {
		gen_result_release(&res);
		return 1;
	}
	n = (size_t)res.files_changed;
	if (res.secrets_created) {
		fprintf(fp, "\nTalos files to generate: a new secrets bundle, "
			"machine configs and talosconfig\n");
	} else if (n) {
		size_t nodes = 0, i;

		/* the same list talos_config_changes prints after writing */
		for (i = 0; i < c->cfg->n_nodes; i++) {
			char *rel = xasprintf("nodes/%s.yaml\n", c->cfg->nodes[i].name);

			if (strstr(res.changed, rel)) {
				if (!nodes++)
					fputs(TALOS_CHANGES_HEADER, fp);
				fprintf(fp, "  ~ %-20s nodes/%s.yaml\n",
					c->cfg->nodes[i].name, c->cfg->nodes[i].name);
			}
			free(rel);
		}
		if (!nodes)
			fprintf(fp, "\nTalos files to rewrite: %d of %d\n",
				res.files_changed, res.files_total);
	}
	gen_result_release(&res);
	return n ? n : talos_config_changes(c, fp);
}

/* apply, or (with recover) the DR apply of strata restore --etcd: the
 * same phases, with etcd recovered from the snapshot instead of
 * bootstrapped. what names the command in events, history and summary. */
static int
apply_main(int argc, char **argv, const struct etcd_recovery *recover,
	   const char *what)
{
	struct env_run run;
	struct apply_ctx *c = &run.c;
	struct env *e = &run.e;
	struct err *err = &run.err;
	const char *env = NULL, *result = "failed";
	bool yes = false, dry = false;
	long long wait_ms = 15 * 60 * 1000LL;
	size_t talos_changes = 0, machine_changes = 0, k, n_reinstall = 0;
	char *reinstall[64];
	int parallel = 16, upgrade_parallel = 1, json = 0, i, r, rc = 1;
	FILE *human = stdout;
	json_t *rolls = NULL;

	if (cmd_wants_help(argc, argv, "apply"))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, "apply")) == 2)
			return r;
		if (r == 1)
			continue;
		if (!strcmp(argv[i], "-y") || !strcmp(argv[i], "--yes")) {
			yes = true;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--dry-run")) {
			dry = true;
		} else if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--parallel")) {
			if (i + 1 >= argc)
				return cmd_usage_error("apply", "%s takes a number", argv[i]);
			if (num_parse_int(argv[++i], 1, 256, &parallel) < 0)
				return cmd_usage_error("apply", "--parallel takes 1..256");
			upgrade_parallel = parallel;   /* given: also for upgrades */
		} else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--timeout")) {
			if (i + 1 >= argc)
				return cmd_usage_error("apply", "%s takes a duration", argv[i]);
			wait_ms = clock_parse_duration(argv[++i]);
			if (wait_ms <= 0)
				return cmd_usage_error("apply", "--timeout takes a "
						       "duration such as 90s or 10m");
		} else if (!strcmp(argv[i], "--reinstall")) {
			if (i + 1 >= argc)
				return cmd_usage_error("apply", "%s takes a node name", argv[i]);
			if (n_reinstall == sizeof(reinstall) / sizeof(reinstall[0]))
				return cmd_usage_error("apply", "too many --reinstall");
			reinstall[n_reinstall++] = argv[++i];
		} else if ((r = cmd_positional(&env, argv[i], "apply")) != 0) {
			return r;
		}
	}
	if (!env)
		return cmd_usage_error("apply", "missing ENV");

	if (json) {
		/* stdout is the event stream; everything human goes to stderr */
		event_sink_add(event_sink_stdout, NULL);
		human = stderr;
	}
	event_begin(what, NULL);
	phase_install_signals();
	if ((r = env_run_open(&run, env, ENV_PROVIDER | (dry ? 0 : ENV_LOCK),
			      "apply")) < 0)
		goto fail;
	if (!c->provider->vm_plan && (r = machines_removed(e, &c->st, err)) < 0)
		goto fail;
	/* Before anything is planned or applied: a firewall that would shut
	 * strata out of its own nodes is refused here (talos/fwsource.h). */
	if ((r = talos_firewall_check_sources(e->cfg, err)) < 0)
		goto fail;
	if ((r = env_run_provider(&run)) < 0)
		goto fail;
	c->dry_run = dry;
	c->max_parallel = parallel;
	/* as many requests in flight as VM jobs run at once (32 to 128) */
	pve_conns_width(e->conns, (size_t)parallel);
	c->upgrade_parallel = upgrade_parallel;
	c->env_dir = e->dir;
	c->wait_ms = wait_ms;
	c->etcd_recover = recover;
	for (k = 0; k < n_reinstall; k++) {
		size_t m;

		for (m = 0; m < e->cfg->n_nodes; m++)
			if (!strcmp(e->cfg->nodes[m].name, reinstall[k]))
				break;
		if (m == e->cfg->n_nodes) {
			r = err_set(err, ERR_USAGE, "--reinstall: '%s' is not a "
				    "node of this environment (see strata "
				    "validate %s --nodes)", reinstall[k], env);
			goto fail;
		}
	}
	c->reinstall = reinstall;
	c->n_reinstall = n_reinstall;
	env_tally_start(&run.tally, e, &c->st);
	run.tallying = true;
	/* -o json: the rolls go into the plan event ("rolls", docs/json.md) */
	if (json) {
		if ((r = upgrade_check(e->cfg, &c->st, e->dir, upgrade_parallel, human,
				       &rolls, err)) < 0)
			goto fail;
		talos_changes = (size_t)r;
	}
	if (c->provider->vm_plan) {
		if ((r = apply_iso_target(c, err)) < 0)
			goto fail;
		if ((r = env_plan(e, &c->st, run.plan, err)) < 0)
			goto fail;
		/* The VM phase goes this wide: the requests before it (the
		 * preflight, the ISO) open that many connections meanwhile.
		 * Not destroy: nothing runs alone between its listing and its
		 * wide part (measured: no gain, docs/plan.md). */
		{
			size_t wide = run.plan->creates + run.plan->updates +
				      run.plan->replaces + run.plan->deletes;

			pve_conns_warm_for(e->conns, wide < (size_t)parallel
					   ? wide : (size_t)parallel);
		}
		if (json) {
			/* the plan event: what plan -o json prints, node removals too */
			char *ps = plan_to_json(run.plan);
			json_t *doc = json_loads(ps, 0, NULL);

			free(ps);
			if (doc)
				json_object_set_new(doc, "node_removals",
						    scale_plan_json(run.plan));
			if (doc && rolls)
				json_object_set(doc, "rolls", rolls);
			event_plan(doc);
		} else {
			env_show_plan(run.plan, json);
			scale_plan_print(run.plan, c->cfg, stdout);
			fflush(stdout);
		}
	} else if (c->provider->plan_machines) {
		/* The machines the config names: the plan shown (the plan
		 * event with -o json), its changes asked about. */
		struct plan_out po = { .fp = stdout, .event = json, .rolls = rolls };

		if ((r = c->provider->plan_machines(e, &c->st, &po, err)) < 0)
			goto fail;
		fflush(stdout);
		machine_changes = po.changes;
	}
	if (!json && (r = upgrade_check(e->cfg, &c->st, e->dir, upgrade_parallel,
					human, NULL, err)) < 0)
		goto fail;
	if (!json)
		talos_changes = (size_t)r;
	if (run.plan->conflicts) {
		err_set(err, ERR_FAIL, "%zu VM id conflict%s with VMs strata does "
			"not own; change proxmox.vmid or the VM ids in the config",
			run.plan->conflicts, run.plan->conflicts == 1 ? "" : "s");
		goto fail;
	}
	/* Layer 0 is the hypervisor's: a platform without one has none */
	if (c->provider->vm_plan && (r = env_preflight(e, run.plan, true, err)) < 0)
		goto fail;
	if (!dry && !yes && !isatty(STDIN_FILENO)) {
		/* Nobody to ask: decide before anything is written. */
		if (machine_changes ||
		    changes_without_writing(c, run.plan, human, err)) {
			fflush(human);
			out_error("not a terminal: pass --yes to confirm");
			result = "refused";
			rc = 2;
			goto out;
		}
	} else if (!dry) {
		/* New VMs' MACs first (journaled): the configs link by them. */
		if (c->provider->vm_plan && (r = vms_choose_macs(c, err)) < 0)
			goto fail;
		/* Generating is offline and idempotent: do it now, so the
		 * changes to running nodes are known before asking. */
		if (e->cfg->n_nodes) {
			if ((r = talos_gen_for_apply(c, err)) < 0)
				goto fail;
			talos_changes += talos_config_changes(c, human);
		}
	}
	fflush(human);
	if (!dry && (run.plan->creates || run.plan->updates || run.plan->replaces ||
		     run.plan->deletes || run.plan->pool_missing || talos_changes ||
		     machine_changes) &&
	    !env_confirm("Apply these changes?", yes)) {
		result = "refused";
		rc = 1;
		goto out;
	}
	run.tally.started = !dry;
	if (!dry && (r = env_history_open(&run.hist, e, what, run.plan, err)) < 0)
		goto fail;
	if ((r = phase_run_list(c->provider->apply, c->provider->n_apply, c,
				err)) < 0)
		goto fail;
	result = dry ? "dry_run" : "done";
	rc = 0;
	goto out;
fail:
	rc = env_run_failed(&run, what, env, &result);
out:
	env_run_end(&run, what, env, result, rc, run.plan->unchanged, NULL);
	json_decref(rolls);
	return rc;
}

int
cmd_apply(int argc, char **argv)
{
	return apply_main(argc, argv, NULL, "apply");
}

int
cmd_apply_recover(int argc, char **argv, const struct etcd_recovery *snapshot)
{
	return apply_main(argc, argv, snapshot, "restore");
}
