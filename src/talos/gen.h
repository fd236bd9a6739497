/*
 * gen: every Talos file of an environment folder, offline.
 *
 *   secrets.yaml         generated once, never overwritten (0600)
 *   controlplane.yaml    base configs (0600: they hold CA keys and tokens)
 *   worker.yaml
 *   patches/<node>.yaml  per-node patch: hostname, address, routes,
 *                        nameservers, VIP (control planes), install
 *   nodes/<node>.yaml    base + node patch + the config's talos.patches
 *   talosconfig          admin access (0600), admin cert reused while valid
 *   .generated.sha256    what gen wrote, as `sha256sum` lines: the record
 *                        that lets it remove nodes/ and patches/ files of
 *                        nodes no longer in the config, and only those
 *                        (a file changed since, or never written by gen,
 *                        is kept)
 *
 * Files are written only when their bytes change, so with an existing
 * secrets bundle a second run changes nothing.
 */
#ifndef STRATA_TALOS_GEN_H
#define STRATA_TALOS_GEN_H

#include <stdbool.h>

#include "config/config.h"
#include "util/buf.h"
#include "util/err.h"

struct gen_result {
	char schematic_id[65];
	char *iso_url;
	char *installer_image;
	bool secrets_created;
	int files_changed;
	int files_total;
	char *changed;          /* the files_changed paths, one per line */
	/* Set by the caller before talos_gen: write nothing, only count in
	 * files_changed what would change (secrets_created: secrets.yaml is
	 * missing, so everything would be new; counting stops there). Stale
	 * files are neither removed nor counted then. */
	bool check_only;
	/* Per node, the images its nodes/<node>.yaml carries (also with
	 * check_only): "NODE STEP IMAGE" lines, STEP a k8s_step_name or
	 * "install" (machine.install.image). No secret. */
	char *images;
	int files_removed;         /* of nodes no longer in the config */
	int files_kept;            /* the same, kept: changed since gen wrote them */
	struct buf manifest;       /* what this run wrote (internal) */
	struct buf kept;           /* the kept files, one per line (internal) */
};

/* The Image Factory schematic id the config asks for (given or computed). */
int talos_schematic_for(char id[65], const struct config *cfg, struct err *err);
/* The schematic of talos.kernel_args and talos.extensions (borrowed from cfg). */
struct schematic;
void talos_schematic_of(struct schematic *sch, const struct config *cfg);
/*
 * A factory serves only the schematics it knows (FACTS-metal.md §1): POST
 * the config's to the Image Factory at base, unless it is a given
 * talos.schematic.id (its owner registered it) or the vanilla one (every
 * factory knows it). 1: POSTed, id the factory's answer (the one strata
 * computed, else an error); 0: nothing to POST; negative: err.
 */
int talos_schematic_register(const struct config *cfg, const char *base,
			     char id[65], struct err *err);
int talos_gen(const struct config *cfg, const char *env_dir,
	      struct gen_result *res, struct err *err);
void gen_result_release(struct gen_result *res);

#endif
