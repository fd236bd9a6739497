#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "ansible/inventory.h"
#include "gitops/gitops.h"
#include "provider/proxmox/cloudinit.h"
#include "talos/gen.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

/* gen -o json (docs/json.md); res NULL: no Talos nodes, nothing generated. */
struct vms_result {
	int files_changed, files_total;
};

/* The cloud-init VMs: their nocloud seeds and the Ansible inventory. */
static int
gen_vms(const struct config *cfg, const char *dir, struct vms_result *v,
	struct err *err)
{
	bool ch = false;

	if (ci_seeds_write(cfg, dir, &v->files_changed, &v->files_total, err) < 0 ||
	    ansible_inventory_write(cfg, dir, &ch, err) < 0)
		return -1;
	v->files_changed += ch;
	v->files_total++;
	return 0;
}

static void
print_json(const struct config *cfg, const char *dir, const struct gen_result *res,
	   const struct gitops_result *g, const struct vms_result *v)
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
	json_object_set_new(o, "gitops", g && g->root
		? json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:i}",
			    "root", g->root, "sops_recipient", g->recipient,
			    "key_created", g->key_created,
			    "files_written", g->files_changed,
			    "files_unchanged", g->files_total - g->files_changed,
			    "files_removed", g->files_removed,
			    "user_files_kept", g->user_files_kept)
		: json_null());
	json_object_set_new(o, "vms", cfg->n_vms
		? json_pack("{s:i, s:i, s:s}", "files_written", v->files_changed,
			    "files_unchanged", v->files_total - v->files_changed,
			    "inventory", ANSIBLE_INVENTORY)
		: json_null());
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
	struct gitops_result gres = { 0 };
	struct vms_result vres = { 0 };
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
	if (proc_protect_secrets(&err) < 0) {
		out_error("gen: %s", err.msg);
		return 1;
	}
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
	if (cfg->n_nodes == 0 && cfg->n_vms == 0) {
		out_note("no talos nodes in %s: nothing to generate", dir);
		if (json)
			print_json(cfg, dir, NULL, NULL, &vres);
		r = 0;
		goto out;
	}
	if (fs_root_open(dir, false, &err) < 0 ||
	    fs_lock_acquire(&lock, dir, &err) < 0 ||
	    (cfg->n_vms && gen_vms(cfg, dir, &vres, &err) < 0)) {
		out_error("gen: %s", err.msg);
		r = err_exit_code(&err);
		goto out;
	}
	if (cfg->n_nodes == 0) {
		if (json)
			print_json(cfg, dir, NULL, NULL, &vres);
		else
			printf("vms: %d file%s written, %d unchanged\ninventory: %s/%s\n",
			       vres.files_changed, vres.files_changed == 1 ? "" : "s",
			       vres.files_total - vres.files_changed, dir, ANSIBLE_INVENTORY);
		r = 0;
		goto out;
	}
	if (talos_gen(cfg, dir, &res, &err) < 0) {
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
	if (gres.key_created)
		out_note("made the cluster's age key %s/" GITOPS_AGEKEY
			 " (keep it: it decrypts the tree's secrets)", dir);
	if (gres.secret_kept_unverified)
		out_note("components.tunnel.token is not available: kept the "
			 "encrypted tunnel secret already in the tree");
	if (json) {
		print_json(cfg, dir, &res, &gres, &vres);
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
	if (cfg->n_vms)
		printf("vms: %d file%s written, %d unchanged\ninventory: %s/%s\n",
		       vres.files_changed, vres.files_changed == 1 ? "" : "s",
		       vres.files_total - vres.files_changed, dir, ANSIBLE_INVENTORY);
	if (cfg->gitops.enabled) {
		printf("gitops: %s: %d file%s written, %d unchanged",
		       gres.root, gres.files_changed,
		       gres.files_changed == 1 ? "" : "s",
		       gres.files_total - gres.files_changed);
		if (gres.files_removed)
			printf(", %d removed", gres.files_removed);
		if (gres.user_files_kept)
			printf(", %d of yours kept", gres.user_files_kept);
		printf("\nsops recipient: %s\n", gres.recipient);
	}
	r = 0;
out:
	gitops_result_release(&gres);
	fs_lock_release(&lock);
	fs_root_close();
	gen_result_release(&res);
	config_free(cfg);
	diag_release(&diag);
	free(dir);
	return r;
}
