/*
 * Phase "cidata" and the rest of first boot from a cidata ISO
 * (proxmox.first_boot: cidata; docs/bootstrap.md, "First boot").
 *
 * Before the VMs are created, every Talos node that gets a new VM has its
 * nodes/<node>.yaml put, as user-data, on an ISO9660 image labelled
 * "cidata" (built in memory, wiped after), uploaded through the API to the
 * ISO storage of the VM's Proxmox node as strata.<env>.<node>.cidata.iso.
 * The VM gets it as a second cdrom (ide3) beside the nocloud ISO, which
 * reads it at boot and installs with it: the config never crosses the
 * network to an unauthenticated peer. talos-install then only waits for
 * the node over mTLS; once it answers, the ISO is detached and deleted.
 * Each step is journaled under talos.<node>.cidata (the volume id, then
 * "deleted"), so a resumed apply finishes what a killed one started.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phase/phase.h"
#include "provider/proxmox/apply.h"
#include "util/buf.h"
#include "util/iso.h"
#include "util/out.h"

#define CIDATA_DELETED "deleted"
#define CIDATA_MAX (3u << 20)
#define TASK_MS (5 * 60 * 1000L)

bool
cidata_mode(const struct apply_ctx *c)
{
	return c->cfg->platform == PLATFORM_PROXMOX && c->cfg->n_nodes &&
	       c->cfg->proxmox.first_boot == FIRST_BOOT_CIDATA;
}

static bool
is_talos_node(const struct apply_ctx *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->cfg->n_nodes; i++)
		if (!strcmp(c->cfg->nodes[i].name, name))
			return true;
	return false;
}

/* The plan's VMs to be created for Talos nodes. */
static bool
wants_cidata(const struct apply_ctx *c, const struct action *a)
{
	return (a->kind == ACT_CREATE || a->kind == ACT_REPLACE) &&
	       a->want.name && a->want.node && is_talos_node(c, a->want.name);
}

static bool
cidata_should_run(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	if (!cidata_mode(c))
		return false;
	for (i = 0; i < pa->plan.n; i++)
		if (wants_cidata(c, &pa->plan.v[i]))
			return true;
	return false;
}

/* strata.<env>.<node>.cidata.iso: env names are DNS labels (no dot), so
 * the prefix "strata.<env>." is this environment's alone. */
#define CIDATA_SUFFIX ".cidata.iso"

static char *
file_name(const struct apply_ctx *c, const char *node)
{
	return xasprintf("strata.%s.%s" CIDATA_SUFFIX, c->cfg->name, node);
}

/* The ISO for one node: user-data is its whole machine config. */
static int
build_image(struct apply_ctx *c, const char *name, struct buf *img,
	    char sha[65], struct err *err)
{
	struct buf cfg = BUF_INIT, meta = BUF_INIT;
	int r;

	if ((r = read_join_config(c, name, &cfg, sha, err)) < 0)
		return r;
	/* FACTS-cloudinit.md §3: meta-data's local-hostname sets the
	 * hostname (the machine config sets it too). */
	buf_addf(&meta, "instance-id: strata-%s-%s\nlocal-hostname: %s\n",
		 c->cfg->name, name, name);
	struct iso_file files[] = {
		{ "meta-data", meta.ptr, meta.len },
		{ "user-data", cfg.ptr, cfg.len },
	};
	r = iso_build(img, "cidata", files, 2, err);
	/* FACTS-cloudinit.md §3: Talos reads at most 3 MiB from the drive. */
	if (r == 0 && img->len > CIDATA_MAX)
		r = err_set(err, ERR_FAIL, "the cidata ISO would be %zu KiB; Talos "
			    "reads at most 3 MiB (nodes/%s.yaml is %zu KiB)",
			    img->len >> 10, name, cfg.len >> 10);
	buf_release_secret(&cfg);
	buf_release(&meta);
	return r;
}

