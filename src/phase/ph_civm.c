/*
 * Phase "cloud-init-vms": the plan's actions on the cloud-init VMs of
 * config.yml `vms[]` (role vm), all VMs in parallel, one thread and one API
 * connection each (docs/vms.md):
 *
 *   create   seed ISO uploaded (content=iso), full clone of the template
 *            (clones of one template run side by side: the source gets a
 *            shared lock only, FACTS.md §3), config (cores, memory, MAC,
 *            ciuser, sshkeys, ipconfig0, nameserver, serial0, agent, the
 *            seed on ide2 in place of the template's cloud-init drive,
 *            tags last but one, with the config), disk grown, start, and
 *            the guest agent asked until it reports the static address;
 *   update   the same config again with the new seed when it changed, the
 *            disk grown, and a running VM whose seed changed rebooted (so
 *            cloud-init, seeing a new instance-id, runs again), unless
 *            proxmox.restart is never;
 *   delete   hard stop, delete with purge (its disks, the cloud-init drive
 *            included), and its seed ISOs.
 *
 * Resume: the vmid is journaled (civms.<vm>.clone) before the clone is
 * sent. A clone keeps the template's tags until the config step sets ours,
 * so a VM killed in between has our marker but not our tag; civm_adopt
 * lets the plan take it as ours (an update finishes it) only when the
 * journal says strata started that clone on that id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ansible/inventory.h"
#include "phase/phase.h"
#include "phase/vmjob.h"
#include "plan/observe.h"
#include "provider/proxmox/apply.h"
#include "provider/proxmox/civm.h"
#include "provider/proxmox/cloudinit.h"
#include "provider/proxmox/template.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/out.h"
#include "util/progress.h"

struct cjob {
	struct apply_ctx *c;
	struct action *a;
	const struct vm_config *vm;     /* NULL for a delete */
	const char *tnode;              /* the template's Proxmox node */
	const char *image_volid;        /* image VMs: the image in import storage */
	size_t idx;
	struct progress *pr;
	struct pve_watch *watch;
	struct err err;
	int rc;
	char *ip;                       /* what the guest agent reported */
};

bool
civm_action(const struct action *a)
{
	const char *role = a->kind == ACT_DELETE ? a->have.role : a->want.role;

	return role && !strcmp(role, "vm");
}

static const struct vm_config *
vm_config_of(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; name && i < cfg->n_vms; i++)
		if (cfg->vms[i].name && !strcmp(cfg->vms[i].name, name))
			return &cfg->vms[i];
	return NULL;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && !phase_interrupted)
		;
}

/* --- plan hooks ---------------------------------------------------------- */

void
civm_adopt(struct state *st, const struct config *cfg, struct vm_spec *have,
	   size_t nhave)
{
	size_t i, j;

	for (i = 0; i < nhave; i++) {
		struct vm_spec *h = &have[i];

		if (h->owned || !h->marker || !h->foreign_why ||
		    !strstr(h->foreign_why, " tag"))
			continue;
		for (j = 0; j < cfg->n_vms; j++) {
			char *clone = cfg->vms[j].name
				? state_civm_get(st, cfg->vms[j].name, "clone") : NULL;
			bool ours = clone && atoi(clone) == h->vmid;

			free(clone);
			if (!ours)
				continue;
			/* our clone, stopped before its config step gave it
			 * our tag: the plan finishes it (or destroy deletes it) */
			h->owned = true;
			free(h->foreign_why);
			h->foreign_why = NULL;
			free(h->role);
			h->role = xstrdup("vm");
			break;
		}
	}
}

void
civm_unconfirmed(struct state *st, struct plan *plan)
{
	struct vm_spec *applied = NULL;
	size_t na = 0, i, k;

	state_vms(st, &applied, &na);
	for (i = 0; i < plan->n; i++) {
		struct action *a = &plan->v[i];
		bool recorded = false;
		struct field_change *c;

		if (a->kind != ACT_NONE || !civm_action(a))
			continue;
		for (k = 0; k < na; k++)
			recorded |= applied[k].name && !strcmp(applied[k].name, a->want.name) &&
				    applied[k].vmid == a->want.vmid;
		if (recorded || a->n_ch >= PLAN_MAX_CHANGES)
			continue;
		/* made, but the apply that made it stopped before its guest
		 * agent reported the address: not done until it does */
		c = &a->ch[a->n_ch++];
		memset(c, 0, sizeof(*c));
		c->field = "address";
		c->from = xstrdup("not confirmed by the guest agent");
		c->to = xstrdup("wait for the guest agent to report it");
		a->kind = ACT_UPDATE;
		plan->unchanged--;
		plan->updates++;
	}
	vm_specs_free(applied, na);
}

