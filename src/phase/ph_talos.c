/*
 * The Talos phases of apply.
 *
 * talos-config   every Talos file of the env folder generated (offline;
 *                files are written only when their bytes change) and the
 *                admin credentials loaded from ENV/talosconfig.
 * talos-install  one worker per node: is the node already up at its static
 *                address, answering over mTLS with a cert from this
 *                cluster's OS CA? If not, find its maintenance-mode address
 *                (guest agent, or the address itself for dhcp-lease and
 *                static discovery), ApplyConfiguration of nodes/<node>.yaml
 *                there, and wait through the install reboot (Unavailable
 *                and reset connections are expected; backoff up to 2 s)
 *                until Version answers over mTLS. Then the provider's
 *                after-install hook (Proxmox: the VM boots from its disk,
 *                the ISO is detached). A node whose
 *                nodes/<node>.yaml changed since it was last applied gets
 *                the new config (mode AUTO: Talos reboots only if needed).
 * bootstrap      etcd bootstrapped once on the first control plane
 *                (AlreadyExists counts as done); journaled.
 * kubernetes     ENV/kubeconfig (0600) fetched from the first control plane
 *                with its server set to the cluster endpoint, then the
 *                Kubernetes API waited for until every node registered.
 *
 * Every wait is bounded by apply's --timeout and names the node and the
 * address it waited for. A node answering with another CA's certificate
 * is never talked to.
 *
 * These phases are shared by every platform: whatever concerns the machine
 * under a node goes through c->provider (phase/provider.h), never a
 * provider's own API.
 */
#include <inttypes.h>
#include <libfyaml.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "kube/kubeconfig.h"
#include "phase/phase.h"
#include "talos/etcd.h"
#include "talos/fwsource.h"
#include "talos/gen.h"
#include "talos/tyaml.h"
#include "trust/trust.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/grpc.h"
#include "util/isolate.h"
#include "util/out.h"
#include "util/progress.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   2000

/* A bounded wait between tries: apply's --timeout, backoff to 2 s. */
struct waiter {
	long long deadline;
	long backoff;
};

static struct waiter
waiter_start(const struct apply_ctx *c)
{
	struct waiter w = { clock_mono_ms() + c->wait_ms, BACKOFF_FIRST_MS };

	return w;
}

/*
 * After a failed try: false when apply was interrupted (phase_interrupted
 * says so) or the wait ran out; otherwise sleep and true.
 */
static bool
waiter_again(struct waiter *w)
{
	if (phase_interrupted || clock_mono_ms() >= w->deadline ||
	    !proc_sleep_ms(w->backoff))
		return false;
	w->backoff = w->backoff * 3 / 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							 : w->backoff * 3 / 2;
	return true;
}

static void
fmt_duration(char *out, size_t n, long long ms)
{
	if (ms < 60000)
		snprintf(out, n, "%llds", ms / 1000);
	else
		snprintf(out, n, "%lldm%02llds", ms / 60000, (ms / 1000) % 60);
}

static bool
talos_should_run(struct apply_ctx *c)
{
	return c->cfg->n_nodes > 0;
}

static const struct node *
first_controlplane(const struct apply_ctx *c)
{
	return c->cfg->n_controlplanes ? &c->cfg->nodes[0] : NULL;
}

struct talos_target
mtls_target(const struct apply_ctx *c, const char *addr)
{
	struct talos_target t;

	memset(&t, 0, sizeof(t));
	t.addr = addr;
	t.creds = &c->creds;
	t.timeout_ms = 10000;
	t.connect_timeout_ms = 2000;
	return t;
}

/* ----------------------------------------------------------- talos-config */

int
talos_gen_for_apply(struct apply_ctx *c, struct err *err)
{
	struct gen_result res;
	char *path;
	int r;

	memset(&res, 0, sizeof(res));
	if ((r = talos_gen(c->cfg, c->env_dir, &res, err)) < 0) {
		gen_result_release(&res);
		return r;
	}
	if (res.secrets_created)
		out_note("generated a new secrets bundle in %s/secrets.yaml "
			 "(keep it; it is never overwritten)", c->env_dir);
	out_step("Talos configs: %d file%s written, %d unchanged",
		 res.files_changed, res.files_changed == 1 ? "" : "s",
		 res.files_total - res.files_changed);
	gen_result_release(&res);
	talos_creds_release(&c->creds);
	path = fs_join(c->env_dir, "talosconfig");
	r = talos_creds_load(&c->creds, path, err);
	free(path);
	return r;
}

static void
gen_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    generate secrets (once), machine configs and "
		"talosconfig in %s\n", c->env_dir);
}

/* Generated already (apply does it before asking, to show what changes)? */
static bool
gen_should_run(struct apply_ctx *c)
{
	return talos_should_run(c) && !c->creds.context;
}

const struct phase ph_talos_gen = {
	.name = "talos-config",
	.title = "generate Talos configs",
	.should_run = gen_should_run,
	.run = talos_gen_for_apply,
	.dry_run = gen_dry_run,
	.quiet_skip = true,         /* apply ran it before asking */
};

/* ---------------------------------------------------------- talos-install */

struct tjob {
	struct apply_ctx *c;
	const struct node *nd;
	struct machine *m;          /* c->provider's, on this job's thread */
	size_t idx;
	struct progress *pr;
	char *version;
	const char *what;           /* summary of what was done */
	int rc;
	struct err err;
};

