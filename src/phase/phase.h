/*
 * phase: the apply engine. An apply is an ordered list of phases; each has
 * a title, a should_run check against live state and the journal, a run,
 * and a dry_run that says what it would do. phase_run_list runs them in
 * order, stops at the first failure (the error chain names the phase), and
 * checks for Ctrl-C between phases: an interrupted apply exits 3 and the
 * next apply resumes, because every phase re-reads what really exists.
 */
#ifndef STRATA_PHASE_PHASE_H
#define STRATA_PHASE_PHASE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "phase/provider.h"
#include "state/state.h"
#include "talos/api.h"
#include "util/err.h"
#include "util/proc.h"

struct apply_ctx {
	struct config *cfg;
	const struct provider *provider;  /* by platform (provider.h) */
	/* The provider's own part of this apply or destroy, made by its
	 * ctx_open and freed by its ctx_close (Proxmox: struct pve_apply,
	 * provider/proxmox/apply.h); NULL for a provider without one. The
	 * shared phases never look inside. */
	void *pstate;
	struct state st;
	bool dry_run;
	int max_parallel;
	/* Talos phases */
	const char *env_dir;
	struct talos_creds creds;   /* from ENV/talosconfig, after gen */
	long long wait_ms;          /* bound on each wait for nodes and APIs */
	bool bootstrapped_now;      /* this apply ran Bootstrap */
	/* --reinstall NODE: these nodes may get their config in maintenance
	 * mode although the journal records them installed (trust.h). */
	char **reinstall;
	size_t n_reinstall;
	int upgrade_parallel;       /* workers upgraded at once (apply --parallel, else 1) */
	/* etcd (ph_etcd.c): a snapshot was taken by this apply; and, for
	 * strata restore --etcd, the snapshot to recover etcd from (the
	 * bootstrap phase then uploads it and bootstraps with recover_etcd) */
	bool etcd_snapshot_taken;
	const struct etcd_recovery *etcd_recover;
};

struct phase {
	const char *name;           /* journal key, e.g. "create-vms" */
	const char *title;
	bool (*should_run)(struct apply_ctx *c);
	int (*run)(struct apply_ctx *c, struct err *err);
	void (*dry_run)(struct apply_ctx *c, FILE *fp);
	bool quiet_skip;            /* no "nothing to do" line when skipped */
};

/* Set by the first SIGINT/SIGTERM (the second one kills, the default
 * action): the flag is util/proc's, so providers and transfers see it. */
#define phase_interrupted proc_interrupted
void phase_install_signals(void);

/* apply --reinstall NODE named this node */
bool apply_reinstall_asked(const struct apply_ctx *c, const char *name);
/* every control plane is being reinstalled: their disks, and etcd's data
 * with them, are written afresh, so etcd is bootstrapped again, empty */
bool apply_reinstalls_all_controlplanes(const struct apply_ctx *c);

int phase_run_list(const struct phase *const *list, size_t n,
		   struct apply_ctx *c, struct err *err);

/*
 * Run fn(ctx, i) for every i < n on at most max_parallel threads. No new
 * item starts once the apply is interrupted.
 */
void phase_parallel(size_t n, int max_parallel,
		    void (*fn)(void *ctx, size_t i), void *ctx);
/*
 * After phase_parallel: failed(ctx, i) gives item i's error or NULL. The
 * first error goes into err (prefixed "N <noun> failed; the first" when
 * there are more), the others are printed. Returns 0, or -1; an
 * interrupted run without failures is ERR_INTR.
 */
int phase_collect(size_t n, const struct err *(*failed)(void *ctx, size_t i),
		  void *ctx, const char *noun, struct err *err);

/* The Talos phases (ph_talos.c): configs generated, every node installed
 * from maintenance mode and confirmed over mTLS (then booting from disk),
 * etcd bootstrapped once, kubeconfig fetched and every node registered. */
extern const struct phase ph_talos_gen;
/* What phase talos-config runs: gen, then the admin credentials. */
int talos_gen_for_apply(struct apply_ctx *c, struct err *err);
/* List (on fp) the nodes whose nodes/<node>.yaml differs from what was
 * last applied to them; returns how many. */
size_t talos_config_changes(struct apply_ctx *c, FILE *fp);
#define TALOS_CHANGES_HEADER "\nTalos configs changed since they were " \
	"applied (Talos applies them live; a change it applies only with a " \
	"reboot goes one node at a time, a worker drained, the health gate " \
	"between):\n"
/* nodes/<name>.yaml into b, its SHA-256 in hex. */
int read_node_config(const struct apply_ctx *c, const char *name,
		     struct buf *b, char hex[65], struct err *err);