/* Where each template lives, from one /cluster/resources listing. */
static int
template_node(struct pve *pve, int vmid, char **node, struct err *err)
{
	struct pve_vm *vms = NULL;
	size_t n = 0, i;
	int r;

	*node = NULL;
	if ((r = pve_cluster_vms(pve, &vms, &n, err)) < 0)
		return r;
	for (i = 0; i < n; i++)
		if (vms[i].vmid == vmid && vms[i].node)
			*node = xstrdup(vms[i].node);
	pve_vms_free(vms, n);
	if (!*node)
		return err_set(err, ERR_USAGE, "template %d does not exist in this "
			       "Proxmox cluster (build one: strata template ENV "
			       "--vmid %d)", vmid, vmid);
	return 0;
}

/* A template that can be cloned into a cloud-init VM (template.c's check). */
static int
check_template(struct pve *pve, int vmid, char **node, struct err *err)
{
	json_t *cfg = NULL;
	char why[256];
	int r;

	if ((r = template_node(pve, vmid, node, err)) < 0)
		return r;
	if ((r = pve_vm_config_get(pve, *node, vmid, &cfg, err)) < 0)
		return err_wrap(err, "template %d", vmid);
	r = ci_template_check(cfg, why, sizeof(why));
	json_decref(cfg);
	if (r < 0)
		return err_set(err, ERR_USAGE, "template %d cannot be cloned into a "
			       "cloud-init VM: %s", vmid, why);
	return 0;
}

/* An image VM: the node can import through the API and has import storage. */
static int
check_import(struct pve *pve, const struct vm_config *vm, const char *node,
	     struct err *err)
{
	char *storage = NULL, *fname = NULL, why[256];
	int r;

	if (ci_import_filename(vm->image, &fname, why, sizeof(why)) < 0)
		r = err_set(err, ERR_USAGE, "image '%s': %s", vm->image, why);
	else if ((r = pve_node_can_import(pve, node, err)) == 0)
		r = pve_import_storage(pve, node, NULL, &storage, err);
	free(storage);
	free(fname);
	return r < 0 ? err_wrap(err, "%s '%s'", vm->path ? vm->path : "vm", vm->name) : 0;
}

int
civm_plan_check(struct pve *pve, const struct config *cfg,
		const struct plan *plan, struct err *err)
{
	size_t i, j;
	int *checked = xcalloc(plan->n + 1, sizeof(int)), nc = 0, r = 0;

	for (i = 0; i < plan->n && r == 0; i++) {
		const struct action *a = &plan->v[i];
		const struct vm_config *vm;
		char *node = NULL;
		bool seen = false;

		if ((a->kind != ACT_CREATE && a->kind != ACT_REPLACE) ||
		    !civm_action(a) || !(vm = vm_config_of(cfg, a->want.name)))
			continue;
		if (vm->image) {
			if ((r = check_import(pve, vm, a->want.node, err)) < 0)
				break;
			continue;
		}
		for (j = 0; j < (size_t)nc; j++)
			seen |= checked[j] == vm->template_vmid;
		if (seen)
			continue;
		checked[nc++] = vm->template_vmid;
		if ((r = check_template(pve, vm->template_vmid, &node, err)) < 0)
			err_wrap(err, "%s '%s'", vm->path ? vm->path : "vm", vm->name);
		free(node);
	}
	free(checked);
	return r;
}

/* --- one VM -------------------------------------------------------------- */

static int
wait_task(struct cjob *j, struct pve *pve, char *upid, struct err *err)
{
	return vmjob_wait(j->watch, pve, upid, err);
}

