/*
 * etcd snapshots and recovery for apply, restore and `strata etcd`
 * (FACTS-day2.md 4d).
 *
 * Snapshots are taken with a client cert of role os:etcd:backup, kept in
 * ENV/talosconfig-etcd-backup (0600; strata makes it from the OS CA in
 * ENV/secrets.yaml), from the first control plane whose etcd member is
 * healthy (EtcdStatus answers, a leader is known, not a learner, no
 * alarms). They land in ENV/etcd/<cluster>-<UTC>.snapshot (0600) unless
 * --out names a file; ENV/etcd/snapshots.json records each one's file,
 * size, SHA-256, node, time and why.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phase/phase.h"
#include "talos/etcd.h"
#include "talos/secrets.h"
#include "talos/talosconfig.h"
#include "util/fs.h"
#include "util/isolate.h"
#include "util/out.h"

#define SECRETS_MAX (1 << 20)

struct backup_tc {
	const char *spath, *path;
	struct talosconfig_input in;
};

/*
 * In a child process (util/isolate): secrets.yaml parsed and the
 * talosconfig emitted by libfyaml, which frees its copies of the keys
 * unwiped. Only the talosconfig's text comes back (into a wiped buffer).
 */
static int
backup_tc_child(void *ctx, struct buf *out, struct err *err)
{
	struct backup_tc *b = ctx;
	struct talos_secrets *s = NULL;
	struct buf prev = BUF_INIT_SECRET;
	bool created = false, reused = false;
	int r;

	if ((r = talos_secrets_load_or_create(&s, b->spath, &created, err)) < 0)
		return r;
	if (fs_exists(b->path) &&
	    fs_read_file(&prev, b->path, SECRETS_MAX, err) == 0) {
		b->in.previous = prev.ptr;
		b->in.previous_len = prev.len;
	}
	err_clear(err);
	if ((r = talos_talosconfig_build(out, &b->in, s, &reused, err)) == 0)
		r = fs_write_if_changed(b->path, out->ptr, out->len,
					FS_MODE_SECRET, NULL, err);
	talos_secrets_free(s);
	buf_release_secret(&prev);
	return r;
}

int
etcd_backup_creds(struct talos_creds *out, const char *env_dir,
		  const struct config *cfg, struct err *err)
{
	struct backup_tc b = { 0 };
	struct buf tc = BUF_INIT_SECRET;
	const char **eps = xcalloc(cfg->n_nodes + 1, sizeof(char *));
	char *spath = fs_join(env_dir, "secrets.yaml");
	char *path = fs_join(env_dir, "talosconfig-etcd-backup");
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	if (!fs_exists(spath)) {
		r = err_set(err, ERR_USAGE, "%s is missing: the env folder holds no "
			    "cluster secrets (run 'strata apply' first, or "
			    "restore the folder with 'strata restore --from')",
			    spath);
		goto out;
	}
	for (i = 0; i < cfg->n_nodes; i++)
		if (cfg->nodes[i].role == ROLE_CONTROLPLANE && cfg->nodes[i].ip)
			eps[b.in.n_endpoints++] = cfg->nodes[i].ip;
	if (!b.in.n_endpoints) {
		r = err_set(err, ERR_USAGE, "the config has no control plane with "
			    "an address to take an etcd snapshot from");
		goto out;
	}
	b.spath = spath;
	b.path = path;
	b.in.context = cfg->kubernetes.cluster_name;
	b.in.endpoints = eps;
	b.in.nodes = eps;
	b.in.n_nodes = b.in.n_endpoints;
	b.in.role = "os:etcd:backup";
	if ((r = isolate_run(backup_tc_child, &b, &tc, err)) < 0 ||
	    (r = talos_creds_parse(out, tc.ptr, tc.len, err)) < 0)
		err_wrap(err, "%s", path);
out:
	buf_release_secret(&tc);
	free(eps);
	free(spath);
	free(path);
	return r < 0 ? -1 : 0;
}

