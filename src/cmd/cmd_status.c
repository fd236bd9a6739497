#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "cmd/machines.h"
#include "kube/kubeapi.h"
#include "phase/provider.h"
#include "talos/api.h"
#include "talos/health.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/out.h"


static void *
probe_node(void *arg)
{
	struct status_probe *p = arg;
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
	{
		/* the node's own words: printed, so escaped */
		char *clean = out_clean(tag);

		snprintf(p->talos, sizeof(p->talos), "%s", clean);
		free(clean);
	}
	free(tag);
	if (p->controlplane &&
	    talos_service(&t, "etcd", &state, &healthy, &st, &e) == 0 && state) {
		char *clean = out_clean(state);

		snprintf(p->etcd, sizeof(p->etcd), "%s%s", clean,
			 healthy ? "" : "(unhealthy)");
		free(clean);
	}
	else if (p->controlplane)
		snprintf(p->etcd, sizeof(p->etcd), "?");
	free(state);
	return NULL;
}

void
status_probe_cluster(struct env *e, struct status_probe *pr,
		     const bool *running, struct kube_node **kn, size_t *nk,
		     const char **kube_note)
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
		/* Without a thread the node is probed here, not skipped. */
		pr[i].thread = pthread_create(&th[i], NULL, probe_node,
					      &pr[i]) == 0;
		if (!pr[i].thread)
			probe_node(&pr[i]);
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
		if (pr[i].thread)
			pthread_join(th[i], NULL);
	free(th);
	if (have_creds)
		talos_creds_release(&creds);
}

json_t *
status_read_addons(struct env *e)
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

void
status_print_tail(json_t *addons, bool want_health,
		  const struct health_report *rep)
{
	if (addons)
		status_print_addons(addons);
	if (want_health) {
		printf("\nhealth (the gate apply runs between disruptive steps): %s\n",
		       rep->healthy ? "healthy" : "NOT healthy");
		health_report_print(rep, stdout);
	}
}

void
status_print_json(const char *env_name, const char *platform, json_t *machines,
		  bool vms_too, const char *kube_note, json_t *summary,
		  json_t *addons, json_t *health)
{
	json_t *root = json_object();
	char *js;

	json_object_set_new(root, "format_version", json_integer(2));
	json_object_set_new(root, "env", json_string(env_name));
	json_object_set_new(root, "platform", json_string(platform));
	json_object_set_new(root, "machines", json_incref(machines));
	if (vms_too)    /* deprecated (docs/json.md): the same objects, for one release */
		json_object_set_new(root, "vms", json_incref(machines));
	json_object_set_new(root, "kubernetes_note",
			    kube_note ? json_string(kube_note) : json_null());
	json_object_set_new(root, "summary", summary);
	json_object_set(root, "addons", addons ? addons : json_null());
	if (health)
		json_object_set(root, "health", health);
	js = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	puts(js);
	free(js);
	json_decref(root);
}

