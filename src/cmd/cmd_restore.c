#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup.h"
#include "cmd/cmd.h"
#include "config/config.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

#define BACKUP_MAX (512u << 20)

int
cmd_restore(int argc, char **argv)
{
	struct err err = ERR_INIT;
	struct buf file = BUF_INIT, ident = BUF_INIT_SECRET;
	struct backup_stats st;
	struct restore_keys keys;
	const char *env = NULL, *from = NULL, *idfile = NULL, *passvar = NULL;
	const char *idv[1];
	char *dir = NULL;
	int a, r, rc = 1;

	if (cmd_wants_help(argc, argv, "restore"))
		return 0;
	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--from") && a + 1 < argc)
			from = argv[++a];
		else if ((!strcmp(argv[a], "--identity") || !strcmp(argv[a], "-i")) &&
			 a + 1 < argc)
			idfile = argv[++a];
		else if (!strcmp(argv[a], "--passphrase-env") && a + 1 < argc)
			passvar = argv[++a];
		else if ((r = cmd_positional(&env, argv[a], "restore")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("restore", "missing ENV");
	if (!from)
		return cmd_usage_error("restore", "missing --from FILE");
	if (!idfile == !passvar)
		return cmd_usage_error("restore", "give one of --identity FILE or "
				       "--passphrase-env VAR");
	if ((r = proc_protect_secrets(&err)) < 0)
		goto fail;
	dir = cmd_env_dir_new(env);
	memset(&keys, 0, sizeof(keys));
	if (idfile) {
		if ((r = fs_read_file(&ident, idfile, 1 << 20, &err)) < 0)
			goto fail;
		idv[0] = ident.ptr;
		keys.identities = idv;
		keys.n_identities = 1;
	} else {
		keys.passphrase = getenv(passvar);
		if (!keys.passphrase || !*keys.passphrase) {
			err_set(&err, ERR_USAGE, "environment variable %s is not set "
				"(export the passphrase in it)", passvar);
			goto fail;
		}
	}
	if ((r = fs_read_file(&file, from, BACKUP_MAX, &err)) < 0)
		goto fail;
	if ((r = backup_restore(file.ptr, file.len, dir, &keys, &st, &err)) < 0)
		goto fail;
	out_step("restore: %zu files, %zu folders from %s -> %s; 'strata plan %s' "
		 "shows where the environment stands", st.files, st.dirs, from,
		 dir, env);
	rc = 0;
	goto out;
fail:
	out_error("restore '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	buf_release(&file);
	buf_release(&ident);
	free(dir);
	return rc;
}
