/*
 * template.c: the Proxmox calls `strata template` needs beyond proxmox.c:
 * the node's version (GET /nodes/{node}/version), the storages of one
 * content type, and converting a VM to a template (POST .../template).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/proxmox/proxmox.h"
#include "provider/proxmox/template.h"

int
pve_node_version(struct pve *p, const char *node, struct pve_release *out,
		 struct err *err)
{
	char *path = xasprintf("/nodes/%s/version", node);
	json_t *data = NULL;
	int r = pve_call(p, "GET", path, NULL, &data, err);

	memset(out, 0, sizeof(*out));
	if (r == 0) {
		char *v = pve_json_str(data, "version");

		if (!v || sscanf(v, "%d.%d", &out->major, &out->minor) != 2) {
			r = err_set(err, ERR_FAIL, "GET %s: no version in the answer "
				    "(is the endpoint a Proxmox VE node?)", path);
			free(v);
		} else {
			snprintf(out->text, sizeof(out->text), "%s", v);
			free(v);
		}
	}
	json_decref(data);
	free(path);
	return r;
}

int
pve_storages_with(struct pve *p, const char *node, const char *content,
		  char ***out, size_t *n, struct err *err)
{
	char *path = xasprintf("/nodes/%s/storage", node);
	struct pve_params q;
	json_t *data = NULL, *e;
	size_t i;
	int r;

	pve_params_init(&q);
	pve_params_add(&q, "content", content);
	pve_params_add(&q, "enabled", "1");
	r = pve_call(p, "GET", path, &q, &data, err);
	pve_params_release(&q);
	*out = NULL;
	*n = 0;
	if (r == 0 && json_is_array(data)) {
		*out = xcalloc(json_array_size(data) + 1, sizeof(**out));
		json_array_foreach(data, i, e) {
			char *s = pve_json_str(e, "storage");

			if (s)
				(*out)[(*n)++] = s;
		}
	}
	json_decref(data);
	free(path);
	return r;
}

int
pve_vm_template(struct pve *p, const char *node, int vmid, char **upid_out,
		struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/template", node, vmid);
	struct pve_params q;
	json_t *data = NULL;
	int r;

	pve_params_init(&q);
	r = pve_call(p, "POST", path, &q, &data, err);
	*upid_out = NULL;
	if (r == 0) {
		if (json_is_string(data) && !strncmp(json_string_value(data), "UPID:", 5))
			*upid_out = xstrdup(json_string_value(data));
		else
			r = err_set(err, ERR_FAIL, "POST %s: expected a task id", path);
	}
	json_decref(data);
	pve_params_release(&q);
	free(path);
	return r;
}

int
pve_import_storage(struct pve *p, const char *node, const char *preferred,
		   char **out, struct err *err)
{
	char **v = NULL;
	size_t i, n = 0;
	int r = pve_storages_with(p, node, "import", &v, &n, err);

	*out = NULL;
	if (r < 0)
		return r;
	for (i = 0; i < n; i++)
		if (preferred && !strcmp(v[i], preferred))
			*out = xstrdup(v[i]);
	if (!*out && n)
		*out = xstrdup(v[0]);
	pve_volids_free(v, n);
	if (!*out)
		return err_set(err, ERR_FAIL, "node '%s' has no storage with content "
			       "'import' to download the image into: add it to a file "
			       "storage (pvesm set local --content "
			       "iso,vztmpl,backup,import) and run this again", node);
	return 0;
}

int
pve_node_can_import(struct pve *p, const char *node, struct err *err)
{
	struct pve_release rel;
	int r;

	if ((r = pve_node_version(p, node, &rel, err)) < 0)
		return r;
	if (rel.major < 8 || (rel.major == 8 && rel.minor < 4))
		return err_set(err, ERR_FAIL, "node '%s' runs Proxmox VE %s, which "
			       "cannot import a cloud image through the API (that "
			       "needs 8.4 or later); upgrade the node, or build the "
			       "template on it by hand: qm create ID ... && qm "
			       "importdisk ID IMAGE STORAGE && qm set ID --ide2 "
			       "STORAGE:cloudinit --agent enabled=1 && qm template ID",
			       node, rel.text);
	return 0;
}