/* The seed on the VM's node: uploaded unless that storage has it already. */
static int
put_seed(struct cjob *j, struct pve *pve, const struct vm_spec *w,
	 char **volid, struct err *err)
{
	const struct config *cfg = j->c->cfg;
	const char *storage = cfg->proxmox.iso_storage;
	struct buf iso = BUF_INIT;
	char id[CIVM_SEED_ID_LEN + 1], *file, *upid = NULL;
	bool has = false;
	int r;

	if ((r = civm_seed_build(cfg, j->vm, &iso, id, err)) < 0)
		goto out;
	file = civm_seed_file(cfg->name, w->name, id);
	*volid = xasprintf("%s:iso/%s", storage, file);
	if ((r = pve_storage_has(pve, w->node, storage, "iso", *volid, &has, err)) == 0 &&
	    !has) {
		progress_step(j->pr, j->idx, "uploading seed %s to %s", id, storage);
		r = pve_storage_upload(pve, w->node, storage, "iso", file, iso.ptr,
				       iso.len, &upid, err);
		if (r == 0)
			r = wait_task(j, pve, upid, err);
	}
	free(file);
out:
	buf_release(&iso);
	return r < 0 ? err_wrap(err, "seed ISO of vm '%s'", w->name) : 0;
}

/* Seed ISOs of this VM other than keep (NULL: all) go. */
static int
sweep_seeds(struct cjob *j, struct pve *pve, const char *node, const char *name,
	    const char *keep, struct err *err)
{
	const char *storage = j->c->cfg->proxmox.iso_storage;
	char **ids = NULL, *upid = NULL;
	size_t n = 0, i;
	int r;

	if ((r = pve_storage_volids(pve, node, storage, "iso", &ids, &n, err)) < 0)
		return err_wrap(err, "seed ISOs of vm '%s'", name);
	for (i = 0; i < n && r == 0; i++) {
		if (!civm_is_seed_volid(ids[i], j->c->cfg->name, name) ||
		    (keep && !strcmp(ids[i], keep)))
			continue;
		progress_step(j->pr, j->idx, "deleting %s", ids[i]);
		r = pve_storage_delete(pve, node, storage, ids[i], &upid, err);
		if (r == 0)
			r = wait_task(j, pve, upid, err);
		if (r < 0)
			err_wrap(err, "delete %s", ids[i]);
	}
	pve_volids_free(ids, n);
	return r;
}

/* The VM's boot disk key and size in GiB, and any cloud-init drive the
 * clone brought along that is not on ide2 (it goes). */
static int
read_disks(struct pve *pve, const struct vm_spec *w, char disk[16], int *gib,
	   char extra_ci[16], struct err *err)
{
	static const char *const boot[] = { "scsi0", "virtio0", "sata0", "ide0", NULL };
	json_t *cfg = NULL, *v;
	const char *key;
	size_t i;
	int r;

	disk[0] = extra_ci[0] = 0;
	*gib = 0;
	if ((r = pve_vm_config_get(pve, w->node, w->vmid, &cfg, err)) < 0)
		return r;
	for (i = 0; boot[i] && !disk[0]; i++) {
		const char *s = json_string_value(json_object_get(cfg, boot[i]));

		if (s && !strstr(s, "media=cdrom")) {
			snprintf(disk, 16, "%s", boot[i]);
			*gib = observe_disk_gib(s);
		}
	}
	json_object_foreach(cfg, key, v) {
		const char *s = json_string_value(v);

		if (s && strcmp(key, "ide2") && strstr(s, "-cloudinit") &&
		    strlen(key) < 16)
			snprintf(extra_ci, 16, "%s", key);
	}
	json_decref(cfg);
	if (!disk[0])
		return err_set(err, ERR_FAIL, "vm %d has no disk to boot from "
			       "(scsi0, virtio0, sata0 or ide0)", w->vmid);
	return 0;
}

