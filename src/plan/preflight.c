/*
 * preflight: the Layer-0 checks of a plan (preflight.h). The privileges
 * each phase needs are README.md's table ("A Proxmox API token with the
 * privileges strata needs") and FACTS.md §7-§9.
 */
#include "plan/preflight.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/out.h"

#define GIB (1024LL * 1024 * 1024)
#define MIB (1024LL * 1024)

static void __attribute__((format(printf, 4, 5)))
add(struct preflight *pf, enum pf_level level, const char *check,
    const char *fmt, ...)
{
	struct pf_problem *p;
	struct buf b = BUF_INIT;
	va_list ap;
	char *text, *sep;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	text = buf_detach(&b, NULL);
	pf->v = xrealloc(pf->v, (pf->n + 1) * sizeof(*pf->v));
	p = &pf->v[pf->n++];
	p->level = level;
	p->check = xstrdup(check);
	/* "what\tfix": the part after the tab says what to do */
	sep = strchr(text, '\t');
	if (sep) {
		*sep = '\0';
		p->fix = xstrdup(sep + 1);
	} else {
		p->fix = xstrdup("");
	}
	p->what = xstrdup(text);
	free(text);
	if (level == PF_ERROR)
		pf->errors++;
	else
		pf->warnings++;
}

static void
strv_add(char ***v, size_t *n, const char *s)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

void
preflight_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* An action whose VM exists after apply (its want is what will be there). */
static bool
kept(const struct action *a)
{
	return a->kind == ACT_CREATE || a->kind == ACT_UPDATE ||
	       a->kind == ACT_REPLACE || a->kind == ACT_NONE;
}

static bool
is_new(const struct action *a)
{
	return a->kind == ACT_CREATE || a->kind == ACT_REPLACE;
}

static const struct field_change *
change(const struct action *a, const char *field)
{
	size_t i;

	for (i = 0; i < a->n_ch; i++)
		if (!strcmp(a->ch[i].field, field) && !a->ch[i].pending)
			return &a->ch[i];
	return NULL;
}

static char *
vm_path(const struct config *cfg)
{
	return cfg->proxmox.pool ? xasprintf("/pool/%s", cfg->proxmox.pool)
				 : xstrdup("/vms");
}

static char *
bridge_path(const struct config *cfg)
{
	/* FACTS.md §8: SDN.Use on the bridge, or on bridge/tag with a VLAN */
	if (cfg->proxmox.vlan)
		return xasprintf("/sdn/zones/localnetwork/%s/%d", cfg->proxmox.bridge,
				 cfg->proxmox.vlan);
	return xasprintf("/sdn/zones/localnetwork/%s", cfg->proxmox.bridge);
}

void
preflight_needs(const struct config *cfg, const struct plan *plan,
		char ***nodes, size_t *n_nodes, char ***paths, size_t *n_paths)
{
	bool creates = false;
	size_t i;
	char *s;

	*nodes = *paths = NULL;
	*n_nodes = *n_paths = 0;
	for (i = 0; i < plan->n; i++) {
		const struct action *a = &plan->v[i];

		if (kept(a) && a->want.node)
			strv_add(nodes, n_nodes, a->want.node);
		if (is_new(a)) {
			creates = true;
			s = xasprintf("/nodes/%s", a->want.node);
			strv_add(paths, n_paths, s);
			free(s);
		}
	}
	s = vm_path(cfg);
	strv_add(paths, n_paths, s);
	free(s);
	if (plan->pool_missing) {
		s = xasprintf("/pool/%s", plan->pool ? plan->pool : cfg->proxmox.pool);
		strv_add(paths, n_paths, s);
		free(s);
	}
	if (creates || plan->updates) {
		s = xasprintf("/storage/%s", cfg->proxmox.disk_storage);
		strv_add(paths, n_paths, s);
		free(s);
	}
	if (creates || (cfg->n_nodes && cfg->proxmox.first_boot == FIRST_BOOT_CIDATA)) {
		s = xasprintf("/storage/%s", cfg->proxmox.iso_storage);
		strv_add(paths, n_paths, s);
		free(s);
	}
	if (creates) {
		s = bridge_path(cfg);
		strv_add(paths, n_paths, s);
		free(s);
		strv_add(paths, n_paths, "/");   /* the other way to download-url */
	}
}

/* --- privileges --------------------------------------------------------- */

struct need {
	char *path;
	const char *priv;
	const char *why;
};

struct needs {
	struct need *v;
	size_t n;
};

