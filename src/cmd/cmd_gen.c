#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "talos/gen.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

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
	if (proc_protect_secrets(&err) < 0) {
		out_error("gen: %s", err.msg);
		return 1;
	}
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
	if (fs_root_open(dir, false, &err) < 0 ||
	    fs_lock_acquire(&lock, dir, &err) < 0 ||
	    talos_gen(cfg, dir, &res, &err) < 0) {
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
	r = 0;
out:
	fs_lock_release(&lock);
	fs_root_close();
	gen_result_release(&res);
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r;
}
