/*
 * strata hypervisor ENV [-o json]: Layer 0 as strata sees it (nodes,
 * bridges, storages, the token's privileges on the paths this env uses),
 * the way plan shows Layer 1. Read-only: strata never changes Layer 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "plan/preflight.h"
#include "provider/proxmox/layer0.h"
#include "util/out.h"

#define GIB (1024.0 * 1024 * 1024)

static void
print_view(const struct layer0 *l0, const char *token)
{
	size_t i, k;

	printf("Proxmox VE %s\n\n", l0->version ? l0->version : "?");
	printf("%-12s %-8s %5s %21s %12s %4s  %s\n", "NODE", "STATUS", "CPUS",
	       "MEMORY used/total", "COMMITTED", "VMS", "VERSION, LOAD");
	for (i = 0; i < l0->n_nodes; i++) {
		const struct l0_node *n = &l0->nodes[i];
		long long committed = 0;
		size_t vms = 0;
		char mem[64], cpus[16];
		json_t *v, *la;

		for (k = 0; k < l0->n_vms; k++)
			if (l0->vms[k].node && !strcmp(l0->vms[k].node, n->name)) {
				committed += l0->vms[k].maxmem;
				vms++;
			}
		if (n->has_stats) {
			snprintf(mem, sizeof(mem), "%.1f/%.1f GiB", (double)n->mem / GIB,
				 (double)n->maxmem / GIB);
			snprintf(cpus, sizeof(cpus), "%d", n->maxcpu);
		} else {
			snprintf(mem, sizeof(mem), "(no Sys.Audit)");
			snprintf(cpus, sizeof(cpus), "?");
		}
		printf("%-12s %-8s %5s %21s %8.1f GiB %4zu  ", n->name, n->status, cpus, mem,
		       (double)committed / GIB, vms);
		v = n->status_json ? json_object_get(n->status_json, "pveversion") : NULL;
		la = n->status_json ? json_object_get(n->status_json, "loadavg") : NULL;
		if (n->status_json)
			printf("%s, load %s\n", json_is_string(v) ? json_string_value(v) : "?",
			       json_is_string(json_array_get(la, 0)) ?
			       json_string_value(json_array_get(la, 0)) : "?");
		else
			printf("(status: %s)\n", n->status_error ? n->status_error : "not read");
	}
	printf("\nBridges:\n");
	for (i = 0; i < l0->n_nodes; i++) {
		const struct l0_node *n = &l0->nodes[i];

		if (!n->read)
			printf("  %-12s (not read: node %s)\n", n->name, n->status);
		for (k = 0; k < n->n_bridges; k++)
			printf("  %-12s %-10s %-10s ports %-12s vlan-aware %s\n", n->name,
			       n->bridges[k].iface, n->bridges[k].type,
			       n->bridges[k].ports && *n->bridges[k].ports ? n->bridges[k].ports : "-",
			       n->bridges[k].vlan_aware ? "yes" : "no");
	}
	printf("\nStorages:\n");
	for (i = 0; i < l0->n_nodes; i++) {
		const struct l0_node *n = &l0->nodes[i];

		for (k = 0; k < n->n_storages; k++) {
			const struct l0_storage *s = &n->storages[k];
			char space[64];

			if (s->has_space)
				snprintf(space, sizeof(space), "%.1f of %.1f GiB free",
					 (double)s->avail / GIB, (double)s->total / GIB);
			else
				snprintf(space, sizeof(space), "space unknown");
			char type[64];

			snprintf(type, sizeof(type), "%s%s", s->type ? s->type : "?",
				 layer0_storage_thin(s) ? " (thin)" : "");
			printf("  %-12s %-12s %-14s %-34s %s%s%s\n", n->name, s->storage, type,
			       s->content ? s->content : "", space, s->shared ? ", shared" : "",
			       s->enabled ? "" : ", DISABLED");
		}
	}
	printf("\nPrivileges of token '%s':\n", token);
	for (i = 0; i < l0->n_perms; i++) {
		const char *priv;
		json_t *val;
		size_t m = 0;

		printf("  %-36s", l0->perms[i].path);
		json_object_foreach(l0->perms[i].privs, priv, val)
			printf("%s%s", m++ ? ", " : " ", priv);
		printf("%s\n", m ? "" : " (none)");
	}
}

int
cmd_hypervisor(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct plan plan = { 0 };
	struct layer0 l0;
	struct err err = ERR_INIT;
	const char *env = NULL;
	char **nodes = NULL, **paths = NULL;
	size_t n_nodes = 0, n_paths = 0;
	int json = 0, i, r, rc = 1;

	memset(&l0, 0, sizeof(l0));
	if (cmd_wants_help(argc, argv, "hypervisor"))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, "hypervisor")) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[i], "hypervisor")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("hypervisor", "missing ENV");
	if ((r = env_open(&e, env, ENV_PROXMOX, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = env_plan(&e, &st, &plan, &err)) < 0)
		goto fail;
	/* every node; the privileges on the paths this env's plan uses */
	preflight_needs(e.cfg, &plan, &nodes, &n_nodes, &paths, &n_paths);
	r = layer0_read(e.pve, &l0, NULL, 0, (const char *const *)paths, n_paths,
			L0_NODE_STATUS, &err);
	if (r < 0)
		goto fail;
	if (json) {
		json_t *o = layer0_to_json(&l0);
		char *s;

		json_object_set_new(o, "token", json_string(e.cfg->proxmox.token_id));
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(o);
	} else {
		print_view(&l0, e.cfg->proxmox.token_id);
	}
	rc = 0;
	goto out;
fail:
	out_error("hypervisor '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	preflight_strv_free(nodes, n_nodes);
	preflight_strv_free(paths, n_paths);
	layer0_release(&l0);
	plan_release(&plan);
	state_release(&st);
	env_close(&e);
	return rc;
}