void
status_print_addons(json_t *a)
{
	json_t *cni = json_object_get(a, "cni"), *k;
	json_t *gw = json_object_get(a, "gateway");
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
	if (json_is_object(gw)) {
		const char *acc = json_string_value(json_object_get(gw, "accepted"));
		const char *msg = json_string_value(json_object_get(gw, "message"));
		const char *ctl = json_string_value(json_object_get(gw, "controller"));
		/* the message comes from the cluster: printed escaped */
		char *shown = out_clean(!strcmp(acc, "True") ? (ctl ? ctl : "-")
					: msg ? msg : "not accepted yet");

		printf("%-8s %-20s %-7s %s\n", "gateway", "GatewayClass cilium",
		       acc, shown);
		free(shown);
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

const char *
status_kube_state(const struct kube_node *kn, size_t nk, const char *name,
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

static const struct action *
status_action(const struct plan *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct action *a = &p->v[i];
		const char *n = a->want.name ? a->want.name : a->have.name;

		if (n && !strcmp(n, name))
			return a;
	}
	return NULL;
}

int
status_health(struct env *e, struct health_report *rep, struct err *err)
{
	struct talos_creds creds;
	struct health_cluster hc;
	char *tc = fs_join(e->dir, "talosconfig"), *kc = fs_join(e->dir, "kubeconfig");
	int r;

	memset(&creds, 0, sizeof(creds));
	memset(rep, 0, sizeof(*rep));
	if (!fs_exists(tc)) {
		r = err_set(err, ERR_FAIL, "no %s yet: run 'strata apply' first", tc);
		goto out;
	}
	if ((r = talos_creds_load(&creds, tc, err)) < 0)
		goto out;
	health_cluster_from_config(&hc, e->cfg, &creds, fs_exists(kc) ? kc : NULL);
	r = health_cluster_check(&hc, rep, err);
	health_cluster_release(&hc);
	talos_creds_release(&creds);
out:
	free(tc);
	free(kc);
	return r;
}

bool
status_talos_up(const char *talos)
{
	return talos && strcmp(talos, "-") && strcmp(talos, "maintenance") &&
	       strcmp(talos, "down") && strcmp(talos, "foreign-ca");
}

int
status_vms(struct env *e, struct state *st, const char *env, bool json,
	   bool want_health)
{
	struct err err = ERR_INIT;
	struct vm_spec *want = NULL, *have = NULL;
	size_t nw = 0, nh = 0, nk = 0, i, j;
	struct status_probe *pr = NULL;
	struct kube_node *kn = NULL;
	const char *kube_note = NULL;
	bool *running = NULL;
	int r, rc = 1;
	struct health_report hrep;
	json_t *arr = NULL, *addons = NULL, *hjson = NULL;
	struct plan plan = { 0 };
	size_t n_rows = 0, n_running = 0, n_absent = 0, n_orphan = 0, n_differ = 0;
	size_t n_conflict = 0, n_talos = 0, n_talos_up = 0, n_ready = 0;

	if ((r = env_desired(e, st, &want, &nw, &err)) < 0 ||
	    (r = observe_env(e, &have, &nh, &err)) < 0) {
		out_error("status '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	/* Which Talos nodes' VMs run: only those are worth a probe. A VM
	 * just created shows status "unknown" in /cluster/resources for a
	 * few seconds (as real Proxmox does): probe it too, bounded. */
	running = xcalloc(e->cfg->n_nodes + 1, sizeof(*running));
	pr = xcalloc(e->cfg->n_nodes + 1, sizeof(*pr));
	for (i = 0; i < e->cfg->n_nodes && i < nw; i++)
		for (j = 0; j < nh; j++)
			if (have[j].vmid == want[i].vmid && have[j].owned &&
			    have[j].status && (!strcmp(have[j].status, "running") ||
					       !strcmp(have[j].status, "unknown")))
				running[i] = true;
	status_probe_cluster(e, pr, running, &kn, &nk, &kube_note);
	{
		/* drift: the same comparison plan makes */
		struct vm_spec *applied = NULL;
		size_t na = 0;

		state_vms(st, &applied, &na);
		r = plan_diff(&plan, e->cfg->name, want, nw, have, nh, applied, na, &err);
		vm_specs_free(applied, na);
		if (r < 0) {
			out_error("status '%s': %s", env, err.msg);
			rc = err_exit_code(&err);
			goto out;
		}
	}
	if (!kube_note)
		addons = status_read_addons(e);
	if (want_health && (r = status_health(e, &hrep, &err)) < 0) {
		out_error("status '%s' --health: %s", env, err.msg);
		rc = err_exit_code(&err);
		goto out;
	}
	if (want_health)
		hjson = health_report_json(&hrep);
	arr = json_array();
	if (!json)
		printf("  %-20s %-13s %-7s %-10s %-9s %-16s %5s %8s %6s  %-12s %-9s %-9s %s\n",
		       "NAME", "ROLE", "VMID", "NODE", "STATE", "ADDRESS", "CORES",
		       "MEMORY", "DISK", "TALOS", "ETCD", "K8S", "CONFIG");
	for (i = 0; i < nw + nh; i++) {
		const struct vm_spec *w = i < nw ? &want[i] : NULL;
		const struct vm_spec *h = NULL;
		const struct action *act;
		const char *ip = NULL, *state, *talos = NULL, *etcd = NULL, *k8s = NULL;
		struct buf differs = BUF_INIT;
		char mark = ' ';
		json_t *o, *fields = json_array();

		if (!w) {
			h = &have[i - nw];
			/* listed already, or not ours: skip */
			for (j = 0; j < nw; j++)
				if (want[j].vmid == h->vmid)
					break;
			if (j < nw || !h->owned) {
				json_decref(fields);
				continue;
			}
		} else {
			for (j = 0; j < nh; j++)
				if (have[j].vmid == w->vmid)
					h = &have[j];
		}
		if (w && i < e->cfg->n_nodes)
			ip = e->cfg->nodes[i].ip;
		else if (w)
			ip = e->cfg->vms[i - e->cfg->n_nodes].ip;
		state = !h ? "absent" : !h->owned ? "foreign" : (h->status ? h->status : "?");
		if (!w)
			state = "orphan";
		act = status_action(&plan, w ? w->name : h->name);
		switch (act ? act->kind : ACT_NONE) {
		case ACT_CREATE: mark = '+'; buf_adds(&differs, "missing"); n_absent++; break;
		case ACT_DELETE: mark = '-'; buf_adds(&differs, "not in config"); n_orphan++; break;
		case ACT_REPLACE: mark = '!'; buf_adds(&differs, act->reason ? act->reason : "replace"); n_differ++; break;
		case ACT_CONFLICT: mark = '!'; buf_adds(&differs, "id held by another VM"); n_conflict++; break;
		case ACT_UPDATE:
			mark = '~';
			n_differ++;
			for (j = 0; j < act->n_ch; j++) {
				buf_addf(&differs, "%s%s %s->%s%s", j ? ", " : "",
					 act->ch[j].field, act->ch[j].from, act->ch[j].to,
					 act->ch[j].drift ? " (drift)" : "");
				json_array_append_new(fields, json_string(act->ch[j].field));
			}
			break;
		default:
			buf_adds(&differs, "ok");
			break;
		}
		if (h && h->owned && h->status && !strcmp(h->status, "running"))
			n_running++;
		if (w && i < e->cfg->n_nodes) {
			talos = pr[i].talos[0] && strcmp(pr[i].talos, "-") ? pr[i].talos : NULL;
			etcd = pr[i].etcd[0] && strcmp(pr[i].etcd, "-") ? pr[i].etcd : NULL;
			k8s = kube_note ? NULL : status_kube_state(kn, nk, w->name, NULL);
			n_talos++;
			if (talos && strcmp(talos, "maintenance") && strcmp(talos, "down") &&
			    strcmp(talos, "foreign-ca"))
				n_talos_up++;
			if (k8s && !strcmp(k8s, "Ready"))
				n_ready++;
		}
		if (json) {
			const char *placement = h && h->owned && h->node ? h->node
						: w ? w->node : NULL;

			o = json_object();
			json_object_set_new(o, "name", json_string(w ? w->name : h->name));
			json_object_set_new(o, "role", w ? json_string(w->role)
					    : h->role ? json_string(h->role) : json_null());
			json_object_set_new(o, "provider", json_string("proxmox"));
			/* the Proxmox details of this machine */
			json_object_set_new(o, "vmid", json_integer(w ? w->vmid : h->vmid));
			json_object_set_new(o, "placement", placement
					    ? json_string(placement) : json_null());
			json_object_set_new(o, "state", json_string(state));
			json_object_set_new(o, "address", ip ? json_string(ip) : json_null());
			json_object_set_new(o, "talos", talos ? json_string(talos) : json_null());
			json_object_set_new(o, "etcd", etcd ? json_string(etcd) : json_null());
			json_object_set_new(o, "kubernetes", k8s ? json_string(k8s) : json_null());
			json_object_set_new(o, "config", json_string(act ? plan_kind_word(act->kind)
								     : "unchanged"));
			json_object_set_new(o, "differs", fields);
			fields = NULL;
			json_object_set_new(o, "desired", w ? vm_spec_json(w) : json_null());
			json_object_set_new(o, "live", h ? vm_spec_json(h) : json_null());
			json_array_append_new(arr, o);
		} else {
			const struct vm_spec *sp = h && h->owned ? h : w;
			bool tn = w && i < e->cfg->n_nodes;

			printf("%c %-20s %-13s %-7d %-10s %-9s %-16s %5d %6dMi %4dGi  %-12s %-9s %-9s %s\n",
			       mark, sp->name ? sp->name : "?", w ? w->role : "-", sp->vmid,
			       sp->node ? sp->node : "-", state, ip ? ip : "-", sp->cores,
			       sp->memory_mib, sp->disk_gib, tn ? pr[i].talos : "-",
			       tn ? pr[i].etcd : "-",
			       tn ? status_kube_state(kn, nk, w->name, kube_note) : "-",
			       differs.ptr);
		}
		json_decref(fields);
		buf_release(&differs);
		n_rows++;
	}
	if (json) {
		json_t *summary = json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"machines", (json_int_t)n_rows, "vms", (json_int_t)n_rows,
			"running", (json_int_t)n_running,
			"absent", (json_int_t)n_absent, "orphans", (json_int_t)n_orphan,
			"differ", (json_int_t)n_differ, "conflicts", (json_int_t)n_conflict,
			"talos_nodes", (json_int_t)n_talos, "talos_up", (json_int_t)n_talos_up,
			"kubernetes_ready", (json_int_t)n_ready);

		status_print_json(e->cfg->name, "proxmox", arr, true, kube_note,
				  summary, addons, hjson);
	} else {
		if (kube_note && e->cfg->n_nodes)
			out_note("Kubernetes: %s", kube_note);
		plan_print_pending(have, nh, e->cfg->proxmox.restart == RESTART_NEVER,
				   stdout);
		printf("\n%s: %zu machine%s (Proxmox VMs), %zu running",
		       e->cfg->name, n_rows, n_rows == 1 ? "" : "s", n_running);
		if (n_absent)
			printf(", %zu missing", n_absent);
		if (n_orphan)
			printf(", %zu not in the config", n_orphan);
		if (n_conflict)
			printf(", %zu id conflict%s", n_conflict, n_conflict == 1 ? "" : "s");
		printf("; %zu differ%s from the config", n_differ, n_differ == 1 ? "s" : "");
		if (n_talos)
			printf("; Talos %zu/%zu up; Kubernetes %zu/%zu Ready", n_talos_up,
			       n_talos, n_ready, n_talos);
		printf("\n");
		if (n_absent || n_orphan || n_differ || n_conflict)
			printf("'strata plan %s' lists the changes; 'strata apply %s' "
			       "makes them\n", env, env);
		status_print_tail(addons, want_health, &hrep);
	}
	rc = want_health && !hrep.healthy ? 1 : 0;
out:
	free(running);
	free(pr);
	kube_nodes_free(kn, nk);
	json_decref(arr);
	json_decref(addons);
	json_decref(hjson);
	plan_release(&plan);
	vm_specs_free(want, nw);
	vm_specs_free(have, nh);
	return rc;
}

int
cmd_status(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct err err = ERR_INIT;
	const struct provider *p = NULL;
	const char *env = NULL;
	int json = 0, a, r, rc = 1;
	bool want_health = false;

	if (cmd_wants_help(argc, argv, "status"))
		return 0;
	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--health")) {
			want_health = true;
			continue;
		}
		if ((r = cmd_output_flag(argc, argv, &a, &json, "status")) == 2)
			return r;
		if (r == 0 && (r = cmd_positional(&env, argv[a], "status")) != 0)
			return r;
	}
	if (!env)
		return cmd_usage_error("status", "missing ENV");
	if ((r = env_open(&e, env, ENV_PROVIDER, &err)) < 0 ||
	    (r = state_load(&st, e.dir, &err)) < 0 ||
	    (r = cmd_provider(&p, e.cfg, "status", &err)) < 0) {
		out_error("status '%s': %s", env, err.msg);
		rc = err_exit_code(&err);
	} else {
		rc = p->status_machines(&e, &st, env, json, want_health);
	}
	state_release(&st);
	env_close(&e);
	return rc;
}
