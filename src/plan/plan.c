#include "plan/plan.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "provider/proxmox/civm.h"
#include "util/buf.h"

/* --- specs -------------------------------------------------------------- */

void
vm_spec_release(struct vm_spec *s)
{
	free(s->name);
	free(s->node);
	free(s->mac);
	free(s->tags);
	free(s->role);
	free(s->status);
	free(s->foreign_why);
	free(s->ci_seed);
	free(s->ci_keys);
	memset(s, 0, sizeof(*s));
}

void
vm_specs_free(struct vm_spec *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		vm_spec_release(&v[i]);
	free(v);
}

static char *
dup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void
vm_spec_copy(struct vm_spec *d, const struct vm_spec *s)
{
	*d = *s;
	d->name = dup0(s->name);
	d->node = dup0(s->node);
	d->mac = dup0(s->mac);
	d->tags = dup0(s->tags);
	d->role = dup0(s->role);
	d->status = dup0(s->status);
	d->foreign_why = dup0(s->foreign_why);
	d->ci_seed = dup0(s->ci_seed);
	d->ci_keys = dup0(s->ci_keys);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *
plan_normalise_tags(const char *tags)
{
	char *copy, *tok, *save = NULL;
	char **v = NULL;
	size_t n = 0, i;
	struct buf out = BUF_INIT;

	if (!tags)
		return xstrdup("");
	copy = xstrdup(tags);
	for (tok = strtok_r(copy, ";, \t", &save); tok;
	     tok = strtok_r(NULL, ";, \t", &save)) {
		char *t;

		for (t = tok; *t; t++)
			*t = (char)tolower((unsigned char)*t);
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = tok;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++) {
		if (i && !strcmp(v[i], v[i - 1]))
			continue;
		buf_addf(&out, "%s%s", out.len ? ";" : "", v[i]);
	}
	free(v);
	free(copy);
	return buf_detach(&out, NULL);
}

char *
plan_tags(const char *env, const char *role)
{
	char *raw = xasprintf("strata-%s;%s", env,
			      !strcmp(role, "vm") ? "cloudinit" : "talos");
	char *t = plan_normalise_tags(raw);

	free(raw);
	if (strcmp(role, "vm")) {
		char *with = xasprintf("%s;%s", t, role);

		free(t);
		t = plan_normalise_tags(with);
		free(with);
	}
	return t;
}

char *
plan_marker(const char *env)
{
	return xasprintf("managed-by=strata env=%s", env);
}

bool
plan_has_marker(const char *description, const char *env)
{
	char *m = plan_marker(env);
	const char *p = description;
	size_t ml = strlen(m);
	bool found = false;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		while (len && (p[len - 1] == '\r' || p[len - 1] == ' '))
			len--;
		if (len == ml && !memcmp(p, m, ml)) {
			found = true;
			break;
		}
		p = nl ? nl + 1 : NULL;
	}
	free(m);
	return found;
}

int
plan_desired(const struct config *cfg, struct vm_spec **out, size_t *n,
	     struct err *err)
{
	size_t i, k = 0;
	struct vm_spec *v = xcalloc(cfg->n_nodes + cfg->n_vms + 1, sizeof(*v));

