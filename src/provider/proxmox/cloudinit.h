/*
 * cloudinit: what a plain cloud-init VM (config.yml `vms[]`) is given at
 * first boot, built from the config alone.
 *
 * - The nocloud seed (FACTS-cloudinit.md §2, §4): user-data (#cloud-config:
 *   hostname, the login user with its SSH keys, packages, and the guest
 *   agent started), network-config (version 2, the static address) and
 *   meta-data (instance-id from both, so any change is a fresh cloud-init
 *   run), and the ISO9660 image labelled `cidata` that holds them.
 * - The Proxmox cloud-init parameter encodings: `sshkeys` (FACTS.md §6,
 *   every byte outside [-A-Za-z0-9_.!~*'()%] as %XX) and `ipconfig0`.
 * - The check that an SSH public key is a key (the type word matches the
 *   type inside the base64 blob), used by validate.
 *
 * Nothing here talks to a server.
 */
#ifndef STRATA_PROVIDER_PROXMOX_CLOUDINIT_H
#define STRATA_PROVIDER_PROXMOX_CLOUDINIT_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct config;
struct vm_config;
struct str_list;

/* The ISO volume id nocloud looks for. */
#define CI_SEED_LABEL "cidata"

/*
 * 0 when key is "TYPE BASE64 [COMMENT]" whose decoded blob starts with the
 * string TYPE (as ssh-keygen -l reads it), else -1 with a reason in why.
 */
int ci_ssh_key_check(const char *key, char *why, size_t whylen);

/* Append the `sshkeys` value: the keys one per line, urlencoded. */
void ci_sshkeys_encode(struct buf *out, const struct str_list *keys);

/* Append the `ipconfig0` value: ip=IP/PREFIX[,gw=GW]. */
void ci_ipconfig(struct buf *out, const char *ip, int prefix, const char *gw);

/* The packages every VM gets whatever the config lists: the guest agent
 * (the address is read through it) and python3 (Ansible needs it). */
extern const char *const ci_base_packages[];

struct ci_seed {
	struct buf user_data, network_config, meta_data;
};

#define CI_SEED_INIT { BUF_INIT, BUF_INIT, BUF_INIT }

int ci_seed_make(struct ci_seed *out, const struct config *cfg,
		 const struct vm_config *vm, struct err *err);
void ci_seed_release(struct ci_seed *s);

/* Append the seed as an ISO9660 image labelled cidata. */
int ci_seed_iso(struct buf *out, const struct ci_seed *s, struct err *err);

/*
 * Write ENV/vms/NAME/{user-data,network-config,meta-data,cidata.iso} for
 * every VM of cfg (under the open env root); *changed counts files that
 * changed, *total the files written or compared.
 */
int ci_seeds_write(const struct config *cfg, const char *dir, int *changed,
		   int *total, struct err *err);

/*
 * Can a VM with this config (GET .../config) be cloned into a cloud-init
 * VM? 0 when it is a template with a cloud-init drive and the guest agent
 * enabled, else -1 with what is missing in why.
 */
int ci_template_check(json_t *config, char *why, size_t whylen);

/*
 * The import file name for a cloud image URL: its last path segment, a
 * `.img` (Ubuntu/Debian cloud images, really qcow2) saved as `.qcow2`
 * (FACTS-cloudinit.md §5: import storage takes .raw, .qcow2, .vmdk, .ova).
 * 0 and a malloc'd name, or -1 with why.
 */
int ci_import_filename(const char *url, char **out, char *why, size_t whylen);

#endif