extern const struct phase ph_talos_install;
extern const struct phase ph_talos_bootstrap;
/* A Talos call to addr over mTLS with the env's admin credentials
 * (c->creds): 10 s per call, 2 s to connect. */
struct talos_target mtls_target(const struct apply_ctx *c, const char *addr);
extern const struct phase ph_kubernetes;
/*
 * ph_reboot.c: phase "talos-reboot", changed configs Talos refused
 * NO_REBOOT on a running cluster, applied one node at a time (a worker
 * drained) with the health gate between (docs/upgrade.md).
 */
extern const struct phase ph_talos_reboot;
/* talos-install: nodes/<name>.yaml (SHA-256 sha) was refused NO_REBOOT
 * with message refused (copied before err is cleared): journaled as
 * waiting for talos-reboot; sha NULL: waits no more. */
int reboot_defer(struct apply_ctx *c, const char *name, const char *sha,
		 const char *refused, struct err *err);
/*
 * One node's config in mode AUTO, alone, as a rolling reboot wants it: its
 * boot id journaled (reboot_boot_id, kept when a killed apply left one); a
 * worker cordoned (strata.dev/cordoned: reboot) and drained through kc (when
 * there is one); the config sent (the reply's mode says whether Talos
 * reboots; what names it in messages: "config"); the node waited for until
 * it answers with a new boot id (the wait added to *waited_ms); uncordoned;
 * the boot id cleared. The caller's health gate comes after.
 */
struct kube_client;
int reboot_node(struct apply_ctx *c, struct kube_client *kc,
		const struct node *n, const struct buf *cfg, const char *what,
		long long *waited_ms, struct err *err);
/*
 * ph_upgrade.c: phase "talos-upgrade", the rolling Talos upgrade of a
 * changed talos.version or installer image (docs/upgrade.md).
 */
extern const struct phase ph_talos_upgrade;
/* talos-install asks: is this node's changed config left to a roll (it
 * runs another Talos than the config wants, or kubernetes.version
 * changed)? NULL, or what to say about the node. */
const char *upgrade_defers_config(struct apply_ctx *c, const char *name,
				  const char *live_version);
/* talos-install tells: node name's config was applied (installed_now: by
 * an install from maintenance mode, so it runs the config's Talos). */
int upgrade_journal_applied(struct apply_ctx *c, const char *name,
			    const char *live_version, bool installed_now,
			    const struct buf *applied, struct err *err);
/*
 * plan and apply, before anything runs: the roll a changed talos.version
 * means (printed on fp; returns how many nodes it upgrades), or a refusal
 * (negative, err): an unsupported path, a changed kubernetes.version.
 * From the journal's versions; the live versions are checked again. Also
 * the image roll of a talos patch's changed images (a check-only gen in
 * env_dir tells what the configs will carry). With rolls, the same as
 * JSON for plan -o json (docs/json.md "rolls").
 */
struct json_t;
int upgrade_check(const struct config *cfg, struct state *st,
		  const char *env_dir, int parallel, FILE *fp,
		  struct json_t **rolls, struct err *err);
/*
 * ph_k8supgrade.c: the rolling Kubernetes upgrade of a changed
 * kubernetes.version, run by phase talos-upgrade once no node needs a
 * Talos upgrade (docs/upgrade.md); k8s_upgrade_plan prints its order.
 */
int k8s_upgrade_run(struct apply_ctx *c, struct err *err);
struct json_t;
void k8s_upgrade_plan(const struct config *cfg, struct state *st, FILE *fp,
		      struct json_t **json);
/* The journal's addons.<this>.pending: the Kubernetes version of a roll
 * whose bootstrap manifests are still to be applied again. */
#define K8S_MANIFESTS_JOURNAL "bootstrap-manifests"
/* plan: the "^ manifests prune" line when the re-apply of the bootstrap
 * manifests will prune (Talos v1.13+, kubernetes.manifests_prune, a
 * record of what strata applied before) */
void manifests_prune_plan(const struct config *cfg, struct state *st, FILE *fp);
/* plan and apply's start: the removed-API check of the Kubernetes upgrade
 * (kube/removed.h) on the live cluster, when ENV/kubeconfig exists; a
 * refusal is negative (ERR_USAGE), a server that does not answer a note
 * on fp. */
int k8s_removed_plan(const struct config *cfg, struct state *st,
		     const char *env_dir, FILE *fp, struct err *err);
/*
 * A node new in the config while the others roll to kubernetes.version
 * joins at the version they run (k8s_join_version: the roll's from, or
 * NULL when it joins at kubernetes.version); read_join_config is
 * read_node_config with its images at that version (what talos-install and
 * the cidata drive give it).
 */
