#include "state/state.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/fs.h"

/* The journal's shape (docs/state.md): 2 keys every machine under
 * "machines" with its provider; 1 (and files without the key) kept
 * Proxmox VMs under "vms" and a VPS's rescue install under talos.<node>. */
#define STATE_FORMAT 2

static json_t *section(struct state *st, const char *name);

/* A journal written by an earlier strata, brought to STATE_FORMAT in
 * memory (written back by the next save; reading alone writes nothing). */
static void
migrate(struct state *st)
{
	json_t *vms = json_object_get(st->root, "vms");
	json_t *talos = json_object_get(st->root, "talos");
	json_t *machines, *o;
	const char *name;
	static const char *const vps_keys[] = { "rescue", "image_sha256" };

	machines = section(st, "machines");
	json_object_foreach(vms, name, o) {
		if (!json_is_object(o) || json_object_get(machines, name))
			continue;
		json_object_set_new(o, "provider", json_string("proxmox"));
		json_object_set(machines, name, o);
	}
	json_object_del(st->root, "vms");
	json_object_foreach(talos, name, o) {
		json_t *m = NULL;
		size_t i;

		for (i = 0; i < sizeof(vps_keys) / sizeof(vps_keys[0]); i++) {
			json_t *v = json_object_get(o, vps_keys[i]);

			if (!json_is_string(v))
				continue;
			if (!m) {
				m = json_object_get(machines, name);
				if (!json_is_object(m)) {
					m = json_object();
					json_object_set_new(m, "provider",
							    json_string("vps"));
					json_object_set_new(machines, name, m);
				}
			}
			json_object_set(m, vps_keys[i], v);
			json_object_del(o, vps_keys[i]);
		}
	}
	json_object_set_new(st->root, "format_version", json_integer(STATE_FORMAT));
}

int
state_load(struct state *st, const char *env_dir, struct err *err)
{
	struct buf b = BUF_INIT;
	json_error_t je;
	json_t *fv;
	int r;

	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->path = fs_join(env_dir, "state.json");
	r = fs_read_file(&b, st->path, 16 << 20, err);
	if (r == -ERR_NOTFOUND) {
		err_clear(err);
		st->root = json_object();
		json_object_set_new(st->root, "format_version",
				    json_integer(STATE_FORMAT));
		buf_release(&b);
		return 0;
	}
	if (r < 0) {
		buf_release(&b);
		return r;
	}
	st->root = json_loadb(b.ptr, b.len, 0, &je);
	buf_release(&b);
	if (!st->root || !json_is_object(st->root)) {
		json_decref(st->root);
		st->root = NULL;
		return err_set(err, ERR_FAIL,
			       "'%s' is corrupt (line %d: %s); it is strata's "
			       "journal: restore it from a backup or move it "
			       "away to start over", st->path, je.line, je.text);
	}
	fv = json_object_get(st->root, "format_version");
	if (json_is_integer(fv) && json_integer_value(fv) > STATE_FORMAT) {
		json_int_t v = json_integer_value(fv);

		json_decref(st->root);
		st->root = NULL;
		return err_set(err, ERR_FAIL, "'%s' has journal format %lld, "
			       "written by a newer strata (this one reads up "
			       "to %d): use that version of strata", st->path,
			       (long long)v, STATE_FORMAT);
	}
	if (!json_is_integer(fv) || json_integer_value(fv) < STATE_FORMAT)
		migrate(st);
	return 0;
}

int
state_save(struct state *st, struct err *err)
{
	unsigned long mine = ++st->changed;

	while (st->saved < mine) {
		unsigned long upto;
		char *s;
		int r;

		if (st->failed >= mine) {
			*err = st->fail;
			return -(err->code ? err->code : ERR_FAIL);
		}
		if (st->saving) {
			pthread_cond_wait(&st->cv, &st->mu);
			continue;
		}
		/* Write everything changed so far, without holding the lock:
		 * others go on changing and wait for the next write. */
		upto = st->changed;
		json_object_set_new(st->root, "updated", json_integer((json_int_t)time(NULL)));
		s = json_dumps(st->root, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (!s) {
			st->failed = upto;
			err_set(&st->fail, ERR_FAIL, "cannot encode state");
			pthread_cond_broadcast(&st->cv);
			continue;
		}
		st->saving = true;
		pthread_mutex_unlock(&st->mu);
		r = fs_write_atomic(st->path, s, strlen(s), FS_MODE_SECRET, err);
		free(s);
		pthread_mutex_lock(&st->mu);
		st->saving = false;
		if (r == 0) {
			st->saved = upto;
		} else {
			st->failed = upto;
			st->fail = *err;
		}
		pthread_cond_broadcast(&st->cv);
	}
	return 0;
}

void
state_release(struct state *st)
{
	json_decref(st->root);
	free(st->path);
	if (st->path || st->root) {
		pthread_mutex_destroy(&st->mu);
		pthread_cond_destroy(&st->cv);
	}
	memset(st, 0, sizeof(*st));
}

static json_t *
section(struct state *st, const char *name)
{
	json_t *o = json_object_get(st->root, name);

	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(st->root, name, o);
	}
	return o;
}

