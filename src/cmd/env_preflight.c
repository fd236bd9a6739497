/*
 * env_preflight: read Layer 0 for a plan and check it (plan/preflight.h);
 * what plan, apply and 'strata preflight' share.
 */
#include "cmd/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "plan/preflight.h"
#include "provider/proxmox/apply.h"
#include "provider/proxmox/layer0.h"
#include "util/buf.h"
#include "util/out.h"

/* Which nodes that get a new VM lack the Talos ISO apply would attach
 * (ph_iso downloads it there; that needs more privileges). */
static int
mark_iso(struct env *e, const struct plan *plan, struct layer0 *l0,
	 struct err *err)
{
	struct apply_ctx c;
	struct pve_apply pa;
	size_t i;
	int r = 0;

	if (!e->cfg->n_nodes)
		return 0;
	memset(&c, 0, sizeof(c));
	memset(&pa, 0, sizeof(pa));
	c.cfg = e->cfg;
	c.pstate = &pa;
	if ((r = apply_iso_target(&c, err)) < 0)
		goto out;
	for (i = 0; i < plan->n && pa.iso_volid; i++) {
		const struct action *a = &plan->v[i];
		struct l0_node *n;
		const struct l0_storage *s;
		bool has = false;

		if (a->kind != ACT_CREATE && a->kind != ACT_REPLACE)
			continue;
		n = layer0_node(l0, a->want.node);
		if (!n || n->has_iso != -1 || !n->read)
			continue;
		s = layer0_storage(n, e->cfg->proxmox.iso_storage);
		if (!s || !s->enabled)
			continue;   /* reported by the storage check */
		if ((r = pve_storage_has(e->pve, n->name, e->cfg->proxmox.iso_storage,
					 "iso", pa.iso_volid, &has, err)) < 0) {
			/* without Datastore.Audit the listing is refused: the
			 * privilege check names that */
			if (err->kind == ERRK_HTTP_STATUS && err->status == 403) {
				err_clear(err);
				r = 0;
				continue;
			}
			goto out;
		}
		n->has_iso = has ? 1 : 0;
	}
out:
	free(pa.iso_volid);
	free(pa.iso_url);
	return r;
}

int
env_preflight_run(struct env *e, const struct plan *plan, struct preflight *pf,
		  struct layer0 *l0, unsigned l0_flags, struct err *err)
{
	char **nodes = NULL, **paths = NULL;
	size_t n_nodes = 0, n_paths = 0;
	int r;

	memset(pf, 0, sizeof(*pf));
	preflight_needs(e->cfg, plan, &nodes, &n_nodes, &paths, &n_paths);
	r = layer0_read(e->pve, l0, (const char *const *)nodes, n_nodes,
			(const char *const *)paths, n_paths, l0_flags, err);
	preflight_strv_free(nodes, n_nodes);
	preflight_strv_free(paths, n_paths);
	if (r < 0)
		return err_wrap(err, "preflight");
	if ((r = mark_iso(e, plan, l0, err)) < 0)
		return err_wrap(err, "preflight");
	preflight_check(pf, e->cfg, plan, l0);
	return 0;
}

int
env_preflight(struct env *e, const struct plan *plan, bool stop, struct err *err)
{
	struct preflight pf;
	struct layer0 l0;
	int r;

	memset(&l0, 0, sizeof(l0));
	r = env_preflight_run(e, plan, &pf, &l0, 0, err);
	if (r == 0) {
		preflight_print(&pf);
		if (pf.errors && stop)
			r = err_set(err, ERR_FAIL, "preflight found %zu problem%s in the "
				    "Proxmox cluster (above); nothing was changed. Fix them, "
				    "or see 'strata preflight %s' and 'strata hypervisor %s'",
				    pf.errors, pf.errors == 1 ? "" : "s", e->dir, e->dir);
		else if (pf.errors)
			out_note("preflight: apply would stop here: %zu problem%s above",
				 pf.errors, pf.errors == 1 ? "" : "s");
	}
	preflight_release(&pf);
	layer0_release(&l0);
	return r;
}