int
read_node_config(const struct apply_ctx *c, const char *name, struct buf *b,
		 char hex[65], struct err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char *rel = xasprintf("nodes/%s.yaml", name);
	char *path = fs_join(c->env_dir, rel);
	int r, i;

	free(rel);
	b->secret = true;   /* a machine config: the cluster's keys */
	r = fs_read_file(b, path, 4 << 20, err);
	free(path);
	if (r < 0)
		return r;
	if (EVP_Digest(b->ptr, b->len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		buf_release(b);
		return err_set(err, ERR_FAIL, "nodes/%s.yaml: cannot compute its "
			       "SHA-256 (OpenSSL)", name);
	}
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

size_t
talos_config_changes(struct apply_ctx *c, FILE *fp)
{
	size_t i, n = 0;

	for (i = 0; i < c->cfg->n_nodes; i++) {
		const char *name = c->cfg->nodes[i].name;
		char *done = state_talos_get(&c->st, name, "config_sha256");
		struct buf b = BUF_INIT;
		struct err e = ERR_INIT;
		char sha[65];

		if (done && read_node_config(c, name, &b, sha, &e) == 0 &&
		    strcmp(done, sha)) {
			if (!n++)
				fputs(TALOS_CHANGES_HEADER, fp);
			fprintf(fp, "  ~ %-20s nodes/%s.yaml\n", name, name);
		}
		buf_release(&b);
		free(done);
	}
	return n;
}

/*
 * The SHA-256 (hex) of a machine config's host firewall documents
 * (NetworkDefaultActionConfig, NetworkRuleConfig) in their order; of
 * nothing when it has none. A change of it goes to a running node in
 * TRY mode first. 0, or -1 when the config does not parse.
 */
/* The firewall documents of a config, emitted one after the other (in
 * the isolated step, so hashed by the parent: no OpenSSL in the child). */
static int
firewall_docs_child(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *cfg = ctx;
	struct ydocs d = YDOCS_INIT;
	size_t i;

	if (ydocs_parse(&d, cfg->ptr, cfg->len, err) < 0)
		return -1;
	for (i = 0; i < d.n; i++) {
		struct fy_node *root = fy_document_root(d.v[i]);
		char *kind = root ? y_get_str(root, "kind") : NULL;
		char *txt;

		if (kind && (!strcmp(kind, "NetworkDefaultActionConfig") ||
			     !strcmp(kind, "NetworkRuleConfig")) &&
		    (txt = fy_emit_document_to_string(d.v[i], FYECF_MODE_BLOCK))) {
			buf_adds(out, txt);
			free(txt);
		}
		free(kind);
	}
	ydocs_release(&d);
	return 0;
}
ISOLATE_OP(firewall_docs_child);

/* The config is parsed in a fresh process (isolate_spawn: this runs on the
 * node threads): it holds the CA keys, and libfyaml frees its copies
 * unwiped. */
static int
firewall_digest(const struct buf *cfg, char hex[65])
{
	struct buf docs = BUF_INIT;
	struct err e = ERR_INIT;
	unsigned char out[32];
	unsigned int n = 0;
	size_t i;
	int r = -1;

	if (isolate_spawn(firewall_docs_child, cfg->ptr, cfg->len, &docs,
			  &e) == 0 &&
	    EVP_Digest(docs.ptr, docs.len, out, &n, EVP_sha256(), NULL) == 1 &&
	    n == 32) {
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", out[i]);
		r = 0;
	}
	buf_release(&docs);
	return r;
}

/*
 * A firewall change to a running node: ApplyConfiguration in TRY mode
 * (Talos reverts it after firewall.try_timeout unless confirmed), then a
 * fresh mTLS connection from here (the rules apply to new connections; an
 * established one would pass anyway) must reach apid within half that
 * time; only then the same config again in mode AUTO, which makes it
 * stay. A reply after that half could come from the node already
 * reverted, so it never confirms.
 *
 * A lock-out is not confirmed: strata waits for the revert and reports
 * whether the node answers again with its previous firewall.
 */
#define TRY_REVERT_GRACE_MS 30000LL    /* the revert itself, a slow reconnect */

static long long
firewall_try_ms(const struct config *cfg)
{
	long long ms = cfg->firewall.try_timeout
		       ? clock_parse_duration(cfg->firewall.try_timeout) : -1;

	return ms > 0 ? ms : 60000;
}

/* Version over a new connection, bounded by the time left until until. */
static int
reach_before(const struct talos_target *mt, long long until, struct err *err)
{
	struct talos_target t = *mt;
	struct talos_status st = { 0 };
	long long left = until - clock_mono_ms();
	char *tag = NULL;
	int r;

	if (left < 200)
		left = 200;
	t.connect_timeout_ms = left < 2000 ? left : 2000;
	t.timeout_ms = left < 10000 ? left : 10000;
	r = talos_version(&t, &tag, &st, err);
	free(tag);
	return r;
}

static int
apply_firewall_try(struct tjob *j, const struct talos_target *mt,
		   const struct buf *cfg, char **details, struct err *err)
{
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	long long try_ms = firewall_try_ms(j->c->cfg), t0, check_end, give_up;
	int secs = (int)((try_ms + 999) / 1000);

	progress_step(j->pr, j->idx, "firewall changed: applying in TRY mode "
		      "(Talos reverts it in %ds unless strata still reaches "
		      "the node)", secs);
	t0 = clock_mono_ms();
	if (talos_apply_configuration_try(mt, cfg->ptr, cfg->len, secs, NULL,
					  &st, err) < 0)
		return err_wrap(err, "node '%s': firewall change in TRY mode",
				j->nd->name);
	check_end = t0 + try_ms / 2;
	for (;;) {
		err_clear(&e);
		if (reach_before(mt, check_end, &e) == 0 &&
		    clock_mono_ms() < check_end)
			break;
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "interrupted while trying "
				       "a firewall change on '%s' (not made "
				       "permanent: Talos reverts it within %ds)",
				       j->nd->name, secs);
		if (clock_mono_ms() >= check_end)
			goto locked_out;
		proc_sleep_ms(500);
	}
	progress_step(j->pr, j->idx, "firewall change tried, node reachable: "
		      "applying it for good");
	return talos_apply_configuration(mt, cfg->ptr, cfg->len, details, &st,
					 err);

locked_out:
	/* Not confirmed. Talos reverts at t0 + try_ms; see that it did. */
	{
		struct err first = e, later = ERR_INIT, se = ERR_INIT;
		struct fw_source src;
		struct buf who = BUF_INIT;
		int r;

		progress_step(j->pr, j->idx, "firewall change NOT confirmed: "
			      "strata no longer reaches the node with it; "
			      "waiting for Talos to revert it");
		/* Name the address the node refused and what admits whom. */
		if (talos_firewall_source(j->c->cfg, mt->addr, &src, &se) == 0) {
			talos_firewall_source_say(&who, j->c->cfg, mt->addr, &src);
			buf_adds(&who, ". ");
			talos_firewall_source_advice(&who, &src);
		} else {
			buf_addf(&who, "strata's address toward %s is unknown "
				 "(%s). Add the address the node sees strata "
				 "connect from to firewall.admin_cidrs",
				 mt->addr, se.msg);
		}
		give_up = t0 + try_ms + TRY_REVERT_GRACE_MS;
		while (clock_mono_ms() < t0 + try_ms && !phase_interrupted)
			proc_sleep_ms(200);
		for (;;) {
			err_clear(&later);
			if (reach_before(mt, give_up, &later) == 0) {
				r = err_set(err, ERR_FAIL, "node '%s': the "
					    "firewall change would lock strata "
					    "out: with it in place, %s:%d did "
					    "not answer from this machine "
					    "within %lds (%s). It was not made "
					    "permanent; Talos reverted it after "
					    "%ds and the node answers again "
					    "with its previous firewall. %s. "
					    "Then run apply again", j->nd->name,
					    mt->addr, TALOS_API_PORT,
					    (long)(try_ms / 2000), first.msg,
					    secs, who.ptr);
				buf_release(&who);
				return r;
			}
			if (phase_interrupted || clock_mono_ms() >= give_up) {
				r = err_set(err, ERR_FAIL, "node '%s': the "
					    "firewall change locked strata out "
					    "(%s) and was not confirmed, but "
					    "%s:%d still does not answer %llds "
					    "after Talos should have reverted it "
					    "(%s); %s; check the node's console",
					    j->nd->name, first.msg, mt->addr,
					    TALOS_API_PORT,
					    TRY_REVERT_GRACE_MS / 1000, later.msg,
					    who.ptr);
				buf_release(&who);
				return r;
			}
			proc_sleep_ms(500);
		}
	}
}

/* The maintenance-mode address of a fresh machine, and where it came
 * from: the provider's to say. */
static int
discover(struct tjob *j, char **ip, enum trust_addr *src, struct err *err)
{
	*ip = NULL;
	*src = TRUST_ADDR_UNKNOWN;
	return j->c->provider->discover(j->c, j->m, ip, src, err);
}

static const char *
mlabel(const struct tjob *j)
{
	return j->c->provider->machine_label(j->m);
}

static bool
config_at_boot(const struct apply_ctx *c)
{
	return c->provider->config_at_boot && c->provider->config_at_boot(c);
}

static bool
boot_config_pending(struct apply_ctx *c, const char *name)
{
	return c->provider->boot_config_pending &&
	       c->provider->boot_config_pending(c, name);
}

/*
 * Why a try failed, short and stable (no timings), so that repeats of
 * one reason are counted rather than printed.
 */
static void
short_reason(char *out, size_t n, const struct talos_status *st,
	     const struct err *e)
{
	if (st->code != GRPC_TRANSPORT && st->code >= 0) {
		snprintf(out, n, "%s", grpc_code_name(st->code));
		return;
	}
	switch (e->kind) {
	case ERRK_UNSENT:
		snprintf(out, n, "nothing listening yet");
		break;
	case ERRK_TIMEOUT:
		snprintf(out, n, "no answer in time");
		break;
	case ERRK_MAYBE_SENT:
		snprintf(out, n, "connection dropped");
		break;
	default:
		snprintf(out, n, "no answer");
		break;
	}
}

/* One progress line per retry reason: a repeat only counts. */
struct retry_log {
	char what[200];
	unsigned n;
};

static void __attribute__((format(printf, 3, 4)))
retry_note(struct tjob *j, struct retry_log *rl, const char *fmt, ...)
{
	char now[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(now, sizeof(now), fmt, ap);
	va_end(ap);
	if (rl->n && !strcmp(now, rl->what)) {
		rl->n++;
		return;
	}
	if (rl->n > 1)
		progress_step(j->pr, j->idx, "%s (before: %s, %u tries)", now,
			      rl->what, rl->n);
	else
		progress_step(j->pr, j->idx, "%s", now);
	memcpy(rl->what, now, sizeof(now));
	rl->n = 1;
}

/*
 * After a wait ran out: say where the node is stuck, as precisely as one
 * more look allows.
 */
static int
stuck_error(struct tjob *j, const char *maint_ip, bool applied,
	    const struct err *last, struct err *err)
{
	char took[32];

	fmt_duration(took, sizeof(took), j->c->wait_ms);
	if (applied && maint_ip) {
		struct talos_target t = { .addr = maint_ip, .timeout_ms = 3000,
					  .connect_timeout_ms = 2000 };
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char *tag = NULL;

		talos_version(&t, &tag, &st, &e);
		free(tag);
		if (st.maintenance)
			return err_set(err, ERR_FAIL,
				       "node '%s' (%s): still in maintenance "
				       "mode at %s:%d %s after its config was "
				       "applied; it never came up at %s:%d. "
				       "Check the machine's console (install "
				       "disk %s?)", j->nd->name, mlabel(j),
				       maint_ip, TALOS_API_PORT, took,
				       j->nd->ip, TALOS_API_PORT,
				       j->nd->install_disk ? j->nd->install_disk
							   : "?");
	}
	if (applied)
		return err_set(err, ERR_FAIL,
			       "node '%s' (%s): not up at %s:%d %s after its "
			       "config was applied%s%s (last: %s)", j->nd->name,
			       mlabel(j), j->nd->ip, TALOS_API_PORT, took,
			       maint_ip ? " at " : "", maint_ip ? maint_ip : "",
			       last->msg[0] ? last->msg : "no answer");
	return err_set(err, ERR_FAIL,
		       "node '%s' (%s): no maintenance-mode address found "
		       "and nothing at %s:%d after %s (last: %s)", j->nd->name,
		       mlabel(j), j->nd->ip, TALOS_API_PORT, took,
		       last->msg[0] ? last->msg : "no answer");
}

/*
 * One try at handing a fresh node its config in maintenance mode at ip:
 * look at what answers there, ask the trust module, send. 1 when sent
 * (or already installing), 0 to try again later (why says why), -1 when
 * it must stop (err).
 */
static int
maintenance_apply(struct tjob *j, const struct trust_node *tn, const char *ip,
		  enum trust_addr src, const struct buf *cfg, bool *announced,
		  char *why, size_t nwhy, struct err *last, struct err *err)
{
	struct talos_target it = { .addr = ip, .timeout_ms = 30000,
				   .connect_timeout_ms = 2000 };
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	char r_[64], pin[65], *tag = NULL, *details = NULL;
	int kind;

	kind = talos_probe(&it, &tag, &st, &e);
	free(tag);
	if (kind == TALOS_DOWN && talos_status_transient(&st)) {
		short_reason(r_, sizeof(r_), &st, &e);
		snprintf(why, nwhy, "waiting for maintenance mode at %s: %s", ip, r_);
		*last = e;
		return 0;
	}
	if (trust_config_send(tn, ip, TALOS_API_PORT, src,
			      kind == TALOS_MAINTENANCE ? TRUST_PEER_MAINTENANCE
							: TRUST_PEER_UNKNOWN,
			      err) < 0)
		return -1;
	/* The send goes only to the certificate this probe saw (api.h). */
	memcpy(pin, st.cert_sha256, sizeof(pin));
	it.pin_sha256 = pin;
	if (!*announced) {
		progress_step(j->pr, j->idx, "applying config in maintenance "
			      "mode at %s", ip);
		*announced = true;
	}
	if (talos_apply_configuration(&it, cfg->ptr, cfg->len, &details, &st,
				      &e) == 0 ||
	    st.code == GRPC_FAILED_PRECONDITION) {
		/* FailedPrecondition: an earlier apply (an interrupted run)
		 * is already installing. */
		free(details);
		return 1;
	}
	if (talos_status_transient(&st)) {
		short_reason(r_, sizeof(r_), &st, &e);
		snprintf(why, nwhy, "applying config in maintenance mode at %s: "
			 "%s", ip, r_);
		*last = e;
		return 0;
	}
	*err = e;
	return err_wrap(err, "node '%s'", j->nd->name);
}

static int
install_node(struct tjob *j, struct err *err)
{
	struct apply_ctx *c = j->c;
	const struct node *nd = j->nd;
	struct talos_target mt = mtls_target(c, nd->ip);
	struct trust_node tn = {
		.name = nd->name,
		.env_dir = c->env_dir,
		.installed = trust_journal_installed(&c->st, nd->name),
		.reinstall = apply_reinstall_asked(c, nd->name),
	};
	struct buf cfg = BUF_INIT_SECRET;
	const char *deferred;
	struct err last = ERR_INIT;
	struct retry_log rl = { .n = 0 };
	char sha[65], fw[65] = "", why[64], *done_sha = NULL, *maint_ip = NULL;
	enum trust_addr src = TRUST_ADDR_UNKNOWN;
	struct waiter w = waiter_start(c);
	bool applied = false, announced = false;
	/* The config comes with the machine at boot (Proxmox: the VM's
	 * cidata drive, ph_cidata.c); never sent in maintenance mode. */
	bool nomaint = config_at_boot(c),
	     from_cidata = boot_config_pending(c, nd->name);
	int r, refused = 0;

	/* (a node that joins while the cluster rolls to a new Kubernetes:
	 * at the version the others run, k8s_join_version) */
	if ((r = read_join_config(c, nd->name, &cfg, sha, err)) < 0)
		return r;
	if (firewall_digest(&cfg, fw) < 0)
		fw[0] = '\0';
	done_sha = state_talos_get(&c->st, nd->name, "config_sha256");
	mt.timeout_ms = 5000;
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		char reason[200] = "";
		int state;

		state = talos_probe(&mt, &j->version, &st, &e);
		if (state == TALOS_UP)
			break;
		if (state == TALOS_MAINTENANCE && nomaint) {
			r = err_set(err, ERR_FAIL, "node '%s' (%s) is in "
				    "maintenance mode at %s:%d: it did not read "
				    "its cidata drive (does it boot the nocloud "
				    "ISO?); refusing to send its config over the "
				    "network", nd->name, mlabel(j), nd->ip,
				    TALOS_API_PORT);
			goto out;
		}
		if (state == TALOS_MAINTENANCE) {
			/* At its static address already (dhcp-lease). */
			if (!maint_ip) {
				maint_ip = xstrdup(nd->ip);
				src = TRUST_ADDR_CONFIG;
			}
		} else if (state == TALOS_FOREIGN || !talos_status_transient(&st)) {
			r = err_set(err, ERR_FAIL, "node '%s': %s", nd->name, e.msg);
			goto out;
		}
		last = e;
		/* One reason per round, the most telling: counted while it
		 * stays the same. */
		if (state == TALOS_MAINTENANCE && applied) {
			snprintf(reason, sizeof(reason), "installing; still in "
				 "maintenance mode at %s", nd->ip);
		} else if (state != TALOS_MAINTENANCE) {
			short_reason(why, sizeof(why), &st, &e);
			snprintf(reason, sizeof(reason), applied
				 ? "installing; waiting for %s: %s"
				 : "looking for the node at %s: %s", nd->ip, why);
		}
		if (!nomaint && !applied && !maint_ip &&
		    discover(j, &maint_ip, &src, &e) < 0) {
			last = e;
			snprintf(reason, sizeof(reason), "looking for the node's "
				 "maintenance-mode address: %s",
				 e.code == ERR_NOTFOUND
				 ? "the guest agent reports none yet"
				 : err_kind_name(e.kind));
		}
		if (!nomaint && !applied && maint_ip) {
			r = maintenance_apply(j, &tn, maint_ip, src, &cfg,
					      &announced, reason, sizeof(reason),
					      &last, err);
			if (r < 0)
				goto out;
			if (r == 1) {
				applied = true;
				reason[0] = '\0';
				if ((r = state_talos_set(&c->st, nd->name,
							 "config_sha256", sha,
							 err)) < 0 ||
				    (fw[0] && (r = state_talos_set(&c->st,
							nd->name,
							"firewall_sha256", fw,
							err)) < 0))
					goto out;
				free(done_sha);
				done_sha = xstrdup(sha);
				j->what = "installed";
			} else if (++refused % 8 == 0) {
				/* Booting still; the address may change only
				 * with a new DHCP lease: look again now and then. */
				free(maint_ip);
				maint_ip = NULL;
			}
		}
		if (reason[0])
			retry_note(j, &rl, "%s", reason);
		if (!waiter_again(&w)) {
			char took[32];

			fmt_duration(took, sizeof(took), c->wait_ms);
			r = phase_interrupted
			    ? err_set(err, ERR_INTR, "interrupted")
			    : nomaint ? c->provider->boot_stuck_error(
					c, j->m, took, &last, err)
			    : stuck_error(j, maint_ip, applied, &last, err);
			goto out;
		}
	}
	if ((r = trust_journal_mark_installed(&c->st, nd->name, err)) < 0)
		goto out;
	if (from_cidata)
		j->what = "installed from its cidata drive";

	/* Up over mTLS. A config changed since it was applied goes in now,
	 * unless the node runs another Talos than the config wants: then it
	 * is staged by the rolling upgrade, one node at a time (ph_upgrade.c). */
	if ((!done_sha || strcmp(done_sha, sha)) &&
	    (deferred = upgrade_defers_config(c, nd->name, j->version))) {
		j->what = deferred;
	} else if (!done_sha || strcmp(done_sha, sha)) {
		struct talos_status st = { 0 };
		char *details = NULL;

		if ((r = trust_config_send(&tn, nd->ip, TALOS_API_PORT,
					   TRUST_ADDR_CONFIG, TRUST_PEER_CLUSTER,
					   err)) < 0)
			goto out;
		char *fw_done = state_talos_get(&c->st, nd->name,
						"firewall_sha256");
		bool fw_try = fw[0] && fw_done && strcmp(fw_done, fw);

		free(fw_done);
		if (fw_try) {
			if ((r = apply_firewall_try(j, &mt, &cfg, &details,
						    err)) < 0)
				goto out;
		} else if (done_sha && !from_cidata &&
			   state_phase_done(&c->st, "bootstrap")) {
			/* A running cluster: NO_REBOOT, so no two nodes reboot
			 * together. Refused (the change needs a reboot):
			 * nothing changed; phase talos-reboot rolls it, one
			 * node at a time with the gate between (ph_reboot.c). */
			progress_step(j->pr, j->idx, "applying changed config "
				      "(NO_REBOOT)");
			r = talos_apply_configuration_mode(&mt, cfg.ptr, cfg.len,
							   TALOS_APPLY_NO_REBOOT,
							   &details, &st, err);
			if (r < 0 && err->kind == ERRK_GRPC_STATUS) {
				free(details);
				if ((r = reboot_defer(c, nd->name, sha, err->msg,
						      err)) < 0)
					goto out;
				j->what = "changed config needs a reboot: left to "
					  "talos-reboot (one node at a time)";
				goto hook;      /* nothing applied: nothing journaled */
			}
			if (r < 0) {
				err_wrap(err, "node '%s'", nd->name);
				goto out;
			}
		} else {
			progress_step(j->pr, j->idx, "applying changed config");
			if ((r = talos_apply_configuration(&mt, cfg.ptr, cfg.len,
							   &details, &st,
							   err)) < 0) {
				err_wrap(err, "node '%s'", nd->name);
				goto out;
			}
		}
		if ((r = state_talos_set(&c->st, nd->name, "config_sha256", sha,
					 err)) < 0 ||
		    (r = reboot_defer(c, nd->name, NULL, NULL, err)) < 0 ||
		    (fw[0] && (r = state_talos_set(&c->st, nd->name,
						   "firewall_sha256", fw,
						   err)) < 0)) {
			free(details);
			goto out;
		}
		j->what = fw_try
			  ? "firewall change tried, then applied"
			  : from_cidata
			  ? "installed from its cidata drive, changed config "
			    "applied over mTLS"
			  : details && strstr(details, "with a reboot")
			  ? "changed config applied (rebooting)"
			  : "changed config applied";
		free(details);
		if ((r = upgrade_journal_applied(c, nd->name, j->version,
						 applied, &cfg, err)) < 0)
			goto out;
	} else if ((r = upgrade_journal_applied(c, nd->name, j->version,
						applied, &cfg, err)) < 0) {
		goto out;
	}
hook:
	r = c->provider->after_install
	    ? c->provider->after_install(c, j->m, j->pr, j->idx, err) : 0;
	if (r < 0)
		err_wrap(err, "node '%s'", nd->name);
out:
	free(done_sha);
	free(maint_ip);
	buf_release_secret(&cfg);
	return r;
}

static void
install_one(void *ctx, size_t i)
{
	struct tjob *j = &((struct tjob *)ctx)[i];

	j->rc = j->c->provider->machine_open(j->c, j->nd, &j->m, &j->err);
	if (j->rc == 0)
		j->rc = install_node(j, &j->err);
	if (j->rc < 0)
		progress_done(j->pr, j->idx, false, "%s", j->err.msg);
	else
		progress_done(j->pr, j->idx, true, "%s (Talos %s)",
			      j->what ? j->what : "up",
			      j->version ? j->version : "?");
	if (j->m)
		j->c->provider->machine_close(j->m);
	j->m = NULL;
}

struct tjob_pick {
	struct tjob *jobs;
	const size_t *idx;
};

static void
install_picked(void *ctx, size_t i)
{
	const struct tjob_pick *p = ctx;

	install_one(p->jobs, p->idx[i]);
}

static const struct err *
tjob_failed(void *ctx, size_t i)
{
	const struct tjob *j = &((struct tjob *)ctx)[i];

	return j->rc < 0 ? &j->err : NULL;
}

static int
install_run(struct apply_ctx *c, struct err *err)
{
	struct tjob *jobs;
	const char **names;
	struct progress *pr;
	size_t i, n = c->cfg->n_nodes, changed = 0;
	int r = 0;

	/* VMs this apply created have their MACs recorded by now: regenerate
	 * so their links are selected by MAC (only changed files are
	 * written; nodes up already were confirmed before asking). */
	{
		struct gen_result gres;

		memset(&gres, 0, sizeof(gres));
		r = talos_gen(c->cfg, c->env_dir, &gres, err);
		if (r == 0 && gres.files_changed)
			out_step("Talos configs: %d file%s updated with the new "
				 "VMs' MAC addresses", gres.files_changed,
				 gres.files_changed == 1 ? "" : "s");
		gen_result_release(&gres);
		if (r < 0)
			return r;
	}
	jobs = xcalloc(n + 1, sizeof(*jobs));
	names = xcalloc(n + 1, sizeof(*names));
	for (i = 0; i < n; i++) {
		struct tjob *j = &jobs[i];

		j->c = c;
		j->nd = &c->cfg->nodes[i];
		j->idx = i;
		j->err = (struct err)ERR_INIT;
		names[i] = j->nd->name;
	}
	pr = progress_start(stderr, "Talos", names, n);
	for (i = 0; i < n; i++)
		jobs[i].pr = pr;
	{
		/* control planes joining a running cluster: one at a time,
		 * each after the health gate and waited for (ph_scale.c) */
		size_t *first = xcalloc(n + 1, sizeof(*first)), nf = 0, k;
		struct tjob_pick pick = { jobs, first };
		bool failed = false;

		for (i = 0; i < n; i++)
			if (!scale_joins_later(c, jobs[i].nd))
				first[nf++] = i;
		phase_parallel(nf, c->max_parallel, install_picked, &pick);
		for (k = 0; k < n; k++)
			failed = failed || jobs[k].rc < 0;
		for (k = 0; k < n; k++) {
			if (failed || phase_interrupted || !scale_joins_later(c, jobs[k].nd))
				continue;
			if ((jobs[k].rc = scale_join(c, jobs[k].nd, true, &jobs[k].err)) == 0)
				install_one(jobs, k);
			if (jobs[k].rc == 0)
				jobs[k].rc = scale_join(c, jobs[k].nd, false, &jobs[k].err);
			if (jobs[k].rc < 0) {
				progress_done(pr, k, false, "%s", jobs[k].err.msg);
				failed = true;
			}
		}
		free(first);
	}
	progress_stop(pr);
	if ((r = phase_collect(n, tjob_failed, jobs, "nodes", err)) < 0)
		goto out;
	for (i = 0; i < n; i++)
		changed += jobs[i].what != NULL;
	if (!changed)
		out_step("Talos: all %zu nodes up with their current config, "
			 "nothing to do", n);
	else
		out_step("Talos: %zu of %zu nodes installed or updated",
			 changed, n);
out:
	for (i = 0; i < n; i++)
		free(jobs[i].version);
	free(jobs);
	free(names);
	return r;
}

static void
install_dry_run(struct apply_ctx *c, FILE *fp)
{
	size_t i;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if (config_at_boot(c))
			fprintf(fp, "    %s: unless up at %s:%d over mTLS, wait for "
				"it to install from its cidata drive; then boot "
				"from disk, the cidata ISO deleted\n",
				c->cfg->nodes[i].name, c->cfg->nodes[i].ip,
				TALOS_API_PORT);
		else
			fprintf(fp, "    %s: unless up at %s:%d over mTLS, apply "
				"nodes/%s.yaml in maintenance mode and wait for "
				"the install; then boot from disk\n",
				c->cfg->nodes[i].name, c->cfg->nodes[i].ip,
				TALOS_API_PORT, c->cfg->nodes[i].name);
}

const struct phase ph_talos_install = {
	.name = "talos-install",
	.title = "install Talos on every node",
	.should_run = talos_should_run,
	.run = install_run,
	.dry_run = install_dry_run,
};

/* -------------------------------------------------------------- bootstrap */

static bool
bootstrap_should_run(struct apply_ctx *c)
{
	return first_controlplane(c) &&
	       (c->etcd_recover || !state_phase_done(&c->st, "bootstrap") ||
		apply_reinstalls_all_controlplanes(c));
}

/* The etcd service's state on a node, waited for until it is one of
 * want (NULL-terminated) or "Failed"; *state gets what it was. */
static int
wait_etcd_state(struct apply_ctx *c, const struct node *n,
		const char *const *want, char **state, struct err *err)
{
	struct talos_target t = mtls_target(c, n->ip);
	struct waiter w = waiter_start(c);
	char took[32];
	size_t k;

	free(*state);
	*state = NULL;
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		bool healthy = false;

		free(*state);
		*state = NULL;
		if (talos_service(&t, "etcd", state, &healthy, &st, &e) == 0 &&
		    *state) {
			if (!strcmp(*state, "Failed"))
				return 0;
			for (k = 0; want[k]; k++)
				if (!strcmp(*state, want[k]) &&
				    (strcmp(want[k], "Running") || healthy))
					return 0;
		} else if (!talos_status_transient(&st) && e.msg[0]) {
			*err = e;
			return err_wrap(err, "etcd service on '%s'", n->name);
		}
		if (!waiter_again(&w)) {
			fmt_duration(took, sizeof(took), c->wait_ms);
			if (phase_interrupted)
				return err_set(err, ERR_INTR, "interrupted");
			return err_set(err, ERR_FAIL, "etcd on '%s' (%s) is still "
				       "'%s' after %s, not %s", n->name, n->ip,
				       *state ? *state : "unknown", took, want[0]);
		}
	}
}