static void
need(struct needs *nd, const char *path, const char *priv, const char *why)
{
	size_t i;

	for (i = 0; i < nd->n; i++)
		if (!strcmp(nd->v[i].path, path) && !strcmp(nd->v[i].priv, priv))
			return;
	nd->v = xrealloc(nd->v, (nd->n + 1) * sizeof(*nd->v));
	nd->v[nd->n].path = xstrdup(path);
	nd->v[nd->n].priv = priv;
	nd->v[nd->n].why = why;
	nd->n++;
}

/* priv, or one of "A|B": 1 held, 0 not, -1 path not read */
static int
has_priv(const struct layer0 *l0, const char *path, const char *priv)
{
	int res = 0;

	while (*priv) {
		size_t len = strcspn(priv, "|");
		char *one = xstrndup(priv, len);
		int h = layer0_has_priv(l0, path, one);

		free(one);
		if (h != 0)
			return h;
		priv += len;
		if (*priv == '|')
			priv++;
	}
	return res;
}

static char *
grant_hint(const struct config *cfg, const char *path)
{
	const char *tok = cfg->proxmox.token_id ? cfg->proxmox.token_id : "USER@REALM!NAME";
	const char *bang = strchr(tok, '!');
	char *user = bang ? xstrndup(tok, (size_t)(bang - tok)) : xstrdup(tok);
	char *s;

	/* privsep tokens: the user's ACLs intersected with the token's */
	s = xasprintf("grant them, e.g. pveum acl modify %s --roles StrataProvisioner "
		      "--users %s, and the same with --tokens '%s' (the role and "
		      "what it holds: README.md)", path, user, tok);
	free(user);
	return s;
}

