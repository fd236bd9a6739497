#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup.h"
#include "cmd/cmd.h"
#include "cmd/env.h"
#include "phase/phase.h"
#include "talos/etcd.h"
#include "config/config.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

#define CONFIRM_HEALTHY "replace healthy etcd"

/*
 * strata restore ENV --etcd FILE: the disaster-recovery apply
 * (FACTS-day2.md 4d). Refused while any control plane's etcd member is
 * healthy, unless --confirm says "replace healthy etcd" (the cluster then
 * loses what changed since the snapshot, and the nodes' etcd must be
 * empty anyway: the bootstrap step stops if it is not).
 */
static int
restore_etcd(const char *env, const char *file, const char *confirm,
	     int argc, char **argv)
{
	struct err err = ERR_INIT;
	struct etcd_recovery snap;
	struct env e;
	struct talos_creds creds;
	const char *ip = NULL;
	char *av[8];
	int ac = 0, r, rc = 1, a;

	memset(&e, 0, sizeof(e));
	memset(&creds, 0, sizeof(creds));
	if ((r = proc_protect_secrets(&err)) < 0)
		goto fail;
	/* checked by reading it through once; uploaded later straight from
	 * the file */
	memset(&snap, 0, sizeof(snap));
	snap.path = file;
	if ((r = etcd_snapshot_check_file(file, &snap.bytes, snap.sha256,
					  &err)) < 0) {
		err_wrap(&err, "%s", file);
		err.code = ERR_USAGE;
		goto fail;
	}
	if ((r = env_open(&e, env, 0, &err)) < 0 ||
	    (r = etcd_backup_creds(&creds, e.dir, e.cfg, &err)) < 0)
		goto fail;
	if (etcd_find_healthy(e.cfg, &creds, 3000, false, &ip, NULL)) {
		if (!confirm || strcmp(confirm, CONFIRM_HEALTHY)) {
			err_set(&err, ERR_USAGE, "etcd on %s is healthy: recovering "
				"would throw away everything since the snapshot; "
				"if that is what you want, pass --confirm '%s' "
				"(and reset the control planes' EPHEMERAL first)",
				ip, CONFIRM_HEALTHY);
			goto fail;
		}
		out_warn("etcd on %s is healthy; recovering anyway, as --confirm "
			 "says", ip);
	}
	talos_creds_release(&creds);
	env_close(&e);
	out_step("restore '%s': etcd from %s (%" PRIu64 " bytes, sha256 %.16s...): "
		 "VMs, configs, recovery, kubeconfig, nodes", env, file,
		 snap.bytes, snap.sha256);
	av[ac++] = "apply";
	av[ac++] = (char *)env;
	for (a = 0; a < argc && ac < 7; a++)
		av[ac++] = argv[a];
	av[ac] = NULL;
	return cmd_apply_recover(ac, av, &snap);
fail:
	out_error("restore '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
	talos_creds_release(&creds);
	env_close(&e);
	return rc;
}

int
cmd_restore(int argc, char **argv)
{
	struct err err = ERR_INIT;
	struct buf ident = BUF_INIT_SECRET;
	struct backup_stats st;
	struct restore_keys keys;
	const char *env = NULL, *from = NULL, *idfile = NULL, *passvar = NULL;
	const char *etcd = NULL, *confirm = NULL;
	const char *idv[1];
	char *pass_on[4];
	int n_pass = 0;
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
		else if (!strcmp(argv[a], "--etcd") && a + 1 < argc)
			etcd = argv[++a];
		else if (!strcmp(argv[a], "--confirm") && a + 1 < argc)
			confirm = argv[++a];
		else if ((!strcmp(argv[a], "-y") || !strcmp(argv[a], "--yes")) &&
			 n_pass < 3)
			pass_on[n_pass++] = argv[a];
		else if ((!strcmp(argv[a], "-t") || !strcmp(argv[a], "--timeout")) &&
			 a + 1 < argc && n_pass < 2) {
			pass_on[n_pass++] = argv[a];
			pass_on[n_pass++] = argv[++a];
		}
		else if ((r = cmd_positional(&env, argv[a], "restore")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("restore", "missing ENV");
	if (etcd && (from || idfile || passvar))
		return cmd_usage_error("restore", "--etcd recovers a cluster into "
				       "an existing env folder; rebuild the folder "
				       "with --from first, then run --etcd");
	if (etcd)
		return restore_etcd(env, etcd, confirm, n_pass, pass_on);
	if (confirm || n_pass)
		return cmd_usage_error("restore", "--confirm, --yes and --timeout "
				       "go with --etcd");
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
	if ((r = backup_restore(from, dir, &keys, &st, &err)) < 0)
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
	buf_release(&ident);
	free(dir);
	return rc;
}
