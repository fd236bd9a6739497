#include "plan/observe.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider/proxmox/civm.h"
#include "util/buf.h"
#include "util/out.h"

int
observe_disk_gib(const char *drive)
{
	const char *s = drive ? strstr(drive, "size=") : NULL;
	double v;
	char *end;

	if (!s)
		return 0;
	v = strtod(s + 5, &end);
	switch (*end) {
	case 'T': return (int)(v * 1024);
	case 'G': return (int)v;
	case 'M': return (int)(v / 1024);
	case 'K': return 0;
	default: return (int)(v / (1024.0 * 1024 * 1024));
	}
}

char *
observe_net_mac(const char *net)
{
	static const char *const models[] = { "virtio=", "e1000=", "vmxnet3=",
					      "rtl8139=", "macaddr=", NULL };
	size_t i;

	if (!net)
		return NULL;
	for (i = 0; models[i]; i++) {
		const char *p = strstr(net, models[i]);

		if (p && (p == net || p[-1] == ',')) {
			char *mac;
			size_t j;

			p += strlen(models[i]);
			if (strlen(p) < 17)
				return NULL;
			mac = xstrndup(p, 17);
			for (j = 0; j < 17; j++)
				mac[j] = (char)toupper((unsigned char)mac[j]);
			return mac;
		}
	}
	return NULL;
}