	for (i = 0; i < cfg->n_nodes; i++, k++) {
		const struct node *nd = &cfg->nodes[i];
		const char *role = nd->role == ROLE_CONTROLPLANE ? "controlplane" : "worker";

		v[k].name = xstrdup(nd->name);
		v[k].vmid = nd->vmid;
		v[k].node = dup0(nd->placement);
		v[k].cores = nd->cores;
		v[k].memory_mib = nd->memory_mib;
		v[k].disk_gib = nd->disk_gib;
		v[k].mac = dup0(nd->mac);
		v[k].vmid_fixed = nd->vmid_explicit;
		v[k].role = xstrdup(role);
		v[k].tags = plan_tags(cfg->name, role);
	}
	for (i = 0; i < cfg->n_vms; i++, k++) {
		const struct vm_config *vm = &cfg->vms[i];

		v[k].name = xstrdup(vm->name);
		v[k].vmid = vm->vmid;
		v[k].node = dup0(vm->placement);
		v[k].cores = vm->cores;
		v[k].memory_mib = vm->memory_mib;
		v[k].disk_gib = vm->disk_gib;
		v[k].mac = dup0(vm->mac);
		v[k].vmid_fixed = vm->vmid_explicit;
		v[k].role = xstrdup("vm");
		v[k].tags = plan_tags(cfg->name, "vm");
		if (civm_desired_ci(cfg, vm, &v[k].ci_seed, &v[k].ci_keys, err) < 0) {
			vm_specs_free(v, k + 1);
			return -1;
		}
	}
	for (i = 0; i < k; i++)
		if (!v[i].vmid || !v[i].node) {
			vm_specs_free(v, k);
			return err_set(err, ERR_USAGE,
				       "vm '%s' has no VM id or Proxmox node",
				       v[i].name);
		}
	*out = v;
	*n = k;
	return 0;
}

static bool
id_taken(const struct vm_spec *v, size_t n, size_t skip, int id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (i != skip && v[i].vmid == id)
			return true;
	return false;
}

int
plan_stick_ids(struct vm_spec *want, size_t nw, const struct vm_spec *applied,
	       size_t na, int base, int count, struct err *err)
{
	bool *done = xcalloc(nw + 1, sizeof(bool));
	size_t i, j;
	int next = base, r = 0;

	/* Fixed ids first (the config's provisional ones are dropped), then
	 * ids the journal remembers by name. */
	for (i = 0; i < nw; i++) {
		done[i] = want[i].vmid_fixed;
		if (!done[i])
			want[i].vmid = 0;
	}
	for (i = 0; i < nw; i++) {
		if (done[i])
			continue;
		for (j = 0; j < na; j++) {
			int id = applied[j].vmid;

			if (!applied[j].name || strcmp(applied[j].name, want[i].name) ||
			    id < base || id >= base + count || id_taken(want, nw, i, id))
				continue;
			want[i].vmid = id;
			done[i] = true;
		}
	}
	/* The rest: the lowest id no desired VM and no journal entry holds. */
	for (i = 0; i < nw && r == 0; i++) {
		if (done[i])
			continue;
		while (next < base + count &&
		       (id_taken(want, nw, i, next) || id_taken(applied, na, (size_t)-1, next)))
			next++;
		if (next >= base + count)
			r = err_set(err, ERR_USAGE,
				    "VM id range %d..%d is full: no id left for '%s' "
				    "(ids of VMs in state.json are kept until they "
				    "are deleted); raise proxmox.vmid.count",
				    base, base + count - 1, want[i].name);
		else
			want[i].vmid = next++;
	}
	free(done);
	return r;
}

/* --- diff --------------------------------------------------------------- */

static void
add_change(struct action *a, const char *field, const char *from,
	   const char *to, bool drift)
{
	struct field_change *c;

	if (a->n_ch >= PLAN_MAX_CHANGES)
		return;
	c = &a->ch[a->n_ch++];
	c->field = field;
	c->from = xstrdup(from ? from : "");
	c->to = xstrdup(to ? to : "");
	c->drift = drift;
}

static const struct vm_spec *
find_vmid(const struct vm_spec *v, size_t n, int vmid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].vmid == vmid)
			return &v[i];
	return NULL;
}

static bool
str_differs(const char *want, const char *have)
{
	if (!want)
		return false; /* not managed when unset */
	return !have || strcasecmp(want, have) != 0;
}

/* Drift: live differs from config while config equals what was applied. */
static bool
is_drift_int(const struct vm_spec *ap, int want, int applied_val)
{
	return ap && applied_val == want;
}

static bool
is_drift_str(const struct vm_spec *ap, const char *want, const char *applied_val)
{
	return ap && want && applied_val && !strcasecmp(want, applied_val);
}

/*
 * cores or memory: cur is what the VM runs with, pend what Proxmox holds
 * pending for its next start (0: nothing). A change to a running VM takes
 * effect only at a restart; one already pending needs nothing sent.
 */
