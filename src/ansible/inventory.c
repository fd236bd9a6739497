#include "ansible/inventory.h"

#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "config/config.h"
#include "talos/tyaml.h"
#include "util/fs.h"

/* The group named g, or a new empty one appended to children. */
static struct fy_node *
group_hosts(struct fy_node *children, const char *g)
{
	struct fy_document *doc = fy_node_document(children);
	struct fy_node *grp = y_get(children, g), *hosts;

	if (grp)
		return y_get(grp, "hosts");
	grp = y_map(doc);
	hosts = y_map(doc);
	y_put(grp, "hosts", hosts);
	y_put(children, g, grp);
	return hosts;
}

int
ansible_inventory(struct buf *out, const struct config *cfg, struct err *err)
{
	struct fy_document *doc = fy_document_create(NULL);
	struct fy_node *root, *all, *hosts, *children;
	char *text;
	size_t i, j;

	if (!doc)
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	all = y_map(doc);
	hosts = y_map(doc);
	children = y_map(doc);
	for (i = 0; i < cfg->n_vms; i++) {
		const struct vm_config *vm = &cfg->vms[i];
		struct fy_node *h = y_map(doc);

		y_puts(h, "ansible_host", vm->ip);
		y_puts(h, "ansible_user", vm->user);
		for (j = 0; j < vm->n_vars; j++) {
			const char *v = vm->vars[j].value;
			struct fy_node *val = fy_node_build_from_string(doc, v, strlen(v));

			if (!val) {
				fy_document_destroy(doc);
				return err_set(err, ERR_FAIL, "vm '%s': ansible var '%s' "
					       "is not YAML; fix it in config.yml",
					       vm->name, vm->vars[j].key);
			}
			y_put(h, vm->vars[j].key, val);
		}
		y_put(hosts, vm->name, h);
		for (j = 0; j < vm->groups.n; j++)
			y_put(group_hosts(children, vm->groups.v[j]), vm->name, y_map(doc));
	}
	y_put(all, "hosts", hosts);
	if (fy_node_mapping_item_count(children) > 0)
		y_put(all, "children", children);
	else
		fy_node_free(children);
	y_put(root, "all", all);
	text = fy_emit_document_to_string(doc, FYECF_MODE_BLOCK | FYECF_INDENT_2 |
					       FYECF_WIDTH_INF);
	fy_document_destroy(doc);
	if (!text)
		return err_set(err, ERR_FAIL, "cannot write the Ansible inventory");
	buf_adds(out, "# Written by strata from config.yml (vms); edits are overwritten.\n");
	buf_adds(out, text);
	free(text);
	return 0;
}

int
ansible_inventory_write(const struct config *cfg, const char *dir,
			bool *changed, struct err *err)
{
	struct buf text = BUF_INIT;
	char *sub = fs_join(dir, "ansible"), *path = fs_join(dir, ANSIBLE_INVENTORY);
	int r;

	if ((r = ansible_inventory(&text, cfg, err)) == 0 &&
	    (r = fs_mkdir_p(sub, 0700, err)) == 0)
		r = fs_write_if_changed(path, text.ptr, text.len, 0600, changed, err);
	if (r < 0)
		err_wrap(err, "write %s", ANSIBLE_INVENTORY);
	buf_release(&text);
	free(sub);
	free(path);
	return r;
}
