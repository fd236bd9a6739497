#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "kube/kubeapi.h"
#include "talos/api.h"
#include "util/fs.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata status ENV [-o json]\n"
	"\n"
	"Show each VM of the environment as Proxmox sees it (VM id, node,\n"
	"power state, size) next to what the config wants, and the VMs the\n"
	"environment owns that the config no longer names. For Talos nodes,\n"
	"also what the node says over mTLS at its address (Talos version, or\n"
	"maintenance / down / foreign when another CA answers), etcd's state\n"
	"on control planes, and the Kubernetes node's readiness (from\n"
	"ENV/kubeconfig); then the addons: Cilium's version and ready/desired\n"
	"agents, each Flux Kustomization's Ready condition and last applied\n"
	"revision. Reads only; every probe is bounded to a few seconds.\n"
	"\n"
	"  -o json     machine-readable output\n"
	"  -h, --help  show this help\n";

/* What a Talos node says about itself; probed side by side. */
struct probe {
	const struct talos_creds *creds;
	const char *ip;
	bool controlplane;
	char talos[40];
	char etcd[40];
};

static void *
probe_node(void *arg)
{
	struct probe *p = arg;
	struct talos_target t = { .addr = p->ip, .creds = p->creds,
				  .timeout_ms = 3000, .connect_timeout_ms = 1500 };
	struct talos_status st = { 0 };
	struct err e = ERR_INIT;
	static const char *const what[] = {
		[TALOS_MAINTENANCE] = "maintenance",
		[TALOS_FOREIGN] = "foreign-ca",
		[TALOS_DOWN] = "down",
	};
	char *tag = NULL, *state = NULL;
	bool healthy = false;
	int seen;

	snprintf(p->etcd, sizeof(p->etcd), "-");
	seen = talos_probe(&t, &tag, &st, &e);
	if (seen != TALOS_UP) {
		snprintf(p->talos, sizeof(p->talos), "%s", what[seen]);
		return NULL;
	}
	snprintf(p->talos, sizeof(p->talos), "%s", tag);
	free(tag);
	if (p->controlplane &&
	    talos_service(&t, "etcd", &state, &healthy, &st, &e) == 0 && state)
		snprintf(p->etcd, sizeof(p->etcd), "%s%s", state,
			 healthy ? "" : "(unhealthy)");
	else if (p->controlplane)
		snprintf(p->etcd, sizeof(p->etcd), "?");
	free(state);
	return NULL;
}

/* Probe every Talos node (VMs running) and read Kubernetes' node list. */
static void
probe_cluster(struct env *e, struct probe *pr, const bool *running,
	      struct kube_node **kn, size_t *nk, const char **kube_note)
{
	struct talos_creds creds;
	struct err err = ERR_INIT;
	struct kube_client *kc = NULL;
	pthread_t *th;
	char *path;
	size_t i, n = e->cfg->n_nodes;
	bool have_creds;

	*kn = NULL;
	*nk = 0;
	path = fs_join(e->dir, "talosconfig");
	have_creds = fs_exists(path) && talos_creds_load(&creds, path, &err) == 0;
	if (!have_creds && err.msg[0])
		out_warn("cannot probe the Talos nodes: %s", err.msg);
	free(path);
	th = xcalloc(n + 1, sizeof(*th));
	for (i = 0; i < n; i++) {
		pr[i].ip = e->cfg->nodes[i].ip;
		pr[i].controlplane = e->cfg->nodes[i].role == ROLE_CONTROLPLANE;
		snprintf(pr[i].talos, sizeof(pr[i].talos), "-");
		snprintf(pr[i].etcd, sizeof(pr[i].etcd), "-");
		if (!have_creds || !running[i])
			continue;
		pr[i].creds = &creds;
		pthread_create(&th[i], NULL, probe_node, &pr[i]);
	}
	path = fs_join(e->dir, "kubeconfig");
	*kube_note = NULL;
	if (!fs_exists(path))
		*kube_note = "no ENV/kubeconfig yet";
	else if (kube_client_load(&kc, path, 3000, &err) < 0 ||
		 kube_nodes(kc, kn, nk, &err) < 0) {
		static char note[sizeof(err.msg) + 64];

		snprintf(note, sizeof(note), "the API did not answer: %s", err.msg);
		*kube_note = note;
	}
	kube_client_free(kc);
	free(path);
	for (i = 0; i < n; i++)
		if (pr[i].creds)
			pthread_join(th[i], NULL);
	free(th);
	if (have_creds)
		talos_creds_release(&creds);
}