static void
sized_change(struct action *a, const char *field, const char *unit, int want,
	     int cur, int pend, bool running, bool drift)
{
	char f[64], t[32];
	struct field_change *c;

	if (!cur || (want == cur && (!pend || pend == want)))
		return;
	if (pend && pend != want)
		snprintf(f, sizeof(f), "%d%s (pending %d%s)", cur, unit, pend, unit);
	else
		snprintf(f, sizeof(f), "%d%s", cur, unit);
	snprintf(t, sizeof(t), "%d%s", want, unit);
	add_change(a, field, f, t, drift);
	c = &a->ch[a->n_ch - 1];
	c->pending = pend && pend == want;
	c->restart = want != cur && (running || c->pending);
}

static void
compare(struct action *a, const struct vm_spec *w, const struct vm_spec *h,
	const struct vm_spec *ap)
{
	bool running = h->status && !strcmp(h->status, "running");
	char f[32], t[32];

	if (w->role && h->role && strcmp(w->role, h->role)) {
		a->kind = ACT_REPLACE;
		a->reason = xasprintf("role %s -> %s needs a new machine",
				      h->role, w->role);
		return;
	}
	if (w->node && h->node && strcmp(w->node, h->node)) {
		a->kind = ACT_REPLACE;
		a->reason = xasprintf("placement %s -> %s needs a new VM",
				      h->node, w->node);
		return;
	}
	if (h->disk_gib && w->disk_gib < h->disk_gib) {
		a->kind = ACT_REPLACE;
		a->reason = xasprintf("disk cannot shrink (%d -> %d GiB)",
				      h->disk_gib, w->disk_gib);
		return;
	}
	if (str_differs(w->name, h->name))
		add_change(a, "name", h->name, w->name,
			   is_drift_str(ap, w->name, ap ? ap->name : NULL));
	sized_change(a, "cores", "", w->cores, h->cores, h->pending_cores, running,
		     is_drift_int(ap, w->cores, ap ? ap->cores : 0) && !h->pending_cores);
	sized_change(a, "memory", " MiB", w->memory_mib, h->memory_mib,
		     h->pending_memory_mib, running,
		     is_drift_int(ap, w->memory_mib, ap ? ap->memory_mib : 0) &&
		     !h->pending_memory_mib);
	if (h->disk_gib && w->disk_gib > h->disk_gib) {
		snprintf(f, sizeof(f), "%d GiB", h->disk_gib);
		snprintf(t, sizeof(t), "%d GiB", w->disk_gib);
		add_change(a, "disk", f, t,
			   is_drift_int(ap, w->disk_gib, ap ? ap->disk_gib : 0));
	}
	if (str_differs(w->mac, h->mac))
		add_change(a, "mac", h->mac, w->mac,
			   is_drift_str(ap, w->mac, ap ? ap->mac : NULL));
	if (str_differs(w->tags, h->tags))
		add_change(a, "tags", h->tags, w->tags,
			   is_drift_str(ap, w->tags, ap ? ap->tags : NULL));
	/* cloud-init VMs: the keys and the seed (civm.h says how) */
	if (w->ci_keys && (!h->ci_keys || strcmp(w->ci_keys, h->ci_keys))) {
		char *cf = civm_keys_summary(h->ci_keys), *ct = civm_keys_summary(w->ci_keys);

		add_change(a, "ssh_keys", cf, ct, false);
		free(cf);
		free(ct);
	}
	if (str_differs(w->ci_seed, h->ci_seed)) {
		char *cf = h->ci_seed ? xasprintf("seed %s", h->ci_seed)
				     : xstrdup("no strata seed");
		char *ct = xasprintf("seed %s (a new seed ISO on ide2; a running "
				    "VM is rebooted so cloud-init runs again)",
				    w->ci_seed);

		add_change(a, "cloud-init", cf, ct, false);
		free(cf);
		free(ct);
	}
	a->kind = a->n_ch ? ACT_UPDATE : ACT_NONE;
	for (size_t i = 0; i < a->n_ch; i++)
		if (a->ch[i].restart)
			a->restart = true;
}

