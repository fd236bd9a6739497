/*
 * Phase "vms": carry out the plan's VM actions, all VMs in parallel (one
 * thread and one API connection each): create, update in place, replace
 * (stop, delete, create) and delete (hard stop, delete with purge).
 *
 * A create that fails without a clear answer (the connection dropped after
 * the request went out) is never blindly repeated: the VM is looked up
 * again and, if Proxmox has it with our marker, the create counts as done.
 *
 * One task per VM gets it running: the create carries everything (the
 * MAC strata chose and journaled before, vms_choose_macs; the ISO boot
 * order; the cidata drive) and start=1, so no config is read back and no
 * separate start task runs. A failed autostart leaves the task OK
 * (FACTS.md §4): the start phase finds such a VM in its one listing of
 * the node's VMs and starts it (ph_start.c). The tasks of all jobs are
 * followed together per Proxmox node (pve_watch): one listing per tick
 * and node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "phase/phase.h"
#include "plan/mac.h"
#include "plan/observe.h"
#include "phase/vmjob.h"
#include "provider/proxmox/apply.h"
#include "util/buf.h"
#include "util/out.h"
#include "util/progress.h"

struct job {
	struct apply_ctx *c;
	struct action *a;
	size_t idx;
	struct progress *pr;
	struct pve_watch *watch;    /* shared by the phase's jobs */
	struct err err;
	int rc;
};

static void
create_params(struct apply_ctx *c, const struct vm_spec *s, struct pve_params *p)
{
	struct pve_apply *pa = pve_apply_of(c);
	const struct proxmox_config *px = &c->cfg->proxmox;
	struct buf net = BUF_INIT;
	char *marker = plan_marker(c->cfg->name);

	pve_params_addf(p, "vmid", "%d", s->vmid);
	pve_params_add(p, "name", s->name);
	pve_params_addf(p, "cores", "%d", s->cores);
	pve_params_add(p, "sockets", "1");
	pve_params_addf(p, "memory", "%d", s->memory_mib);
	pve_params_add(p, "cpu", px->cpu_type);
	pve_params_add(p, "scsihw", "virtio-scsi-single");
	pve_params_addf(p, "scsi0", "%s:%d,discard=on,iothread=1,ssd=1",
			px->disk_storage, s->disk_gib);
	if (pa->iso_volid)
		pve_params_addf(p, "ide2", "%s,media=cdrom", pa->iso_volid);
	if (cidata_volid(c, s->name))   /* first boot config (ph_cidata.c) */
		pve_params_addf(p, "ide3", "%s,media=cdrom", cidata_volid(c, s->name));
	buf_addf(&net, "virtio%s%s,bridge=%s,firewall=0", s->mac ? "=" : "",
		 s->mac ? s->mac : "", px->bridge);
	if (px->vlan)
		buf_addf(&net, ",tag=%d", px->vlan);
	pve_params_add(p, "net0", net.ptr);
	pve_params_add(p, "boot", pa->iso_volid ? "order=scsi0;ide2" : "order=scsi0");
	pve_params_add(p, "agent", "enabled=1");
	pve_params_add(p, "serial0", "socket");
	pve_params_add(p, "vga", "serial0");
	pve_params_add(p, "ostype", "l26");
	pve_params_add(p, "onboot", "1");
	pve_params_add(p, "tags", s->tags);
	pve_params_addf(p, "description", "%s role=%s\n%s", "strata node",
			s->role, marker);
	if (px->pool)
		pve_params_add(p, "pool", px->pool);
	/* Started by the create task itself (FACTS.md §4 start=1): nothing
	 * in this flow must happen between create and first boot (no
	 * cloud-init drive to regenerate, no template clone to resize; the
	 * boot order and both cdroms are set above). */
	pve_params_add(p, "start", "1");
	buf_release(&net);
	free(marker);
}

static int
wait_task(struct job *j, struct pve *pve, char *upid, struct err *err)
{
	return vmjob_wait(j->watch, pve, upid, err);
}

