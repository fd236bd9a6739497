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
/* POST /nodes/{node}/qemu/{vmid}/template: the qmtemplate task. */
int pve_vm_template(struct pve *p, const char *node, int vmid, char **upid_out,
		    struct err *err);

#endif
