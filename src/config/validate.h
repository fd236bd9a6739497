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
/* Text without NUL, control characters or invalid UTF-8, else a finding in
 * file (NULL: the config); 0 or -1. */
int config_check_text(const char *t, size_t len, struct diag *diag,
		      const char *file);

/* Known Talos minors and their Kubernetes support window. */
struct talos_compat {
	int minor;
	const char *default_version;   /* full Talos version used when unset */
	const char *default_k8s;
	int k8s_min_minor, k8s_max_minor;
};
const struct talos_compat *config_talos_compat(int minor);

#endif
