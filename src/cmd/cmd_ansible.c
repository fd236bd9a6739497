/*
 * strata ansible ENV [--] PLAYBOOK [ARGS...]: write ENV/ansible/inventory.yml
 * from config.yml's vms and run ansible-playbook with it. strata's part
 * ends at the exec: the exit status is ansible-playbook's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ansible/inventory.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "util/fs.h"
#include "util/out.h"

#define ANSIBLE_PLAYBOOK "ansible-playbook"

/* The first executable ansible-playbook on $PATH, malloc'd, or NULL. */
static char *
find_playbook(void)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *hit = NULL;

	if (!path || !*path)
		return NULL;
	copy = xstrdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !hit;
	     dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", *dir ? dir : ".", ANSIBLE_PLAYBOOK);

		if (access(p, X_OK) == 0)
			hit = p;
		else
			free(p);
	}
	free(copy);
	return hit;
}

int
cmd_ansible(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct err err = ERR_INIT;
	struct fs_lock lock = { 0 };
	struct diag diag;
	const char *env = NULL;
	char *dir = NULL, *inv = NULL, *prog = NULL, **args;
	bool changed = false;
	int i, first = argc, r, a;

	/* Options are strata's only before the playbook (or "--"); what
	 * follows is ansible-playbook's, -h included. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			first = i + 1;
			break;
		}
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
		{
			cmd_help_print(cmd_help_find("ansible"), stdout);
			return 0;
		}
		if (env && argv[i][0] != '-') {
			first = i;
			break;
		}
		if ((r = cmd_positional(&env, argv[i], "ansible")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("ansible", "missing ENV");
	if (first >= argc)
		return cmd_usage_error("ansible", "missing PLAYBOOK");
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
	if (cfg->n_vms == 0) {
		out_error("ansible: %s/config.yml has no vms: nothing to hand to "
			  "Ansible; add the VMs under 'vms'", dir);
		r = 2;
		goto out;
	}
	if (fs_root_open(dir, false, &err) < 0 ||
	    fs_lock_acquire(&lock, dir, &err) < 0 ||
	    ansible_inventory_write(cfg, dir, &changed, &err) < 0) {
		out_error("ansible: %s", err.msg);
		r = err_exit_code(&err);
		goto out;
	}
	fs_lock_release(&lock);
	fs_root_close();
	inv = fs_join(dir, ANSIBLE_INVENTORY);
	if (!(prog = find_playbook())) {
		out_error("ansible: %s not found on PATH: install Ansible "
			  "(Debian: apt-get install ansible-core) and run this "
			  "again; the inventory is written: %s",
			  ANSIBLE_PLAYBOOK, inv);
		r = 1;
		goto out;
	}
	args = xcalloc((size_t)(argc - first) + 4, sizeof(*args));
	a = 0;
	args[a++] = (char *)ANSIBLE_PLAYBOOK;
	args[a++] = (char *)"-i";
	args[a++] = inv;
	for (i = first; i < argc; i++)
		args[a++] = argv[i];
	args[a] = NULL;
	fflush(stdout);
	fflush(stderr);
	execv(prog, args);
	out_error("ansible: cannot run %s: %s", prog, strerror(errno));
	free(args);
	r = 1;
out:
	fs_lock_release(&lock);
	fs_root_close();
	config_free(cfg);
	diag_release(&diag);
	free(prog);
	free(inv);
	free(dir);
	return r;
}
