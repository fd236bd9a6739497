#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "config/schema.h"
#include "util/buf.h"


static void
widen(int *w, const char *s)
{
	int n = s ? (int)strlen(s) : 1;

	if (n > *w)
		*w = n;
}

/* Columns as wide as their longest value, so long names never shift them. */
static void
print_nodes(const struct config *cfg)
{
	int wn = 4, wp = 9, wa = 7;
	size_t i;

	for (i = 0; i < cfg->n_nodes; i++) {
		widen(&wn, cfg->nodes[i].name);
		widen(&wa, cfg->nodes[i].ip);
		widen(&wp, cfg->nodes[i].placement);
	}
	for (i = 0; i < cfg->n_vms; i++) {
		widen(&wn, cfg->vms[i].name);
		widen(&wa, cfg->vms[i].ip);
		widen(&wp, cfg->vms[i].placement);
	}
	printf("%-*s  %-12s  %-*s  %-7s  %-*s  %5s  %8s  %6s\n", wn, "NAME", "ROLE",
	       wa, "ADDRESS", "VMID", wp, "PLACEMENT", "CORES", "MEMORY", "DISK");
	for (i = 0; i < cfg->n_nodes; i++) {
		const struct node *n = &cfg->nodes[i];

		printf("%-*s  %-12s  %-*s  %-7d  %-*s  %5d  %6dMi  %4dGi\n", wn,
		       n->name,
		       n->role == ROLE_CONTROLPLANE ? "controlplane" : "worker",
		       wa, n->ip ? n->ip : "-", n->vmid, wp,
		       n->placement ? n->placement : "-", n->cores,
		       n->memory_mib, n->disk_gib);
	}
	for (i = 0; i < cfg->n_vms; i++) {
		const struct vm_config *v = &cfg->vms[i];

		printf("%-*s  %-12s  %-*s  %-7d  %-*s  %5d  %6dMi  %4dGi\n", wn,
		       v->name ? v->name : "-", "vm", wa, v->ip ? v->ip : "-",
		       v->vmid, wp, v->placement ? v->placement : "-", v->cores,
		       v->memory_mib, v->disk_gib);
	}
	if (cfg->n_nodes)
		printf("kubernetes %s at %s, talos %s, cni %s\n",
		       cfg->kubernetes.version, cfg->kubernetes.endpoint,
		       cfg->talos.version,
		       cfg->kubernetes.cni == CNI_CILIUM ? "cilium"
		       : cfg->kubernetes.cni == CNI_FLANNEL ? "flannel" : "none");
}

static json_t *
nodes_json(const struct config *cfg)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < cfg->n_nodes + cfg->n_vms; i++) {
		const struct node *n = i < cfg->n_nodes ? &cfg->nodes[i] : NULL;
		const struct vm_config *v = n ? NULL : &cfg->vms[i - cfg->n_nodes];
		const char *name = n ? n->name : v->name;
		const char *ip = n ? n->ip : v->ip;
		const char *pl = n ? n->placement : v->placement;

		json_array_append_new(arr, json_pack(
			"{s:o, s:s, s:o, s:i, s:o, s:i, s:i, s:i}",
			"name", name ? json_string(name) : json_null(),
			"role", n ? (n->role == ROLE_CONTROLPLANE ? "controlplane"
							       : "worker")
				  : "vm",
			"address", ip ? json_string(ip) : json_null(),
			"vmid", n ? n->vmid : v->vmid,
			"placement", pl ? json_string(pl) : json_null(),
			"cores", n ? n->cores : v->cores,
			"memory_mib", n ? n->memory_mib : v->memory_mib,
			"disk_gib", n ? n->disk_gib : v->disk_gib));
	}
	return arr;
}

/* One object on stdout: docs/json.md, "strata validate". */
static void
print_json(struct diag *diag, const struct config *cfg, int ok, int nodes)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "file", json_string(diag->file));
	json_object_set_new(o, "valid", json_boolean(ok));
	json_object_set_new(o, "errors", json_integer((json_int_t)diag->errors));
	json_object_set_new(o, "warnings", json_integer((json_int_t)diag->warnings));
	json_object_set_new(o, "diagnostics", diag_json(diag));
	if (ok && cfg) {
		json_object_set_new(o, "platform",
				    json_string(platform_name(cfg->platform)));
		json_object_set_new(o, "controlplanes",
				    json_integer((json_int_t)cfg->n_controlplanes));
		json_object_set_new(o, "workers",
				    json_integer((json_int_t)(cfg->n_nodes -
							      cfg->n_controlplanes)));
		json_object_set_new(o, "vms", json_integer((json_int_t)cfg->n_vms));
		if (nodes)
			json_object_set_new(o, "nodes", nodes_json(cfg));
	}
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

int
cmd_validate(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct diag diag;
	const char *env = NULL;
	int quiet = 0, nodes = 0, json = 0, i, r;
	char *dir;

	if (cmd_wants_help(argc, argv, "validate"))
		return 0;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--nodes")) {
			nodes = 1;
		} else if ((r = cmd_output_flag(argc, argv, &i, &json, "validate")) != 0) {
			if (r == 2)
				return r;
		} else if (!strcmp(argv[i], "--keys")) {
			schema_print_keys(stdout);
			return 0;
		} else if ((r = cmd_positional(&env, argv[i], "validate")) != 0) {
			return r;
		}
	}
	if (!env)
		return cmd_usage_error("validate", "missing ENV");
	dir = cmd_env_dir(env);
	diag_init(&diag, "config.yml");
	r = config_load_env_opts(&cfg, dir, &diag, CONFIG_CHECK_SECRETS);
	if (json) {
		print_json(&diag, cfg, r == 0, nodes);
		goto out;
	}
	diag_print(&diag, stderr);
	if (r == 0 && !quiet)
		printf("%s: valid (%s, %zu control plane%s, %zu worker%s, %zu vm%s)\n",
		       diag.file, platform_name(cfg->platform),
		       cfg->n_controlplanes, cfg->n_controlplanes == 1 ? "" : "s",
		       cfg->n_nodes - cfg->n_controlplanes,
		       cfg->n_nodes - cfg->n_controlplanes == 1 ? "" : "s",
		       cfg->n_vms, cfg->n_vms == 1 ? "" : "s");
	if (r == 0 && nodes)
		print_nodes(cfg);
	if (diag.errors || diag.warnings)
		diag_summary(&diag, stderr);
out:
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r == 0 ? 0 : 2;
}