/* The addons as the cluster runs them (kube_addons_read), or NULL. */
static json_t *
read_addons(struct env *e)
{
	char *path = fs_join(e->dir, "kubeconfig");
	struct kube_client *kc = NULL;
	struct err err = ERR_INIT;
	json_t *a = NULL;

	if (fs_exists(path) && kube_client_load(&kc, path, 3000, &err) == 0 &&
	    kube_addons_read(kc, &a, &err) < 0)
		out_warn("cannot read the addons: %s", err.msg);
	kube_client_free(kc);
	free(path);
	return a;
}

static void
print_addons(json_t *a)
{
	json_t *cni = json_object_get(a, "cni"), *k;
	json_t *ks = json_object_get(json_object_get(a, "flux"), "kustomizations");
	size_t i;

	if (!json_is_object(cni) && !json_array_size(ks))
		return;
	printf("\n%-8s %-20s %-7s %s\n", "ADDON", "NAME", "READY", "VERSION / REVISION");
	if (json_is_object(cni)) {
		char ready[48];

		snprintf(ready, sizeof(ready), "%lld/%lld",
			 (long long)json_integer_value(json_object_get(cni, "ready")),
			 (long long)json_integer_value(json_object_get(cni, "desired")));
		printf("%-8s %-20s %-7s %s\n", "cni", "cilium", ready,
		       json_string_value(json_object_get(cni, "version")));
	}
	json_array_foreach(ks, i, k) {
		const char *rev = json_string_value(json_object_get(k, "revision"));
		const char *msg = json_string_value(json_object_get(k, "message"));
		const char *ready = json_string_value(json_object_get(k, "ready"));

		printf("%-8s %-20s %-7s %s\n", "flux",
		       json_string_value(json_object_get(k, "name")), ready,
		       rev && !strcmp(ready, "True") ? rev : msg ? msg : "-");
	}
}

static const char *
kube_state(const struct kube_node *kn, size_t nk, const char *name,
	   const char *note)
{
	size_t i;

	if (note)
		return "-";
	for (i = 0; i < nk; i++)
		if (!strcmp(kn[i].name, name))
			return kn[i].ready ? "Ready" : "NotReady";
	return "absent";
}

