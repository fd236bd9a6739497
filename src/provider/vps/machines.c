/*
 * plan and status of the VPS provider (phase/provider.h: plan_machines,
 * status_machines; docs/vps.md).
 *
 * A machine is the server a node runs on. plan decides for each node what
 * apply would do, from what apply's phases look at, read-only:
 *
 *   the node's Talos API at its address   rescue-install and talos-install
 *                                         probe it first (mTLS with
 *                                         ENV/talosconfig, then a look
 *                                         without credentials)
 *   ENV/state.json                        rescue (writing / verified /
 *                                         rebooted), installed,
 *                                         config_sha256
 *   the Talos files gen would write       talos_gen with check_only
 *
 *   the rescue system (strata plan only,  rescue-install's SSH login
 *   for a node that needs the write)      (host key pinned), its probe
 *                                         and disk checks: which tools,
 *                                         vps.disk's kind, size, mounts
 *
 * Nothing is written (the probe only reads: command -v, test, sysfs,
 * /proc/mounts), no image is downloaded, no config is sent.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/machines.h"
#include "phase/phase.h"
#include "phase/provider.h"
#include "provider/vps/machines.h"
#include "provider/vps/rescue.h"
#include "provider/vps/ssh.h"
#include "talos/gen.h"
#include "trust/trust.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/event.h"
#include "util/out.h"

enum vps_act { VA_UNCHANGED, VA_INSTALL, VA_UPDATE, VA_CONFLICT };

static const char *const act_word[] = {
	[VA_UNCHANGED] = "unchanged", [VA_INSTALL] = "install",
	[VA_UPDATE] = "update", [VA_CONFLICT] = "conflict",
};
static const char *const act_sym[] = {
	[VA_UNCHANGED] = " ", [VA_INSTALL] = "+", [VA_UPDATE] = "~",
	[VA_CONFLICT] = "!",
};
static const char *const act_col[] = {
	[VA_UNCHANGED] = "0", [VA_INSTALL] = "32", [VA_UPDATE] = "33",
	[VA_CONFLICT] = "1;31",
};

struct node_plan {
	const char *name, *role, *ip;
	enum vps_act act;
	char talos[40];             /* version, maintenance, down, foreign-ca */
	char *rescue;               /* journal, or NULL */
	bool installed;             /* journal */
	bool in_config;             /* false: only the journal names it */
	bool rescue_write;
	bool looked;                /* plan checked the rescue system */
	bool look_ok;               /* ... and apply would write there */
	uint64_t disk_bytes;
	const char *write_path;     /* "fetch" (the host downloads), "stream" */
	char *look_err;             /* why not */
	const char *config;         /* apply, changed, unchanged, refused, none */
	char *applied_sha, *file_sha;
	char *reason;
};

/* A read-only view of the journal for the phases' helpers that take an
 * apply_ctx (read_node_config, upgrade_defers_config): its own mutex, the
 * caller's document. */
static void
ctx_view(struct apply_ctx *c, struct env *e, struct state *st)
{
	memset(c, 0, sizeof(*c));
	c->cfg = e->cfg;
	c->env_dir = e->dir;
	c->provider = &provider_vps;
	c->st.path = st->path;
	c->st.root = st->root;
	pthread_mutex_init(&c->st.mu, NULL);
}

static void
ctx_view_end(struct apply_ctx *c)
{
	pthread_mutex_destroy(&c->st.mu);
	talos_creds_release(&c->creds);
}

/* ENV/talosconfig into c->creds, when there is one. */
static bool
load_creds(struct apply_ctx *c, struct err *err)
{
	char *path = fs_join(c->env_dir, "talosconfig");
	bool ok = fs_exists(path) && talos_creds_load(&c->creds, path, err) == 0;

	free(path);
	return ok;
}

/* What answers at ip, the way rescue-install and talos-install look. */
static int
probe(const struct apply_ctx *c, bool creds, const char *ip, char out[40],
      struct err *err)
{
	struct talos_target t = mtls_target(c, ip);
	struct talos_status st = { 0 };
	char *tag = NULL, *clean;
	int kind;