char *k8s_join_version(struct state *st, const struct config *cfg,
		       const char *name);
int read_join_config(struct apply_ctx *c, const char *name, struct buf *b,
		     char hex[65], struct err *err);
/*
 * The image roll (ph_k8supgrade.c, docs/upgrade.md): Kubernetes images a
 * talos patch changes roll in the upgrade-k8s order, only the steps that
 * change, one node at a time with the gate between. image_roll_journaled:
 * what node n runs (the journal's k8s_images, else gen's images for its
 * journaled kubernetes_version); image_roll_changes: which steps change to
 * want (chg[]; how many), none unless n is installed at the config's
 * kubernetes.version; image_roll_check refuses a patched machine.install.image
 * (install, NULL: none, against installer) and a patched image of another
 * Kubernetes minor; image_roll_pending: n's nodes/<node>.yaml has steps to
 * roll (talos-install leaves its config to the roll).
 */
#include "talos/upgrade.h"
void image_roll_journaled(struct state *st, const struct node *n,
			  struct k8s_images *im);
int image_roll_changes(const struct config *cfg, struct state *st,
		       const struct node *n, const struct k8s_images *want,
		       struct k8s_images *old, bool chg[K8S_NSTEPS]);
int image_roll_check(const struct config *cfg, const struct node *n,
		     const struct k8s_images *want, const char *install,
		     const char *installer, struct err *err);
bool image_roll_pending(struct apply_ctx *c, const struct node *n);
int image_roll_run(struct apply_ctx *c, struct err *err);
/* plan/apply: the image roll the configs gen writes mean (images as in
 * gen.h, installer the one gen writes); printed when show, as JSON into
 * *json when json; node steps, or a refusal (negative, err). */
int image_roll_plan(const struct config *cfg, struct state *st,
		    const char *images, const char *installer, FILE *fp,
		    bool show, struct json_t **json, struct err *err);
/* For phase talos-install: does control plane nd join a running cluster
 * (bootstrapped, not a recovery) with this apply? Then it is installed
 * on its own, after scale_join(before=true) (the health gate) and followed
 * by scale_join(before=false): the gate again, which passes once etcd
 * lists it as a started voting member. */
bool scale_joins_later(const struct apply_ctx *c, const struct node *nd);
int scale_join(struct apply_ctx *c, const struct node *nd, bool before,
	       struct err *err);
/* The addon phases (ph_cni.c, ph_gitops.c; docs/addons.md). */
extern const struct phase ph_cni;
extern const struct phase ph_gitops;

/* ph_etcd.c: etcd snapshots (docs/etcd.md). */
/* The snapshot of strata restore --etcd: a checked file, read from disk
 * while it is uploaded (never held in memory). */
struct etcd_recovery {
	const char *path;
	uint64_t bytes;
	char sha256[65];
};

struct etcd_snapshot_info {
	char path[4096];
	char node[64];              /* the control plane it came from */
	char sha256[65];
	char taken[32];             /* UTC, RFC 3339 */
	size_t bytes;
};
/* Credentials of role os:etcd:backup (ENV/talosconfig-etcd-backup, made
 * from ENV/secrets.yaml; written when its bytes change). */
int etcd_backup_creds(struct talos_creds *out, const char *env_dir,
		      const struct config *cfg, struct err *err);
/* The first control plane whose etcd member is healthy: 1 with *ip set,
 * else 0 (err, when given, says why the last one was not). */
int etcd_find_healthy(const struct config *cfg, const struct talos_creds *creds,
		      long timeout_ms, bool say, const char **ip, struct err *err);
/* Stream a snapshot from a healthy control plane into out_path (NULL:
 * ENV/etcd/<cluster>-<UTC>.snapshot; never replaces a file), recorded in
 * ENV/etcd/snapshots.json with why. */
int etcd_snapshot_take(const char *env_dir, const struct config *cfg,
		       const char *out_path, const char *why,
		       struct etcd_snapshot_info *info, struct err *err);
/* The newest recorded snapshot kept in ENV/etcd/ that still exists
 * (*path NULL: none). */
int etcd_latest_snapshot(const char *env_dir, char **path, struct err *err);
/*
 * For every phase about to do something disruptive (a node reset, a
 * reboot, an upgrade, a member removed): with backup.etcd_before_changes
 * (default true), once per apply and only once etcd was bootstrapped,
 * take a snapshot into ENV/etcd/; why names the step ("upgrade of cp-1").
 * A failed snapshot fails the call: the caller must not go on.
 */
int etcd_snapshot_before(struct apply_ctx *c, const char *why, struct err *err);

#endif
