/*
 * machines: the plan and status hooks of the providers (phase/provider.h,
 * plan_machines and status_machines) that live with their commands, and
 * what every provider's status shares: the Talos nodes probed side by
 * side, Kubernetes' node list, the addons, the health gate.
 */
#ifndef STRATA_CMD_MACHINES_H
#define STRATA_CMD_MACHINES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cmd/env.h"
#include "kube/kubeapi.h"
#include "talos/health.h"

/* The Proxmox provider's hooks (cmd_plan.c, cmd_status.c). */
struct plan_out;
int plan_vms(struct env *e, struct state *st, struct plan_out *o,
	     struct err *err);
int status_vms(struct env *e, struct state *st, const char *env_arg,
	       bool json, bool health);

/* What a Talos node says about itself. talos: the version, or
 * "maintenance", "down", "foreign-ca", "-" (not probed); etcd: its state
 * on a control plane, "?" when unreadable, else "-". */
struct status_probe {
	const struct talos_creds *creds;
	const char *ip;
	bool controlplane;
	bool thread;            /* probed on its own thread, to be joined */
	char talos[40];
	char etcd[40];
};

/*
 * Probe the config's Talos nodes (pr[n_nodes]) whose probe[i] is true,
 * side by side, with ENV/talosconfig, and read Kubernetes' node list with
 * ENV/kubeconfig; kube_note says why it could not be read (NULL: read).
 */
void status_probe_cluster(struct env *e, struct status_probe *pr,
			  const bool *probe, struct kube_node **kn, size_t *nk,
			  const char **kube_note);
/* "Ready", "NotReady", "absent", or "-" when note (the list was not read). */
const char *status_kube_state(const struct kube_node *kn, size_t nk,
			      const char *name, const char *note);
/* The addons as the cluster runs them (kube_addons_read), or NULL. */
json_t *status_read_addons(struct env *e);
void status_print_addons(json_t *a);
/* The end of status's text: the addons (when read) and, asked for, the
 * health gate's report. */
void status_print_tail(json_t *addons, bool want_health,
		       const struct health_report *rep);
/*
 * The document of status -o json on stdout (docs/json.md), the same on
 * every platform: format_version 2, env, platform, machines (vms_too: the
 * same array again as the deprecated "vms", Proxmox only), kubernetes_note
 * (null when Kubernetes answered), summary, addons (null when not read)
 * and, when asked for, health. summary is taken; the others are borrowed.
 */
void status_print_json(const char *env_name, const char *platform,
		       json_t *machines, bool vms_too, const char *kube_note,
		       json_t *summary, json_t *addons, json_t *health);
/* The health gate's checks, once, for the cluster the config describes. */
int status_health(struct env *e, struct health_report *rep, struct err *err);
/* "talos" of a probe that answered as this cluster's Talos. */
bool status_talos_up(const char *talos);

#endif