static int
cmp_delete(const void *pa, const void *pb)
{
	const struct action *a = pa, *b = pb;

	if (a->kind != ACT_DELETE || b->kind != ACT_DELETE)
		return 0;
	return a->have.vmid - b->have.vmid;
}

int
plan_diff(struct plan *p, const char *env, const struct vm_spec *want,
	  size_t nwant, const struct vm_spec *have, size_t nhave,
	  const struct vm_spec *applied, size_t napplied, struct err *err)
{
	size_t i, ndel0;

	(void)err;
	memset(p, 0, sizeof(*p));
	p->env = xstrdup(env);
	p->v = xcalloc(nwant + nhave + 1, sizeof(*p->v));
	for (i = 0; i < nwant; i++) {
		const struct vm_spec *w = &want[i];
		const struct vm_spec *h = find_vmid(have, nhave, w->vmid);
		const struct vm_spec *ap = find_vmid(applied, napplied, w->vmid);
		struct action *a = &p->v[p->n++];

		vm_spec_copy(&a->want, w);
		if (!h) {
			a->kind = ACT_CREATE;
		} else if (!h->owned) {
			a->kind = ACT_CONFLICT;
			vm_spec_copy(&a->have, h);
			a->reason = xasprintf("VM id %d is held by '%s' on %s, "
					      "which strata does not own (%s); "
					      "strata will not touch it",
					      h->vmid, h->name ? h->name : "?",
					      h->node ? h->node : "?",
					      h->foreign_why ? h->foreign_why : "not ours");
		} else {
			vm_spec_copy(&a->have, h);
			compare(a, w, h, ap);
		}
		switch (a->kind) {
		case ACT_CREATE: p->creates++; break;
		case ACT_UPDATE: p->updates++; break;
		case ACT_REPLACE: p->replaces++; break;
		case ACT_CONFLICT: p->conflicts++; break;
		default: p->unchanged++; break;
		}
		if (a->restart)
			p->restarts++;
	}
	ndel0 = p->n;
	for (i = 0; i < nhave; i++) {
		const struct vm_spec *h = &have[i];
		struct action *a;

		if (!h->owned || find_vmid(want, nwant, h->vmid))
			continue;
		a = &p->v[p->n++];
		a->kind = ACT_DELETE;
		vm_spec_copy(&a->have, h);
		a->reason = xstrdup("no longer in the config");
		p->deletes++;
	}
	qsort(p->v + ndel0, p->n - ndel0, sizeof(*p->v), cmp_delete);
	return 0;
}

void
plan_release(struct plan *p)
{
	size_t i, j;

	for (i = 0; i < p->n; i++) {
		struct action *a = &p->v[i];

		vm_spec_release(&a->want);
		vm_spec_release(&a->have);
		for (j = 0; j < a->n_ch; j++) {
			free(a->ch[j].from);
			free(a->ch[j].to);
		}
		free(a->reason);
	}
	free(p->v);
	free(p->pool);
	free(p->env);
	memset(p, 0, sizeof(*p));
}

/* --- output ------------------------------------------------------------- */

const char *
plan_kind_word(enum action_kind k)
{
	switch (k) {
	case ACT_CREATE: return "create";
	case ACT_UPDATE: return "update";
	case ACT_REPLACE: return "replace";
	case ACT_DELETE: return "delete";
	case ACT_CONFLICT: return "conflict";
	default: return "unchanged";
	}
}

