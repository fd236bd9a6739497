#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "gitops/gitops.h"
#include "talos/gen.h"
#include "util/fs.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata gen ENV\n"
	"\n"
	"Write every Talos file of ENV, offline: secrets.yaml (generated once,\n"
	"never overwritten), controlplane.yaml and worker.yaml, patches/NODE.yaml\n"
	"(address, routes, nameservers, VIP, install disk), nodes/NODE.yaml (base\n"
	"+ node patch + talos.patches from config.yml) and talosconfig. Files are\n"
	"rewritten only when their contents change. Prints the Talos ISO URL and\n"
	"the installer image of the environment's schematic.\n"
	"\n"
	"With gitops set, also the GitOps tree for Flux in ENV/gitops (gitops.local_path):\n"
	"cluster/kubernetes/{flux,platform,apps}, a HelmRelease per enabled component,\n"
	"secrets SOPS-encrypted to the cluster's age key ENV/sops.agekey (made once,\n"
	"0600). Files under apps/ are yours: created once, never overwritten.\n"
	"\n"
	"ENV is a folder, or a name under ./environments.\n"
	"\n"
	"  -h, --help    show this help\n"
	"\n"
	"Exit status: 0 done, 1 failure, 2 usage or config error.\n";

int
cmd_gen(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct gen_result res = { 0 };
	struct gitops_result gres = { 0 };
	struct err err = ERR_INIT;
	struct fs_lock lock = { 0 };
	struct diag diag;
	const char *env = NULL;
	char *dir;
	int i, r;

	if (cmd_wants_help(argc, argv, usage))
		return 0;
	for (i = 1; i < argc; i++)
		if ((r = cmd_positional(&env, argv[i], usage)) != 0)
			return r;
	if (!env)
		return cmd_usage_error(usage, "missing ENV");
	dir = cmd_env_dir(env);
	diag_init(&diag, "config.yml");
	r = config_load_env(&cfg, dir, &diag);
	diag_print(&diag, stderr);
	if (r != 0) {
		if (diag.errors || diag.warnings)
			diag_summary(&diag, stderr);
		r = 2;
		goto out;
	}
	if (cfg->n_nodes == 0) {
		out_note("no talos nodes in %s: nothing to generate", dir);
		r = 0;
		goto out;
	}
	if (fs_lock_acquire(&lock, dir, &err) < 0 ||
	    talos_gen(cfg, dir, &res, &err) < 0) {
		out_error("gen: %s", err.msg);
		r = err_exit_code(&err);
		goto out;
	}
	if (cfg->gitops.enabled && gitops_gen(cfg, dir, &gres, &err) < 0) {
		out_error("gen: %s", err.msg);
		r = err_exit_code(&err);
		goto out;
	}
	if (res.secrets_created)
		out_note("generated a new secrets bundle in %s/secrets.yaml (keep it; it is never overwritten)", dir);
	printf("schematic: %s\n", res.schematic_id);
	printf("iso: %s\n", res.iso_url);
	printf("installer: %s\n", res.installer_image);
	printf("%d file%s written, %d unchanged\n", res.files_changed,
	       res.files_changed == 1 ? "" : "s",
	       res.files_total - res.files_changed);
	if (cfg->gitops.enabled) {
		if (gres.key_created)
			out_note("made the cluster's age key %s/" GITOPS_AGEKEY
				 " (keep it: it decrypts the tree's secrets)", dir);
		printf("gitops: %s: %d file%s written, %d unchanged",
		       gres.root, gres.files_changed,
		       gres.files_changed == 1 ? "" : "s",
		       gres.files_total - gres.files_changed);
		if (gres.user_files_kept)
			printf(", %d of yours kept", gres.user_files_kept);
		printf("\nsops recipient: %s\n", gres.recipient);
		if (gres.secret_kept_unverified)
			out_note("components.tunnel.token is not available: kept the "
				 "encrypted tunnel secret already in the tree");
	}
	r = 0;
out:
	gitops_result_release(&gres);
	if (lock.held)
		fs_lock_release(&lock);
	gen_result_release(&res);
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r;
}
