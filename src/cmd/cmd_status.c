#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/env.h"
#include "util/out.h"

static const char usage[] =
	"usage: strata status ENV [-o json]\n"
	"\n"
	"Show each VM of the environment as Proxmox sees it (VM id, node,\n"
	"power state, size) next to what the config wants, and the VMs the\n"
	"environment owns that the config no longer names. Reads only.\n"
	"\n"
	"  -o json     machine-readable output\n"
	"  -h, --help  show this help\n";

int
cmd_status(int argc, char **argv)
{
	struct env e;
	struct state st = { 0 };
	struct err err = ERR_INIT;
	struct vm_spec *want = NULL, *have = NULL;
	size_t nw = 0, nh = 0, i, j;
	const char *env = NULL;
	int json = 0, a, r, rc = 1;
	json_t *arr = NULL;

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
	arr = json_array();
	if (!json)
		printf("%-20s %-13s %-7s %-10s %-9s %-16s %5s %8s %6s\n", "NAME", "ROLE",
		       "VMID", "NODE", "STATE", "ADDRESS", "CORES", "MEMORY", "DISK");
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
			json_object_set_new(o, "desired", w ? vm_spec_json(w) : json_null());
			json_object_set_new(o, "live", h ? vm_spec_json(h) : json_null());
			json_array_append_new(arr, o);
		} else {
			const struct vm_spec *s = h && h->owned ? h : w;

			printf("%-20s %-13s %-7d %-10s %-9s %-16s %5d %6dMi %4dGi\n",
			       s->name ? s->name : "?", w ? w->role : "-", s->vmid,
			       s->node ? s->node : "-", state, ip ? ip : "-", s->cores,
			       s->memory_mib, s->disk_gib);
		}
	}
	if (json) {
		json_t *root = json_object();
		char *s;

		json_object_set_new(root, "env", json_string(e.cfg->name));
		json_object_set_new(root, "vms", json_incref(arr));
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(root);
	}
	rc = 0;
out:
	json_decref(arr);
	vm_specs_free(want, nw);
	vm_specs_free(have, nh);
	state_release(&st);
	env_close(&e);
	return rc;
}
