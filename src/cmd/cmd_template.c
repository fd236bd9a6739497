/*
 * strata template ENV --vmid ID [--image URL] [--node NODE] [--sha256 HEX]
 * strata template ENV --vmid ID --check
 *
 * Build a cloud-init template from an official cloud image, on the API
 * alone (FACTS-cloudinit.md §5, §6): download-url into a storage with
 * `import` content (a .img saved under a .qcow2 name), a VM whose scsi0 is
 * imported from it (size 0, import-from), a cloud-init drive, serial
 * console, the guest agent on, then POST .../template. Or check that a
 * template has what a clone needs (a cloud-init drive, the agent).
 *
 * The template's id must lie outside the env's vmid range: plan owns that
 * range and would take the template for a VM to delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/env.h"
#include "provider/proxmox/cloudinit.h"
#include "provider/proxmox/proxmox.h"
#include "provider/proxmox/template.h"
#include "util/out.h"

#define TEMPLATE_TAG "strata-template"
#define IMPORT_TIMEOUT_MS (60L * 60 * 1000)   /* a download or an import */

struct tpl_opts {
	const char *env, *image, *node, *sha256;
	int vmid;
	bool check;
};

static int
parse(struct tpl_opts *o, int argc, char **argv)
{
	int i, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--check")) {
			o->check = true;
		} else if (!strcmp(a, "--vmid") || !strcmp(a, "--image") ||
			   !strcmp(a, "--node") || !strcmp(a, "--sha256")) {
			if (i + 1 >= argc)
				return cmd_usage_error("template", "%s needs a value", a);
			if (!strcmp(a, "--vmid")) {
				char *end;
				long v = strtol(argv[++i], &end, 10);

				if (*end || v < 100 || v > 999999999)
					return cmd_usage_error("template", "--vmid '%s' is not "
							       "a VM id (100..999999999)", argv[i]);
				o->vmid = (int)v;
			} else if (!strcmp(a, "--image")) {
				o->image = argv[++i];
			} else if (!strcmp(a, "--node")) {
				o->node = argv[++i];
			} else {
				o->sha256 = argv[++i];
			}
		} else if ((r = cmd_positional(&o->env, a, "template")) != 0) {
			return r;
		}
	}
	if (!o->env)
		return cmd_usage_error("template", "missing ENV");
	if (!o->vmid && !o->check)
		return cmd_usage_error("template", "missing --vmid ID (the template's id, "
				       "outside the env's vmid range)");
	if (o->sha256 && (strlen(o->sha256) != 64 ||
			  strspn(o->sha256, "0123456789abcdefABCDEF") != 64))
		return cmd_usage_error("template", "--sha256 takes 64 hex digits");
	return 0;
}

/* The image: --image, else the one image vms[] names. */
static int
pick_image(const struct config *cfg, const char *given, const char **out,
	   struct err *err)
{
	size_t i;

	*out = given;
	if (given) {
		if (strncmp(given, "https://", 8) && strncmp(given, "http://", 7))
			return err_set(err, ERR_USAGE, "--image '%s' is not an "
				       "http(s) URL of a cloud image", given);
		return 0;
	}
	for (i = 0; i < cfg->n_vms; i++) {
		const char *im = cfg->vms[i].image;

		if (!im)
			continue;
		if (*out && strcmp(*out, im))
			return err_set(err, ERR_USAGE, "vms name more than one image "
				       "('%s', '%s'); say which with --image", *out, im);
		*out = im;
	}
	if (!*out)
		return err_set(err, ERR_USAGE, "no image: no VM in config.yml has "
			       "'image'; give --image URL");
	return 0;
}

static char *
tpl_marker(const char *env, const char *image)
{
	return xasprintf("strata template env=%s image=%s", env, image);
}

/* Find vmid; *found, *is_template, *ours (tag and marker) when it exists. */
static int
look_up(struct env *e, int vmid, const char *marker, char **node, bool *found,
	bool *is_template, bool *ours, struct err *err)
{
	struct pve_vm *vms = NULL;
	size_t i, n = 0;
	int r;

	*found = *is_template = *ours = false;
	*node = NULL;
	if ((r = pve_cluster_vms(e->pve, &vms, &n, err)) < 0)
		return r;
	for (i = 0; i < n; i++) {
		json_t *cfg = NULL;
		char *desc;

		if (vms[i].vmid != vmid)
			continue;
		*found = true;
		*is_template = vms[i].template;
		*node = xstrdup(vms[i].node);
		if ((r = pve_vm_config_get(e->pve, vms[i].node, vmid, &cfg, err)) < 0)
			break;
		desc = pve_json_str(cfg, "description");
		*ours = vms[i].tags && strstr(vms[i].tags, TEMPLATE_TAG) &&
			desc && strstr(desc, marker);
		free(desc);
		json_decref(cfg);
	}
	pve_vms_free(vms, n);
	return r;
}

