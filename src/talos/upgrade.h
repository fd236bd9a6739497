/*
 * upgrade: the rules of a Talos or Kubernetes version change, without I/O.
 *
 * Supported paths (FACTS-day2 §4a, §4b): Talos moves within a minor or to
 * the next minor only, never back; Kubernetes the same (go-kubernetes
 * Path.IsSupported: same minor or minor + 1). The installer image a node
 * gets is the one `strata gen` writes into machine.install.image.
 */
#ifndef STRATA_TALOS_UPGRADE_H
#define STRATA_TALOS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "util/buf.h"
#include "util/err.h"

struct semver {
	int major, minor, patch;
};

/* "v1.12.11" or "1.35.4" (a leading v optional; a pre-release suffix
 * such as "-alpha.1" is ignored). 0, or -1 when it is not a version. */
int semver_parse(struct semver *v, const char *s);
/* <0, 0, >0 as a is before, equal to, after b. */
int semver_cmp(const struct semver *a, const struct semver *b);

/*
 * May a node at `from` go to `to`? 1: yes, and it is a change; 0: the
 * same version; -1: no, why[] says why and what to do instead. what is
 * "Talos" or "Kubernetes" (both follow the same rule).
 */
int upgrade_path(const char *what, const char *from, const char *to,
		 char *why, size_t whylen);

/* The installer image for cfg (machine.install.image): talos.installer_image
 * if given, else the Image Factory's for the schematic and version. Caller
 * frees. */
char *upgrade_installer(const struct config *cfg, struct err *err);

/*
 * The steps of a Kubernetes upgrade (FACTS-day2 4b, talosctl upgrade-k8s):
 * on the control planes the API server, controller manager and scheduler
 * images, each over every control plane before the next, then the
 * kube-proxy image; then the kubelet image, control planes then workers.
 * Each is one field of the machine config, applied NO_REBOOT.
 */
enum k8s_step {
	K8S_APISERVER, K8S_CONTROLLER_MANAGER, K8S_SCHEDULER, K8S_PROXY,
	K8S_KUBELET, K8S_NSTEPS
};
/* "kube-apiserver", ..., "kube-proxy", "kubelet" */
const char *k8s_step_name(enum k8s_step s);
/* "cluster.apiServer.image", ... */
const char *k8s_step_field(enum k8s_step s);

/*
 * The machine config a node gets at step s of the roll: the new config
 * text (nodes/<node>.yaml, which carries every image at to_ver) with the
 * images of the steps after s set back to from_ver (an image whose tag is
 * not v<to_ver>, e.g. pinned by a patch, is left alone). Into out (a
 * secret buffer). 0, or negative with err.
 */
int upgrade_k8s_config(const char *text, size_t len, enum k8s_step s,
		       const char *from_ver, const char *to_ver, struct buf *out,
		       struct err *err);
/* The same with every step's image at from_ver: the config of a node that
 * joins while the cluster rolls from from_ver to to_ver. */
int upgrade_k8s_config_join(const char *text, size_t len, const char *from_ver,
			    const char *to_ver, struct buf *out, struct err *err);
/* The image of step s in config text (caller frees), or NULL when the
 * config has none (a worker's config has no control-plane images). */
char *upgrade_k8s_image(const char *text, size_t len, enum k8s_step s);

/*
 * The images of a node's Kubernetes components, one per step (NULL: none),
 * as a machine config carries them, as strata journals them after a config
 * was applied ("k8s_images": "kube-apiserver=IMG ... kubelet=IMG"), and as
 * gen writes them for a version (what a node got when nothing else was
 * journaled). Free with k8s_images_free.
 */
struct k8s_images {
	char *v[K8S_NSTEPS];
};
void k8s_images_of(struct k8s_images *im, const char *text, size_t len);
char *k8s_images_format(const struct k8s_images *im);
void k8s_images_parse(struct k8s_images *im, const char *s);
void k8s_images_default(struct k8s_images *im, const char *version, bool cp);
void k8s_images_free(struct k8s_images *im);

/*
 * The config a node gets at step s of an image roll: the new config text
 * with the image of every step after s that `old` names set back to it
 * (the images not rolled yet stay as they run). Into out (secret). 0 or
 * negative with err.
 */
int upgrade_k8s_config_old(const char *text, size_t len, enum k8s_step s,
			   const struct k8s_images *old, struct buf *out,
			   struct err *err);
/*
 * The two above with step s's own image held back too (first = s): what
 * the node gets when its config, refused NO_REBOOT, goes in first without
 * the images of this step on (the edit's other changes alone).
 */
int upgrade_k8s_config_before(const char *text, size_t len, enum k8s_step s,
			      const char *from_ver, const char *to_ver,
			      struct buf *out, struct err *err);
int upgrade_k8s_config_old_before(const char *text, size_t len,
				  enum k8s_step s, const struct k8s_images *old,
				  struct buf *out, struct err *err);

/* machine.install.image of config text (caller frees), or NULL. */
char *upgrade_install_image(const char *text, size_t len);

/*
 * A machine config holds the cluster's keys, and libfyaml leaves copies of
 * what it parses in freed memory: the functions above parse and emit in a
 * fresh process (util/isolate.h). upgrade_images_here is k8s_images_of and
 * upgrade_install_image in one parse, in this process: only for a process
 * that is itself isolated (gen's child). All NULL when text does not parse.
 */
void upgrade_images_here(struct k8s_images *im, char **install,
			 const char *text, size_t len);

#endif