static void
check_privileges(struct preflight *pf, const struct config *cfg,
		 const struct plan *plan, const struct layer0 *l0)
{
	struct needs nd = { 0 };
	char *vms = vm_path(cfg), *disks, *isos, *bridge;
	bool creates = false, civm_new = false, deletes = plan->deletes > 0, restarts = false;
	/* Proxmox VE 9 renamed VM.Monitor to VM.GuestAgent.Audit (README.md):
	 * either does, the name asked for is the version's */
	const char *agent = l0->major && l0->major < 9 ? "VM.Monitor|VM.GuestAgent.Audit"
						       : "VM.GuestAgent.Audit|VM.Monitor";
	size_t i, k;

	disks = xasprintf("/storage/%s", cfg->proxmox.disk_storage);
	isos = xasprintf("/storage/%s", cfg->proxmox.iso_storage);
	bridge = bridge_path(cfg);
	need(&nd, vms, "VM.Audit", "plan lists the VMs");
	if (plan->pool_missing) {
		char *pp = xasprintf("/pool/%s", plan->pool ? plan->pool : cfg->proxmox.pool);

		need(&nd, pp, "Pool.Allocate", "apply creates the pool");
		free(pp);
	}
	for (i = 0; i < plan->n; i++) {
		const struct action *a = &plan->v[i];

		if (is_new(a))
			creates = true;
		if (a->kind == ACT_REPLACE)
			deletes = true;
		if (a->restart && !plan->restart_never)
			restarts = true;
		if (a->kind != ACT_UPDATE)
			continue;
		if (change(a, "cores"))
			need(&nd, vms, "VM.Config.CPU", "update cores");
		if (change(a, "memory"))
			need(&nd, vms, "VM.Config.Memory", "update memory");
		if (change(a, "disk")) {
			need(&nd, vms, "VM.Config.Disk", "grow a disk");
			need(&nd, disks, "Datastore.AllocateSpace", "grow a disk");
		}
		if (change(a, "mac"))
			need(&nd, vms, "VM.Config.Network", "update the NIC");
		if (change(a, "tags") || change(a, "name"))
			need(&nd, vms, "VM.Config.Options", "update tags and name");
	}
	if (creates) {
		static const char *const cfgp[] = {
			"VM.Allocate", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Disk",
			"VM.Config.CDROM", "VM.Config.Network", "VM.Config.HWType",
			"VM.Config.Options", NULL,
		};

		for (k = 0; cfgp[k]; k++)
			need(&nd, vms, cfgp[k], "create VMs");
		need(&nd, vms, "VM.PowerMgmt", "start VMs");
		need(&nd, disks, "Datastore.AllocateSpace", "create VM disks");
		need(&nd, bridge, "SDN.Use", "put the bridge in a VM's NIC");
		need(&nd, isos, "Datastore.Audit", "find the Talos ISO");
		if (cfg->n_nodes && cfg->proxmox.first_boot == FIRST_BOOT_CIDATA) {
			need(&nd, isos, "Datastore.AllocateTemplate", "upload cidata ISOs");
			need(&nd, isos, "Datastore.Allocate", "delete a node's cidata ISO after install");
		} else if (cfg->n_nodes && cfg->network.discovery == DISCOVERY_GUEST_AGENT) {
			need(&nd, vms, agent, "find a new node's address (guest agent)");
		}
	}
	for (i = 0; i < plan->n; i++) {
		const struct action *a = &plan->v[i];

		/* cloud-init VMs (ph_civm.c): their ci* keys need their own
		 * privilege (FACTS-cloudinit.md section 1), their seed goes to
		 * ISO storage, and a clone reads its template */
		if (!a->want.role || strcmp(a->want.role, "vm") ||
		    (!is_new(a) && a->kind != ACT_UPDATE))
			continue;
		civm_new = civm_new || is_new(a);
		need(&nd, vms, "VM.Config.Cloudinit", "set a cloud-init VM's user, keys and address");
		need(&nd, isos, "Datastore.AllocateTemplate", "upload a cloud-init VM's seed ISO");
		need(&nd, vms, agent, "read a cloud-init VM's address (guest agent)");
	}
	for (i = 0; civm_new && i < cfg->n_vms; i++)
		if (cfg->vms[i].template_vmid) {
			char *tp = xasprintf("/vms/%d", cfg->vms[i].template_vmid);

			need(&nd, tp, "VM.Clone", "clone the template of a cloud-init VM");
			free(tp);
		}
	if (cfg->n_nodes && cfg->proxmox.first_boot == FIRST_BOOT_CIDATA)
		need(&nd, isos, "Datastore.Audit", "sweep cidata ISOs left behind");
	if (deletes) {
		need(&nd, vms, "VM.PowerMgmt", "stop VMs before deleting them");
		need(&nd, vms, "VM.Allocate", "delete VMs");
	}
	if (restarts)
		need(&nd, vms, "VM.PowerMgmt", "restart VMs for pending changes");

	/* one problem per path, every missing privilege named */
	for (i = 0; i < nd.n; i++) {
		struct buf b = BUF_INIT;
		const char *path = nd.v[i].path;
		bool first = true, done = false;

		for (k = 0; k < i; k++)
			if (!strcmp(nd.v[k].path, path))
				done = true;
		if (done)
			continue;
		for (k = i; k < nd.n; k++) {
			int has;

			if (strcmp(nd.v[k].path, path))
				continue;
			has = has_priv(l0, path, nd.v[k].priv);
			if (has != 0)
				continue;
			buf_addf(&b, "%s%.*s (%s)", first ? "" : ", ",
				 (int)strcspn(nd.v[k].priv, "|"), nd.v[k].priv, nd.v[k].why);
			first = false;
		}
		if (!first) {
			char *hint = grant_hint(cfg, path);

			if (!strncmp(path, "/pool/", 6) && plan->pool_missing) {
				char *h2 = xasprintf("%s; or create pool '%s' in Proxmox "
						     "first (pveum pool add %s)", hint,
						     path + 6, path + 6);

				free(hint);
				hint = h2;
			}

			add(pf, PF_ERROR, "privilege", "token '%s' lacks on %s: %s\t%s",
			    cfg->proxmox.token_id, path, b.ptr, hint);
			free(hint);
		}
		buf_release(&b);
	}

	/* download-url where a node lacks the ISO (FACTS.md §7): Sys.AccessNetwork
	 * on /nodes/N, or Sys.Audit + Sys.Modify on / */
	for (i = 0; creates && i < l0->n_nodes; i++) {
		const struct l0_node *n = &l0->nodes[i];
		char *np;

		if (n->has_iso != 0)
			continue;
		np = xasprintf("/nodes/%s", n->name);
		if (layer0_has_priv(l0, isos, "Datastore.AllocateTemplate") == 0)
			add(pf, PF_ERROR, "privilege", "token '%s' lacks on %s: "
			    "Datastore.AllocateTemplate (download the Talos ISO to node %s)\t%s",
			    cfg->proxmox.token_id, isos, n->name, "grant it on the ISO storage, "
			    "or upload the ISO to that storage by hand");
		if (layer0_has_priv(l0, np, "Sys.AccessNetwork") == 0 &&
		    !(layer0_has_priv(l0, "/", "Sys.Audit") == 1 &&
		      layer0_has_priv(l0, "/", "Sys.Modify") == 1)) {
			char *hint = grant_hint(cfg, np);

			add(pf, PF_ERROR, "privilege", "token '%s' lacks on %s: "
			    "Sys.AccessNetwork (download the Talos ISO, which node %s lacks)\t%s",
			    cfg->proxmox.token_id, np, n->name, hint);
			free(hint);
		}
		free(np);
	}
	for (i = 0; i < nd.n; i++)
		free(nd.v[i].path);
	free(nd.v);
	free(vms);
	free(disks);
	free(isos);
	free(bridge);
}