static int
upload_one(struct apply_ctx *c, const struct vm_spec *vm, char **upid,
	   struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	const char *storage = c->cfg->proxmox.iso_storage;
	struct cidata_item *it = &pa->cidata[pa->n_cidata];
	struct buf img = BUF_INIT;
	char *fname = file_name(c, vm->name);
	int r;

	if ((r = build_image(c, vm->name, &img, it->sha, err)) == 0) {
		out_step("cidata: uploading %s (%zu KiB, nodes/%s.yaml as user-data) "
			 "to %s on %s", fname, img.len >> 10, vm->name, storage,
			 vm->node);
		r = pve_storage_upload(pa->pve, vm->node, storage, "iso", fname,
				       img.ptr, img.len, upid, err);
	}
	buf_release_secret(&img);
	if (r == 0) {
		it->name = xstrdup(vm->name);
		it->volid = xasprintf("%s:iso/%s", storage, fname);
		pa->n_cidata++;
	}
	free(fname);
	return r < 0 ? err_wrap(err, "cidata ISO for node '%s'", vm->name) : 0;
}

static int
cidata_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char **upids = xcalloc(pa->plan.n + 1, sizeof(char *));
	size_t i, k = 0;
	int r = 0;

	cidata_release(c);
	pa->cidata = xcalloc(pa->plan.n + 1, sizeof(*pa->cidata));
	/* Start every upload, then wait for the copy tasks. */
	for (i = 0; i < pa->plan.n && r == 0; i++)
		if (wants_cidata(c, &pa->plan.v[i]))
			r = upload_one(c, &pa->plan.v[i].want, &upids[k++], err);
	/* The copy tasks followed together, one listing per node and tick. */
	if (r == 0 && k) {
		struct err *errs = xcalloc(k, sizeof(*errs));

		pve_tasks_wait(pa->pve, upids, k, TASK_MS, errs);
		for (i = 0; i < k && r == 0; i++)
			if (errs[i].code) {
				*err = errs[i];
				r = err_wrap(err, "cidata ISO for node '%s'", pa->cidata[i].name);
			}
		free(errs);
	}
	for (i = 0; i < k; i++)
		free(upids[i]);
	free(upids);
	if (r == 0)
		out_step("cidata: %zu ISO%s in %s", pa->n_cidata,
			 pa->n_cidata == 1 ? "" : "s", c->cfg->proxmox.iso_storage);
	return r;
}

static void
cidata_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++) {
		const struct vm_spec *vm = &pa->plan.v[i].want;
		char *f;

		if (!wants_cidata(c, &pa->plan.v[i]))
			continue;
		f = file_name(c, vm->name);
		fprintf(fp, "    upload %s:iso/%s to %s (nodes/%s.yaml as "
			"user-data), attached as ide3\n", c->cfg->proxmox.iso_storage,
			f, vm->node, vm->name);
		free(f);
	}
}

const struct phase ph_cidata = {
	.name = "cidata",
	.title = "first machine configs on cidata ISOs",
	.should_run = cidata_should_run,
	.run = cidata_run,
	.dry_run = cidata_dry_run,
};

void
cidata_release(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->n_cidata; i++) {
		free(pa->cidata[i].name);
		free(pa->cidata[i].volid);
	}
	free(pa->cidata);
	pa->cidata = NULL;
	pa->n_cidata = 0;
}

static const struct cidata_item *
find_item(const struct apply_ctx *c, const char *name)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->n_cidata; i++)
		if (!strcmp(pa->cidata[i].name, name))
			return &pa->cidata[i];
	return NULL;
}

const char *
cidata_volid(const struct apply_ctx *c, const char *name)
{
	const struct cidata_item *it = find_item(c, name);

	return it ? it->volid : NULL;
}

int
cidata_created(struct apply_ctx *c, const char *name, struct err *err)
{
	const struct cidata_item *it = find_item(c, name);
	int r;

	if (!it)
		return 0;
	/* The config is delivered: what talos-install compares with. */
	if ((r = state_talos_set(&c->st, name, "cidata", it->volid, err)) < 0)
		return r;
	return state_talos_set(&c->st, name, "config_sha256", it->sha, err);
}

bool
cidata_pending(struct apply_ctx *c, const char *name)
{
	char *v = state_talos_get(&c->st, name, "cidata");
	bool pending = v && strcmp(v, CIDATA_DELETED);

	free(v);
	return pending;
}