/* Is this member healthy? 1 yes, 0 no (why in err). */
static int
member_healthy(const struct talos_target *t, struct err *err)
{
	struct etcd_status es;
	struct talos_status st = { 0 };
	int ok = 0;

	if (talos_etcd_status(t, &es, &st, err) < 0)
		return 0;
	if (!es.leader)
		err_set(err, ERR_FAIL, "etcd on %s knows no leader (quorum lost?)",
			t->addr);
	else if (es.learner)
		err_set(err, ERR_FAIL, "etcd on %s is a learner (still joining)",
			t->addr);
	else if (es.n_errors)
		err_set(err, ERR_FAIL, "etcd on %s has alarm %s", t->addr,
			es.errors[0]);
	else
		ok = 1;
	etcd_status_release(&es);
	return ok;
}

int
etcd_find_healthy(const struct config *cfg, const struct talos_creds *creds,
		  long timeout_ms, bool say, const char **ip, struct err *err)
{
	struct err last = ERR_INIT;
	size_t i;

	*ip = NULL;
	for (i = 0; i < cfg->n_nodes; i++) {
		const struct node *n = &cfg->nodes[i];
		struct talos_target t = { 0 };

		if (n->role != ROLE_CONTROLPLANE || !n->ip)
			continue;
		t.addr = n->ip;
		t.creds = creds;
		t.timeout_ms = timeout_ms;
		t.connect_timeout_ms = timeout_ms < 2000 ? timeout_ms : 2000;
		err_clear(&last);
		if (member_healthy(&t, &last)) {
			*ip = n->ip;
			return 1;
		}
		if (say)
			out_note("etcd on %s (%s): %s", n->name, n->ip, last.msg);
	}
	if (err)
		*err = last;
	return 0;
}