/* --- nodes, bridges, storages, CPU, memory ------------------------------ */

struct per_node {
	const char *node;
	int max_cores;
	const char *max_cores_vm;
	long long mem_mib;            /* every VM of ours on the node */
	long long new_disk_gib;       /* disks apply allocates there */
	size_t vms;
};

static struct per_node *
per_node_get(struct per_node **v, size_t *n, const char *node)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (!strcmp((*v)[i].node, node))
			return &(*v)[i];
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].node = node;
	return &(*v)[(*n)++];
}

static bool
ours(const struct plan *plan, int vmid)
{
	size_t i;

	for (i = 0; i < plan->n; i++)
		if (plan->v[i].want.vmid == vmid || plan->v[i].have.vmid == vmid)
			return true;
	return false;
}

static void
check_storage(struct preflight *pf, const struct config *cfg,
	      const struct l0_node *n, const char *storage, const char *content,
	      const char *key, const char *use)
{
	const struct l0_storage *s = layer0_storage(n, storage);

	if (!s) {
		add(pf, PF_ERROR, "storage", "storage '%s' (%s) is not on node %s, or the "
		    "token cannot see it\tchange %s to a storage node %s has (strata "
		    "hypervisor %s lists them), add the storage to that node "
		    "(Datacenter > Storage, or pvesm), or grant Datastore.Audit on "
		    "/storage/%s", storage, key, n->name, key, n->name, cfg->dir, storage);
		return;
	}
	if (!s->enabled) {
		add(pf, PF_ERROR, "storage", "storage '%s' (%s) is disabled\tenable it: "
		    "pvesm set %s --disable 0, or change %s", storage, key, storage, key);
		return;
	}
	if (!layer0_storage_has_content(s, content))
		add(pf, PF_ERROR, "storage", "storage '%s' (%s) does not allow content "
		    "'%s' (%s; it allows: %s)\tadd it: pvesm set %s --content %s%s%s, or "
		    "change %s", storage, key, content, use, s->content ? s->content : "none",
		    storage, s->content && *s->content ? s->content : "",
		    s->content && *s->content ? "," : "", content, key);
}