/*
 * strata restore --etcd (FACTS-day2.md 4d): every control plane's etcd
 * waiting empty (Preparing), the snapshot uploaded to the first one with
 * EtcdRecover, Bootstrap{recover_etcd}, then etcd Running there.
 */
static int
recover_run(struct apply_ctx *c, struct err *err)
{
	static const char *const preparing[] = { "Preparing", NULL };
	static const char *const running[] = { "Running", NULL };
	const struct node *cp = first_controlplane(c);
	struct talos_target t = mtls_target(c, cp->ip);
	struct waiter w = waiter_start(c);
	char *state = NULL;
	size_t i;
	int r;

	for (i = 0; i < c->cfg->n_controlplanes; i++) {
		const struct node *n = &c->cfg->nodes[i];

		if ((r = wait_etcd_state(c, n, preparing, &state, err)) < 0)
			goto out;
		if (strcmp(state, "Preparing")) {
			r = err_set(err, ERR_FAIL, "etcd on '%s' is '%s', not "
				    "waiting empty for a bootstrap: recovery "
				    "needs every control plane's etcd empty "
				    "(fresh VMs, or a Reset of EPHEMERAL)",
				    n->name, state);
			goto out;
		}
	}
	t.timeout_ms = 300000;
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;

		if (talos_etcd_recover_file(&t, c->etcd_recover->path, &st,
					    &e) == 0)
			break;
		if (!talos_status_transient(&st) || !waiter_again(&w)) {
			*err = e;
			r = err_wrap(err, "upload the etcd snapshot to '%s'",
				     cp->name);
			goto out;
		}
	}
	out_step("etcd snapshot (%" PRIu64 " bytes) uploaded to %s (%s)",
		 c->etcd_recover->bytes, cp->name, cp->ip);
	t.timeout_ms = 10000;
	if ((r = talos_bootstrap_recover(&t, false, NULL, err)) < 0)
		goto out;
	if ((r = wait_etcd_state(c, cp, running, &state, err)) < 0)
		goto out;
	if (strcmp(state, "Running")) {
		r = err_set(err, ERR_FAIL, "etcd on '%s' is '%s' after the "
			    "recovery: the node did not accept the snapshot (its "
			    "etcd service log says why: talosctl -n %s logs "
			    "etcd)", cp->name, state, cp->ip);
		goto out;
	}
	out_step("etcd recovered from the snapshot on %s (%s)", cp->name, cp->ip);
	c->bootstrapped_now = true;
