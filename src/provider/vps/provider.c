/*
 * The VPS provider of the phase engine (phase/provider.h, docs/vps.md).
 *
 * rescue-install  unless the node already answers over mTLS as Talos of
 *                 this cluster (its disk is then never rewritten) or in
 *                 maintenance mode after a write of this apply: SSH to the
 *                 rescue system (host key pinned), probe and check the
 *                 disk, write the metal image (the host fetching it, else
 *                 streamed), verify its bytes, reboot. The journal says
 *                 "writing" from the first byte to the verified end, so an
 *                 interrupted write is reported loudly and rewritten.
 *
 * Then the shared Talos phases run at the node's public address (its
 * config address: no guest agent, no VIP), and the addon phases.
 *
 * destroy: talos-reset. Every node answering over mTLS as this cluster's
 * Talos gets Reset (graceful when the cluster has more than one node: it
 * drains and leaves etcd; reboot; STATE and EPHEMERAL wiped), and destroy
 * waits until it is back in maintenance mode. The Talos image stays on
 * the disk: the next apply gives the node its config again.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "phase/provider.h"
#include "provider/vps/machines.h"
#include "provider/vps/rescue.h"
#include "provider/vps/ssh.h"
#include "talos/factory.h"
#include "talos/reset.h"
#include "talos/gen.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/event.h"
#include "util/fs.h"
#include "util/out.h"
#include "util/proc.h"

struct machine {
	const struct node *nd;
	char label[64];
};

static int
vps_open(struct apply_ctx *c, const struct node *nd, struct machine **out,
	 struct err *err)
{
	struct machine *m = xcalloc(1, sizeof(*m));

	(void)err;
	m->nd = nd;
	snprintf(m->label, sizeof(m->label), "server %s", c->cfg->vps.host);
	*out = m;
	return 0;
}

static void
vps_close(struct machine *m)
{
	free(m);
}

static const char *
vps_label(const struct machine *m)
{
	return m->label;
}

/* After the rescue write the server boots the disk into maintenance mode
 * at its public address (FACTS-metal.md §3): the address of the config. */
static int
vps_discover(struct apply_ctx *c, struct machine *m, char **ip,
	     enum trust_addr *src, struct err *err)
{
	(void)c;
	(void)err;
	*ip = xstrdup(m->nd->ip);
	*src = TRUST_ADDR_CONFIG;
	return 0;
}

/* ---------------------------------------------------------- rescue-install */

#define RESCUE_KEY "rescue"   /* machines.<node>: writing, verified, rebooted */

/* The metal raw image of the env's schematic and version. zstd: the host
 * decompresses it when it has zstd, else strata does (libzstd). */
static char *
image_url(const struct config *cfg, struct err *err)
{
	char id[65];
	const char *base = cfg->vps.image_factory;
	size_t n = strlen(base);

	if (talos_schematic_for(id, cfg, err) < 0)
		return NULL;
	while (n && base[n - 1] == '/')
		n--;
	return xasprintf("%.*s/image/%s/%s/metal-amd64.raw.zst", (int)n, base,
			 id, cfg->talos.version);
}

/* The factory serves only schematics it knows (FACTS-metal.md §1): one with
 * kernel args or extensions is POSTed first, and its id must be the one
 * strata computed. A given talos.schematic_id was registered by its owner;
 * the vanilla schematic is known to every factory. */
static int
register_schematic(const struct config *cfg, struct err *err)
{
	char id[65];
	int r = talos_schematic_register(cfg, cfg->vps.image_factory, id, err);

	if (r < 0)
		return err_wrap(err, "registering the schematic with the Image "
				"Factory");
	if (r > 0)
		out_step("rescue-install: schematic %.12s... registered with %s",
			 id, cfg->vps.image_factory);
	return 0;
}

