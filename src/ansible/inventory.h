/*
 * inventory: the Ansible hand-off for the cloud-init VMs of config.yml
 * (`vms[]`). ENV/ansible/inventory.yml is a YAML inventory: every VM under
 * all.hosts with ansible_host (its static address), ansible_user (the user
 * cloud-init creates) and the VM's `ansible.vars`, and one child group per
 * name in `ansible.groups`. It holds no secrets: validate refuses secret
 * references in vars (Ansible Vault references are plain text there).
 */
#ifndef STRATA_ANSIBLE_INVENTORY_H
#define STRATA_ANSIBLE_INVENTORY_H

#include <stdbool.h>

#include "util/buf.h"
#include "util/err.h"

struct config;

#define ANSIBLE_INVENTORY "ansible/inventory.yml"

/* Append the inventory text for cfg's VMs. */
int ansible_inventory(struct buf *out, const struct config *cfg, struct err *err);

/* Write ENV/ansible/inventory.yml under the open env root (fs_root_open);
 * *changed says whether the file changed. */
int ansible_inventory_write(const struct config *cfg, const char *dir,
			    bool *changed, struct err *err);

#endif
