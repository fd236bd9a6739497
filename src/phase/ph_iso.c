/*
 * Phase "iso": the Talos ISO for this environment's schematic and version
 * is on the ISO storage of every Proxmox node that gets a VM. The file name
 * carries the version and schematic id, so clusters that share a storage
 * share the file, and it is downloaded once: before each download-url the
 * storage is listed again (a shared storage shows what another node
 * fetched a moment ago).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "util/buf.h"
#include "talos/factory.h"
#include "talos/gen.h"
#include "util/out.h"

int
apply_iso_target(struct apply_ctx *c, struct err *err)
{
	char id[65];
	int r;

	if (c->cfg->n_nodes == 0)
		return 0; /* plain VMs only: no Talos */
	if ((r = talos_schematic_for(id, c->cfg, err)) < 0)
		return r;
	c->iso_url = talos_factory_iso_url(id, c->cfg->talos.version, "metal");
	/* Version and schematic in the name: clusters sharing a storage share it. */
	c->iso_volid = xasprintf("%s:iso/talos-%s-%.12s-metal-amd64.iso",
				 c->cfg->proxmox.iso_storage, c->cfg->talos.version, id);
	return 0;
}

static bool
needs_iso(struct apply_ctx *c)
{
	size_t i;

	if (!c->iso_volid || !c->iso_url)
		return false;
	for (i = 0; i < c->plan.n; i++)
		if (c->plan.v[i].kind == ACT_CREATE || c->plan.v[i].kind == ACT_REPLACE)
			return true;
	return false;
}

static int
iso_run(struct apply_ctx *c, struct err *err)
{
	const char *storage = c->cfg->proxmox.iso_storage;
	const char *fname = strstr(c->iso_volid, ":iso/") + 5;
	char **done = xcalloc(c->plan.n + 1, sizeof(char *));
	size_t i, j, nd = 0;
	int r = 0;

	for (i = 0; i < c->plan.n && r == 0; i++) {
		const struct action *a = &c->plan.v[i];
		const char *node = a->want.node;
		char *upid = NULL;
		bool has = false, seen = false;

		if (!(a->kind == ACT_CREATE || a->kind == ACT_REPLACE) || !node)
			continue;
		for (j = 0; j < nd; j++)
			if (!strcmp(done[j], node))
				seen = true;
		if (seen)
			continue;
		done[nd++] = (char *)node;
		if ((r = pve_storage_has(c->pve, node, storage, "iso", c->iso_volid,
					 &has, err)) < 0) {
			err_wrap(err, "node '%s'", node);
			break;
		}
		if (has)
			continue;
		out_step("downloading %s to %s on %s", fname, storage, node);
		r = pve_download_url(c->pve, node, storage, c->iso_url, "iso", fname,
				     NULL, &upid, err);
		if (r == 0)
			r = pve_task_wait(c->pve, upid, 30 * 60 * 1000L, err);
		free(upid);
		if (r < 0)
			err_wrap(err, "download Talos ISO to %s on '%s'", storage, node);
	}
	free(done);
	return r;
}

static void
iso_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    ensure %s (from %s)\n", c->iso_volid, c->iso_url);
}

const struct phase ph_iso = {
	.name = "iso",
	.title = "Talos ISO in ISO storage",
	.should_run = needs_iso,
	.run = iso_run,
	.dry_run = iso_dry_run,
};