/* Everything the VM is given, sent in one config POST. */
static void
config_params(struct cjob *j, const struct vm_spec *w, const char *seed,
	      const char *disk, const char *extra_ci, struct pve_params *p)
{
	const struct config *cfg = j->c->cfg;
	const struct proxmox_config *px = &cfg->proxmox;
	struct buf net = BUF_INIT, keys = BUF_INIT, ipc = BUF_INIT, ns = BUF_INIT, sd = BUF_INIT;
	char *marker = plan_marker(cfg->name);
	size_t i;

	pve_params_add(p, "name", w->name);
	pve_params_addf(p, "cores", "%d", w->cores);
	pve_params_addf(p, "memory", "%d", w->memory_mib);
	buf_addf(&net, "virtio%s%s,bridge=%s,firewall=0", w->mac ? "=" : "",
		 w->mac ? w->mac : "", px->bridge);
	if (px->vlan)
		buf_addf(&net, ",tag=%d", px->vlan);
	pve_params_add(p, "net0", net.ptr);
	pve_params_add(p, "ciuser", j->vm->user);
	ci_sshkeys_encode(&keys, &j->vm->ssh_keys);
	if (keys.len)
		pve_params_add(p, "sshkeys", keys.ptr);
	ci_ipconfig(&ipc, j->vm->ip, cfg->network.prefix, cfg->network.gateway);
	pve_params_add(p, "ipconfig0", ipc.ptr);
	for (i = 0; i < cfg->network.nameservers.n; i++)
		buf_addf(&ns, "%s%s", i ? " " : "", cfg->network.nameservers.v[i]);
	if (ns.len)
		pve_params_add(p, "nameserver", ns.ptr);
	for (i = 0; i < j->vm->search_domains.n; i++)
		buf_addf(&sd, "%s%s", i ? " " : "", j->vm->search_domains.v[i]);
	if (sd.len)
		pve_params_add(p, "searchdomain", sd.ptr);
	/* the seed strata built (packages, the guest agent started, the
	 * network by MAC) in place of the drive Proxmox would generate */
	pve_params_addf(p, "ide2", "%s,media=cdrom", seed);
	if (extra_ci && *extra_ci)
		pve_params_add(p, "delete", extra_ci);
	pve_params_addf(p, "boot", "order=%s", disk);
	pve_params_add(p, "serial0", "socket");
	pve_params_add(p, "vga", "serial0");
	pve_params_add(p, "agent", "enabled=1");
	pve_params_add(p, "onboot", "1");
	pve_params_add(p, "tags", w->tags);
	pve_params_addf(p, "description", "strata cloud-init vm\n%s", marker);
	buf_release(&net);
	buf_release(&keys);
	buf_release(&ipc);
	buf_release(&ns);
	buf_release(&sd);
	free(marker);
}

static int
grow(struct cjob *j, struct pve *pve, const struct vm_spec *w, const char *disk,
     struct err *err)
{
	char size[32], *upid = NULL;
	int r;

	progress_step(j->pr, j->idx, "growing %s to %d GiB", disk, w->disk_gib);
	snprintf(size, sizeof(size), "%dG", w->disk_gib);
	r = pve_vm_resize(pve, w->node, w->vmid, disk, size, &upid, err);
	if (r == 0)
		r = wait_task(j, pve, upid, err);
	return r;
}

/* Only the disk (an image VM just created with everything else). */
static int
configure_disk(struct cjob *j, struct pve *pve, const struct vm_spec *w,
	       struct err *err)
{
	char disk[16], extra[16];
	int gib = 0, r;

	if ((r = read_disks(pve, w, disk, &gib, extra, err)) == 0 && gib < w->disk_gib)
		r = grow(j, pve, w, disk, err);
	return r < 0 ? err_wrap(err, "vm '%s'", w->name) : 0;
}

static int
configure(struct cjob *j, struct pve *pve, const struct vm_spec *w,
	  const char *seed, struct err *err)
{
	struct pve_params p;
	char disk[16], extra[16], *upid = NULL;
	int gib = 0, r;

	if ((r = read_disks(pve, w, disk, &gib, extra, err)) < 0)
		return err_wrap(err, "vm '%s'", w->name);
	progress_step(j->pr, j->idx, "setting cloud-init, cores, memory, network");
	pve_params_init(&p);
	config_params(j, w, seed, disk, extra, &p);
	r = pve_vm_config_post(pve, w->node, w->vmid, &p, &upid, err);
	pve_params_release(&p);
	if (r == 0)
		r = wait_task(j, pve, upid, err);
	if (r == 0 && gib < w->disk_gib)
		r = grow(j, pve, w, disk, err);
	return r < 0 ? err_wrap(err, "configure vm '%s'", w->name) : 0;
}

/* Poll the guest agent until it reports the config's address. */
static int
wait_address(struct cjob *j, struct pve *pve, const struct vm_spec *w,
	     struct err *err)
{
	long long limit = j->c->wait_ms > 0 ? j->c->wait_ms : 15 * 60 * 1000LL;
	long long start = clock_mono_ms(), t = 0;
	long delay = 200;
	struct err last = ERR_INIT;

