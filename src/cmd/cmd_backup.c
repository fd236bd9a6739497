#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backup/backup.h"
#include "cmd/env.h"
#include "phase/phase.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

static void
human(char *out, size_t n, size_t bytes)
{
	if (bytes >= 1024 * 1024)
		snprintf(out, n, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
	else if (bytes >= 1024)
		snprintf(out, n, "%.1f KiB", (double)bytes / 1024.0);
	else
		snprintf(out, n, "%zu bytes", bytes);
}

/* --to DIR: DIR/<env>-<UTC>.age; --to FILE: that file. */
static char *
target_path(const char *to, const char *env_name)
{
	struct stat sb;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	char *name, *p;

	if (stat(to, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return xstrdup(to);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	name = xasprintf("%s-%s.age", env_name, stamp);
	p = fs_join(to, name);
	free(name);
	return p;
}

int
cmd_backup(int argc, char **argv)
{
	struct env e;
	struct err err = ERR_INIT;
	struct backup_stats st;
	struct backup_keys keys;
	const char *env = NULL, *to = NULL;
	char *pass = NULL, *path = NULL, *snap = NULL, *rel = NULL, size[32], enc[32];
	bool with_etcd = false;
	int a, r, rc = 1;

	if (cmd_wants_help(argc, argv, "backup"))
		return 0;
	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--to") && a + 1 < argc)
			to = argv[++a];
		else if (!strncmp(argv[a], "--to=", 5))
			to = argv[a] + 5;
		else if (!strcmp(argv[a], "--with-etcd"))
			with_etcd = true;
		else if ((r = cmd_positional(&env, argv[a], "backup")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("backup", "missing ENV");
	if (!to)
		return cmd_usage_error("backup", "missing --to FILE or --to DIR");
	memset(&e, 0, sizeof(e));
	if ((r = proc_protect_secrets(&err)) < 0)
		goto fail;
	/* The lock keeps an apply from writing while the folder is read. */
	if ((r = env_open(&e, env, ENV_LOCK, &err)) < 0)
		goto fail;
	memset(&keys, 0, sizeof(keys));
	keys.recipients = (const char *const *)e.cfg->backup.recipients.v;
	keys.n_recipients = e.cfg->backup.recipients.n;
	if (e.cfg->backup.passphrase.kind != SECRET_NONE) {
		if ((r = config_secret_resolve(&pass, e.cfg, &e.cfg->backup.passphrase,
					       "backup.passphrase", &err)) < 0)
			goto fail;
		keys.passphrase = pass;
	}
	if (with_etcd) {
		const char *base;
		char *etcd_dir = fs_join(e.dir, "etcd");
		size_t dl = strlen(etcd_dir);

		if ((r = etcd_latest_snapshot(e.dir, &snap, &err)) < 0) {
			free(etcd_dir);
			goto fail;
		}
		if (!snap || strncmp(snap, etcd_dir, dl) || snap[dl] != '/' ||
		    strchr(snap + dl + 1, '/')) {
			err_set(&err, ERR_USAGE, "--with-etcd: no snapshot in %s "
				"(take one with 'strata etcd snapshot %s')",
				etcd_dir, env);
			free(etcd_dir);
			goto fail;
		}
		base = snap + dl + 1;
		rel = xasprintf("etcd/%s", base);
		keys.etcd_snapshot = rel;
		free(etcd_dir);
	}
	path = target_path(to, e.cfg->name);
	if ((r = backup_write(path, e.dir, &keys, &st, &err)) < 0) {
		if (err.code == ERR_EXISTS)
			err_set(&err, ERR_USAGE, "'%s' exists; a backup never "
				"replaces a file (name another, or give a folder)",
				path);
		goto fail;
	}
	human(size, sizeof(size), st.bytes);
	human(enc, sizeof(enc), st.written);
	out_step("backup: %zu files, %zu folders of '%s' (%s) -> %s (%s, age, %s)",
		 st.files, st.dirs, e.cfg->name, size, path, enc,
		 keys.passphrase ? "passphrase"
		 : keys.n_recipients == 1 ? "1 recipient" : "recipients");
	if (rel)
		out_step("backup: etcd snapshot %s included", rel);
	else if (st.snapshots_left_out)
		out_note("%zu etcd snapshot%s in %s/etcd left out (--with-etcd adds "
			 "the latest)", st.snapshots_left_out,
			 st.snapshots_left_out == 1 ? "" : "s", e.dir);
	if (st.skipped)
		out_warn("%zu symlink%s or special file%s left out (a link's target "
			 "is not part of the env folder)", st.skipped,
			 st.skipped == 1 ? "" : "s", st.skipped == 1 ? "" : "s");
	rc = 0;
	goto out;
fail:
	out_error("backup '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	env_close(&e);
	secret_strfree(pass);
	free(snap);
	free(rel);
	free(path);
	return rc;
}