static int
check_only(struct env *e, int vmid, struct err *err)
{
	struct pve_vm *vms = NULL;
	size_t i, n = 0;
	json_t *cfg = NULL;
	char why[256];
	int r;

	if ((r = pve_cluster_vms(e->pve, &vms, &n, err)) < 0)
		return r;
	for (i = 0; i < n && vms[i].vmid != vmid; i++)
		;
	if (i == n)
		r = err_set(err, ERR_FAIL, "VM %d does not exist", vmid);
	else if ((r = pve_vm_config_get(e->pve, vms[i].node, vmid, &cfg, err)) == 0 &&
		 ci_template_check(cfg, why, sizeof(why)) < 0)
		r = err_set(err, ERR_FAIL, "VM %d cannot be cloned into a cloud-init "
			    "VM: %s", vmid, why);
	if (r == 0)
		printf("template %d on %s: cloud-init drive and guest agent present\n",
		       vmid, vms[i].node);
	json_decref(cfg);
	pve_vms_free(vms, n);
	return r;
}

static int
import_storage(struct env *e, const char *node, char **out, struct err *err)
{
	return pve_import_storage(e->pve, node, e->cfg->proxmox.iso_storage, out, err);
}

static int
build(struct env *e, const struct tpl_opts *o, const char *image, struct err *err)
{
	const struct proxmox_config *px = &e->cfg->proxmox;
	const char *node = o->node ? o->node : px->nodes.v[0];
	struct pve_params q;
	struct buf net = BUF_INIT;
	char *fname = NULL, *storage = NULL, *volid = NULL, *upid = NULL,
	     *marker = tpl_marker(e->cfg->name, image), *where = NULL, *name = NULL;
	char why[256];
	bool found, is_tpl, ours, has;
	json_t *cfg = NULL;
	int r;

	pve_params_init(&q);
	if (ci_import_filename(image, &fname, why, sizeof(why)) < 0) {
		r = err_set(err, ERR_USAGE, "image '%s': %s", image, why);
		goto out;
	}
	/* FACTS-cloudinit.md §5: guest images go into import storage through
	 * the API from pve-storage 8.3.6, PVE 8.4. */
	if ((r = pve_node_can_import(e->pve, node, err)) < 0)
		goto out;
	if ((r = look_up(e, o->vmid, marker, &where, &found, &is_tpl, &ours, err)) < 0)
		goto out;
	if (found && !ours) {
		r = err_set(err, ERR_FAIL, "VM id %d is taken by a VM strata did not "
			    "build as this template; pick another --vmid", o->vmid);
		goto out;
	}
	if (found && is_tpl) {
		printf("template %d on %s: already built from %s; nothing to do\n",
		       o->vmid, where, image);
		r = 0;
		goto out;
	}
	if (found)
		node = where;   /* an earlier run stopped before the conversion */
	if (!found) {
		if ((r = import_storage(e, node, &storage, err)) < 0)
			goto out;
		volid = xasprintf("%s:import/%s", storage, fname);
		if ((r = pve_storage_has(e->pve, node, storage, "import", volid, &has, err)) < 0)
			goto out;
		if (!has) {
			out_note("downloading %s into %s", image, volid);
			if ((r = pve_download_url(e->pve, node, storage, image, "import",
						  fname, o->sha256, &upid, err)) < 0 ||
			    (r = pve_task_wait(e->pve, upid, IMPORT_TIMEOUT_MS, err)) < 0) {
				err_wrap(err, "download %s", image);
				goto out;
			}
			free(upid);
			upid = NULL;
		}
		name = xasprintf("tpl-%.*s", (int)strcspn(fname, "."), fname);
		for (char *c = name; *c; c++)
			if (!(*c >= 'a' && *c <= 'z') && !(*c >= '0' && *c <= '9') && *c != '-')
				*c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : '-';
		pve_params_addf(&q, "vmid", "%d", o->vmid);
		pve_params_add(&q, "name", name);
		pve_params_add(&q, "description", marker);
		pve_params_add(&q, "tags", TEMPLATE_TAG);
		pve_params_add(&q, "ostype", "l26");
		pve_params_add(&q, "cores", "2");
		pve_params_add(&q, "memory", "2048");
		pve_params_add(&q, "cpu", px->cpu_type);
		pve_params_add(&q, "scsihw", "virtio-scsi-single");
		pve_params_addf(&q, "scsi0", "%s:0,import-from=%s,discard=on,iothread=1",
				px->disk_storage, volid);
		pve_params_addf(&q, "ide2", "%s:cloudinit", px->disk_storage);
		buf_addf(&net, "virtio,bridge=%s,firewall=0", px->bridge);
		if (px->vlan)
			buf_addf(&net, ",tag=%d", px->vlan);
		pve_params_add(&q, "net0", net.ptr);
		pve_params_add(&q, "boot", "order=scsi0");
		pve_params_add(&q, "agent", "enabled=1");
		pve_params_add(&q, "serial0", "socket");
		pve_params_add(&q, "vga", "serial0");
		out_note("creating VM %d on %s with scsi0 imported from %s", o->vmid, node, volid);
		if ((r = pve_vm_create(e->pve, node, &q, &upid, err)) < 0 ||
		    (r = pve_task_wait(e->pve, upid, IMPORT_TIMEOUT_MS, err)) < 0) {
			err_wrap(err, "create template VM %d", o->vmid);
			goto out;
		}
		free(upid);
		upid = NULL;
	}
	if ((r = pve_vm_template(e->pve, node, o->vmid, &upid, err)) < 0 ||
	    (r = pve_task_wait(e->pve, upid, IMPORT_TIMEOUT_MS, err)) < 0) {
		err_wrap(err, "convert VM %d to a template", o->vmid);
		goto out;
	}
	/* What a clone will need, read back from the server. */
	if ((r = pve_vm_config_get(e->pve, node, o->vmid, &cfg, err)) < 0)
		goto out;
	if (ci_template_check(cfg, why, sizeof(why)) < 0) {
		r = err_set(err, ERR_FAIL, "template %d was built but %s", o->vmid, why);
		goto out;
	}
	printf("template %d on %s: built from %s (cloud-init drive, guest agent, serial console)\n",
	       o->vmid, node, image);
out:
	json_decref(cfg);
	pve_params_release(&q);
	buf_release(&net);
	free(fname);
	free(storage);
	free(volid);
	free(upid);
	free(marker);
	free(where);
	free(name);
	return r;
}

