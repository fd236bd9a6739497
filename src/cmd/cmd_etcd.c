/* strata etcd snapshot|members ENV (docs/etcd.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "phase/phase.h"
#include "talos/etcd.h"
#include "util/out.h"
#include "util/proc.h"

static int
etcd_snapshot_cmd(int argc, char **argv)
{
	struct env e;
	struct err err = ERR_INIT;
	struct etcd_snapshot_info info;
	const char *env = NULL, *out = NULL;
	int a, r, rc = 1;

	for (a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--out") && a + 1 < argc)
			out = argv[++a];
		else if (!strncmp(argv[a], "--out=", 6))
			out = argv[a] + 6;
		else if ((r = cmd_positional(&env, argv[a], "etcd")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("etcd", "missing ENV");
	memset(&e, 0, sizeof(e));
	if ((r = proc_protect_secrets(&err)) < 0)
		goto fail;
	/* the lock: apply may be writing the folder's secrets */
	if ((r = env_open(&e, env, ENV_LOCK, &err)) < 0)
		goto fail;
	if ((r = etcd_snapshot_take(e.dir, e.cfg, out, "strata etcd snapshot",
				    &info, &err)) < 0)
		goto fail;
	out_step("etcd snapshot of '%s' from %s: %s (%zu bytes, sha256 %s)",
		 e.cfg->name, info.node, info.path, info.bytes, info.sha256);
	rc = 0;
	goto done;
fail:
	out_error("etcd snapshot '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
done:
	env_close(&e);
	return rc;
}

static int
etcd_members_cmd(int argc, char **argv)
{
	struct env e;
	struct err err = ERR_INIT;
	struct talos_creds creds;
	struct talos_target t = { 0 };
	struct etcd_members ms = { 0 };
	const char *env = NULL, *ip = NULL;
	char hex[17];
	size_t i;
	int a, r, rc = 1;

	for (a = 2; a < argc; a++)
		if ((r = cmd_positional(&env, argv[a], "etcd")) != 0)
			return r;
	if (!env)
		return cmd_usage_error("etcd", "missing ENV");
	memset(&e, 0, sizeof(e));
	memset(&creds, 0, sizeof(creds));
	if ((r = proc_protect_secrets(&err)) < 0 ||
	    (r = env_open(&e, env, ENV_LOCK, &err)) < 0 ||
	    (r = etcd_backup_creds(&creds, e.dir, e.cfg, &err)) < 0)
		goto fail;
	if (!etcd_find_healthy(e.cfg, &creds, 5000, true, &ip, &err)) {
		err_wrap(&err, "no control plane has a healthy etcd member");
		goto fail;
	}
	t.addr = ip;
	t.creds = &creds;
	if ((r = talos_etcd_members(&t, false, &ms, NULL, &err)) < 0)
		goto fail;
	printf("%-16s  %-24s  %-8s  %s\n", "ID", "NAME", "LEARNER", "PEER URLS");
	for (i = 0; i < ms.n; i++) {
		etcd_member_id_format(ms.v[i].id, hex);
		printf("%-16s  %-24s  %-8s  %s\n", hex,
		       ms.v[i].hostname[0] ? ms.v[i].hostname : "(not started)",
		       ms.v[i].learner ? "yes" : "no",
		       ms.v[i].n_peer_urls ? ms.v[i].peer_urls[0] : "");
	}
	rc = 0;
	goto done;
fail:
	out_error("etcd members '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
done:
	etcd_members_release(&ms);
	talos_creds_release(&creds);
	env_close(&e);
	return rc;
}

int
cmd_etcd(int argc, char **argv)
{
	if (cmd_wants_help(argc, argv, "etcd"))
		return 0;
	if (argc < 2)
		return cmd_usage_error("etcd", "missing what to do: snapshot or "
				       "members");
	if (!strcmp(argv[1], "snapshot"))
		return etcd_snapshot_cmd(argc, argv);
	if (!strcmp(argv[1], "members"))
		return etcd_members_cmd(argc, argv);
	return cmd_usage_error("etcd", "unknown '%s' (snapshot or members)",
			       argv[1]);
}