	progress_step(j->pr, j->idx, "waiting for the guest agent to report %s",
		      j->vm->ip);
	for (;;) {
		char *ip = NULL;

		err_clear(&last);
		if (pve_agent_ipv4(pve, w->node, w->vmid, w->mac, &ip, &last) == 0) {
			if (!strcmp(ip, j->vm->ip)) {
				j->ip = ip;
				return 0;
			}
			snprintf(last.msg, sizeof(last.msg), "the guest agent reports "
				 "%s, not %s (is the seed on ide2 read? cloud-init "
				 "may still be applying it)", ip, j->vm->ip);
			free(ip);
		} else if (strstr(last.msg, "No QEMU guest agent configured")) {
			return err_set(err, ERR_FAIL, "vm '%s': %s", w->name, last.msg);
		}
		if (phase_interrupted)
			return err_set(err, ERR_INTR, "vm '%s': interrupted while "
				       "waiting for its guest agent", w->name);
		t = clock_mono_ms() - start;
		if (t >= limit)
			return err_set(err, ERR_FAIL, "vm '%s': the guest agent did "
				       "not report %s within %lld s (last: %s); the "
				       "image needs cloud-init and qemu-guest-agent "
				       "(the seed installs and starts it, which needs "
				       "the network and a package mirror)", w->name,
				       j->vm->ip, limit / 1000, last.msg);
		sleep_ms(delay);
		if (delay < 2000)
			delay *= 2;
	}
}

static int
power(struct cjob *j, struct pve *pve, const struct vm_spec *w,
      const char *action, struct err *err)
{
	char *upid = NULL;
	int r;

	progress_step(j->pr, j->idx, "%s", !strcmp(action, "start") ? "starting"
		      : "rebooting (cloud-init runs again with the new seed)");
	r = pve_vm_power(pve, w->node, w->vmid, action, NULL, &upid, err);
	if (r == 0)
		r = wait_task(j, pve, upid, err);
	return r < 0 ? err_wrap(err, "%s vm '%s'", action, w->name) : 0;
}

static int
finish(struct cjob *j, struct pve *pve, const struct vm_spec *w,
       const char *seed, bool seed_changed, struct err *err)
{
	char *status = NULL;
	int r;

	if ((r = pve_vm_status(pve, w->node, w->vmid, &status, err)) < 0)
		return err_wrap(err, "vm '%s'", w->name);
	if (strcmp(status, "running"))
		r = power(j, pve, w, "start", err);
	else if (seed_changed && j->c->cfg->proxmox.restart != RESTART_NEVER)
		r = power(j, pve, w, "reboot", err);
	else if (seed_changed)
		out_note("vm '%s' keeps running with its old seed until it is "
			 "restarted (proxmox.restart: never)", w->name);
	free(status);
	if (r == 0)
		r = wait_address(j, pve, w, err);
	if (r == 0)
		r = state_vm_record(&j->c->st, w, err);
	if (r == 0)
		r = state_civm_set(&j->c->st, w->name, "clone", NULL, err);
	if (r == 0)
		r = sweep_seeds(j, pve, w->node, w->name, seed, err);
	return r;
}

/* After a clone or create whose outcome is unknown: is the VM there, ours? */
static bool
cloned_anyway(struct pve *pve, struct apply_ctx *c, const struct vm_spec *w)
{
	struct err ignore = ERR_INIT;
	int tries;

	for (tries = 0; tries < 120; tries++) {
		json_t *cfg = NULL;
		const char *d, *lock;
		bool ours, busy;

		if (pve_vm_config_get(pve, w->node, w->vmid, &cfg, &ignore) < 0)
			return false;
		d = json_string_value(json_object_get(cfg, "description"));
		lock = json_string_value(json_object_get(cfg, "lock"));
		ours = plan_has_marker(d, c->cfg->name);
		busy = lock && (!strcmp(lock, "clone") || !strcmp(lock, "create"));
		json_decref(cfg);
		if (!busy)
			return ours && !lock;
		sleep_ms(500);
	}
	return false;
}

/*
 * An image VM: one create with the disk imported from the image (size 0,
 * FACTS-cloudinit.md §5) and everything else (tags and marker included,
 * so a VM killed after it is ours at once); not started by it: the disk is
 * grown first. A create whose outcome is unknown is looked up.
 */