/* After a create whose outcome is unknown: does the VM exist, ours? */
static bool
created_anyway(struct pve *pve, struct apply_ctx *c, const struct vm_spec *s)
{
	struct err ignore = ERR_INIT;
	json_t *cfg = NULL;
	bool ours = false;
	int tries;

	for (tries = 0; tries < 5 && !ours; tries++) {
		if (pve_vm_config_get(pve, s->node, s->vmid, &cfg, &ignore) == 0) {
			const char *d = json_string_value(json_object_get(cfg, "description"));
			const char *lock = json_string_value(json_object_get(cfg, "lock"));
			char *mac = observe_net_mac(json_string_value(json_object_get(cfg, "net0")));

			/* ours, settled, and (when strata chose it) with our MAC */
			ours = plan_has_marker(d, c->cfg->name) && !lock &&
			       (!s->mac || (mac && !strcasecmp(mac, s->mac)));
			free(mac);
			json_decref(cfg);
			cfg = NULL;
			if (!lock)
				break;
		} else {
			break;
		}
		struct timespec ts = { 1, 0 };
		nanosleep(&ts, NULL);
	}
	return ours;
}

static int
record(struct apply_ctx *c, struct pve *pve, const struct vm_spec *want,
       struct err *err)
{
	struct vm_spec applied;
	json_t *cfg = NULL;
	int r;

	vm_spec_copy(&applied, want);
	/* Only for a VM made without a MAC (vms_choose_macs gives every
	 * new one its own): Proxmox picked it; read it back. */
	if (!applied.mac &&
	    pve_vm_config_get(pve, want->node, want->vmid, &cfg, err) == 0) {
		applied.mac = observe_net_mac(json_string_value(json_object_get(cfg, "net0")));
		json_decref(cfg);
	}
	r = state_vm_record(&c->st, &applied, err);
	vm_spec_release(&applied);
	return r;
}

static int
do_create(struct job *j, struct pve *pve, const struct vm_spec *s)
{
	struct pve_params p;
	char *upid = NULL;
	int r;

	progress_step(j->pr, j->idx, "creating vmid %d on %s", s->vmid, s->node);
	pve_params_init(&p);
	create_params(j->c, s, &p);
	r = pve_vm_create(pve, s->node, &p, &upid, &j->err);
	pve_params_release(&p);
	/* Only when nobody knows whether the POST was carried out (not
	 * after an HTTP status, nor when nothing was sent), or when Proxmox
	 * says the id is taken: a killed earlier run's create may have
	 * landed after this run's plan looked (t027). Either way the VM
	 * counts as created only when it is ours and has the MAC journaled
	 * for it (created_anyway). */
	if (r < 0 && (err_outcome_unknown(&j->err) ||
		      strstr(j->err.msg, "already exists")) &&
	    created_anyway(pve, j->c, s)) {
		err_clear(&j->err);
		r = 0;
	} else if (r < 0) {
		return err_wrap(&j->err, "create vm '%s'", s->name);
	}
	progress_step(j->pr, j->idx, "waiting for create task");
	if ((r = wait_task(j, pve, upid, &j->err)) < 0)
		return err_wrap(&j->err, "create vm '%s'", s->name);
	if ((r = record(j->c, pve, s, &j->err)) < 0 ||
	    (r = cidata_created(j->c, s->name, &j->err)) < 0)
		return r;
	/* Whether the autostart worked (it may fail with the task still
	 * OK, FACTS.md §4) is read by the start phase, once per node for
	 * all VMs (ph_start.c), not here once per VM. */
	return 0;
}

/* A cidata ISO not yet deleted goes with the VM (it holds secrets). */
static int
removal_between(void *ctx, struct pve **pve, struct err *err)
{
	struct job *j = ctx;

	return cidata_forget(j->c, pve, j->a->have.name, &j->a->have, err);
}

static int
stop_and_delete(struct job *j, struct pve **pve, const struct vm_spec *h)
{
	const struct vmjob_removal how = {
		.watch = j->watch, .pr = j->pr, .idx = j->idx,
		.between = removal_between, .ctx = j,
	};
	int r;

	if ((r = vmjob_stop_and_delete(pve, h, &how, &j->err)) < 0)
		return r;
	return vmjob_forget(j->c, j->a->kind, h->name, &j->err);
}