out:
	free(state);
	return r < 0 ? -1 : 0;
}

/*
 * By status code only. FailedPrecondition is what Talos says while etcd
 * cannot be bootstrapped yet ("not available yet", "time is not in
 * sync yet"); its one lasting form ("only on a control plane node")
 * cannot happen here, since the first control plane is asked. So it is
 * waited out, bounded by --timeout, and the last message is reported.
 */
static bool
bootstrap_retryable(const struct talos_status *st)
{
	return talos_status_transient(st) ||
	       st->code == GRPC_FAILED_PRECONDITION;
}

static int
bootstrap_run(struct apply_ctx *c, struct err *err)
{
	const struct node *cp = first_controlplane(c);
	struct talos_target t = mtls_target(c, cp->ip);
	struct waiter w = waiter_start(c);
	char took[32];

	if (c->etcd_recover)
		return recover_run(c, err);
	if (state_phase_done(&c->st, "bootstrap") && apply_reinstalls_all_controlplanes(c))
		out_warn("every control plane was reinstalled, so etcd starts "
			 "empty: the cluster's Kubernetes objects are gone; to "
			 "get them back, 'strata restore %s --etcd SNAPSHOT' "
			 "(docs/etcd.md)", c->env_dir);
	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;
		bool already = false;

		if (talos_bootstrap(&t, &already, &st, &e) == 0) {
			if (already) {
				out_step("etcd on %s was already bootstrapped",
					 cp->name);
			} else {
				out_step("bootstrapped etcd on %s (%s)", cp->name,
					 cp->ip);
				c->bootstrapped_now = true;
			}
			return 0;
		}
		if (!bootstrap_retryable(&st)) {
			*err = e;
			return err_wrap(err, "bootstrap on '%s'", cp->name);
		}
		if (!waiter_again(&w)) {
			if (phase_interrupted)
				return err_set(err, ERR_INTR, "interrupted");
			fmt_duration(took, sizeof(took), c->wait_ms);
			*err = e;
			return err_wrap(err, "bootstrap on '%s' still not possible "
					"after %s", cp->name, took);
		}
	}
}