static int
import_create(struct cjob *j, struct pve *pve, const struct vm_spec *w,
	      const char *seed, struct err *err)
{
	const struct config *cfg = j->c->cfg;
	struct pve_params p;
	char *upid = NULL;
	int r;

	progress_step(j->pr, j->idx, "creating vmid %d, disk imported from %s",
		      w->vmid, j->image_volid);
	pve_params_init(&p);
	pve_params_addf(&p, "vmid", "%d", w->vmid);
	config_params(j, w, seed, "scsi0", NULL, &p);
	pve_params_add(&p, "ostype", "l26");
	pve_params_add(&p, "cpu", cfg->proxmox.cpu_type);
	pve_params_add(&p, "scsihw", "virtio-scsi-single");
	pve_params_addf(&p, "scsi0", "%s:0,import-from=%s,discard=on,iothread=1",
			cfg->proxmox.disk_storage, j->image_volid);
	if (cfg->proxmox.pool)
		pve_params_add(&p, "pool", cfg->proxmox.pool);
	r = pve_vm_create(pve, w->node, &p, &upid, err);
	pve_params_release(&p);
	if (r < 0 && (err_outcome_unknown(err) || strstr(err->msg, "already exists")) &&
	    cloned_anyway(pve, j->c, w)) {
		err_clear(err);
		r = 0;
	} else if (r < 0) {
		return err_wrap(err, "create vm '%s'", w->name);
	}
	progress_step(j->pr, j->idx, "waiting for the create (disk import)");
	if ((r = wait_task(j, pve, upid, err)) < 0)
		return err_wrap(err, "create vm '%s'", w->name);
	if ((r = configure_disk(j, pve, w, err)) == 0)
		r = finish(j, pve, w, seed, false, err);
	return r;
}

static int
do_create(struct cjob *j, struct pve *pve, const struct vm_spec *w)
{
	const struct config *cfg = j->c->cfg;
	struct pve_params p;
	char *seed = NULL, *upid = NULL, *marker = plan_marker(cfg->name), idbuf[16];
	int r;

	if ((r = put_seed(j, pve, w, &seed, &j->err)) < 0)
		goto out;
	if (!j->vm->template_vmid) {
		r = import_create(j, pve, w, seed, &j->err);
		goto out;
	}
	/* Journaled before the POST: a run killed after it adopts the clone. */
	snprintf(idbuf, sizeof(idbuf), "%d", w->vmid);
	if ((r = state_civm_set(&j->c->st, w->name, "clone", idbuf, &j->err)) < 0)
		goto out;
	progress_step(j->pr, j->idx, "cloning template %d into vmid %d",
		      j->vm->template_vmid, w->vmid);
	pve_params_init(&p);
	pve_params_addf(&p, "newid", "%d", w->vmid);
	pve_params_add(&p, "name", w->name);
	pve_params_addf(&p, "description", "strata cloud-init vm\n%s", marker);
	if (j->vm->clone == VM_CLONE_LINKED) {
		/* shares the template's base disk: on its storage, and no
		 * storage or format may be given (FACTS-cloudinit.md section 6) */
		pve_params_add(&p, "full", "0");
	} else {
		pve_params_add(&p, "full", "1");
		pve_params_add(&p, "storage", cfg->proxmox.disk_storage);
	}
	if (cfg->proxmox.pool)
		pve_params_add(&p, "pool", cfg->proxmox.pool);
	if (strcmp(j->tnode, w->node))
		pve_params_add(&p, "target", w->node);
	r = pve_vm_clone(pve, j->tnode, j->vm->template_vmid, &p, &upid, &j->err);
	pve_params_release(&p);
	if (r < 0 && (err_outcome_unknown(&j->err) ||
		      strstr(j->err.msg, "already exists")) &&
	    cloned_anyway(pve, j->c, w)) {
		err_clear(&j->err);
		r = 0;
	} else if (r < 0) {
		err_wrap(&j->err, "clone template %d into vm '%s'",
			 j->vm->template_vmid, w->name);
		goto out;
	}
	progress_step(j->pr, j->idx, "waiting for the clone");
	if ((r = wait_task(j, pve, upid, &j->err)) < 0) {
		err_wrap(&j->err, "clone template %d into vm '%s'",
			 j->vm->template_vmid, w->name);
		goto out;
	}
	if ((r = configure(j, pve, w, seed, &j->err)) == 0)
		r = finish(j, pve, w, seed, false, &j->err);
out:
	free(marker);
	free(seed);
	return r;
}

static bool
changed(const struct action *a, const char *field)
{
	size_t i;

	for (i = 0; i < a->n_ch; i++)
		if (!strcmp(a->ch[i].field, field))
			return true;
	return false;
}