/* Take the ISO out of the VM when ide3 still holds it. */
static int
detach(struct pve *pve, const struct vm_spec *vm, const char *volid,
       struct err *err)
{
	struct pve_params p;
	json_t *cfg = NULL;
	const char *ide3;
	char *upid = NULL;
	bool attached;
	int r;

	if ((r = pve_vm_config_get(pve, vm->node, vm->vmid, &cfg, err)) < 0)
		return r;
	ide3 = json_string_value(json_object_get(cfg, "ide3"));
	attached = ide3 && !strncmp(ide3, volid, strlen(volid)) &&
		   (ide3[strlen(volid)] == ',' || !ide3[strlen(volid)]);
	json_decref(cfg);
	if (!attached)
		return 0;
	pve_params_init(&p);
	pve_params_add(&p, "delete", "ide3");
	r = pve_vm_config_post(pve, vm->node, vm->vmid, &p, &upid, err);
	pve_params_release(&p);
	if (r == 0 && upid)
		r = pve_task_wait(pve, upid, TASK_MS, err);
	free(upid);
	return r;
}

static int
delete_volume(struct pve *pve, const struct vm_spec *vm, const char *volid,
	      struct err *err)
{
	char *storage = xstrndup(volid, strcspn(volid, ":"));
	char *upid = NULL;
	bool has = false;
	int r;

	r = pve_storage_has(pve, vm->node, storage, "iso", volid, &has, err);
	if (r == 0 && has) {
		r = pve_storage_delete(pve, vm->node, storage, volid, &upid, err);
		if (r < 0 && strstr(err->msg, "HTTP 403"))
			err_wrap(err, "the token needs Datastore.Allocate on "
				 "/storage/%s to delete it (it holds the node's "
				 "machine config)", storage);
		else if (r == 0 && upid)
			r = pve_task_wait(pve, upid, TASK_MS, err);
	}
	free(upid);
	free(storage);
	return r;
}

int
cidata_cleanup(struct apply_ctx *c, struct pve **pve, const char *name,
	       const struct vm_spec *vm, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char *volid = state_talos_get(&c->st, name, "cidata");
	int r = 0;

	if (!volid || !strcmp(volid, CIDATA_DELETED)) {
		free(volid);
		return 0;
	}
	if (!*pve)
		r = pve_new(pve, &pa->pve_opts, err);
	if (r == 0 && (r = detach(*pve, vm, volid, err)) < 0)
		err_wrap(err, "vm %d: detach %s", vm->vmid, volid);
	if (r == 0 && (r = delete_volume(*pve, vm, volid, err)) < 0)
		err_wrap(err, "delete %s", volid);
	if (r == 0)
		r = state_talos_set(&c->st, name, "cidata", CIDATA_DELETED, err);
	free(volid);
	return r;
}

int
cidata_forget(struct apply_ctx *c, struct pve **pve, const char *name,
	      const struct vm_spec *vm, struct err *err)
{
	char *volid = state_talos_get(&c->st, name, "cidata");
	const char *mine = cidata_volid(c, name);
	bool reused = volid && mine && !strcmp(volid, mine);

	free(volid);
	return reused ? 0 : cidata_cleanup(c, pve, name, vm, err);
}

/* ---- sweep: ISOs of this env that nothing will use any more */

/* volid is "<storage>:iso/strata.<env>.<node>.cidata.iso" of this env. */
static bool
is_ours(const struct apply_ctx *c, const char *volid)
{
	char *prefix = xasprintf("%s:iso/strata.%s.", c->cfg->proxmox.iso_storage,
				 c->cfg->name);
	size_t n = strlen(volid), k = strlen(CIDATA_SUFFIX);
	bool ours = !strncmp(volid, prefix, strlen(prefix)) && n > k &&
		    !strcmp(volid + n - k, CIDATA_SUFFIX);

	free(prefix);
	return ours;
}

/* A node whose journal still points at volid (its VM may boot from it). */
static bool
still_wanted(struct apply_ctx *c, const char *volid)
{
	size_t i;
	bool want = false;

	for (i = 0; i < c->cfg->n_nodes && !want; i++) {
		char *v = state_talos_get(&c->st, c->cfg->nodes[i].name, "cidata");

		want = v && !strcmp(v, volid);
		free(v);
	}
	return want;
}

