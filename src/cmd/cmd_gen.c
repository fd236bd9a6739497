#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "talos/gen.h"
#include "util/fs.h"
#include "util/out.h"
/* gen -o json (docs/json.md); res NULL: no Talos nodes, nothing generated. */
static void
print_json(const struct config *cfg, const char *dir, const struct gen_result *res)
{
	json_t *o = json_pack("{s:i, s:s, s:s, s:o, s:o, s:o, s:b, s:i, s:i, s:i, s:i}",
			      "format_version", 1, "env", cfg->name, "dir", dir,
			      "schematic", res ? json_string(res->schematic_id) : json_null(),
			      "iso_url", res ? json_string(res->iso_url) : json_null(),
			      "installer", res ? json_string(res->installer_image) : json_null(),
			      "secrets_created", res ? res->secrets_created : 0,
			      "files_written", res ? res->files_changed : 0,
			      "files_unchanged", res ? res->files_total - res->files_changed : 0,
			      "files_removed", res ? res->files_removed : 0,
			      "files_kept", res ? res->files_kept : 0);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	puts(s);
	free(s);
	json_decref(o);
}

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
	int json = 0, i, r;

	if (cmd_wants_help(argc, argv, "gen"))
		return 0;
	for (i = 1; i < argc; i++) {
		if ((r = cmd_output_flag(argc, argv, &i, &json, "gen")) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[i], "gen")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("gen", "missing ENV");
	dir = cmd_env_dir(env);
	diag_init(&diag, "config.yml");
	r = config_load_env_opts(&cfg, dir, &diag, CONFIG_OFFLINE);
	diag_print(&diag, stderr);
	if (r != 0) {
		if (diag.errors || diag.warnings)
			diag_summary(&diag, stderr);
		r = 2;
		goto out;
	}
	if (cfg->n_nodes == 0) {
		out_note("no talos nodes in %s: nothing to generate", dir);
		if (json)
			print_json(cfg, dir, NULL);
		r = 0;
		goto out;
	}
	if (fs_lock_acquire(&lock, dir, &err) < 0 ||
	    talos_gen(cfg, dir, &res, &err) < 0) {
		out_error("gen: %s", err.msg);
		r = err_exit_code(&err);
		goto out;
	}
	if (res.secrets_created)
		out_note("generated a new secrets bundle in %s/secrets.yaml (keep it; it is never overwritten)", dir);
	if (json) {
		print_json(cfg, dir, &res);
		r = 0;
		goto out;
	}
	printf("schematic: %s\n", res.schematic_id);
	printf("iso: %s\n", res.iso_url);
	printf("installer: %s\n", res.installer_image);
	printf("%d file%s written, %d unchanged", res.files_changed,
	       res.files_changed == 1 ? "" : "s",
	       res.files_total - res.files_changed);
	if (res.files_removed)
		printf(", %d removed (nodes no longer in the config)",
		       res.files_removed);
	printf("\n");
	r = 0;
out:
	if (lock.held)
		fs_lock_release(&lock);
	gen_result_release(&res);
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r;
}