/* vps.ssh.key_file: ~/ is $HOME, a relative path is under the env folder. */
static char *
key_path(const struct apply_ctx *c)
{
	const char *k = c->cfg->vps.ssh_key_file, *home = getenv("HOME");

	if (!k)
		return NULL;
	if (!strncmp(k, "~/", 2) && home)
		return xasprintf("%s/%s", home, k + 2);
	if (k[0] == '/')
		return xstrdup(k);
	return fs_join(c->env_dir, k);
}

int
vps_rescue_look(const struct apply_ctx *c, struct vps_ssh **out,
		struct rescue_facts *f, struct err *err)
{
	const struct vps_config *vc = &c->cfg->vps;
	struct vps_ssh_opts so;
	struct vps_ssh *s = NULL;
	char *key;
	int r;

	*out = NULL;
	memset(f, 0, sizeof(*f));
	if (!vc->ssh_host_fingerprint)
		return err_set(err, ERR_USAGE, "vps.ssh.host_fingerprint is not "
			       "set: strata never trusts an unknown host key. "
			       "Read it on the rescue console (ssh-keygen -lf "
			       "/etc/ssh/ssh_host_ed25519_key.pub) and put it in "
			       "config.yml");
	memset(&so, 0, sizeof(so));
	key = key_path(c);
	so.host = vc->host;
	so.port = vc->ssh_port;
	so.user = vc->ssh_user;
	so.key_file = key;
	so.host_fingerprint = vc->ssh_host_fingerprint;
	r = vps_ssh_connect(&s, &so, err);
	free(key);
	if (r < 0)
		return err_wrap(err, "rescue system %s:%d", vc->host, vc->ssh_port);
	if ((r = rescue_probe(s, vc->disk, f, err)) < 0 ||
	    (r = rescue_check_target(f, vc->disk, RESCUE_METAL_RAW_BYTES, false,
				     err)) < 0) {
		vps_ssh_close(s);
		return r;
	}
	*out = s;
	return 0;
}

static void
write_progress(void *ctx, uint64_t written, uint64_t total)
{
	const char *disk = ctx;

	if (total)
		out_step("rescue-install: %llu of %llu MiB downloaded, written "
			 "to %s", (unsigned long long)(written >> 20),
			 (unsigned long long)(total >> 20), disk);
	else
		out_step("rescue-install: %llu MiB written to %s",
			 (unsigned long long)(written >> 20), disk);
}

/* What answers at the node's address before anything is written. */
static int
node_now(struct apply_ctx *c, const struct node *nd, struct err *err)
{
	struct talos_target t;
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	char *tag = NULL;
	int kind;

	t = mtls_target(c, nd->ip);
	t.timeout_ms = 5000;
	kind = talos_probe(&t, &tag, &st, &e);
	free(tag);
	if (kind == TALOS_FOREIGN)
		return err_set(err, ERR_FAIL, "node '%s': %s:%d answers as Talos "
			       "of another cluster (%s); strata does not touch "
			       "it. Boot the server's rescue system to reinstall "
			       "it", nd->name, nd->ip, TALOS_API_PORT, e.msg);
	return kind;
}