static bool
node_listed(const struct str_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

int
cmd_template(int argc, char **argv)
{
	struct tpl_opts o = { 0 };
	struct env e;
	struct err err = ERR_INIT;
	const char *image = NULL;
	int r;

	if (cmd_wants_help(argc, argv, "template"))
		return 0;
	if ((r = parse(&o, argc, argv)) != 0)
		return r;
	if ((r = env_open(&e, o.env, ENV_LOCK | ENV_PROXMOX | ENV_VMS_OK, &err)) < 0)
		goto fail;
	if (o.vmid && !o.check && o.vmid >= e.cfg->proxmox.vmid_base &&
	    o.vmid < e.cfg->proxmox.vmid_base + e.cfg->proxmox.vmid_count) {
		r = err_set(&err, ERR_USAGE, "--vmid %d is inside this env's VM id "
			    "range %d..%d, which plan owns; pick an id outside it",
			    o.vmid, e.cfg->proxmox.vmid_base,
			    e.cfg->proxmox.vmid_base + e.cfg->proxmox.vmid_count - 1);
		goto fail;
	}
	if (o.node && !node_listed(&e.cfg->proxmox.nodes, o.node)) {
		r = err_set(&err, ERR_USAGE, "--node '%s' is not in proxmox.nodes", o.node);
		goto fail;
	}
	if (o.check && !o.vmid) {
		/* every template vms[] clones from */
		size_t i, j, n = 0;

		for (i = 0; i < e.cfg->n_vms && r == 0; i++) {
			int id = e.cfg->vms[i].template_vmid;

			for (j = 0; j < i && e.cfg->vms[j].template_vmid != id; j++)
				;
			if (!id || j < i)
				continue;
			n++;
			r = check_only(&e, id, &err);
		}
		if (r == 0 && n == 0)
			r = err_set(&err, ERR_USAGE, "no VM in config.yml has 'template'; "
				    "give --vmid ID");
	} else if (o.check)
		r = check_only(&e, o.vmid, &err);
	else if ((r = pick_image(e.cfg, o.image, &image, &err)) == 0)
		r = build(&e, &o, image, &err);
	if (r < 0)
		goto fail;
	env_close(&e);
	return 0;
fail:
	out_error("template: %s", err.msg);
	env_close(&e);
	return err_exit_code(&err);
}