static void
bootstrap_dry_run(struct apply_ctx *c, FILE *fp)
{
	const struct node *cp = first_controlplane(c);

	if (c->etcd_recover)
		fprintf(fp, "    recover etcd on %s (%s) from the snapshot "
			"(%" PRIu64 " bytes)\n", cp->name, cp->ip,
			c->etcd_recover->bytes);
	else
		fprintf(fp, "    bootstrap etcd once on %s (%s)\n", cp->name,
			cp->ip);
}

const struct phase ph_talos_bootstrap = {
	.name = "bootstrap",
	.title = "bootstrap etcd",
	.should_run = bootstrap_should_run,
	.run = bootstrap_run,
	.dry_run = bootstrap_dry_run,
};

/* ------------------------------------------------------------- kubernetes */

static int
fetch_kubeconfig(struct apply_ctx *c, const char *path, struct err *err)
{
	const struct node *cp = first_controlplane(c);
	struct talos_target t = mtls_target(c, cp->ip);
	struct waiter w = waiter_start(c);
	struct buf targz = BUF_INIT, kc = BUF_INIT;
	int r;

	for (;;) {
		struct talos_status st = { 0 };
		struct err e = ERR_INIT;

		buf_reset(&targz);
		if (talos_kubeconfig(&t, &targz, &st, &e) == 0)
			break;
		if (!talos_status_transient(&st) &&
		    st.code != GRPC_FAILED_PRECONDITION) {
			*err = e;
			r = -1;
			goto out;
		}
		if (!waiter_again(&w)) {
			*err = e;
			r = phase_interrupted ? err_set(err, ERR_INTR, "interrupted")
					      : -1;
			goto out;
		}
	}
	r = kubeconfig_from_targz(&kc, targz.ptr, targz.len,
				  c->cfg->kubernetes.endpoint, err);
	if (r == 0)
		r = fs_write_if_changed(path, kc.ptr, kc.len, FS_MODE_SECRET, NULL,
					err);
	if (r == 0)
		out_step("kubeconfig written to %s (server %s)", path,
			 c->cfg->kubernetes.endpoint);
out:
	if (kc.ptr)
		memset(kc.ptr, 0, kc.len);
	buf_release(&kc);
	buf_release(&targz);
	return r < 0 ? err_wrap(err, "kubeconfig from '%s'", cp->name) : 0;
}