void
plan_print(const struct plan *p, FILE *fp, bool color)
{
	static const char *sym[] = { " ", "+", "~", "-/+", "-", "!" };
	static const char *col[] = { "0", "32", "33", "35", "31", "1;31" };
	size_t i, j;

	if (p->pool_missing)
		fprintf(fp, "%s%3s %-20s %-9s%s create (needs Pool.Allocate on /pool/%s)\n",
			color ? "\033[32m" : "", "+", p->pool, "pool", color ? "\033[0m" : "",
			p->pool);
	for (i = 0; i < p->n; i++) {
		const struct action *a = &p->v[i];
		const struct vm_spec *s = a->kind == ACT_DELETE ? &a->have : &a->want;

		if (a->kind == ACT_NONE)
			continue;
		if (color)
			fprintf(fp, "\033[%sm", col[a->kind]);
		fprintf(fp, "%3s %-20s %-9s", sym[a->kind], s->name ? s->name : "?",
			plan_kind_word(a->kind));
		if (color)
			fprintf(fp, "\033[0m");
		switch (a->kind) {
		case ACT_CREATE:
			fprintf(fp, " vmid %d on %s: %d cores, %d MiB, %d GiB%s%s\n",
				s->vmid, s->node, s->cores, s->memory_mib, s->disk_gib,
				s->mac ? ", mac " : "", s->mac ? s->mac : "");
			break;
		case ACT_UPDATE:
			fprintf(fp, " vmid %d\n", s->vmid);
			for (j = 0; j < a->n_ch; j++)
				fprintf(fp, "      %-8s %s -> %s%s%s%s\n", a->ch[j].field,
					a->ch[j].from, a->ch[j].to,
					a->ch[j].restart ? ", needs restart" : "",
					a->ch[j].pending ? " (pending in Proxmox)" : "",
					a->ch[j].drift ? "   (drift: changed in Proxmox)" : "");
			break;
		default:
			fprintf(fp, " vmid %d: %s\n", s->vmid, a->reason ? a->reason : "");
			break;
		}
	}
	fprintf(fp, "Plan: %zu to create, %zu to update, %zu to replace, "
		    "%zu to delete, %zu unchanged.\n", p->creates, p->updates,
		p->replaces, p->deletes, p->unchanged);
	if (p->pool_missing)
		fprintf(fp, "Pool '%s' does not exist: apply creates it.\n", p->pool);
	if (p->restarts)
		fprintf(fp, "%zu VM%s need%s a restart for changes to take effect: %s.\n",
			p->restarts, p->restarts == 1 ? "" : "s", p->restarts == 1 ? "s" : "",
			p->restart_never ? "apply leaves them pending (proxmox.restart: never)"
					 : "apply restarts them one at a time, each waited for "
					   "until healthy (proxmox.restart: rolling)");
	if (p->conflicts)
		fprintf(fp, "%zu conflict%s: apply will refuse until resolved.\n",
			p->conflicts, p->conflicts == 1 ? "" : "s");
}

json_t *
vm_spec_json(const struct vm_spec *s)
{
	json_t *o;

	if (!s->name)
		return json_null();
	o = json_object();
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "vmid", json_integer(s->vmid));
	if (s->node)
		json_object_set_new(o, "node", json_string(s->node));
	json_object_set_new(o, "cores", json_integer(s->cores));
	json_object_set_new(o, "memory_mib", json_integer(s->memory_mib));
	json_object_set_new(o, "disk_gib", json_integer(s->disk_gib));
	if (s->mac)
		json_object_set_new(o, "mac", json_string(s->mac));
	if (s->tags)
		json_object_set_new(o, "tags", json_string(s->tags));
	if (s->role)
		json_object_set_new(o, "role", json_string(s->role));
	if (s->status)
		json_object_set_new(o, "status", json_string(s->status));
	if (s->ci_seed)
		json_object_set_new(o, "cloudinit_seed", json_string(s->ci_seed));
	if (s->pending_cores || s->pending_memory_mib) {
		json_t *pd = json_object();

		if (s->pending_cores)
			json_object_set_new(pd, "cores", json_integer(s->pending_cores));
		if (s->pending_memory_mib)
			json_object_set_new(pd, "memory_mib", json_integer(s->pending_memory_mib));
		json_object_set_new(o, "pending", pd);
	}
	return o;
}