static int
do_update(struct cjob *j, struct pve *pve, const struct vm_spec *w)
{
	char *seed = NULL;
	bool seed_changed = changed(j->a, "cloud-init") && j->a->have.ci_seed;
	int r;

	/* only unconfirmed: nothing to send, wait for the agent */
	if (j->a->n_ch == 1 && changed(j->a, "address")) {
		char *keep = civm_seed_file(j->c->cfg->name, w->name, w->ci_seed);

		seed = xasprintf("%s:iso/%s", j->c->cfg->proxmox.iso_storage, keep);
		free(keep);
		r = finish(j, pve, w, seed, false, &j->err);
		free(seed);
		return r;
	}
	if ((r = put_seed(j, pve, w, &seed, &j->err)) == 0 &&
	    (r = configure(j, pve, w, seed, &j->err)) == 0)
		r = finish(j, pve, w, seed, seed_changed, &j->err);
	free(seed);
	return r;
}

static int
do_delete(struct cjob *j, struct pve *pve, const struct vm_spec *h)
{
	const struct vmjob_removal how = {
		.watch = j->watch, .pr = j->pr, .idx = j->idx,
	};
	int r;

	if ((r = vmjob_stop_and_delete(&pve, h, &how, &j->err)) < 0)
		return r;
	/* the seed ISOs go with it, before the journal forgets the VM */
	if ((r = sweep_seeds(j, pve, h->node, h->name, NULL, &j->err)) < 0)
		return r;
	return vmjob_forget(j->c, j->a->kind, h->name, &j->err);
}

static void
run_one(void *ctx, size_t i)
{
	struct cjob *j = &((struct cjob *)ctx)[i];
	struct pve *pve = NULL;
	const char *what = "";

	if ((j->rc = pve_new(&pve, &pve_apply_of(j->c)->pve_opts, &j->err)) < 0)
		goto out;
	switch (j->a->kind) {
	case ACT_CREATE:
		j->rc = do_create(j, pve, &j->a->want);
		what = "created";
		break;
	case ACT_UPDATE:
		j->rc = do_update(j, pve, &j->a->want);
		what = "updated";
		break;
	case ACT_REPLACE:
		j->rc = do_delete(j, pve, &j->a->have);
		if (j->rc == 0)
			j->rc = do_create(j, pve, &j->a->want);
		what = "replaced";
		break;
	case ACT_DELETE:
		j->rc = do_delete(j, pve, &j->a->have);
		what = "deleted";
		break;
	default:
		break;
	}
out:
	if (j->rc == 0 && j->ip)
		progress_step(j->pr, j->idx, "the guest agent reports %s", j->ip);
	/* the result words of docs/json.md: apply's summary counts them */
	if (j->rc < 0)
		progress_done(j->pr, j->idx, false, "%s", j->err.msg);
	else
		progress_done(j->pr, j->idx, true, "%s", what);
	pve_free(pve);
}

static const struct err *
job_failed(void *ctx, size_t i)
{
	const struct cjob *j = &((struct cjob *)ctx)[i];

	return j->rc < 0 ? &j->err : NULL;
}

static bool
is_work(const struct action *a)
{
	return civm_action(a) && (a->kind == ACT_CREATE || a->kind == ACT_UPDATE ||
				  a->kind == ACT_REPLACE || a->kind == ACT_DELETE);
}

static bool
civm_should_run(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++)
		if (is_work(&pa->plan.v[i]))
			return true;
	return false;
}

/*
 * The cloud image of an image VM into the node's import storage, before
 * the VMs' jobs start (one download per file and node, however many VMs
 * use it: two download-url of one file would collide), a `.img` saved as
 * `.qcow2` (FACTS-cloudinit.md §5). Present already: nothing sent.
 */
/* The checksum any VM gives for this image (validate makes them agree). */
static const char *
image_sha256(const struct config *cfg, const char *image)
{
	size_t i;

	for (i = 0; i < cfg->n_vms; i++)
		if (cfg->vms[i].image && !strcmp(cfg->vms[i].image, image) &&
		    cfg->vms[i].image_sha256)
			return cfg->vms[i].image_sha256;
	return NULL;
}