int
state_vm_record(struct state *st, const struct vm_spec *s, struct err *err)
{
	json_t *o = vm_spec_json(s);
	int r;

	json_object_set_new(o, "provider", json_string("proxmox"));
	pthread_mutex_lock(&st->mu);
	json_object_set_new(section(st, "machines"), s->name, o);
	r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

int
state_vm_forget(struct state *st, const char *name, struct err *err)
{
	int r;

	pthread_mutex_lock(&st->mu);
	json_object_del(section(st, "machines"), name);
	json_object_del(section(st, "talos"), name);
	json_object_del(section(st, "civms"), name);
	r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

static char *
sdup(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? xstrdup(s) : NULL;
}

/* A machines.<name> record of a Proxmox VM. */
static bool
is_vm(json_t *o)
{
	const char *p = json_string_value(json_object_get(o, "provider"));

	return p && !strcmp(p, "proxmox");
}

void
state_vms(struct state *st, struct vm_spec **out, size_t *n)
{
	json_t *vms, *o;
	const char *name;
	size_t k = 0;

	pthread_mutex_lock(&st->mu);
	vms = section(st, "machines");
	*out = xcalloc(json_object_size(vms) + 1, sizeof(**out));
	json_object_foreach(vms, name, o) {
		struct vm_spec *s;

		if (!is_vm(o))
			continue;
		s = &(*out)[k++];
		s->name = xstrdup(name);
		s->vmid = (int)json_integer_value(json_object_get(o, "vmid"));
		s->node = sdup(o, "node");
		s->cores = (int)json_integer_value(json_object_get(o, "cores"));
		s->memory_mib = (int)json_integer_value(json_object_get(o, "memory_mib"));
		s->disk_gib = (int)json_integer_value(json_object_get(o, "disk_gib"));
		s->mac = sdup(o, "mac");
		s->tags = sdup(o, "tags");
		s->role = sdup(o, "role");
		s->ci_seed = sdup(o, "cloudinit_seed");
	}
	*n = k;
	pthread_mutex_unlock(&st->mu);
}

bool
state_phase_done(struct state *st, const char *phase)
{
	bool done;

	pthread_mutex_lock(&st->mu);
	done = json_is_true(json_object_get(section(st, "phases"), phase));
	pthread_mutex_unlock(&st->mu);
	return done;
}

int
state_phase_mark(struct state *st, const char *phase, bool done, struct err *err)
{
	int r;

	pthread_mutex_lock(&st->mu);
	json_object_set_new(section(st, "phases"), phase, json_boolean(done));
	r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

/* String values at <section>.<sub>.<key> (talos.<node>, addons.<addon>). */
static char *
sub_get(struct state *st, const char *sec, const char *sub, const char *key)
{
	char *v;

	pthread_mutex_lock(&st->mu);
	v = sdup(json_object_get(section(st, sec), sub), key);
	pthread_mutex_unlock(&st->mu);
	return v;
}

/* Set (val) or delete (NULL) key; true when that changed anything. */
static bool
sub_put(json_t *o, const char *key, const char *val)
{
	const char *cur = json_string_value(json_object_get(o, key));

	if (val) {
		if (cur && !strcmp(cur, val))
			return false;
		json_object_set_new(o, key, json_string(val));
		return true;
	}
	if (!json_object_get(o, key))
		return false;
	json_object_del(o, key);
	return true;
}

/* Several keys of one record, saved (fsynced) once, and not at all when
 * nothing changes: a roll journals a node's steps without a save per key
 * (bench/upgrade.sh). */
static int
sub_setv(struct state *st, const char *sec, const char *sub,
	 const struct state_kv *kv, size_t n, struct err *err)
{
	json_t *t, *o;
	bool changed = false;
	size_t i;
	int r = 0;

	pthread_mutex_lock(&st->mu);
	t = section(st, sec);
	o = json_object_get(t, sub);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(t, sub, o);
		changed = true;
	}
	for (i = 0; i < n; i++)
		changed |= sub_put(o, kv[i].key, kv[i].val);
	if (changed)
		r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

static int
sub_set(struct state *st, const char *sec, const char *sub, const char *key,
	const char *val, struct err *err)
{
	struct state_kv kv = { key, val };

	return sub_setv(st, sec, sub, &kv, 1, err);
}

int
state_talos_setv(struct state *st, const char *node, const struct state_kv *kv,
		 size_t n, struct err *err)
{
	return sub_setv(st, "talos", node, kv, n, err);
}

char *
state_talos_get(struct state *st, const char *node, const char *key)
{
	return sub_get(st, "talos", node, key);
}

int
state_talos_set(struct state *st, const char *node, const char *key,
		const char *val, struct err *err)
{
	return sub_set(st, "talos", node, key, val, err);
}

char *
state_civm_get(struct state *st, const char *vm, const char *key)
{
	return sub_get(st, "civms", vm, key);
}

int
state_civm_set(struct state *st, const char *vm, const char *key,
	       const char *val, struct err *err)
{
	return sub_set(st, "civms", vm, key, val, err);
}

char *
state_machine_get(struct state *st, const char *name, const char *key)
{
	return sub_get(st, "machines", name, key);
}

int
state_machine_setv(struct state *st, const char *name, const char *provider,
		   const struct state_kv *kv, size_t n, struct err *err)
{
	struct state_kv *all = xcalloc(n + 1, sizeof(*all));
	size_t i;
	int r;

	all[0].key = "provider";
	all[0].val = provider;
	for (i = 0; i < n; i++)
		all[i + 1] = kv[i];
	r = sub_setv(st, "machines", name, all, n + 1, err);
	free(all);
	return r;
}

int
state_machine_set(struct state *st, const char *name, const char *provider,
		  const char *key, const char *val, struct err *err)
{
	struct state_kv kv = { key, val };

	return state_machine_setv(st, name, provider, &kv, 1, err);
}

void
state_talos_nodes(struct state *st, char ***out, size_t *n)
{
	json_t *t, *o;
	const char *name;
	size_t k = 0;

	pthread_mutex_lock(&st->mu);
	t = section(st, "talos");
	*out = xcalloc(json_object_size(t) + 1, sizeof(char *));
	json_object_foreach(t, name, o)
		(*out)[k++] = xstrdup(name);
	*n = k;
	pthread_mutex_unlock(&st->mu);
}

char *
state_addon_get(struct state *st, const char *addon, const char *key)
{
	return sub_get(st, "addons", addon, key);
}

int
state_addon_set(struct state *st, const char *addon, const char *key,
		const char *val, struct err *err)
{
	return sub_set(st, "addons", addon, key, val, err);
}

int
state_cluster_forget(struct state *st, struct err *err)
{
	int r;

	pthread_mutex_lock(&st->mu);
	json_object_del(st->root, "talos");
	json_object_del(st->root, "addons");
	json_object_del(st->root, "phases");
	json_object_del(st->root, STATE_KEY_MANIFESTS_APPLIED);
	r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

char *
state_mac_get(struct state *st, const char *name)
{
	char *v;

	pthread_mutex_lock(&st->mu);
	v = sdup(section(st, "macs"), name);
	pthread_mutex_unlock(&st->mu);
	return v;
}

int
state_mac_set(struct state *st, const char *name, const char *mac,
	      struct err *err)
{
	int r;

	pthread_mutex_lock(&st->mu);
	if (mac)
		json_object_set_new(section(st, "macs"), name, json_string(mac));
	else
		json_object_del(section(st, "macs"), name);
	r = state_save(st, err);
	pthread_mutex_unlock(&st->mu);
	return r;
}

void
state_macs_all(struct state *st, char ***out, size_t *n)
{
	json_t *macs, *vms, *o;
	const char *name;
	size_t k = 0;

	pthread_mutex_lock(&st->mu);
	macs = section(st, "macs");
	vms = section(st, "machines");
	*out = xcalloc(json_object_size(macs) + json_object_size(vms) + 1,
		       sizeof(char *));
	json_object_foreach(macs, name, o)
		if (json_is_string(o))
			(*out)[k++] = xstrdup(json_string_value(o));
	json_object_foreach(vms, name, o) {
		char *m = is_vm(o) ? sdup(o, "mac") : NULL;

		if (m)
			(*out)[k++] = m;
	}
	*n = k;
	pthread_mutex_unlock(&st->mu);
}

json_t *
state_record_get(struct state *st, const char *key)
{
	json_t *v;

	pthread_mutex_lock(&st->mu);
	v = json_deep_copy(json_object_get(st->root, key));
	pthread_mutex_unlock(&st->mu);
	return v;
}

int
state_record_set(struct state *st, const char *key, json_t *val,
		 struct err *err)
{
	json_t *cur;
	int r = 0;

	pthread_mutex_lock(&st->mu);
	cur = json_object_get(st->root, key);
	if (val ? !json_equal(cur, val) : cur != NULL) {
		if (val)
			json_object_set(st->root, key, val);
		else
			json_object_del(st->root, key);
		r = state_save(st, err);
	}
	pthread_mutex_unlock(&st->mu);
	json_decref(val);
	return r;
}