static int
do_update(struct job *j, struct pve *pve)
{
	const struct vm_spec *w = &j->a->want;
	struct pve_params p;
	char *upid = NULL;
	bool any = false, disk = false;
	size_t i;
	int r;

	pve_params_init(&p);
	for (i = 0; i < j->a->n_ch; i++) {
		const char *f = j->a->ch[i].field;

		if (j->a->ch[i].pending)
			continue;   /* Proxmox holds it already; the restart applies it */
		any = true;
		if (!strcmp(f, "cores"))
			pve_params_addf(&p, "cores", "%d", w->cores);
		else if (!strcmp(f, "memory"))
			pve_params_addf(&p, "memory", "%d", w->memory_mib);
		else if (!strcmp(f, "tags"))
			pve_params_add(&p, "tags", w->tags);
		else if (!strcmp(f, "name"))
			pve_params_add(&p, "name", w->name);
		else if (!strcmp(f, "mac")) {
			const struct proxmox_config *px = &j->c->cfg->proxmox;
			struct buf net = BUF_INIT;

			buf_addf(&net, "virtio=%s,bridge=%s,firewall=0", w->mac, px->bridge);
			if (px->vlan)
				buf_addf(&net, ",tag=%d", px->vlan);
			pve_params_add(&p, "net0", net.ptr);
			buf_release(&net);
		} else if (!strcmp(f, "disk")) {
			disk = true;
			any = p.body.len > 0;
		}
	}
	r = 0;
	if (any && p.body.len) {
		progress_step(j->pr, j->idx, "updating config");
		r = pve_vm_config_post(pve, w->node, w->vmid, &p, &upid, &j->err);
		if (r == 0)
			r = wait_task(j, pve, upid, &j->err);
	}
	pve_params_release(&p);
	if (r == 0 && disk) {
		char size[32];

		progress_step(j->pr, j->idx, "growing disk to %d GiB", w->disk_gib);
		snprintf(size, sizeof(size), "%dG", w->disk_gib);
		r = pve_vm_resize(pve, w->node, w->vmid, "scsi0", size, &upid, &j->err);
		if (r == 0)
			r = wait_task(j, pve, upid, &j->err);
	}
	if (r < 0)
		return err_wrap(&j->err, "update vm '%s'", w->name);
	return record(j->c, pve, w, &j->err);
}

static void
run_job(struct job *j)
{
	struct pve *pve = NULL;
	struct action *a = j->a;
	const char *what = "";

	if ((j->rc = pve_new(&pve, &pve_apply_of(j->c)->pve_opts, &j->err)) < 0)
		goto out;
	switch (a->kind) {
	case ACT_CREATE:
		j->rc = do_create(j, pve, &a->want);
		what = "created";
		break;
	case ACT_UPDATE:
		j->rc = do_update(j, pve);
		what = "updated";   /* a result word (docs/json.md); the restart phase says the rest */
		break;
	case ACT_REPLACE:
		j->rc = stop_and_delete(j, &pve, &a->have);
		if (j->rc == 0)
			j->rc = do_create(j, pve, &a->want);
		what = "replaced";
		break;
	case ACT_DELETE:
		j->rc = stop_and_delete(j, &pve, &a->have);
		what = "deleted";
		break;
	default:
		break;
	}
out:
	if (j->rc < 0)
		progress_done(j->pr, j->idx, false, "%s", j->err.msg);
	else
		progress_done(j->pr, j->idx, true, "%s", what);
	pve_free(pve);
}

static void
run_one(void *ctx, size_t i)
{
	run_job(&((struct job *)ctx)[i]);
}

static const struct err *
job_failed(void *ctx, size_t i)
{
	const struct job *j = &((struct job *)ctx)[i];

	return j->rc < 0 ? &j->err : NULL;
}

static bool
is_work(const struct action *a)
{
	if (civm_action(a))
		return false;   /* cloud-init VMs: ph_civm.c */
	return a->kind == ACT_CREATE || a->kind == ACT_UPDATE ||
	       a->kind == ACT_REPLACE || a->kind == ACT_DELETE;
}