static void
check_nodes(struct preflight *pf, const struct config *cfg,
	    const struct plan *plan, const struct layer0 *l0)
{
	struct per_node *pn = NULL;
	size_t n_pn = 0, i, k;
	int ratio = cfg->proxmox.memory_warn_percent ? cfg->proxmox.memory_warn_percent : 100;
	long long shared_need = 0, shared_avail = -1;
	const struct l0_storage *shared_s = NULL;
	const char *shared_node = NULL;

	for (i = 0; i < cfg->proxmox.nodes.n; i++) {
		const char *name = cfg->proxmox.nodes.v[i];
		const struct l0_node *n = layer0_node(l0, name);

		if (!n)
			add(pf, PF_ERROR, "node", "Proxmox node '%s' (proxmox.nodes[%zu]) is not "
			    "in the cluster\tfix the name in proxmox.nodes (pvecm nodes lists "
			    "the cluster's nodes)", name, i);
	}
	for (i = 0; i < plan->n; i++) {
		const struct action *a = &plan->v[i];
		struct per_node *p;
		const struct field_change *d;

		if (!kept(a) || !a->want.node)
			continue;
		p = per_node_get(&pn, &n_pn, a->want.node);
		p->vms++;
		p->mem_mib += a->want.memory_mib;
		if (a->want.cores > p->max_cores) {
			p->max_cores = a->want.cores;
			p->max_cores_vm = a->want.name;
		}
		if (is_new(a))
			p->new_disk_gib += a->want.disk_gib;
		else if (a->kind == ACT_UPDATE && (d = change(a, "disk")) &&
			 a->want.disk_gib > a->have.disk_gib)
			p->new_disk_gib += a->want.disk_gib - a->have.disk_gib;
	}
	for (i = 0; i < n_pn; i++) {
		struct per_node *p = &pn[i];
		const struct l0_node *n = layer0_node(l0, p->node);
		const struct l0_bridge *b;
		const struct l0_storage *s;
		long long committed = 0;

		if (!n) {
			bool listed = false;

			for (k = 0; k < cfg->proxmox.nodes.n; k++)
				if (!strcmp(cfg->proxmox.nodes.v[k], p->node))
					listed = true;
			if (listed)
				continue;   /* reported as proxmox.nodes[k] */
			add(pf, PF_ERROR, "node", "node '%s', where %zu VM%s go, is not in the "
			    "cluster\tfix the placement in the config (strata validate %s "
			    "--nodes shows it) or the name in proxmox.nodes", p->node, p->vms,
			    p->vms == 1 ? "" : "s", cfg->dir);
			continue;
		}
		if (strcmp(n->status, "online")) {
			add(pf, PF_ERROR, "node", "node '%s', where %zu VM%s go, is %s\tbring it "
			    "back (pvecm status shows the cluster), or place the VMs elsewhere",
			    p->node, p->vms, p->vms == 1 ? "" : "s", n->status);
			continue;
		}
		/* bridge */
		b = layer0_bridge(n, cfg->proxmox.bridge);
		if (!b)
			add(pf, PF_ERROR, "bridge", "bridge '%s' (proxmox.bridge) does not exist "
			    "on node %s\tcreate it on %s: pvesh create /nodes/%s/network --iface "
			    "%s --type bridge --autostart 1 --bridge_ports PORT%s, then pvesh set "
			    "/nodes/%s/network; or change proxmox.bridge", cfg->proxmox.bridge,
			    n->name, n->name, n->name, cfg->proxmox.bridge,
			    cfg->proxmox.vlan ? " --bridge_vlan_aware 1" : "", n->name);
		else if (cfg->proxmox.vlan && !b->vlan_aware)
			add(pf, PF_ERROR, "bridge", "bridge '%s' on node %s is not VLAN-aware, and "
			    "proxmox.vlan is %d\tmake it VLAN-aware: pvesh set /nodes/%s/network/%s "
			    "--type bridge --bridge_vlan_aware 1, then pvesh set /nodes/%s/network "
			    "(Proxmox UI: %s > System > Network > %s > VLAN aware); or remove "
			    "proxmox.vlan", cfg->proxmox.bridge, n->name, cfg->proxmox.vlan,
			    n->name, cfg->proxmox.bridge, n->name, n->name, cfg->proxmox.bridge);
		/* storages */
		check_storage(pf, cfg, n, cfg->proxmox.disk_storage, "images",
			      "proxmox.storage.disks", "VM disks");
		if (cfg->n_nodes)
			check_storage(pf, cfg, n, cfg->proxmox.iso_storage, "iso",
				      "proxmox.storage.isos", "the Talos ISO");
		s = layer0_storage(n, cfg->proxmox.disk_storage);
		if (s && s->enabled && s->has_space && p->new_disk_gib) {
			if (s->shared) {
				/* one pool of space for every node */
				shared_need += p->new_disk_gib;
				shared_avail = s->avail;
				shared_s = s;
				shared_node = n->name;
			} else if (p->new_disk_gib * GIB > s->avail) {
				add(pf, layer0_storage_thin(s) ? PF_WARNING : PF_ERROR, "space",
				    "storage '%s' on node %s has %.1f GiB free, the new disks need "
				    "%lld GiB%s\tfree space on it, or change proxmox.storage.disks "
				    "or the disk sizes", s->storage, n->name,
				    (double)s->avail / (double)GIB, p->new_disk_gib,
				    layer0_storage_thin(s) ? " (a thin pool: disks take space as "
				    "they are written, so this is a warning)" : "");
			}
		}
		/* CPU and memory */
		if (!n->has_stats) {
			add(pf, PF_WARNING, "cpu", "node %s does not show its CPUs and memory to "
			    "this token, so they are not checked\tgrant Sys.Audit on /nodes/%s "
			    "to check them", n->name, n->name);
			continue;
		}
		if (p->max_cores > n->maxcpu)
			add(pf, PF_ERROR, "cpu", "VM '%s' asks for %d cores, node %s has %d "
			    "CPUs\tlower its cores (the node's pool in nodes: ...cores) or place "
			    "it on a bigger node", p->max_cores_vm, p->max_cores, n->name, n->maxcpu);
		if (p->mem_mib * MIB > n->maxmem) {
			add(pf, PF_ERROR, "memory", "the %zu VM%s on node %s ask for %lld MiB, the "
			    "node has %lld MiB\tlower their memory or spread them over more "
			    "nodes (placement, proxmox.nodes)", p->vms, p->vms == 1 ? "" : "s",
			    n->name, p->mem_mib, n->maxmem / MIB);
			continue;
		}
		for (k = 0; k < l0->n_vms; k++)
			if (l0->vms[k].node && !strcmp(l0->vms[k].node, n->name) &&
			    !ours(plan, l0->vms[k].vmid))
				committed += l0->vms[k].maxmem;
		committed += p->mem_mib * MIB;
		if (committed * 100 > n->maxmem * ratio)
			add(pf, PF_WARNING, "memory", "node %s: its VMs (others' and these) are "
			    "given %lld MiB, %lld%% of its %lld MiB\tVMs may swap or fail to "
			    "start; spread them out, or raise proxmox.memory_warn_percent "
			    "(now %d) to accept it", n->name, committed / MIB,
			    committed * 100 / n->maxmem, n->maxmem / MIB, ratio);
	}
	if (shared_s && shared_need * GIB > shared_avail)
		add(pf, layer0_storage_thin(shared_s) ? PF_WARNING : PF_ERROR, "space",
		    "shared storage '%s' (seen from node %s) has %.1f GiB free, the new "
		    "disks need %lld GiB\tfree space on it, or change proxmox.storage.disks "
		    "or the disk sizes", shared_s->storage, shared_node,
		    (double)shared_avail / (double)GIB, shared_need);
	free(pn);
}