	t.timeout_ms = 5000;
	if (!creds)
		t.creds = NULL;
	kind = talos_probe(&t, &tag, &st, err);
	if (kind == TALOS_UP) {
		clean = out_clean(tag ? tag : "?");
		snprintf(out, 40, "%s", clean);
		free(clean);
	} else {
		snprintf(out, 40, "%s", kind == TALOS_MAINTENANCE ? "maintenance"
			 : kind == TALOS_FOREIGN ? "foreign-ca" : "down");
	}
	free(tag);
	return kind;
}

static bool
str_in_lines(const char *lines, const char *line)
{
	size_t n = strlen(line);
	const char *p = lines;

	while (p && (p = strstr(p, line))) {
		if ((p == lines || p[-1] == '\n') && (p[n] == '\n' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

/*
 * Would apply send node name a config: none applied yet (journal), or
 * nodes/<name>.yaml differs from what was applied, or gen would rewrite
 * it (the gen result of check_only). applied, file: the SHA-256s (hex, or
 * NULL: none applied; gen has not written it, or would rewrite it), for
 * the caller to free.
 */
static bool
config_changes(struct apply_ctx *c, const struct gen_result *gen,
	       const char *name, char **applied, char **file)
{
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	char sha[65], *rel;
	bool changes;

	*applied = state_talos_get(&c->st, name, "config_sha256");
	*file = NULL;
	if (!gen->secrets_created && read_node_config(c, name, &b, sha, &e) == 0)
		*file = xstrdup(sha);
	buf_release(&b);
	rel = xasprintf("nodes/%s.yaml", name);
	if (*file && str_in_lines(gen->changed, rel)) {
		free(*file);            /* what is on disk now is not it */
		*file = NULL;
	}
	changes = gen->secrets_created || !*file || !*applied ||
		  strcmp(*applied, *file);
	free(rel);
	return changes;
}

/*
 * strata plan, a node rescue-install would write: the rescue system's
 * answer, read-only (provider.c vps_rescue_look: the login and the probe
 * rescue-install runs first). A disk apply would refuse, or a rescue
 * system strata cannot log in to, makes the node a conflict: apply stops
 * there before writing.
 */
static void
look_rescue(struct apply_ctx *c, struct node_plan *np)
{
	const struct vps_config *vc = &c->cfg->vps;
	struct rescue_write_opts wo = { 0 };
	struct rescue_facts f;
	struct vps_ssh *s = NULL;
	struct err e = ERR_INIT;
	char *clean;

	np->looked = true;
	if (vps_rescue_look(c, &s, &f, &e) < 0) {
		np->disk_bytes = f.size;   /* probed, or 0 */
		clean = out_clean(e.msg);
		np->look_err = clean;
		np->act = VA_CONFLICT;
		np->config = "refused";
		free(np->reason);
		np->reason = xasprintf("Talos does not answer at %s:%d: rescue "
				       "install, but its check on the rescue "
				       "system fails: %s; apply would stop there "
				       "before writing",
				       np->ip, TALOS_API_PORT, clean);
		return;
	}
	vps_ssh_close(s);
	wo.url = ".zst";   /* the factory's image: metal-amd64.raw.zst */
	np->look_ok = true;
	np->disk_bytes = f.size;
	np->write_path = rescue_can_fetch(&f, &wo) ? "fetch" : "stream";
	{
		char *old = np->reason;

		np->reason = xasprintf("%s; the rescue system checked: %s is a "
				       "%s of %llu MiB, not mounted, big enough, "
				       "and %s", old, vc->disk,
				       f.kind == DISK_BLOCK ? "block device"
				       : "file", (unsigned long long)(f.size >> 20),
				       !strcmp(np->write_path, "fetch")
				       ? "the host has curl and zstd: it fetches "
					 "the image itself"
				       : "the host lacks curl or zstd: strata "
					 "streams the image");
		free(old);
	}
}

static void
decide(struct apply_ctx *c, bool creds, const struct gen_result *gen,
       const struct node *nd, struct node_plan *np, bool look)
{
	const struct vps_config *vc = &c->cfg->vps;
	struct err e = ERR_INIT;
	const char *deferred;
	bool will_change;
	int kind;

	np->name = nd->name;
	np->role = nd->role == ROLE_CONTROLPLANE ? "controlplane" : "worker";
	np->ip = nd->ip;
	np->in_config = true;
	np->rescue = state_machine_get(&c->st, nd->name, "rescue");
	np->installed = trust_journal_installed(&c->st, nd->name);
	will_change = config_changes(c, gen, nd->name, &np->applied_sha,
				     &np->file_sha);
	kind = probe(c, creds, nd->ip, np->talos, &e);
	switch (kind) {
	case TALOS_UP:
		if (!will_change) {
			np->act = VA_UNCHANGED;
			np->config = "unchanged";
			np->reason = xasprintf("Talos %s of this cluster answers at "
					       "%s:%d, its config as applied: nothing "
					       "to do", np->talos, nd->ip,
					       TALOS_API_PORT);
		} else if ((deferred = upgrade_defers_config(c, nd->name, np->talos))) {
			np->act = VA_UPDATE;
			np->config = "changed";
			np->reason = xasprintf("runs Talos %s; nodes/%s.yaml changed: "
					       "%s (below)", np->talos, nd->name,
					       deferred);
		} else {
			np->act = VA_UPDATE;
			np->config = "changed";
			np->reason = xasprintf("Talos %s of this cluster at %s:%d; "
					       "nodes/%s.yaml changed since it was "
					       "applied: applied over mTLS (Talos "
					       "reboots only when it must; a "
					       "firewall change goes in TRY mode "
					       "first); its disk is not rewritten",
					       np->talos, nd->ip, TALOS_API_PORT,
					       nd->name);
		}
		return;
	case TALOS_MAINTENANCE:
		if (np->installed) {
			np->act = VA_CONFLICT;
			np->config = "refused";
			np->reason = xasprintf("in maintenance mode at %s:%d, but the "
					       "journal records it installed: apply "
					       "sends it no config (an impostor, or a "
					       "node wiped by hand: then 'strata "
					       "apply --reinstall %s')", nd->ip,
					       TALOS_API_PORT, nd->name);
			return;
		}
		np->act = VA_INSTALL;
		np->config = "apply";
		np->reason = xasprintf("in Talos maintenance mode at %s:%d (the "
				       "image is on the disk): no rescue write; "
				       "its config applied in maintenance mode",
				       nd->ip, TALOS_API_PORT);
		return;
	case TALOS_FOREIGN:
		np->act = VA_CONFLICT;
		np->config = "refused";
		np->reason = creds
			? xasprintf("%s:%d answers as Talos of another cluster: "
				    "apply refuses to touch it (boot the server's "
				    "rescue system to reinstall it)", nd->ip,
				    TALOS_API_PORT)
			: xasprintf("an installed Talos answers at %s:%d and ENV "
				    "has no talosconfig to tell whose: apply "
				    "refuses unless it is this cluster's", nd->ip,
				    TALOS_API_PORT);
		return;
	default:
		break;
	}
	if (np->installed) {
		np->act = VA_CONFLICT;
		np->config = "refused";
		np->reason = xasprintf("Talos does not answer at %s:%d, but the "
				       "journal records it installed: apply does "
				       "not rewrite its disk (if it is rebooting, "
				       "wait; to reinstall it on purpose: 'strata "
				       "apply --reinstall %s')", nd->ip,
				       TALOS_API_PORT, nd->name);
		return;
	}
	np->act = VA_INSTALL;
	np->config = "apply";
	np->rescue_write = true;
	np->reason = xasprintf("Talos does not answer at %s:%d%s: rescue install "
			       "(SSH to %s:%d, check %s, write the metal image "
			       "of Talos %s, verify it, reboot), then its config "
			       "in maintenance mode",
			       nd->ip, TALOS_API_PORT,
			       !np->rescue ? ""
			       : !strcmp(np->rescue, "writing")
			       ? " and the last write did not finish (the disk "
				 "holds a partial image)"
			       : " although the image was written (the server "
				 "came back in rescue mode?)",
			       vc->host, vc->ssh_port, vc->disk,
			       c->cfg->talos.version);
	if (look)
		look_rescue(c, np);
}

static void
node_plan_release(struct node_plan *np)
{
	free(np->rescue);
	free(np->applied_sha);
	free(np->file_sha);
	free(np->reason);
	free(np->look_err);
}

/* Installed nodes (journal) the config no longer names: apply refuses. */
static size_t
removed_nodes(struct apply_ctx *c, struct node_plan **out, size_t n)
{
	char **names;
	size_t k, i, m;

	state_talos_nodes(&c->st, &names, &k);
	for (i = 0; i < k; i++) {
		char *sha = state_talos_get(&c->st, names[i], "config_sha256");

		if (sha && !config_node(c->cfg, names[i])) {
			struct node_plan *np;

			*out = xrealloc(*out, (n + 1) * sizeof(**out));
			np = &(*out)[n++];
			memset(np, 0, sizeof(*np));
			np->name = names[i];
			names[i] = NULL;
			np->role = "?";
			np->act = VA_CONFLICT;
			np->config = "refused";
			snprintf(np->talos, sizeof(np->talos), "-");
			np->reason = xasprintf("installed (journal) but config.yml no "
					       "longer names it: apply refuses "
					       "(removing a vps node is not supported "
					       "yet; put it back, or 'strata destroy')");
		}
		free(sha);
	}
	for (m = 0; m < k; m++)
		free(names[m]);
	free(names);
	return n;
}

static json_t *
node_plan_json(const struct config *cfg, const struct node_plan *np)
{
	json_t *o = json_object(), *d, *l, *ch = json_array();

	json_object_set_new(o, "action", json_string(act_word[np->act]));
	if (np->in_config) {
		d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", np->name,
			      "role", np->role, "address", np->ip,
			      "server", cfg->vps.host, "disk", cfg->vps.disk);
	} else {
		d = json_null();
	}
	l = json_pack("{s:s, s:s?, s:b}", "name", np->name,
		      "talos", np->in_config ? np->talos : NULL,
		      "installed", np->installed || !np->in_config);
	json_object_set_new(l, "rescue", np->rescue ? json_string(np->rescue)
			    : json_null());
	json_object_set_new(o, "desired", d);
	json_object_set_new(o, "live", l);
	if (np->act == VA_UPDATE)
		json_array_append_new(ch, json_pack("{s:s, s:s?, s:s?, s:n}",
			"field", "talos_config", "from", np->applied_sha,
			"to", np->file_sha, "unit"));
	json_object_set_new(o, "changes", ch);
	json_object_set_new(o, "rescue_write", json_boolean(np->rescue_write));
	if (np->looked)
		json_object_set_new(o, "rescue_check", json_pack(
			"{s:b, s:I, s:s?, s:s?}", "ok", np->look_ok,
			"disk_bytes", (json_int_t)np->disk_bytes,
			"write", np->write_path, "error", np->look_err));
	else
		json_object_set_new(o, "rescue_check", json_null());
	json_object_set_new(o, "config", json_string(np->config));
	json_object_set_new(o, "reason", json_string(np->reason));
	return o;
}

int
vps_plan_machines(struct env *e, struct state *st, struct plan_out *o,
		  struct err *err)
{
	struct apply_ctx c;
	struct gen_result gen;
	struct node_plan *v = NULL;
	struct err ce = ERR_INIT;
	size_t n = e->cfg->n_nodes, i, cnt[4] = { 0 };
	bool creds, color = out_color();
	int r;

	ctx_view(&c, e, st);
	memset(&gen, 0, sizeof(gen));
	gen.check_only = true;
	if ((r = talos_gen(e->cfg, e->dir, &gen, err)) < 0)
		goto out;
	creds = load_creds(&c, &ce);
	if (!creds && ce.msg[0])
		out_warn("cannot probe the Talos nodes over mTLS: %s", ce.msg);
	v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		decide(&c, creds, &gen, &e->cfg->nodes[i], &v[i], o->look_rescue);
	n = removed_nodes(&c, &v, n);
	for (i = 0; i < n; i++)
		cnt[v[i].act]++;
	o->changes = n - cnt[VA_UNCHANGED];
	if (o->json || o->event) {
		json_t *root = json_object(), *acts = json_array(), *tf;
		char *s;

		json_object_set_new(root, "format_version", json_integer(2));
		json_object_set_new(root, "env", json_string(e->cfg->name));
		json_object_set_new(root, "platform", json_string("vps"));
		for (i = 0; i < n; i++)
			json_array_append_new(acts, node_plan_json(e->cfg, &v[i]));
		json_object_set_new(root, "actions", acts);
		json_object_set_new(root, "summary", json_pack(
			"{s:I, s:I, s:I, s:I}",
			"install", (json_int_t)cnt[VA_INSTALL],
			"update", (json_int_t)cnt[VA_UPDATE],
			"conflict", (json_int_t)cnt[VA_CONFLICT],
			"unchanged", (json_int_t)cnt[VA_UNCHANGED]));
		tf = json_pack("{s:b, s:i, s:i}", "secrets_created",
			       gen.secrets_created, "files_changed",
			       gen.files_changed, "files_total", gen.files_total);
		json_object_set_new(root, "talos_files", tf);
		if (o->rolls)
			json_object_set(root, "rolls", o->rolls);
		if (o->event) {
			event_plan(root);
			goto out;
		}
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(root);
		fprintf(o->fp, "%s\n", s);
		free(s);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct node_plan *np = &v[i];

		if (color)
			fprintf(o->fp, "\033[%sm", act_col[np->act]);
		fprintf(o->fp, "%3s %-20s %-9s", act_sym[np->act], np->name,
		       act_word[np->act]);
		if (color)
			fprintf(o->fp, "\033[0m");
		if (np->in_config)
			fprintf(o->fp, " server %s: %s\n", e->cfg->vps.host, np->reason);
		else
			fprintf(o->fp, " %s\n", np->reason);
	}
	fprintf(o->fp, "Plan: %zu to install, %zu to update, %zu unchanged.\n",
	       cnt[VA_INSTALL], cnt[VA_UPDATE], cnt[VA_UNCHANGED]);
	if (gen.secrets_created)
		fprintf(o->fp, "Talos files: a new secrets bundle, machine configs and "
		       "talosconfig to generate.\n");
	else if (gen.files_changed)
		fprintf(o->fp, "Talos files: %d of %d to rewrite.\n", gen.files_changed,
		       gen.files_total);
	if (cnt[VA_CONFLICT])
		fprintf(o->fp, "%zu conflict%s: apply will refuse until resolved.\n",
		       cnt[VA_CONFLICT], cnt[VA_CONFLICT] == 1 ? "" : "s");
out:
	for (i = 0; v && i < n; i++) {
		if (!v[i].in_config)
			free((char *)v[i].name);
		node_plan_release(&v[i]);
	}
	free(v);
	gen_result_release(&gen);
	ctx_view_end(&c);
	return r;
}

/* ------------------------------------------------------------------ status */

int
vps_status_machines(struct env *e, struct state *st, const char *env,
		    bool json, bool want_health)
{
	struct apply_ctx c;
	struct gen_result gen;
	struct status_probe *pr;
	struct kube_node *kn = NULL;
	struct health_report hrep;
	struct err err = ERR_INIT;
	const char *kube_note = NULL;
	json_t *arr = json_array(), *addons = NULL, *hjson = NULL;
	size_t n = e->cfg->n_nodes, nk = 0, i;
	size_t n_up = 0, n_ready = 0, n_changed = 0;
	bool *all;
	int rc = 1;

	ctx_view(&c, e, st);
	memset(&gen, 0, sizeof(gen));
	gen.check_only = true;
	if (talos_gen(e->cfg, e->dir, &gen, &err) < 0) {
		out_error("status '%s': %s", env, err.msg);
		gen_result_release(&gen);
		ctx_view_end(&c);
		return err_exit_code(&err);
	}
	pr = xcalloc(n + 1, sizeof(*pr));
	all = xcalloc(n + 1, sizeof(*all));
	for (i = 0; i < n; i++)
		all[i] = true;              /* the server is always there */
	status_probe_cluster(e, pr, all, &kn, &nk, &kube_note);
	if (!kube_note)
		addons = status_read_addons(e);
	if (want_health && status_health(e, &hrep, &err) < 0) {
		out_error("status '%s' --health: %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if (want_health)
		hjson = health_report_json(&hrep);
	if (!json)
		printf("  %-20s %-13s %-16s %-16s %-9s %-12s %-9s %-9s %s\n",
		       "NAME", "ROLE", "SERVER", "ADDRESS", "IMAGE", "TALOS",
		       "ETCD", "K8S", "CONFIG");
	for (i = 0; i < n; i++) {
		const struct node *nd = &e->cfg->nodes[i];
		char *rescue = state_machine_get(&c.st, nd->name, "rescue");
		char *applied = NULL, *file = NULL;
		const char *config, *k8s;
		bool up = status_talos_up(pr[i].talos);

		if (!config_changes(&c, &gen, nd->name, &applied, &file))
			config = "applied";
		else
			config = applied ? "changed" : "not applied";
		free(file);
		if (strcmp(config, "applied"))
			n_changed++;
		k8s = status_kube_state(kn, nk, nd->name, kube_note);
		n_up += up;
		n_ready += !strcmp(k8s, "Ready");
		if (json) {
			json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
				"name", nd->name, "role",
				nd->role == ROLE_CONTROLPLANE ? "controlplane" : "worker",
				"provider", "vps",
				"server", e->cfg->vps.host, "disk", e->cfg->vps.disk,
				"address", nd->ip);

			json_object_set_new(o, "image", rescue ? json_string(rescue)
					    : json_null());
			json_object_set_new(o, "talos", strcmp(pr[i].talos, "-")
					    ? json_string(pr[i].talos) : json_null());
			json_object_set_new(o, "etcd", strcmp(pr[i].etcd, "-")
					    ? json_string(pr[i].etcd) : json_null());
			json_object_set_new(o, "kubernetes", kube_note ? json_null()
					    : json_string(k8s));
			json_object_set_new(o, "config", json_string(
				!strcmp(config, "not applied") ? "not_applied" : config));
			json_array_append_new(arr, o);
		} else {
			printf("%c %-20s %-13s %-16s %-16s %-9s %-12s %-9s %-9s %s\n",
			       strcmp(config, "applied") ? '~' : ' ', nd->name,
			       nd->role == ROLE_CONTROLPLANE ? "controlplane" : "worker",
			       e->cfg->vps.host, nd->ip, rescue ? rescue : "-",
			       pr[i].talos, pr[i].etcd, k8s, config);
		}
		free(rescue);
		free(applied);
	}
	if (json) {
		json_t *summary = json_pack(
			"{s:I, s:I, s:I, s:I, s:I}",
			"machines", (json_int_t)n, "talos_nodes", (json_int_t)n,
			"talos_up", (json_int_t)n_up,
			"kubernetes_ready", (json_int_t)n_ready,
			"config_differs", (json_int_t)n_changed);

		status_print_json(e->cfg->name, "vps", arr, false, kube_note,
				  summary, addons, hjson);
	} else {
		if (kube_note && n)
			out_note("Kubernetes: %s", kube_note);
		printf("\n%s: %zu machine%s (server %s); Talos %zu/%zu up; "
		       "Kubernetes %zu/%zu Ready", e->cfg->name, n,
		       n == 1 ? "" : "s", e->cfg->vps.host, n_up, n, n_ready, n);
		if (n_changed)
			printf("; %zu Talos config%s to apply", n_changed,
			       n_changed == 1 ? "" : "s");
		printf("\n");
		if (n_changed || n_up < n)
			printf("'strata plan %s' says what apply would do; 'strata "
			       "apply %s' does it\n", env, env);
		status_print_tail(addons, want_health, &hrep);
	}
	rc = want_health && !hrep.healthy ? 1 : 0;
out:
	free(pr);
	free(all);
	kube_nodes_free(kn, nk);
	json_decref(arr);
	json_decref(addons);
	json_decref(hjson);
	gen_result_release(&gen);
	ctx_view_end(&c);
	return rc;
}
