#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "config/schema.h"
#include "util/buf.h"


static void
print_nodes(const struct config *cfg)
{
	size_t i;

	printf("%-20s %-13s %-16s %-7s %-10s %5s %8s %6s\n", "NAME", "ROLE",
	       "ADDRESS", "VMID", "PLACEMENT", "CORES", "MEMORY", "DISK");
	for (i = 0; i < cfg->n_nodes; i++) {
		const struct node *n = &cfg->nodes[i];

		printf("%-20s %-13s %-16s %-7d %-10s %5d %6dMi %4dGi\n", n->name,
		       n->role == ROLE_CONTROLPLANE ? "controlplane" : "worker",
		       n->ip ? n->ip : "-", n->vmid,
		       n->placement ? n->placement : "-", n->cores,
		       n->memory_mib, n->disk_gib);
	}
	for (i = 0; i < cfg->n_vms; i++) {
		const struct vm_config *v = &cfg->vms[i];

		printf("%-20s %-13s %-16s %-7d %-10s %5d %6dMi %4dGi\n", v->name,
		       "vm", v->ip ? v->ip : "-", v->vmid,
		       v->placement ? v->placement : "-", v->cores,
		       v->memory_mib, v->disk_gib);
	}
	if (cfg->n_nodes)
		printf("kubernetes %s at %s, talos %s, cni %s\n",
		       cfg->kubernetes.version, cfg->kubernetes.endpoint,
		       cfg->talos.version,
		       cfg->kubernetes.cni == CNI_CILIUM ? "cilium"
		       : cfg->kubernetes.cni == CNI_FLANNEL ? "flannel" : "none");
}

int
cmd_validate(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct diag diag;
	const char *env = NULL;
	int quiet = 0, nodes = 0, i, r;
	char *dir;

	if (cmd_wants_help(argc, argv, "validate"))
		return 0;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--nodes")) {
			nodes = 1;
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
	r = config_load_env(&cfg, dir, &diag);
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
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r == 0 ? 0 : 2;
}