static int
sweep_node(struct apply_ctx *c, const char *node, size_t *deleted,
	   struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	const char *storage = c->cfg->proxmox.iso_storage;
	char **vols = NULL;
	size_t i, n = 0;
	int r;

	r = pve_storage_volids(pa->pve, node, storage, "iso", &vols, &n, err);
	for (i = 0; i < n && r == 0; i++) {
		const char *v = vols[i];
		char *upid = NULL;

		if (!is_ours(c, v) || still_wanted(c, v))
			continue;
		r = pve_storage_delete(pa->pve, node, storage, v, &upid, err);
		if (r == 0 && upid)
			r = pve_task_wait(pa->pve, upid, TASK_MS, err);
		if (r < 0)
			err_wrap(err, "delete %s on '%s'", v, node);
		else
			(*deleted)++;
		free(upid);
	}
	pve_volids_free(vols, n);
	return r;
}

/* The Proxmox nodes the config may place VMs on, once each. */
static int
sweep_run(struct apply_ctx *c, struct err *err)
{
	const struct str_list *nodes = &c->cfg->proxmox.nodes;
	size_t i, deleted = 0;
	int r = 0;

	for (i = 0; i < nodes->n && r == 0; i++)
		r = sweep_node(c, nodes->v[i], &deleted, err);
	if (r == 0 && deleted)
		out_step("cidata: deleted %zu ISO%s nothing uses any more", deleted,
			 deleted == 1 ? "" : "s");
	return r;
}

static bool
sweep_should_run(struct apply_ctx *c)
{
	return c->cfg->platform == PLATFORM_PROXMOX && c->cfg->n_nodes;
}

static void
sweep_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    delete any %s:iso/strata.%s.*" CIDATA_SUFFIX " no node "
		"waits for\n", c->cfg->proxmox.iso_storage, c->cfg->name);
}

/*
 * After talos-install (every node up, its own ISO deleted) and after
 * destroy: a cidata ISO left by an apply that failed between the upload and
 * the VM's create, or of a node no longer in the config, still holds a
 * machine config: delete it. Reads only when there is none.
 */
const struct phase ph_cidata_sweep = {
	.name = "cidata-sweep",
	.title = "no cidata ISO left behind",
	.should_run = sweep_should_run,
	.run = sweep_run,
	.dry_run = sweep_dry_run,
	.quiet_skip = true,
};

int
cidata_stuck_error(const struct apply_ctx *c, const char *name,
		   const struct vm_spec *vm, const char *ip, const char *took,
		   const struct err *last, struct err *err)
{
	struct state *st = (struct state *)&c->st;
	char *volid = state_talos_get(st, name, "cidata");
	char *had = state_talos_get(st, name, "config_sha256");
	int r;

	if (volid && strcmp(volid, CIDATA_DELETED))
		r = err_set(err, ERR_FAIL, "node '%s' (vm %d): not up at %s:%d "
			    "%s after booting with its config on %s (last: %s); "
			    "the VM must boot the Image Factory's nocloud ISO, "
			    "which reads the cidata drive: check its console",
			    name, vm->vmid, ip, TALOS_API_PORT, took, volid,
			    last->msg[0] ? last->msg : "no answer");
	else if (had)   /* installed before: it is down, not new */
		r = err_set(err, ERR_FAIL, "node '%s' (vm %d): not up at %s:%d "
			    "%s (last: %s)", name, vm->vmid, ip, TALOS_API_PORT,
			    took, last->msg[0] ? last->msg : "no answer");
	else
		r = err_set(err, ERR_FAIL, "node '%s' (vm %d): not up at %s:%d "
			    "%s (last: %s); its VM has no cidata drive, and with "
			    "proxmox.first_boot: cidata strata sends no config "
			    "to a node in maintenance mode: delete the VM so "
			    "the next apply creates it with one, or set "
			    "first_boot: maintenance", name, vm->vmid, ip, TALOS_API_PORT,
			    took, last->msg[0] ? last->msg : "no answer");
	free(volid);
	free(had);
	return r;
}