static int
rescue_node(struct apply_ctx *c, const struct node *nd, struct err *err)
{
	const struct vps_config *vc = &c->cfg->vps;
	struct vps_ssh *s = NULL;
	struct rescue_facts f;
	struct rescue_write_opts wo;
	struct rescue_result res;
	char *prev, *url = NULL, hex[65];
	bool fetched = false;
	int kind, r, i, status = -1;

	if ((kind = node_now(c, nd, err)) < 0)
		return kind;
	prev = state_machine_get(&c->st, nd->name, RESCUE_KEY);
	if (kind == TALOS_UP) {
		out_step("rescue-install: %s runs Talos of this cluster at %s; "
			 "its disk is not rewritten", nd->name, nd->ip);
		free(prev);
		return 0;
	}
	if (kind == TALOS_MAINTENANCE) {
		/* A written disk booted; talos-install gives it its config. */
		out_step("rescue-install: %s is in Talos maintenance mode at %s%s; "
			 "nothing to write", nd->name, nd->ip,
			 prev && !strcmp(prev, "rebooted")
			 ? " (booted from the image this environment wrote)" : "");
		free(prev);
		return 0;
	}
	if (trust_journal_installed(&c->st, nd->name) &&
	    !apply_reinstall_asked(c, nd->name)) {
		/* Rewritten, it would boot into maintenance mode, where the
		 * journal rule (trust.h) refuses its config: stop before the
		 * disk is touched. */
		free(prev);
		return err_set(err, ERR_FAIL, "node '%s' is installed (journal) "
			       "but Talos does not answer at %s:%d; strata does "
			       "not rewrite an installed node's disk. If it is "
			       "rebooting, wait and run apply again; to reinstall "
			       "it from the rescue system on purpose: 'strata "
			       "apply %s --reinstall %s'", nd->name, nd->ip,
			       TALOS_API_PORT, c->env_dir, nd->name);
	}
	if (prev && !strcmp(prev, "writing"))
		out_warn("rescue-install: the last write of the Talos image to %s "
			 "on %s did not finish (interrupted or failed): that disk "
			 "holds a partial image and would not boot; writing it "
			 "again", vc->disk, vc->host);
	else if (prev && (!strcmp(prev, "verified") || !strcmp(prev, "rebooted")))
		out_warn("rescue-install: the image was written to %s on %s but "
			 "Talos does not answer at %s:%d; writing it again from "
			 "the rescue system (if it keeps coming back in rescue "
			 "mode, switch the server's next boot to its disk)",
			 vc->disk, vc->host, nd->ip, TALOS_API_PORT);
	free(prev);
	out_step("rescue-install: %s: SSH to the rescue system at %s:%d", nd->name,
		 vc->host, vc->ssh_port);
	if ((r = vps_rescue_look(c, &s, &f, err)) < 0)
		goto out;
	if ((r = register_schematic(c->cfg, err)) < 0 ||
	    !(url = image_url(c->cfg, err))) {
		r = -1;
		goto out;
	}
	memset(&wo, 0, sizeof(wo));
	wo.url = url;
	wo.disk = vc->disk;
	wo.max_bytes = f.size;
	wo.progress = write_progress;
	wo.ctx = (void *)vc->disk;
	/* From the first byte on, a stop leaves a disk that will not boot. */
	if ((r = state_machine_set(&c->st, nd->name, c->provider->name,
				   RESCUE_KEY, "writing", err)) < 0)
		goto out;
	out_step("rescue-install: writing %s to %s", url, vc->disk);
	memset(&res, 0, sizeof(res));
	if ((r = rescue_install_image(s, &f, &wo, &res, &fetched, err)) < 0 ||
	    (r = rescue_verify(s, vc->disk, &res, err)) < 0) {
		err_wrap(err, "%s on %s: the disk holds a partial image and will "
			 "not boot; run apply again to rewrite it", vc->disk,
			 vc->host);
		goto out;
	}
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", res.sha256[i]);
	{
		const struct state_kv kv[] = {
			{ "image_sha256", hex }, { RESCUE_KEY, "verified" },
		};

		if ((r = state_machine_setv(&c->st, nd->name, c->provider->name,
					    kv, 2, err)) < 0)
			goto out;
	}
	out_step("rescue-install: %llu bytes written to %s (%s) and verified "
		 "(SHA-256 %.16s...); rebooting into Talos",
		 (unsigned long long)res.bytes, vc->disk,
		 fetched ? "fetched by the rescue host" : "streamed by strata",
		 hex);
	{
		struct err e = ERR_INIT;

		/* The connection may drop as the host goes down. */
		if (vps_ssh_run(s, "reboot", NULL, NULL, &status, &e) == 0 &&
		    status > 0) {
			r = err_set(err, ERR_FAIL, "reboot on %s exited %d: the "
				    "image is written and verified; reboot the "
				    "server into its disk and run apply again",
				    vc->host, status);
			goto out;
		}
	}
	r = state_machine_set(&c->st, nd->name, c->provider->name, RESCUE_KEY,
			      "rebooted", err);
	if (r == 0)
		event_step(nd->name, "ok", "written");   /* counted by the summary */
out:
	vps_ssh_close(s);
	free(url);
	return r;
}