static int
fetch_image(struct apply_ctx *c, const struct vm_config *vm, const char *node,
	    char **volid, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char *fname = NULL, *storage = NULL, *upid = NULL, why[256];
	bool has = false;
	int r;

	if (ci_import_filename(vm->image, &fname, why, sizeof(why)) < 0) {
		r = err_set(err, ERR_USAGE, "image '%s': %s", vm->image, why);
		goto out;
	}
	if ((r = pve_import_storage(pa->pve, node, c->cfg->proxmox.iso_storage,
				    &storage, err)) < 0)
		goto out;
	*volid = xasprintf("%s:import/%s", storage, fname);
	if ((r = pve_storage_has(pa->pve, node, storage, "import", *volid, &has, err)) < 0 ||
	    has)
		goto out;
	out_step("downloading %s into %s on %s", vm->image, *volid, node);
	if ((r = pve_download_url(pa->pve, node, storage, vm->image, "import", fname,
				  image_sha256(c->cfg, vm->image), &upid, err)) == 0)
		r = pve_task_wait(pa->pve, upid, 60 * 60 * 1000L, err);
out:
	free(fname);
	free(storage);
	free(upid);
	return r < 0 ? err_wrap(err, "vm '%s': image", vm->name) : 0;
}

static int
civm_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	struct cjob *jobs = xcalloc(pa->plan.n + 1, sizeof(*jobs));
	const char **names = xcalloc(pa->plan.n + 1, sizeof(*names));
	char **tnodes = xcalloc(pa->plan.n + 1, sizeof(*tnodes));
	char **vols = xcalloc(pa->plan.n + 1, sizeof(*vols));
	struct progress *pr;
	struct pve_watch *watch;
	size_t i, n = 0;
	int r = 0;

	for (i = 0; i < pa->plan.n && r == 0; i++) {
		struct action *a = &pa->plan.v[i];
		struct cjob *j = &jobs[n];

		if (!is_work(a))
			continue;
		j->c = c;
		j->a = a;
		j->idx = n;
		if (a->kind != ACT_DELETE) {
			j->vm = vm_config_of(c->cfg, a->want.name);
			if (!j->vm) {
				r = err_set(err, ERR_FAIL, "vm '%s' is not in the config",
					    a->want.name);
				break;
			}
		}
		/* Checked again here, before anything is created: the
		 * template may have changed since the plan. */
		if ((a->kind == ACT_CREATE || a->kind == ACT_REPLACE) &&
		    j->vm->template_vmid) {
			if ((r = check_template(pa->pve, j->vm->template_vmid,
						&tnodes[n], err)) < 0) {
				err_wrap(err, "vm '%s'", j->vm->name);
				break;
			}
			j->tnode = tnodes[n];
		}
		if ((a->kind == ACT_CREATE || a->kind == ACT_REPLACE) && j->vm->image) {
			if ((r = fetch_image(c, j->vm, a->want.node, &vols[n], err)) < 0)
				break;
			j->image_volid = vols[n];
		}
		names[n] = a->kind == ACT_DELETE ? a->have.name : a->want.name;
		n++;
	}
	if (r == 0) {
		pr = progress_start(stderr, "cloud-init VMs", names, n);
		watch = pve_watch_new();
		for (i = 0; i < n; i++) {
			jobs[i].pr = pr;
			jobs[i].watch = watch;
		}
		phase_parallel(n, c->max_parallel, run_one, jobs);
		progress_stop(pr);
		pve_watch_free(watch);
		r = phase_collect(n, job_failed, jobs, "cloud-init VMs", err);
	}
	if (r == 0 && c->cfg->n_vms) {
		bool ch = false;

		/* every VM answered with its address: the inventory holds it */
		if ((r = ansible_inventory_write(c->cfg, c->env_dir, &ch, err)) == 0)
			out_step("%s %s", ch ? "wrote" : "unchanged:", ANSIBLE_INVENTORY);
	}
	for (i = 0; i < pa->plan.n; i++) {
		free(tnodes[i]);
		free(vols[i]);
		free(jobs[i].ip);
	}
	free(tnodes);
	free(vols);
	free(names);
	free(jobs);
	return r;
}

static void
civm_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	for (i = 0; i < pa->plan.n; i++) {
		const struct action *a = &pa->plan.v[i];

		if (!is_work(a))
			continue;
		fprintf(fp, "    %s %s\n", plan_kind_word(a->kind),
			a->kind == ACT_DELETE ? a->have.name : a->want.name);
	}
}

const struct phase ph_civm = {
	.name = "cloud-init-vms",
	.title = "create, update and delete cloud-init VMs",
	.should_run = civm_should_run,
	.run = civm_run,
	.dry_run = civm_dry_run,
	.quiet_skip = true,
};