char *
plan_to_json(const struct plan *p)
{
	json_t *root = json_object(), *acts = json_array(), *sum = json_object();
	char *s;
	size_t i, j;

	json_object_set_new(root, "format_version", json_integer(2));
	json_object_set_new(root, "env", json_string(p->env));
	/* the same key as platform vps's machine plan, so a reader tells
	 * the two documents apart without knowing the config */
	json_object_set_new(root, "platform", json_string("proxmox"));
	for (i = 0; i < p->n; i++) {
		const struct action *a = &p->v[i];
		json_t *o = json_object(), *ch = json_array();

		json_object_set_new(o, "action", json_string(plan_kind_word(a->kind)));
		json_object_set_new(o, "desired", vm_spec_json(&a->want));
		json_object_set_new(o, "live", vm_spec_json(&a->have));
		for (j = 0; j < a->n_ch; j++) {
			json_t *c = json_object();

			const char *f = a->ch[j].field;

			json_object_set_new(c, "field", json_string(f));
			/* typed: numbers for sizes (with their unit), else text */
			if (!strcmp(f, "cores") || !strcmp(f, "memory") ||
			    !strcmp(f, "disk")) {
				bool mem = !strcmp(f, "memory"), disk = !strcmp(f, "disk");

				json_object_set_new(c, "from", json_integer(
					mem ? a->have.memory_mib : disk ? a->have.disk_gib
					    : a->have.cores));
				json_object_set_new(c, "to", json_integer(
					mem ? a->want.memory_mib : disk ? a->want.disk_gib
					    : a->want.cores));
				json_object_set_new(c, "unit", mem ? json_string("MiB")
						    : disk ? json_string("GiB") : json_null());
			} else {
				json_object_set_new(c, "from", a->ch[j].from[0]
						    ? json_string(a->ch[j].from) : json_null());
				json_object_set_new(c, "to", a->ch[j].to[0]
						    ? json_string(a->ch[j].to) : json_null());
				json_object_set_new(c, "unit", json_null());
			}
			json_object_set_new(c, "drift", json_boolean(a->ch[j].drift));
			json_object_set_new(c, "restart", json_boolean(a->ch[j].restart));
			json_object_set_new(c, "pending", json_boolean(a->ch[j].pending));
			json_array_append_new(ch, c);
		}
		json_object_set_new(o, "changes", ch);
		if (a->reason)
			json_object_set_new(o, "reason", json_string(a->reason));
		json_array_append_new(acts, o);
	}
	json_object_set_new(root, "actions", acts);
	json_object_set_new(sum, "create", json_integer((json_int_t)p->creates));
	json_object_set_new(sum, "update", json_integer((json_int_t)p->updates));
	json_object_set_new(sum, "replace", json_integer((json_int_t)p->replaces));
	json_object_set_new(sum, "delete", json_integer((json_int_t)p->deletes));
	json_object_set_new(sum, "conflict", json_integer((json_int_t)p->conflicts));
	json_object_set_new(sum, "unchanged", json_integer((json_int_t)p->unchanged));
	json_object_set_new(sum, "restart", json_integer((json_int_t)p->restarts));
	json_object_set_new(root, "summary", sum);
	if (p->pool) {
		json_t *pool = json_object();

		json_object_set_new(pool, "id", json_string(p->pool));
		json_object_set_new(pool, "exists", json_boolean(!p->pool_missing));
		json_object_set_new(pool, "action", json_string(p->pool_missing ? "create" : "none"));
		json_object_set_new(root, "pool", pool);
	}
	s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

void
plan_print_pending(const struct vm_spec *have, size_t n, bool never, FILE *fp)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		const struct vm_spec *h = &have[i];

		if (!h->owned || (!h->pending_cores && !h->pending_memory_mib))
			continue;
		if (h->pending_cores && h->pending_cores != h->cores)
			fprintf(fp, "pending: %s cores %d -> %d, needs restart\n",
				h->name ? h->name : "?", h->cores, h->pending_cores);
		if (h->pending_memory_mib && h->pending_memory_mib != h->memory_mib)
			fprintf(fp, "pending: %s memory %d -> %d MiB, needs restart\n",
				h->name ? h->name : "?", h->memory_mib,
				h->pending_memory_mib);
		k++;
	}
	if (k)
		fprintf(fp, "%zu VM%s run%s with old values until restarted%s.\n", k,
			k == 1 ? "" : "s", k == 1 ? "s" : "",
			never ? " (proxmox.restart: never: apply does not restart them)"
			      : " (apply restarts them: proxmox.restart: rolling)");
}