static bool
rescue_should_run(struct apply_ctx *c)
{
	return c->cfg->n_nodes > 0;
}

static int
rescue_run(struct apply_ctx *c, struct err *err)
{
	size_t i;
	int r;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if ((r = rescue_node(c, &c->cfg->nodes[i], err)) < 0)
			return err_wrap(err, "node '%s'", c->cfg->nodes[i].name);
	return 0;
}

static void
rescue_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    unless Talos of this cluster answers at %s:%d: SSH to "
		"%s:%d, check %s, write the metal image, verify, reboot\n",
		c->cfg->n_nodes ? c->cfg->nodes[0].ip : "?", TALOS_API_PORT,
		c->cfg->vps.host, c->cfg->vps.ssh_port, c->cfg->vps.disk);
}

const struct phase ph_rescue_install = {
	.name = "rescue-install",
	.title = "write Talos to the server's disk from its rescue system",
	.should_run = rescue_should_run,
	.run = rescue_run,
	.dry_run = rescue_dry_run,
};

/* ------------------------------------------------------------- talos-reset */

#define RESET_WAIT_MS (5 * 60 * 1000LL)

static int
reset_node(struct apply_ctx *c, const struct node *nd, struct err *err)
{
	static const char *const labels[] = { "STATE", "EPHEMERAL" };
	struct talos_target t;
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	long long deadline;
	char *tag = NULL;
	int kind;

	t = mtls_target(c, nd->ip);
	kind = talos_probe(&t, &tag, &st, &e);
	free(tag);
	if (kind == TALOS_MAINTENANCE) {
		out_step("talos-reset: %s is in maintenance mode at %s already; "
			 "nothing to reset", nd->name, nd->ip);
		return 0;
	}
	if (kind == TALOS_FOREIGN)
		return err_set(err, ERR_FAIL, "%s:%d answers as Talos of another "
			       "cluster (%s); strata resets only its own nodes",
			       nd->ip, TALOS_API_PORT, e.msg);
	if (kind != TALOS_UP) {
		*err = e;
		return err_wrap(err, "nothing reset: Talos does not answer at "
				"%s:%d; when the server is back, run destroy "
				"again", nd->ip, TALOS_API_PORT);
	}
	out_step("talos-reset: %s at %s: Reset (%s, wipe STATE and EPHEMERAL, "
		 "reboot)", nd->name, nd->ip,
		 c->cfg->n_nodes > 1 ? "graceful: drain, leave etcd" : "single "
		 "node: not graceful");
	if (talos_reset(&t, c->cfg->n_nodes > 1, true, labels, 2, &st, err) < 0)
		return -1;
	/* Down, then up in maintenance mode (its random CA). */
	deadline = clock_mono_ms() + RESET_WAIT_MS;
	for (;;) {
		struct err pe = ERR_INIT;

		tag = NULL;
		memset(&st, 0, sizeof(st));
		kind = talos_probe(&t, &tag, &st, &pe);
		free(tag);
		if (kind == TALOS_MAINTENANCE)
			break;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while %s resets",
				       nd->name);
		if (clock_mono_ms() >= deadline)
			return err_set(err, ERR_FAIL, "Reset sent, but %s is not "
				       "back in maintenance mode at %s:%d after "
				       "5m (last: %s); check its console", nd->name,
				       nd->ip, TALOS_API_PORT, pe.msg);
		proc_sleep_ms(200);
	}
	out_step("talos-reset: %s is back in maintenance mode at %s", nd->name,
		 nd->ip);
	event_step(nd->name, "ok", "reset");     /* counted by the summary */
	return 0;
}

/* What talos-reset would do to each node (destroy, before it asks):
 * the same look reset_node takes first. */
