/*
 * Phase "iso": the Talos ISO for this environment's schematic and version
 * is on the ISO storage of every Proxmox node that gets a VM. The file name
 * carries the version and schematic id, so clusters that share a storage
 * share the file. A storage shared between the Proxmox nodes gets one
 * download; otherwise every node that needs the file fetches it, all at
 * the same time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "util/buf.h"
#include "talos/factory.h"
#include "talos/gen.h"
#include "util/out.h"

int
apply_iso_target(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	const char *platform;
	char id[65];
	int r;

	if (c->cfg->n_nodes == 0)
		return 0; /* plain VMs only: no Talos */
	if ((r = talos_schematic_for(id, c->cfg, err)) < 0)
		return r;
	/* Only the nocloud image reads a cidata drive (FACTS-metal.md §1);
	 * the installed system is the metal platform either way. */
	platform = cidata_mode(c) ? "nocloud" : "metal";
	pa->iso_url = talos_factory_iso_url(c->cfg->proxmox.image_factory, id,
					    c->cfg->talos.version, platform);
	/* Version and schematic in the name: clusters sharing a storage share it. */
	pa->iso_volid = xasprintf("%s:iso/talos-%s-%.12s-%s-amd64.iso",
				 c->cfg->proxmox.iso_storage, c->cfg->talos.version, id,
				 platform);
	return 0;
}

static bool
needs_iso(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	if (!pa->iso_volid || !pa->iso_url)
		return false;
	for (i = 0; i < pa->plan.n; i++)
		if (pa->plan.v[i].kind == ACT_CREATE || pa->plan.v[i].kind == ACT_REPLACE)
			return true;
	return false;
}

/*
 * The factory serves only schematics it knows (FACTS-metal.md §1), and it
 * is Proxmox that downloads the ISO: one with extensions or kernel args is
 * POSTed to it first (its id must be the one strata computed and named
 * the ISO by). A given talos.schematic.id was registered by its owner;
 * the vanilla schematic is known to every factory.
 */
static int
register_schematic(const struct config *cfg, struct err *err)
{
	char id[65];
	int r = talos_schematic_register(cfg, cfg->proxmox.image_factory, id,
					 err);

	if (r < 0)
		return err_wrap(err, "registering the schematic with the Image "
				"Factory %s (Proxmox downloads the Talos ISO "
				"from it)", cfg->proxmox.image_factory);
	if (r > 0)
		out_step("schematic %.12s... registered with %s", id,
			 cfg->proxmox.image_factory);
	return 0;
}

static int
iso_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	const char *storage = c->cfg->proxmox.iso_storage;
	const char *fname = strstr(pa->iso_volid, ":iso/") + 5;
	const char **nodes = xcalloc(pa->plan.n + 1, sizeof(char *));
	char **upids = xcalloc(pa->plan.n + 1, sizeof(char *));
	size_t i, j, nn = 0;
	bool shared = false, registered = false;
	int r = 0;

	/* The nodes that get a new VM, once each. */
	for (i = 0; i < pa->plan.n; i++) {
		const struct action *a = &pa->plan.v[i];
		bool seen = false;

		if (!(a->kind == ACT_CREATE || a->kind == ACT_REPLACE) || !a->want.node)
			continue;
		for (j = 0; j < nn; j++)
			if (!strcmp(nodes[j], a->want.node))
				seen = true;
		if (!seen)
			nodes[nn++] = a->want.node;
	}
	if (nn && (r = pve_storage_shared(pa->pve, nodes[0], storage, &shared, err)) < 0)
		err_wrap(err, "node '%s'", nodes[0]);
	/* A shared storage holds one copy for every node: fetch it once. */
	if (shared && nn > 1)
		nn = 1;
	/* Start every missing download, then wait for them side by side. */
	for (i = 0; i < nn && r == 0; i++) {
		bool has = false;

		if ((r = pve_storage_has(pa->pve, nodes[i], storage, "iso", pa->iso_volid,
					 &has, err)) < 0) {
			err_wrap(err, "node '%s'", nodes[i]);
			break;
		}
		if (has)
			continue;
		if (!registered && (r = register_schematic(c->cfg, err)) < 0)
			break;
		registered = true;
		out_step("downloading %s to %s on %s", fname, storage, nodes[i]);
		if ((r = pve_download_url(pa->pve, nodes[i], storage, pa->iso_url, "iso",
					  fname, NULL, &upids[i], err)) < 0)
			err_wrap(err, "download Talos ISO to %s on '%s'", storage, nodes[i]);
	}
	/* Followed together: one task listing per node and tick, a
	 * download looked at from 1 s to every 5 s (pve_tasks_wait). */
	if (r == 0 && nn) {
		struct err *errs = xcalloc(nn, sizeof(*errs));

		pve_tasks_wait(pa->pve, upids, nn, 30 * 60 * 1000L, errs);
		for (i = 0; i < nn && r == 0; i++) {
			bool has = false;
			struct err e2 = ERR_INIT;

			if (!errs[i].code)
				continue;
			/* An earlier, interrupted apply's download finished first:
			 * the file is there, which is all we wanted. */
			if (strstr(errs[i].msg, "refusing to override existing file") &&
			    pve_storage_has(pa->pve, nodes[i], storage, "iso",
					    pa->iso_volid, &has, &e2) == 0 && has)
				continue;
			*err = errs[i];
			r = err_wrap(err, "download Talos ISO to %s on '%s'",
				     storage, nodes[i]);
		}
		free(errs);
	}
	for (i = 0; i < nn; i++)
		free(upids[i]);
	free(upids);
	free(nodes);
	return r;
}

static void
iso_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	fprintf(fp, "    ensure %s (from %s)\n", pa->iso_volid, pa->iso_url);
}

const struct phase ph_iso = {
	.name = "iso",
	.title = "Talos ISO in ISO storage",
	.should_run = needs_iso,
	.run = iso_run,
	.dry_run = iso_dry_run,
};
