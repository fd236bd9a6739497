/*
 * civm: the Proxmox side of a cloud-init VM (config.yml `vms[]`) that
 * apply makes: what identifies its nocloud seed, where that seed lives,
 * and the clone call (docs/vms.md).
 *
 * The seed ISO (cloudinit.h builds it) is uploaded to the node's ISO
 * storage as strata.<env>.<vm>.seed-<id>.iso, where id is the first 12
 * hex digits of the image's SHA-256: the image is the same bytes for the
 * same config (fixed timestamps), so the id on ide2 says whether the VM
 * carries the seed the config wants, without reading the ISO back.
 */
#ifndef STRATA_PROVIDER_PROXMOX_CIVM_H
#define STRATA_PROVIDER_PROXMOX_CIVM_H

#include "provider/proxmox/proxmox.h"
#include "util/buf.h"
#include "util/err.h"

struct config;
struct vm_config;

#define CIVM_SEED_ID_LEN 12

/* The seed's id and the `sshkeys` value the config wants (caller frees). */
int civm_desired_ci(const struct config *cfg, const struct vm_config *vm,
		    char **seed_id, char **sshkeys, struct err *err);
/* The seed ISO itself, and its id. */
int civm_seed_build(const struct config *cfg, const struct vm_config *vm,
		    struct buf *iso, char id[CIVM_SEED_ID_LEN + 1],
		    struct err *err);
/* "strata.<env>.<vm>.seed-<id>.iso" (caller frees). */
char *civm_seed_file(const char *env, const char *vm, const char *id);
/* The seed id of an ide2 value "STORAGE:iso/strata.<env>.<vm>.seed-<id>.iso,
 * media=cdrom", or NULL when it is not this VM's seed (caller frees). */
char *civm_seed_of_drive(const char *drive, const char *env, const char *vm);
/* Is volid ("STORAGE:iso/FILE") a seed ISO of this VM (any id)? */
bool civm_is_seed_volid(const char *volid, const char *env, const char *vm);
/* For the plan: "2 keys: ops@laptop, ci@runner" from an `sshkeys` value. */
char *civm_keys_summary(const char *sshkeys);

/* POST /nodes/{node}/qemu/{vmid}/clone: the qmclone task. */
int pve_vm_clone(struct pve *p, const char *node, int vmid,
		 const struct pve_params *params, char **upid_out,
		 struct err *err);

#endif