static void
reset_show(struct apply_ctx *c, FILE *fp, bool json)
{
	json_t *doc = json_object(), *acts = json_array();
	size_t i, n_reset = 0, n_none = 0, n_conflict = 0;

	for (i = 0; i < c->cfg->n_nodes; i++) {
		const struct node *nd = &c->cfg->nodes[i];
		struct talos_target t = mtls_target(c, nd->ip);
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char *tag = NULL, *clean = NULL, what[160];
		const char *act;
		int kind;

		t.timeout_ms = 5000;
		kind = talos_probe(&t, &tag, &st, &e);
		if (kind == TALOS_UP) {
			clean = out_clean(tag ? tag : "?");
			snprintf(what, sizeof(what), "reset: Talos %s of this "
				 "cluster (%s)", clean, c->cfg->n_nodes > 1
				 ? "graceful: drain, leave etcd"
				 : "single node: not graceful");
			act = "reset";
			n_reset++;
		} else if (kind == TALOS_MAINTENANCE) {
			snprintf(what, sizeof(what), "nothing to reset: in "
				 "maintenance mode already");
			act = "none";
			n_none++;
		} else if (kind == TALOS_FOREIGN) {
			snprintf(what, sizeof(what), "refused: answers as Talos "
				 "of another cluster");
			act = "conflict";
			n_conflict++;
		} else {
			snprintf(what, sizeof(what), "Talos does not answer: "
				 "destroy fails (nothing reset)");
			act = "conflict";
			n_conflict++;
		}
		fprintf(fp, "  - %-20s %-16s %s\n", nd->name, nd->ip, what);
		json_array_append_new(acts, json_pack("{s:s, s:n, s:{s:s, s:s, s:s?}, s:[], s:s}",
			"action", act, "desired", "live", "name", nd->name,
			"address", nd->ip, "talos", clean, "changes",
			"reason", what));
		free(clean);
		free(tag);
	}
	json_object_set_new(doc, "format_version", json_integer(2));
	json_object_set_new(doc, "env", json_string(c->cfg->name));
	json_object_set_new(doc, "platform", json_string("vps"));
	json_object_set_new(doc, "actions", acts);
	json_object_set_new(doc, "summary", json_pack("{s:I, s:I, s:I}",
		"reset", (json_int_t)n_reset, "unchanged", (json_int_t)n_none,
		"conflict", (json_int_t)n_conflict));
	if (json)
		event_plan(doc);
	else
		json_decref(doc);
}

static int
reset_run(struct apply_ctx *c, struct err *err)
{
	size_t i;
	int r;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if ((r = reset_node(c, &c->cfg->nodes[i], err)) < 0)
			return err_wrap(err, "node '%s'", c->cfg->nodes[i].name);
	return 0;
}

const struct phase ph_talos_reset = {
	.name = "talos-reset",
	.title = "reset Talos on every node (wipe STATE and EPHEMERAL)",
	.should_run = rescue_should_run,
	.run = reset_run,
};

static const struct phase *const destroy_phases[] = {
	&ph_talos_reset,
};

static const struct phase *const apply_phases[] = {
	&ph_talos_gen,
	&ph_rescue_install,
	&ph_talos_install,
	&ph_talos_bootstrap,
	&ph_kubernetes,
	&ph_cni,
	&ph_gitops,
	&ph_talos_reboot,
	&ph_talos_upgrade,
};

const struct provider provider_vps = {
	.name = "vps",
	.apply = apply_phases,
	.n_apply = sizeof(apply_phases) / sizeof(apply_phases[0]),
	.destroy = destroy_phases,
	.n_destroy = sizeof(destroy_phases) / sizeof(destroy_phases[0]),
	.machine_open = vps_open,
	.machine_close = vps_close,
	.machine_label = vps_label,
	.discover = vps_discover,
	.plan_machines = vps_plan_machines,      /* machines.c */
	.status_machines = vps_status_machines,
	.destroy_machines = reset_show,
};