static bool
has_tag(const char *tags, const char *tag)
{
	char *norm = plan_normalise_tags(tags), *save = NULL, *t;
	bool found = false;

	for (t = strtok_r(norm, ";", &save); t; t = strtok_r(NULL, ";", &save))
		if (!strcmp(t, tag))
			found = true;
	free(norm);
	return found;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/*
 * A VM being created or cloned holds `lock: create|clone` and only gets its
 * name, tags and description when the task ends; judging it before then
 * would call our own half-made VM foreign (an apply killed mid-create,
 * re-run at once). Wait for such a lock to clear, up to two minutes.
 */
static int
read_settled_config(struct pve *pve, const struct pve_vm *v, json_t **cfg,
		    struct err *err)
{
	int waited = 0, r;

	for (;;) {
		const char *lock;

		if ((r = pve_vm_config_get(pve, v->node, v->vmid, cfg, err)) < 0)
			return r;
		lock = json_string_value(json_object_get(*cfg, "lock"));
		if (!lock || (strcmp(lock, "create") && strcmp(lock, "clone")) ||
		    waited >= 120000)
			return 0;
		if (waited == 0)
			out_note("vm %d is locked (%s): waiting for that task to end",
				 v->vmid, lock);
		json_decref(*cfg);
		*cfg = NULL;
		sleep_ms(250);
		waited += 250;
	}
}

int
observe_proxmox(struct pve *pve, const char *env, int base, int count,
		struct vm_spec **out, size_t *n, struct err *err)
{
	return observe_proxmox_flags(pve, NULL, env, base, count, 0, out, n, err);
}

/* One candidate VM: what its config (and pending values) say. */
struct cand {
	const struct pve_vm *v;
	struct vm_spec *s;
	int rc;
	struct err err;
};

struct fetch {
	struct cand *c;
	size_t n, next;
	const char *env, *tag;
	int base, count;
	unsigned flags;
	const struct pve_opts *opts;
	pthread_mutex_t mu;
};

static void
judge(struct pve *pve, struct fetch *f, struct cand *c)
{
	const struct pve_vm *v = c->v;
	struct vm_spec *s = c->s;
	bool in_range = v->vmid >= f->base && v->vmid < f->base + f->count;
	bool tagged;
	json_t *cfg = NULL;
	char *desc, *mem, *cores, *scsi0, *net0, *t;
	const char *bad = NULL;

	s->vmid = v->vmid;
	s->node = v->node ? xstrdup(v->node) : NULL;
	s->status = v->status ? xstrdup(v->status) : NULL;
	if ((c->rc = read_settled_config(pve, v, &cfg, &c->err)) < 0) {
		err_wrap(&c->err, "read vm %d", v->vmid);
		return;
	}
	/* Judge by the settled config, not the listing taken before a
	 * create lock cleared (the tags arrive with the config). */
	t = pve_json_str(cfg, "tags");
	s->tags = plan_normalise_tags(t);
	free(t);
	tagged = has_tag(s->tags, f->tag);
	s->role = xstrdup(has_tag(s->tags, "controlplane") ? "controlplane"
			  : has_tag(s->tags, "worker") ? "worker"
			  : has_tag(s->tags, "cloudinit") ? "vm" : "unknown");
	desc = pve_json_str(cfg, "description");
	mem = pve_json_str(cfg, "memory");
	cores = pve_json_str(cfg, "cores");
	scsi0 = pve_json_str(cfg, "scsi0");
	net0 = pve_json_str(cfg, "net0");
	s->name = pve_json_str(cfg, "name");
	s->cores = 1;                /* Proxmox's defaults when unset */
	s->memory_mib = 512;
	if (cores && observe_int(cores, &s->cores) < 0)
		bad = cores;
	else if (mem && observe_int(mem, &s->memory_mib) < 0)
		bad = mem;
	if (bad) {
		/* Not a 0 that reads as a change to apply: an error. */
		c->rc = err_set(&c->err, ERR_FAIL, "read vm %d: %s '%s' in its "
				"config is not a number", v->vmid,
				bad == cores ? "cores" : "memory", bad);
		goto out;
	}
	s->disk_gib = observe_disk_gib(scsi0);
	s->mac = observe_net_mac(net0);
	s->marker = plan_has_marker(desc, f->env);
	if (!strcmp(s->role, "vm") || s->marker) {
		char *ide2 = pve_json_str(cfg, "ide2");

		s->ci_keys = pve_json_str(cfg, "sshkeys");
		s->ci_seed = civm_seed_of_drive(ide2, f->env, s->name);
		free(ide2);
	}
	if (!tagged)
		s->foreign_why = xasprintf("no %s tag", f->tag);
	else if (!plan_has_marker(desc, f->env))
		s->foreign_why = xstrdup("no strata marker in its description");
	else if (!in_range)
		s->foreign_why = xasprintf("VM id outside %d..%d", f->base,
					   f->base + f->count - 1);
	else
		s->owned = true;
	if (s->owned && !(f->flags & OBSERVE_NO_PENDING)) {
		json_t *pend = NULL;

		/* GET config shows pending values merged in: the running
		 * values and what waits for a restart come from .../pending. */
		if ((c->rc = pve_vm_pending(pve, v->node, v->vmid, &pend, &c->err)) < 0 ||
		    (c->rc = observe_pending(s, pend, &c->err)) < 0)
			err_wrap(&c->err, "read vm %d", v->vmid);
		json_decref(pend);
	}
out:
	free(desc);
	free(mem);
	free(cores);
	free(scsi0);
	free(net0);
	json_decref(cfg);
}

/* A reader: its own connection, candidates from a shared counter. */
static void *
fetcher(void *arg)
{
	struct fetch *f = arg;
	struct pve *pve = NULL;
	struct err e = ERR_INIT;
	int r = pve_new(&pve, f->opts, &e);

	for (;;) {
		size_t i;

		pthread_mutex_lock(&f->mu);
		i = f->next < f->n ? f->next++ : f->n;
		pthread_mutex_unlock(&f->mu);
		if (i == f->n)
			break;
		if (r < 0) {
			f->c[i].rc = r;
			f->c[i].err = e;
		} else {
			judge(pve, f, &f->c[i]);
		}
	}
	pve_free(pve);
	return NULL;
}

/* Readers at a time: the config reads are independent; one at a time
 * made observing 200 VMs take 200 round trips (4 s at 20 ms), 17 at a
 * time still 12 (0.24 s, and a destroy's stops then opened the other
 * connections: bench/destroy.sh 200). As many as the connection set
 * carries at once (pve_width: 32, or the command's --parallel up to
 * 128), so the reads take ceil(n / width) rounds and leave that many
 * connections open for the phase after. */
static size_t
readers_for(struct pve *pve, size_t n)
{
	size_t w = pve_width(pve);

	return n < w ? n : w;
}

int
observe_proxmox_flags(struct pve *pve, const struct pve_opts *opts,
		      const char *env, int base, int count, unsigned flags,
		      struct vm_spec **out, size_t *n, struct err *err)
{
	struct pve_vm *vms = NULL;
	struct fetch f = { .env = env, .base = base, .count = count, .flags = flags,
			   .opts = opts };
	pthread_t *th = NULL;
	size_t nvms = 0, i, k = 0, nth = 0, want = 0;
	char *tag = xasprintf("strata-%s", env);
	int r;

	*out = NULL;
	*n = 0;
	f.tag = tag;
	if ((r = pve_cluster_vms(pve, &vms, &nvms, err)) < 0)
		goto done;
	*out = xcalloc(nvms + 1, sizeof(**out));
	f.c = xcalloc(nvms + 1, sizeof(*f.c));
	for (i = 0; i < nvms; i++) {
		const struct pve_vm *v = &vms[i];
		bool in_range = v->vmid >= base && v->vmid < base + count;
		bool tagged = v->tags && has_tag(v->tags, tag);

		if (!in_range && !tagged)
			continue;
		f.c[f.n].v = v;
		f.c[f.n].s = &(*out)[f.n];
		f.n++;
	}
	k = f.n;
	pthread_mutex_init(&f.mu, NULL);
	/* the readers and this thread: width in all */
	if (opts && f.n > 1)
		want = readers_for(pve, f.n) - 1;
	if (want)
		th = xcalloc(want, sizeof(*th));
	for (nth = 0; nth < want; nth++)
		if (pthread_create(&th[nth], NULL, fetcher, &f) != 0)
			break;
	/* This thread reads what no reader took (all of it without opts). */
	for (;;) {
		pthread_mutex_lock(&f.mu);
		i = f.next < f.n ? f.next++ : f.n;
		pthread_mutex_unlock(&f.mu);
		if (i == f.n)
			break;
		judge(pve, &f, &f.c[i]);
	}
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	free(th);
	pthread_mutex_destroy(&f.mu);
	for (i = 0; i < f.n && r == 0; i++)
		if (f.c[i].rc < 0) {
			*err = f.c[i].err;
			r = f.c[i].rc;
		}
	*n = k;
done:
	if (r < 0) {
		vm_specs_free(*out, k);
		*out = NULL;
		*n = 0;
	}
	free(f.c);
	pve_vms_free(vms, nvms);
	free(tag);
	return r;
}

int
observe_pool(struct pve *pve, const char *pool, struct plan *plan,
	     struct err *err)
{
	bool exists = false;
	int r;

	if ((r = pve_pool_exists(pve, pool, &exists, err)) < 0)
		return err_wrap(err, "pool '%s'", pool);
	free(plan->pool);
	plan->pool = xstrdup(pool);
	plan->pool_missing = !exists;
	return 0;
}

int
observe_int(const char *v, int *out)
{
	char *end = NULL;
	long n;

	if (v && !strncmp(v, "current=", 8))
		v += 8;
	if (!v || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n > INT_MAX)
		return -1;
	*out = (int)n;
	return 0;
}

int
observe_pending(struct vm_spec *s, json_t *pending, struct err *err)
{
	json_t *e;
	size_t i;
	int r = 0;

	json_array_foreach(pending, i, e) {
		const char *key = json_string_value(json_object_get(e, "key"));
		char *val = pve_json_str(e, "value"), *pend = pve_json_str(e, "pending");
		bool cores = key && !strcmp(key, "cores");
		bool mem = key && !strcmp(key, "memory");
		int *now = cores ? &s->cores : &s->memory_mib;
		int *later = cores ? &s->pending_cores : &s->pending_memory_mib;

		const char *bad = NULL;

		if ((cores || mem) && val && observe_int(val, now) < 0)
			bad = val;
		else if ((cores || mem) && pend && observe_int(pend, later) < 0)
			bad = pend;
		if (bad)
			r = err_set(err, ERR_FAIL, "pending %s '%s' is not a number",
				    key, bad);
		free(val);
		free(pend);
		if (r < 0)
			break;
	}
	return r;
}
