/*
 * gitops: the GitOps tree `strata gen` writes for Flux, offline, into
 * ENV/<gitops.local_path> (default ENV/gitops, the checkout the user pushes):
 *
 *   cluster/kubernetes/flux/base/<c>/           HelmRepository per component
 *   cluster/kubernetes/flux/overlays/<env>/     what this env uses
 *   cluster/kubernetes/platform/base/<c>/       Namespace + HelmRelease
 *   cluster/kubernetes/platform/overlays/<env>/ values per env, secrets (SOPS)
 *   cluster/kubernetes/apps/{base,overlays/<env>}/  the user's: created once
 *   (platform/overlays/<env>/.sops.yaml: the sops creation rule, recipients)
 *
 * The Flux Kustomizations (applied by the gitops phase) point at
 * gitops_paths(): flux-system -> platform -> apps. The cluster's age
 * identity is ENV/sops.agekey (0600), made once; secrets in the tree are
 * encrypted to its recipient (and gitops.sops.recipients).
 *
 * Files are rewritten only when their bytes change; a SOPS file is kept
 * while it still decrypts to the same values for the same recipients.
 * Files under apps/ are never overwritten. An env's values file or tunnel
 * secret is removed once its component is disabled (bases are shared by
 * the envs of a checkout and stay).
 */
#ifndef STRATA_GITOPS_GITOPS_H
#define STRATA_GITOPS_GITOPS_H

#include <stdbool.h>

#include "config/config.h"
#include "util/err.h"

#define GITOPS_TREE "cluster/kubernetes"
#define GITOPS_AGEKEY "sops.agekey"

struct gitops_result {
	char *root;                /* the tree's folder */
	char *recipient;           /* the cluster's age recipient */
	bool key_created;
	int files_changed;
	int files_total;
	int user_files_kept;       /* apps/ files that existed and were left */
	int files_removed;         /* ours, of components no longer enabled */
	bool secret_kept_unverified; /* token unavailable: old SOPS file kept */
};

/* Repo-relative paths of the three Flux Kustomizations. Caller frees each. */
struct gitops_paths {
	char *flux;
	char *platform;
	char *apps;
};
void gitops_paths(struct gitops_paths *p, const struct config *cfg);
void gitops_paths_release(struct gitops_paths *p);

/*
 * Make ENV/sops.agekey once (from gitops.sops.identity when set, else a new
 * key) and return its recipient (malloc'd). *created says which.
 */
int gitops_agekey(char **recipient, bool *created, const struct config *cfg,
		  const char *env_dir, struct err *err);

int gitops_gen(const struct config *cfg, const char *env_dir,
	       struct gitops_result *res, struct err *err);
void gitops_result_release(struct gitops_result *res);

#endif