/*
 * What strata sends needs Proxmox VE 8: a disk resize answers with a task
 * (UPID) only since qemu-server 8.0; in PVE 7 it is synchronous and
 * answers null (FACTS.md section 4, "Resize"), which strata would take
 * for a failure after the change was made.
 */
static void
check_version(struct preflight *pf, const struct layer0 *l0)
{
	if (!l0->version) {
		add(pf, PF_WARNING, "version", "the Proxmox VE version could not be "
		    "read (GET /version)\tcheck the token may read it; strata "
		    "needs Proxmox VE 8.0 or later");
		return;
	}
	if (l0->major < 8)
		add(pf, PF_ERROR, "version", "Proxmox VE %s: strata needs 8.0 or "
		    "later (before 8 a disk resize answers without a task)\t"
		    "upgrade the cluster to Proxmox VE 8 (pve7to8 checks it first)",
		    l0->version);
}

void
preflight_check(struct preflight *out, const struct config *cfg,
		const struct plan *plan, const struct layer0 *l0)
{
	memset(out, 0, sizeof(*out));
	check_version(out, l0);
	check_nodes(out, cfg, plan, l0);
	check_privileges(out, cfg, plan, l0);
	out->nodes_checked = l0->n_nodes;
	out->paths_checked = l0->n_perms;
}

void
preflight_release(struct preflight *pf)
{
	size_t i;

	for (i = 0; i < pf->n; i++) {
		free(pf->v[i].check);
		free(pf->v[i].what);
		free(pf->v[i].fix);
	}
	free(pf->v);
	memset(pf, 0, sizeof(*pf));
}

void
preflight_print(const struct preflight *pf)
{
	size_t i;

	for (i = 0; i < pf->n; i++) {
		const struct pf_problem *p = &pf->v[i];

		if (p->level == PF_ERROR)
			out_error("preflight: %s: %s", p->what, p->fix);
		else
			out_warn("preflight: %s: %s", p->what, p->fix);
	}
}

json_t *
preflight_to_json(const struct preflight *pf)
{
	json_t *o = json_object(), *list = json_array();
	size_t i;

	for (i = 0; i < pf->n; i++)
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}",
			"level", pf->v[i].level == PF_ERROR ? "error" : "warning",
			"check", pf->v[i].check, "what", pf->v[i].what, "fix", pf->v[i].fix));
	json_object_set_new(o, "ok", json_boolean(pf->errors == 0));
	json_object_set_new(o, "errors", json_integer((json_int_t)pf->errors));
	json_object_set_new(o, "warnings", json_integer((json_int_t)pf->warnings));
	json_object_set_new(o, "problems", list);
	return o;
}
