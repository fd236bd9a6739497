/*
 * template: Proxmox calls for building cloud-init templates (template.c).
 */
#ifndef STRATA_PROVIDER_PROXMOX_TEMPLATE_H
#define STRATA_PROVIDER_PROXMOX_TEMPLATE_H

#include <stddef.h>

#include "util/err.h"

struct pve;

struct pve_release {
	int major, minor;
	char text[64];          /* pve-manager version as sent, "8.4.1" */
};

/* GET /nodes/{node}/version. */
int pve_node_version(struct pve *p, const char *node, struct pve_release *out,
		     struct err *err);
/* Names of the enabled storages of node holding content (caller frees with
 * pve_volids_free). */
int pve_storages_with(struct pve *p, const char *node, const char *content,
		      char ***out, size_t *n, struct err *err);
/* A storage of node with `import` content: `preferred` (may be NULL) when
 * it has it, else the first; an error says how to add one. */
int pve_import_storage(struct pve *p, const char *node, const char *preferred,
		       char **out, struct err *err);
/* Can this node put a cloud image into import storage through the API
 * (Proxmox VE 8.4 or later, FACTS-cloudinit.md §5)? 0, or an error with
 * the version and what to do instead. */
int pve_node_can_import(struct pve *p, const char *node, struct err *err);
/* POST /nodes/{node}/qemu/{vmid}/template: the qmtemplate task. */
int pve_vm_template(struct pve *p, const char *node, int vmid, char **upid_out,
		    struct err *err);

#endif