static bool
vms_should_run(struct apply_ctx *c)
{
	struct pve_apply *pa = pve_apply_of(c);
	size_t i;

	if (pa->plan.pool_missing)
		return true;
	for (i = 0; i < pa->plan.n; i++)
		if (is_work(&pa->plan.v[i]))
			return true;
	return false;
}

static int
vms_run(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	struct job *jobs;
	const char **names;
	struct progress *pr;
	struct pve_watch *watch;
	size_t i, n = 0;
	int r;

	if (pa->plan.pool_missing) {
		char *comment = xasprintf("strata environment %s", c->cfg->name);

		r = pve_pool_create(pa->pve, pa->plan.pool, comment, err);
		free(comment);
		if (r < 0)
			return err_wrap(err, "create pool '%s'", pa->plan.pool);
		out_step("created pool '%s'", pa->plan.pool);
		pa->plan.pool_missing = false;
	}
	jobs = xcalloc(pa->plan.n + 1, sizeof(*jobs));
	names = xcalloc(pa->plan.n + 1, sizeof(*names));
	for (i = 0; i < pa->plan.n; i++) {
		struct action *a = &pa->plan.v[i];

		if (!is_work(a))
			continue;
		jobs[n].c = c;
		jobs[n].a = a;
		jobs[n].idx = n;
		names[n] = a->kind == ACT_DELETE ? a->have.name : a->want.name;
		n++;
	}
	pr = progress_start(stderr, "VMs", names, n);
	watch = pve_watch_new();
	for (i = 0; i < n; i++) {
		jobs[i].pr = pr;
		jobs[i].watch = watch;
	}
	phase_parallel(n, c->max_parallel, run_one, jobs);
	progress_stop(pr);
	pve_watch_free(watch);
	r = phase_collect(n, job_failed, jobs, "VMs", err);
	free(names);
	free(jobs);
	return r;
}

static bool
creates_vm(const struct action *a)
{
	return (a->kind == ACT_CREATE || a->kind == ACT_REPLACE) && a->want.name;
}

int
vms_choose_macs(struct apply_ctx *c, struct err *err)
{
	struct pve_apply *pa = pve_apply_of(c);
	char **journal = NULL;
	const char **taken;
	size_t i, nj = 0, nt = 0;
	int r = 0;

	state_macs_all(&c->st, &journal, &nj);
	taken = xcalloc(nj + 3 * pa->plan.n + 1, sizeof(*taken));
	for (i = 0; i < nj; i++)
		taken[nt++] = journal[i];
	for (i = 0; i < pa->plan.n; i++) {
		taken[nt++] = pa->plan.v[i].want.mac;
		taken[nt++] = pa->plan.v[i].have.mac;
	}
	for (i = 0; i < pa->plan.n && r == 0; i++) {
		struct action *a = &pa->plan.v[i];
		char fresh[18], *m;

		if (!creates_vm(a) || a->want.mac)
			continue;
		/* The one chosen before (a resumed apply), else for a
		 * replace the old VM's (gone before the new one is made;
		 * its node config links by it already), else a new one. */
		m = state_mac_get(&c->st, a->want.name);
		if (!m && a->kind == ACT_REPLACE && a->have.mac)
			m = xstrdup(a->have.mac);
		if (!m) {
			if ((r = mac_pick(fresh, taken, nt, mac_rand_system, NULL,
					  err)) < 0)
				break;
			m = xstrdup(fresh);
		}
		if ((r = state_mac_set(&c->st, a->want.name, m, err)) < 0) {
			free(m);
			break;
		}
		a->want.mac = m;
		taken[nt++] = m;
	}
	for (i = 0; i < nj; i++)
		free(journal[i]);
	free(journal);
	free(taken);
	return r < 0 ? err_wrap(err, "choosing MAC addresses") : 0;
}

static void
vms_dry_run(struct apply_ctx *c, FILE *fp)
{
	struct pve_apply *pa = pve_apply_of(c);
	plan_print(&pa->plan, fp, false);
}

const struct phase ph_vms = {
	.name = "vms",
	.title = "create, update and delete VMs",
	.should_run = vms_should_run,
	.run = vms_run,
	.dry_run = vms_dry_run,
};