int
cmd_status(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct err err = ERR_INIT;
	struct vm_spec *want = NULL, *have = NULL;
	size_t nw = 0, nh = 0, nk = 0, i, j;
	struct probe *pr = NULL;
	struct kube_node *kn = NULL;
	const char *kube_note = NULL;
	bool *running = NULL;
	const char *env = NULL;
	int json = 0, a, r, rc = 1;
	json_t *arr = NULL, *addons = NULL;

	if (cmd_wants_help(argc, argv, usage))
		return 0;
	for (a = 1; a < argc; a++) {
		if ((r = cmd_output_flag(argc, argv, &a, &json, usage)) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[a], usage)) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error(usage, "missing ENV");
	if ((r = env_open(&e, env, ENV_PROXMOX, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = env_desired(&e, &st, &want, &nw, &err)) < 0 ||
	    (r = observe_env(&e, &have, &nh, &err)) < 0) {
		out_error("status '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	/* Which Talos nodes' VMs run: only those are worth a probe. */
	running = xcalloc(e.cfg->n_nodes + 1, sizeof(*running));
	pr = xcalloc(e.cfg->n_nodes + 1, sizeof(*pr));
	for (i = 0; i < e.cfg->n_nodes && i < nw; i++)
		for (j = 0; j < nh; j++)
			if (have[j].vmid == want[i].vmid && have[j].owned &&
			    have[j].status && !strcmp(have[j].status, "running"))
				running[i] = true;
	probe_cluster(&e, pr, running, &kn, &nk, &kube_note);
	if (!kube_note)
		addons = read_addons(&e);
	arr = json_array();
	if (!json)
		printf("%-20s %-13s %-7s %-10s %-9s %-16s %5s %8s %6s  %-12s %-9s %s\n",
		       "NAME", "ROLE", "VMID", "NODE", "STATE", "ADDRESS", "CORES",
		       "MEMORY", "DISK", "TALOS", "ETCD", "K8S");
	for (i = 0; i < nw + nh; i++) {
		const struct vm_spec *w = i < nw ? &want[i] : NULL;
		const struct vm_spec *h = NULL;
		const char *ip = NULL, *state;
		json_t *o;

		if (!w) {
			h = &have[i - nw];
			/* listed already, or not ours: skip */
			for (j = 0; j < nw; j++)
				if (want[j].vmid == h->vmid)
					break;
			if (j < nw || !h->owned)
				continue;
		} else {
			for (j = 0; j < nh; j++)
				if (have[j].vmid == w->vmid)
					h = &have[j];
		}
		if (w && i < e.cfg->n_nodes)
			ip = e.cfg->nodes[i].ip;
		else if (w)
			ip = e.cfg->vms[i - e.cfg->n_nodes].ip;
		state = !h ? "absent" : !h->owned ? "foreign" : (h->status ? h->status : "?");
		if (!w)
			state = "orphan";
		if (json) {
			o = json_object();
			json_object_set_new(o, "name", json_string(w ? w->name : h->name));
			json_object_set_new(o, "role", json_string(w ? w->role : (h->role ? h->role : "?")));
			json_object_set_new(o, "vmid", json_integer(w ? w->vmid : h->vmid));
			json_object_set_new(o, "state", json_string(state));
			if (ip)
				json_object_set_new(o, "address", json_string(ip));
			if (w && i < e.cfg->n_nodes) {
				json_object_set_new(o, "talos", json_string(pr[i].talos));
				json_object_set_new(o, "etcd", json_string(pr[i].etcd));
				json_object_set_new(o, "kubernetes", json_string(
					kube_state(kn, nk, w->name, kube_note)));
			}
			json_object_set_new(o, "desired", w ? vm_spec_json(w) : json_null());
			json_object_set_new(o, "live", h ? vm_spec_json(h) : json_null());
			json_array_append_new(arr, o);
		} else {
			const struct vm_spec *s = h && h->owned ? h : w;

			bool tn = w && i < e.cfg->n_nodes;

			printf("%-20s %-13s %-7d %-10s %-9s %-16s %5d %6dMi %4dGi  %-12s %-9s %s\n",
			       s->name ? s->name : "?", w ? w->role : "-", s->vmid,
			       s->node ? s->node : "-", state, ip ? ip : "-", s->cores,
			       s->memory_mib, s->disk_gib, tn ? pr[i].talos : "-",
			       tn ? pr[i].etcd : "-",
			       tn ? kube_state(kn, nk, w->name, kube_note) : "-");
		}
	}
	if (json) {
		json_t *root = json_object();
		char *s;

		json_object_set_new(root, "env", json_string(e.cfg->name));
		json_object_set_new(root, "vms", json_incref(arr));
		if (kube_note)
			json_object_set_new(root, "kubernetes_note",
					    json_string(kube_note));
		json_object_set(root, "addons", addons ? addons : json_null());
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(root);
	} else if (kube_note && e.cfg->n_nodes) {
		out_note("Kubernetes: %s", kube_note);
	} else if (addons) {
		print_addons(addons);
	}
	rc = 0;
out:
	free(running);
	free(pr);
	kube_nodes_free(kn, nk);
	json_decref(arr);
	json_decref(addons);
	vm_specs_free(want, nw);
	vm_specs_free(have, nh);
	state_release(&st);
	env_close(&e);
	return rc;
}
