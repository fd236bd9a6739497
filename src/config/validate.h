/*
 * validate: defaults, pool expansion and semantic checks of a decoded
 * config. Internal to the config module; config_load calls it.
 */
#ifndef STRATA_CONFIG_VALIDATE_H
#define STRATA_CONFIG_VALIDATE_H

#include "config/config.h"


/* Load from memory; path names the file in messages and sets cfg->dir. */
int config_load_mem(struct config **out, const char *path, const char *data,
		    size_t len, struct diag *diag, unsigned flags);
int config_load_opts(struct config **out, const char *path, struct diag *diag,
		     unsigned flags);
void config_validate(struct config *cfg, struct diag *diag, unsigned flags);

/* Known Talos minors and their Kubernetes support window. */
struct talos_compat {
	int minor;
	const char *default_version;   /* full Talos version used when unset */
	const char *default_k8s;
	int k8s_min_minor, k8s_max_minor;
};
const struct talos_compat *config_talos_compat(int minor);

#endif