/* How many of the config's nodes are registered, and Ready. */
static void
count_nodes(const struct apply_ctx *c, const struct kube_node *v, size_t n,
	    size_t *registered, size_t *ready, const char **missing)
{
	size_t i, k;

	*registered = *ready = 0;
	*missing = NULL;
	for (i = 0; i < c->cfg->n_nodes; i++) {
		const char *name = c->cfg->nodes[i].name;
		bool found = false;

		for (k = 0; k < n && !found; k++) {
			if (strcmp(v[k].name, name))
				continue;
			found = true;
			(*registered)++;
			if (v[k].ready)
				(*ready)++;
		}
		if (!found && !*missing)
			*missing = name;
	}
}

static int
kube_run(struct apply_ctx *c, struct err *err)
{
	char *path = fs_join(c->env_dir, "kubeconfig");
	struct kube_client *kc = NULL;
	struct waiter w = waiter_start(c);
	bool fetched = false;
	size_t reg = 0, ready = 0;
	const char *missing = NULL;
	char took[32];
	int r = 0;

	if (c->bootstrapped_now || !fs_exists(path)) {
		if ((r = fetch_kubeconfig(c, path, err)) < 0)
			goto out;
		fetched = true;
	}
	out_step("waiting for the Kubernetes API at %s and %zu node%s",
		 c->cfg->kubernetes.endpoint, c->cfg->n_nodes,
		 c->cfg->n_nodes == 1 ? "" : "s");
	for (;;) {
		struct kube_node *v = NULL;
		struct err e = ERR_INIT;
		size_t n = 0;

		if (!kc && (r = kube_client_load(&kc, path, 5000, err)) < 0)
			goto out;
		if (kube_nodes(kc, &v, &n, &e) == 0) {
			count_nodes(c, v, n, &reg, &ready, &missing);
			kube_nodes_free(v, n);
			if (!missing)
				break;
		} else if (!fetched && e.kind == ERRK_HTTP_STATUS &&
			   (e.status == 401 || e.status == 403)) {
			/* A kubeconfig from an earlier cluster: fetch anew. */
			kube_client_free(kc);
			kc = NULL;
			if ((r = fetch_kubeconfig(c, path, err)) < 0)
				goto out;
			fetched = true;
			continue;
		}
		if (!waiter_again(&w)) {
			fmt_duration(took, sizeof(took), c->wait_ms);
			if (phase_interrupted)
				r = err_set(err, ERR_INTR, "interrupted");
			else if (missing)
				r = err_set(err, ERR_FAIL, "after %s, %zu of %zu "
					    "nodes registered with Kubernetes; "
					    "'%s' is not", took, reg,
					    c->cfg->n_nodes, missing);
			else
				r = err_set(err, ERR_FAIL, "the Kubernetes API "
					    "at %s did not answer in %s: %s",
					    c->cfg->kubernetes.endpoint, took,
					    e.msg);
			goto out;
		}
	}
	out_step("Kubernetes: %zu/%zu nodes registered, %zu Ready%s", reg,
		 c->cfg->n_nodes, ready,
		 ready < reg ? " (nodes turn Ready once a CNI runs)" : "");
out:
	kube_client_free(kc);
	free(path);
	return r;
}

static void
kube_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    fetch %s/kubeconfig unless present; wait for %s and "
		"%zu nodes registered\n", c->env_dir,
		c->cfg->kubernetes.endpoint, c->cfg->n_nodes);
}

const struct phase ph_kubernetes = {
	.name = "kubernetes",
	.title = "kubeconfig and Kubernetes API",
	.should_run = talos_should_run,
	.run = kube_run,
	.dry_run = kube_dry_run,
};