/* Append one record to ENV/etcd/snapshots.json. */
static int
record(const char *env_dir, const struct etcd_snapshot_info *info,
       const char *why, struct err *err)
{
	char *dir = fs_join(env_dir, "etcd");
	char *path = fs_join(dir, "snapshots.json");
	struct buf b = BUF_INIT;
	json_t *arr = NULL, *o;
	char *text = NULL;
	int r;

	if ((r = fs_mkdir_p(dir, FS_MODE_DIR_PRIVATE, err)) < 0)
		goto out;
	if (fs_exists(path) && fs_read_file(&b, path, 16 << 20, err) == 0) {
		arr = json_loadb(b.ptr, b.len, 0, NULL);
		if (arr && !json_is_array(arr)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	err_clear(err);
	if (!arr)
		arr = json_array();
	o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "file", info->path,
		      "bytes", (json_int_t)info->bytes, "sha256", info->sha256,
		      "node", info->node, "taken", info->taken,
		      "why", why ? why : "strata etcd snapshot");
	json_array_append_new(arr, o);
	text = json_dumps(arr, JSON_INDENT(2));
	r = fs_write_atomic(path, text, strlen(text), FS_MODE_SECRET, err);
out:
	json_decref(arr);
	free(text);
	buf_release(&b);
	free(dir);
	free(path);
	return r;
}

int
etcd_snapshot_take(const char *env_dir, const struct config *cfg,
		   const char *out_path, const char *why,
		   struct etcd_snapshot_info *info, struct err *err)
{
	struct talos_creds creds;
	struct talos_target t = { 0 };
	struct err why_not = ERR_INIT;
	uint64_t bytes = 0;
	int n;
	const char *ip = NULL;
	char *path = NULL, *dir = NULL, stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int r;

	memset(info, 0, sizeof(*info));
	if ((r = etcd_backup_creds(&creds, env_dir, cfg, err)) < 0)
		return r;
	if (!etcd_find_healthy(cfg, &creds, 5000, true, &ip, &why_not)) {
		*err = why_not;
		r = err_wrap(err, "no control plane has a healthy etcd member to "
			     "take a snapshot from (the last one said)");
		goto out;
	}
	t.addr = ip;
	t.creds = &creds;
	gmtime_r(&now, &tm);
	strftime(info->taken, sizeof(info->taken), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (out_path) {
		path = xstrdup(out_path);
	} else {
		char *name;

		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		dir = fs_join(env_dir, "etcd");
		if ((r = fs_mkdir_p(dir, FS_MODE_DIR_PRIVATE, err)) < 0)
			goto out;
		/* two snapshots in one second (an apply killed and run
		 * again): the second one gets "-2", and so on */
		for (n = 1; n < 100 && (!path || fs_exists(path)); n++) {
			char sfx[16] = "";

			if (n > 1)
				snprintf(sfx, sizeof(sfx), "-%d", n);
			free(path);
			name = xasprintf("%s-%s%s.snapshot",
					 cfg->kubernetes.cluster_name, stamp, sfx);
			path = fs_join(dir, name);
			free(name);
		}
	}
	/* streamed to the file as it arrives (0600: it holds every Secret
	 * of the cluster), checked, and only then in place */
	if ((r = talos_etcd_snapshot_file(&t, path, &bytes, info->sha256, NULL,
					  err)) < 0) {
		if (err->code == ERR_EXISTS)
			r = err_set(err, ERR_USAGE, "'%s' exists; a snapshot never "
				    "replaces a file (name another with --out)",
				    path);
		goto out;
	}
	snprintf(info->path, sizeof(info->path), "%s", path);
	snprintf(info->node, sizeof(info->node), "%s", ip);
	info->bytes = (size_t)bytes;
	r = record(env_dir, info, why, err);
out:
	talos_creds_release(&creds);
	free(path);
	free(dir);
	return r < 0 ? -1 : 0;
}

int
etcd_latest_snapshot(const char *env_dir, char **path, struct err *err)
{
	char *dir = fs_join(env_dir, "etcd");
	char *idx = fs_join(dir, "snapshots.json");
	struct buf b = BUF_INIT;
	json_t *arr = NULL;
	size_t i;
	int r = 0;

	*path = NULL;
	if (!fs_exists(idx))
		goto out;
	if ((r = fs_read_file(&b, idx, 16 << 20, err)) < 0)
		goto out;
	arr = json_loadb(b.ptr, b.len, 0, NULL);
	for (i = arr && json_is_array(arr) ? json_array_size(arr) : 0; i > 0; i--) {
		const char *f = json_string_value(json_object_get(
			json_array_get(arr, i - 1), "file"));

		/* only the ones kept in ENV/etcd/ (not --out files) */
		if (f && !strncmp(f, dir, strlen(dir)) && f[strlen(dir)] == '/' &&
		    !strchr(f + strlen(dir) + 1, '/') && fs_exists(f)) {
			*path = xstrdup(f);
			break;
		}
	}
out:
	json_decref(arr);
	buf_release(&b);
	free(idx);
	free(dir);
	return r;
}

int
etcd_snapshot_before(struct apply_ctx *c, const char *why, struct err *err)
{
	struct etcd_snapshot_info info;
	int r;

	if (c->dry_run || !c->cfg->backup.etcd_before_changes ||
	    c->etcd_snapshot_taken || !c->cfg->n_controlplanes ||
	    !state_phase_done(&c->st, "bootstrap"))
		return 0;
	if ((r = etcd_snapshot_take(c->env_dir, c->cfg, NULL, why, &info,
				    err)) < 0)
		return err_wrap(err, "etcd snapshot before %s (set "
				"backup.etcd_before_changes: false to go on "
				"without one)", why);
	c->etcd_snapshot_taken = true;
	out_step("etcd snapshot before %s: %s (%zu bytes, sha256 %.16s...)", why,
		 info.path, info.bytes, info.sha256);
	return 0;
}
