#include "config/schema.h"

#include <libfyaml.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/decode.h"
#include "util/buf.h"

#define FLD(k, t, st, m, doc_) { .key = k, .type = t, .off = offsetof(st, m), .doc = doc_ }
#define FINT(k, st, m, lo, hi, doc_) \
	{ .key = k, .type = T_INT, .off = offsetof(st, m), .min = lo, .max = hi, .doc = doc_ }
#define FSIZE(k, t, st, m, lo, hi, doc_) \
	{ .key = k, .type = t, .off = offsetof(st, m), .min = lo, .max = hi, .doc = doc_ }
#define FENUM(k, st, m, e, doc_) \
	{ .key = k, .type = T_ENUM, .off = offsetof(st, m), .enums = e, .doc = doc_ }
#define FMAP(k, st, m, s, doc_) \
	{ .key = k, .type = T_MAP, .off = offsetof(st, m), .sub = &s, .doc = doc_ }
#define FSAME(k, s, doc_) { .key = k, .type = T_MAP, .off = 0, .sub = &s, .doc = doc_ }
#define FLIST(k, st, m, nm, s, doc_) \
	{ .key = k, .type = T_LIST, .off = offsetof(st, m), .off2 = offsetof(st, nm), .sub = &s, .doc = doc_ }
#define FCUSTOM(k, st, m, f, doc_) \
	{ .key = k, .type = T_CUSTOM, .off = offsetof(st, m), .fn = f, .doc = doc_ }
#define FEND { .key = NULL }

static const char *const platforms[] = { "proxmox", "vps", NULL };
static const char *const discoveries[] = { "guest-agent", "dhcp-lease",
					   "static", NULL };
static const char *const first_boots[] = { "cidata", "maintenance", NULL };
static const char *const cnis[] = { "cilium", "flannel", "none", NULL };
static const char *const restarts[] = { "rolling", "never", NULL };
static const char *const vm_clones[] = { "full", "linked", NULL };

/* --- proxmox ------------------------------------------------------------ */

static const struct field tls_fields[] = {
	FLD("ca_file", T_STR, struct tls_config, ca_file,
	    "PEM file of the CA that signed the API certificate"),
	FLD("fingerprint", T_STR, struct tls_config, fingerprint,
	    "pinned SHA-256 fingerprint of the API certificate (hex, colons optional)"),
	FLD("insecure", T_BOOL, struct tls_config, insecure,
	    "skip certificate verification (warned about; never the default)"),
	FEND
};
static const struct schema tls_schema = { "tls", tls_fields, 0 };

static const struct field storage_fields[] = {
	FLD("disks", T_STR, struct proxmox_config, disk_storage,
	    "storage for VM disks (default local-lvm)"),
	FLD("isos", T_STR, struct proxmox_config, iso_storage,
	    "storage holding ISO images (default local)"),
	FEND
};
static const struct schema storage_schema = { "storage", storage_fields, 0 };

static const struct field vmid_fields[] = {
	FINT("base", struct proxmox_config, vmid_base, 100, 999999000,
	     "first VM id this environment owns"),
	FINT("count", struct proxmox_config, vmid_count, 1, 100000,
	     "number of VM ids owned: [base, base+count) (default 100)"),
	FEND
};
static const struct schema vmid_schema = { "vmid", vmid_fields, 0 };

static const struct field proxmox_fields[] = {
	FLD("endpoint", T_URL, struct proxmox_config, endpoint,
	    "API URL, e.g. https://pve1.lan:8006"),
	FLD("token_id", T_STR, struct proxmox_config, token_id,
	    "API token id: USER@REALM!TOKENID"),
	FLD("token_secret", T_SECRET, struct proxmox_config, token_secret,
	    "API token secret: ${ENV_VAR}, file:PATH or plain text (warned)"),
	FMAP("tls", struct proxmox_config, tls, tls_schema,
	     "how the API certificate is verified: exactly one of its keys"),
	FLD("nodes", T_STR_OR_LIST, struct proxmox_config, nodes,
	    "Proxmox cluster nodes VMs may be placed on"),
	FLD("pool", T_STR, struct proxmox_config, pool,
	    "resource pool the VMs join (optional)"),
	FSAME("storage", storage_schema, "storage names"),
	FLD("image_factory", T_STR, struct proxmox_config, image_factory,
	    "Image Factory the Talos ISO comes from (default https://factory.talos.dev)"),
	FLD("bridge", T_STR, struct proxmox_config, bridge,
	    "network bridge (default vmbr0)"),
	FINT("vlan", struct proxmox_config, vlan, 1, 4094,
	     "VLAN tag for VM NICs (optional)"),
	FSAME("vmid", vmid_schema, "VM id range owned by this environment"),
	FLD("cpu_type", T_STR, struct proxmox_config, cpu_type,
	    "QEMU CPU type (default x86-64-v2-AES, which Talos needs at least)"),
	FENUM("restart", struct proxmox_config, restart, restarts,
	      "changes that wait for a VM restart (cores, memory): rolling restarts "
	      "the VMs one at a time, each waited for until healthy (default); never "
	      "leaves them pending"),
	FENUM("first_boot", struct proxmox_config, first_boot, first_boots,
	      "how a new node gets its first machine config: cidata (default; "
	      "an ISO through the API, nothing on the network) or maintenance"),
	FINT("memory_warn_percent", struct proxmox_config, memory_warn_percent, 1, 1000,
	     "preflight warns when the VMs of a node (strata's and others') are given "
	     "more than this percent of its memory (default 100)"),
	FEND
};
static const struct schema proxmox_schema = { "proxmox", proxmox_fields, 0 };

/* --- vps ---------------------------------------------------------------- */

static const struct field vps_ssh_fields[] = {
	FLD("user", T_STR, struct vps_config, ssh_user, "SSH user in rescue mode (default root)"),
	FINT("port", struct vps_config, ssh_port, 1, 65535, "SSH port (default 22)"),
	FLD("key_file", T_STR, struct vps_config, ssh_key_file, "private key file"),
	FLD("host_fingerprint", T_STR, struct vps_config, ssh_host_fingerprint,
	    "rescue system host key, SHA256:... as ssh-keygen -lf prints it"),
	FEND
};
static const struct schema vps_ssh_schema = { "ssh", vps_ssh_fields, 0 };

static const struct field vps_fields[] = {
	FLD("host", T_IPV4, struct vps_config, host, "public IPv4 address of the server"),
	FSAME("ssh", vps_ssh_schema, "how to reach the rescue system"),
	FLD("rescue", T_STR, struct vps_config, rescue,
	    "rescue system flavour: generic (default) or hetzner"),
	FLD("disk", T_STR, struct vps_config, disk, "disk the image is written to (default /dev/sda)"),
	FLD("image_factory", T_STR, struct vps_config, image_factory,
	    "Image Factory the metal image comes from (default https://factory.talos.dev)"),
	FEND
};
static const struct schema vps_schema = { "vps", vps_fields, 0 };

/* --- talos -------------------------------------------------------------- */

static int
decode_patches(struct dctx *c, struct fy_node *n, void *dst, const char *path)
{
	struct talos_config *t = (void *)((char *)dst -
					  offsetof(struct talos_config, patches));
	struct buf p = BUF_INIT;
	struct fy_node *item;
	void *it = NULL;
	size_t i = 0;

	if (fy_node_is_null(n))
		return 0;
	if (fy_node_get_type(n) != FYNT_SEQUENCE) {
		decode_error(c, n, path,
			     "expected a list of patches (file names or "
			     "inline mappings)");
		return -1;
	}
	t->patches = xcalloc((size_t)fy_node_sequence_item_count(n) + 1,
			     sizeof(*t->patches));
	while ((item = fy_node_sequence_iterate(n, &it))) {
		struct talos_patch *tp = &t->patches[t->n_patches];

		buf_reset(&p);
		buf_addf(&p, "%s[%zu]", path, i++);
		decode_node_pos(item, &tp->line, &tp->col);
		if (fy_node_get_type(item) == FYNT_SCALAR) {
			const char *s = fy_node_get_scalar0(item);

			if (!s || !*s) {
				decode_error(c, item, p.ptr, "empty patch file name");
				continue;
			}
			tp->file = xstrdup(s);
		} else if (fy_node_get_type(item) == FYNT_MAPPING) {
			char *y = fy_emit_node_to_string(
				item, FYECF_MODE_BLOCK | FYECF_INDENT_2 |
					      FYECF_WIDTH_INF);

			if (!y) {
				decode_error(c, item, p.ptr, "cannot re-encode inline patch");
				continue;
			}
			tp->inline_yaml = xstrdup(y);
			free(y);
		} else {
			decode_error(c, item, p.ptr,
				     "expected a file name or an inline mapping");
			continue;
		}
		t->n_patches++;
	}
	buf_release(&p);
	return 0;
}

static const struct field schematic_fields[] = {
	FLD("id", T_STR, struct talos_config, schematic_id,
	    "Image Factory schematic id (64 hex digits)"),
	FLD("extensions", T_STRLIST, struct talos_config, extensions,
	    "official system extensions; the id is computed from them"),
	FLD("kernel_args", T_STRLIST, struct talos_config, kernel_args,
	    "extra kernel arguments baked into the schematic"),
	FEND
};
static const struct schema schematic_schema = { "schematic", schematic_fields, 0 };

static const struct field talos_fields[] = {
	FLD("version", T_STR, struct talos_config, version,
	    "Talos version, e.g. v1.12.11 (v1.12 and v1.13 supported)"),
	FSAME("schematic", schematic_schema, "Image Factory schematic"),
	FLD("install_disk", T_STR, struct talos_config, install_disk,
	    "disk Talos installs to (default /dev/sda)"),
	FLD("installer_image", T_STR, struct talos_config, installer_image,
	    "installer image; default factory.talos.dev/<platform>-installer/<id>:<version>"),
	FCUSTOM("patches", struct talos_config, patches, decode_patches,
		"machine-config patches applied to every node, last: file names "
		"(relative to the env folder) or inline mappings"),
	FEND
};
static const struct schema talos_schema = { "talos", talos_fields, 0 };

/* --- kubernetes --------------------------------------------------------- */

/* kubernetes.cni.values: a mapping of Helm values, kept as JSON. */
static int
decode_json_map(struct dctx *c, struct fy_node *n, void *dst, const char *path)
{
	char *s;

	if (fy_node_is_null(n))
		return 0;
	if (fy_node_get_type(n) != FYNT_MAPPING) {
		decode_error(c, n, path, "expected a mapping of Helm values");
		return -1;
	}
	if (!(s = fy_emit_node_to_string(n, FYECF_MODE_JSON_ONELINE |
					     FYECF_WIDTH_INF))) {
		decode_error(c, n, path, "cannot re-encode the values");
		return -1;
	}
	free(*(char **)dst);
	*(char **)dst = xstrdup(s);
	free(s);
	return 0;
}

static const struct field cni_fields[] = {
	FENUM("name", struct kubernetes_config, cni, cnis,
	      "cilium (default), flannel (Talos built-in) or none"),
	FLD("version", T_STR, struct kubernetes_config, cni_version,
	    "Cilium chart version (default 1.18.4)"),
	FCUSTOM("values", struct kubernetes_config, cni_values, decode_json_map,
		"Helm values merged over strata's Cilium values (cilium only)"),
	FLD("helm_image", T_STR, struct kubernetes_config, cni_helm_image,
	    "image with helm that installs Cilium (default " DEFAULT_HELM_IMAGE ")"),
	FEND
};
static const struct schema cni_schema = { "cni", cni_fields, 0 };

static const struct field kubernetes_fields[] = {
	FLD("cluster_name", T_NAME, struct kubernetes_config, cluster_name,
	    "cluster name (default: the environment name)"),
	FLD("version", T_STR, struct kubernetes_config, version,
	    "Kubernetes version (default: the Talos version's default)"),
	FLD("endpoint", T_URL, struct kubernetes_config, endpoint,
	    "API endpoint (default https://<vip or first control plane>:6443)"),
	FLD("vip", T_IPV4, struct kubernetes_config, vip,
	    "shared virtual IP of the control planes (needed for more than one)"),
	FLD("pod_subnet", T_CIDR, struct kubernetes_config, pod_subnet,
	    "pod network (default 10.244.0.0/16)"),
	FLD("service_subnet", T_CIDR, struct kubernetes_config, service_subnet,
	    "service network (default 10.96.0.0/12)"),
	FLD("dns_domain", T_STR, struct kubernetes_config, dns_domain,
	    "cluster DNS domain (default cluster.local)"),
	FSAME("cni", cni_schema, "network plugin"),
	FLD("allow_scheduling_on_controlplanes", T_BOOL, struct kubernetes_config,
	    allow_scheduling_on_controlplanes,
	    "run workloads on control planes (default: true when there are no workers)"),
	FLD("manifests_prune", T_BOOL, struct kubernetes_config, manifests_prune,
	    "Talos v1.13+: after a Kubernetes upgrade delete the bootstrap-manifest "
	    "objects strata applied before that Talos no longer renders (default true)"),
	FEND
};
static const struct schema kubernetes_schema = { "kubernetes", kubernetes_fields, 0 };

/* --- network ------------------------------------------------------------ */

static const struct field network_fields[] = {
	FLD("cidr", T_CIDR, struct network_config, cidr, "node network, e.g. 10.0.0.0/24"),
	FLD("gateway", T_IPV4, struct network_config, gateway, "default gateway"),
	FLD("gateway_onlink", T_BOOL, struct network_config, gateway_onlink,
	    "gateway lies outside the CIDR and is reached on-link (some VPS providers)"),
	FLD("nameservers", T_STRLIST, struct network_config, nameservers,
	    "DNS servers (default: the gateway)"),
	FENUM("discovery", struct network_config, discovery, discoveries,
	      "how a new VM's maintenance address is found: guest-agent "
	      "(default on proxmox), dhcp-lease, or static"),
	FEND
};
static const struct schema network_schema = { "network", network_fields, 0 };

/* --- nodes -------------------------------------------------------------- */

static const struct field node_fields[] = {
	FLD("name", T_NAME, struct node, name, "node (and VM) name"),
	FLD("ip", T_IPV4, struct node, ip, "static IPv4 address"),
	FLD("mac", T_MAC, struct node, mac, "static MAC address (optional)"),
	FINT("vmid", struct node, vmid, 100, 999999999, "Proxmox VM id (optional)"),
	FLD("placement", T_STR, struct node, placement, "Proxmox node to run on"),
	FINT("cores", struct node, cores, 1, 512, "vCPU cores"),
	FSIZE("memory", T_MIB, struct node, memory_mib, 512, 4194304, "memory (MiB or with a unit)"),
	FSIZE("disk", T_GIB, struct node, disk_gib, 4, 65536, "disk size (GiB or with a unit)"),
	FLD("install_disk", T_STR, struct node, install_disk, "overrides talos.install_disk"),
	FEND
};
static const struct schema node_schema = { "node", node_fields, sizeof(struct node) };

static const struct field pool_fields[] = {
	FINT("count", struct node_pool, count, 0, 1000,
	     "number of nodes (must match the list when both are given)"),
	FINT("cores", struct node_pool, cores, 1, 512, "vCPU cores per node"),
	FSIZE("memory", T_MIB, struct node_pool, memory_mib, 512, 4194304,
	      "memory per node (MiB, or with a unit: 8GiB)"),
	FSIZE("disk", T_GIB, struct node_pool, disk_gib, 4, 65536,
	      "disk per node (GiB, or with a unit: 100GiB)"),
	FLD("ip_start", T_IPV4, struct node_pool, ip_start,
	    "first address; node i gets ip_start + i"),
	FLD("prefix", T_NAME, struct node_pool, prefix,
	    "node name prefix (default <name>-cp / <name>-w); nodes are <prefix>-1, -2, ..."),
	FLD("placement", T_STR_OR_LIST, struct node_pool, placement,
	    "Proxmox node(s) for this pool, round-robin (default proxmox.nodes)"),
	FLIST("nodes", struct node_pool, list, n_list, node_schema,
	      "explicit nodes, each with name, ip and optional overrides"),
	FEND
};
static const struct schema pool_schema = { "pool", pool_fields, 0 };

static const struct field nodes_fields[] = {
	FMAP("controlplane", struct config, cp_pool, pool_schema, "control-plane pool"),
	FMAP("workers", struct config, worker_pool, pool_schema, "worker pool"),
	FEND
};
static const struct schema nodes_schema = { "nodes", nodes_fields, 0 };

/* --- gitops and components ---------------------------------------------- */

static const struct field sops_fields[] = {
	FLD("identity", T_SECRET, struct gitops_config, sops_identity,
	    "age identity (AGE-SECRET-KEY-1...) for the cluster: file:PATH or ${ENV_VAR}; default: generated once into ENV/sops.agekey"),
	FLD("recipients", T_STRLIST, struct gitops_config, sops_recipients,
	    "more age recipients (age1...) the secrets are encrypted to, e.g. yours"),
	FEND
};
static const struct schema sops_schema = { "sops", sops_fields, 0 };

static const struct field gitops_fields[] = {
	FLD("repo", T_URL, struct gitops_config, repo, "Git repository URL (https:// or ssh://)"),
	FLD("branch", T_STR, struct gitops_config, branch, "branch (default main)"),
	FLD("path", T_STR, struct gitops_config, path,
	    "folder in the repo holding flux/, platform/ and apps/ (default cluster/kubernetes)"),
	FLD("interval", T_DURATION, struct gitops_config, interval, "sync interval (default 5m)"),
	FLD("token", T_SECRET, struct gitops_config, token,
	    "access token for a private https repo: ${ENV_VAR} or file:PATH"),
	FLD("local_path", T_STR, struct gitops_config, local_path,
	    "folder strata gen writes the GitOps tree into, relative to ENV (default gitops)"),
	FSAME("sops", sops_schema, "SOPS encryption of the secrets in the tree"),
	FLD("known_hosts", T_STR, struct gitops_config, known_hosts,
	    "the Git server's host key lines (ssh-keyscan output); needed for ssh://"),
	FEND
};
static const struct schema gitops_schema = { "gitops", gitops_fields, 0 };

static const struct field nfs_fields[] = {
	FLD("server", T_STR, struct components_config, nfs_server, "NFS server address"),
	FLD("path", T_STR, struct components_config, nfs_path, "exported path"),
	FEND
};
static const struct schema nfs_schema = { "nfs", nfs_fields, 0 };

static const struct field storage_comp_fields[] = {
	FLD("longhorn", T_BOOL, struct components_config, longhorn,
	    "Longhorn replicated block storage (adds iscsi-tools and util-linux-tools extensions)"),
	FSAME("nfs", nfs_schema, "NFS subdir provisioner storage class"),
	FINT("longhorn_replicas", struct components_config, longhorn_replicas, 1, 16,
	     "Longhorn replicas per volume (default 2; at most the number of workers)"),
	FEND
};
static const struct schema storage_comp_schema = { "storage", storage_comp_fields, 0 };

static const struct field tunnel_fields[] = {
	FLD("provider", T_STR, struct components_config, tunnel, "cloudflared"),
	FLD("token", T_SECRET, struct components_config, tunnel_token,
	    "tunnel token: ${ENV_VAR} or file:PATH"),
	FEND
};
static const struct schema tunnel_schema = { "tunnel", tunnel_fields, 0 };

static const struct field components_fields[] = {
	FSAME("storage", storage_comp_schema, "storage classes"),
	FLD("ingress", T_STR, struct components_config, ingress, "ingress: nginx (ingress-nginx, retired upstream), none, or gateway (Gateway API through Cilium)"),
	FSAME("tunnel", tunnel_schema, "tunnel to the outside"),
	FLD("monitoring", T_BOOL, struct components_config, monitoring,
	    "kube-prometheus-stack"),
	FLD("metrics_server", T_BOOL, struct components_config, metrics_server,
	    "metrics-server"),
	FLD("cert_manager", T_BOOL, struct components_config, cert_manager,
	    "cert-manager (with its CRDs)"),
	FINT("replicas", struct components_config, replicas, 1, 9,
	     "replicas of each platform controller (default 1; 3 with 3 or more control planes)"),
	FEND
};
static const struct schema components_schema = { "components", components_fields, 0 };

/* --- cloud-init VMs ----------------------------------------------------- */

static int
decode_vars(struct dctx *c, struct fy_node *n, void *dst, const char *path)
{
	struct vm_config *vm = (void *)((char *)dst - offsetof(struct vm_config, vars));
	struct fy_node_pair *pair;
	void *it = NULL;

	if (fy_node_is_null(n))
		return 0;
	if (fy_node_get_type(n) != FYNT_MAPPING) {
		decode_error(c, n, path, "expected a mapping of variables");
		return -1;
	}
	vm->vars = xcalloc((size_t)fy_node_mapping_item_count(n) + 1,
			   sizeof(*vm->vars));
	while ((pair = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *k = fy_node_pair_key(pair);
		struct fy_node *v = fy_node_pair_value(pair);
		const char *key = k ? fy_node_get_scalar0(k) : NULL;
		char *val;

		if (!key) {
			decode_error(c, k, path, "variable names must be strings");
			continue;
		}
		val = v ? fy_emit_node_to_string(v, FYECF_MODE_FLOW_ONELINE |
							    FYECF_WIDTH_INF)
			: NULL;
		vm->vars[vm->n_vars].key = xstrdup(key);
		vm->vars[vm->n_vars].value = xstrdup(val ? val : "");
		/* The emitter ends documents with a newline; values are one line. */
		{
			char *nl = strchr(vm->vars[vm->n_vars].value, '\n');

			if (nl)
				*nl = '\0';
		}
		free(val);
		vm->n_vars++;
	}
	return 0;
}

static const struct field ansible_fields[] = {
	FLD("groups", T_STRLIST, struct vm_config, groups, "inventory groups"),
	FCUSTOM("vars", struct vm_config, vars, decode_vars, "host variables"),
	FEND
};
static const struct schema ansible_schema = { "ansible", ansible_fields, 0 };

static const struct field vm_fields[] = {
	FLD("name", T_NAME, struct vm_config, name, "VM name and hostname"),
	FINT("template", struct vm_config, template_vmid, 100, 999999999,
	     "VM id of a cloud-init template to clone"),
	FENUM("clone", struct vm_config, clone, vm_clones,
	      "full (default: a copy on proxmox.storage.disks) or linked (shares "
	      "the template's base disk, on its storage and node)"),
	FLD("image", T_URL, struct vm_config, image,
	    "cloud image URL to import instead of a template"),
	FLD("image_sha256", T_STR, struct vm_config, image_sha256,
	    "SHA-256 of the image (64 hex digits), checked when Proxmox downloads it"),
	FINT("cores", struct vm_config, cores, 1, 512, "vCPU cores (default 2)"),
	FSIZE("memory", T_MIB, struct vm_config, memory_mib, 256, 4194304, "memory (default 2GiB)"),
	FSIZE("disk", T_GIB, struct vm_config, disk_gib, 2, 65536, "disk (default 20GiB)"),
	FLD("ip", T_IPV4, struct vm_config, ip, "static IPv4 address"),
	FLD("mac", T_MAC, struct vm_config, mac, "static MAC address (optional)"),
	FINT("vmid", struct vm_config, vmid, 100, 999999999, "VM id (optional)"),
	FLD("placement", T_STR, struct vm_config, placement, "Proxmox node"),
	FLD("user", T_STR, struct vm_config, user, "login user created by cloud-init (default debian)"),
	FLD("ssh_keys", T_STRLIST, struct vm_config, ssh_keys, "authorized SSH public keys"),
	FLD("packages", T_STRLIST, struct vm_config, packages, "packages cloud-init installs"),
	FLD("search_domains", T_STRLIST, struct vm_config, search_domains,
	    "DNS search domains (default: none)"),
	FSAME("ansible", ansible_schema, "Ansible inventory hand-off"),
	FEND
};
static const struct schema vm_schema = { "vm", vm_fields, sizeof(struct vm_config) };

/* --- firewall ----------------------------------------------------------- */

static const struct field firewall_fields[] = {
	FLD("admin_cidrs", T_STRLIST, struct firewall_config, admin_cidrs,
	    "networks (CIDR) that may reach the Talos API (50000) and the Kubernetes API (6443)"),
	FLD("allow_admin_from_anywhere", T_BOOL, struct firewall_config, allow_admin_from_anywhere,
	    "true: no admin_cidrs, both APIs open to any address (refused on vps otherwise)"),
	FLD("open_ports", T_STRLIST, struct firewall_config, open_ports,
	    "ports open to any address, as PORT/PROTO or LO-HI/PROTO (tcp, udp)"),
	FLD("try_timeout", T_DURATION, struct firewall_config, try_timeout,
	    "how long Talos keeps a firewall change on trial before reverting it (10s-10m, default 1m)"),
	FLD("strata_address", T_IPV4, struct firewall_config, strata_address,
	    "the address the nodes see strata connect from, when a NAT or VPN rewrites it (default: strata's own toward each node); must be in admin_cidrs"),
	FEND
};
static const struct schema firewall_schema = { "firewall", firewall_fields, 0 };

/* --- backup ------------------------------------------------------------- */

static const struct field backup_fields[] = {
	FLD("recipients", T_STRLIST, struct backup_config, recipients,
	    "age recipients (age1...) that can open 'strata backup' archives"),
	FLD("passphrase", T_SECRET, struct backup_config, passphrase,
	    "or a passphrase (scrypt) instead of recipients"),
	FLD("etcd_before_changes", T_BOOL, struct backup_config, etcd_before_changes,
	    "apply takes an etcd snapshot (ENV/etcd/) before any disruptive step (default true)"),
	FEND
};
static const struct schema backup_schema = { "backup", backup_fields, 0 };

/* --- history ------------------------------------------------------------ */

static const struct field history_fields[] = {
	FINT("keep", struct history_config, keep, 1, 100000,
	     "how many apply/destroy records ENV/history keeps (default 50)"),
	FEND
};
static const struct schema history_schema = { "history", history_fields, 0 };

/* --- top level ---------------------------------------------------------- */

static const struct field top_fields[] = {
	{ .key = "name", .type = T_NAME, .off = offsetof(struct config, name),
	  .flags = F_REQUIRED, .doc = "environment name (DNS label); VMs are tagged strata-<name>" },
	{ .key = "platform", .type = T_ENUM, .off = offsetof(struct config, platform),
	  .enums = platforms, .flags = F_REQUIRED, .doc = "proxmox or vps" },
	FMAP("proxmox", struct config, proxmox, proxmox_schema, "Proxmox VE connection and placement"),
	FMAP("vps", struct config, vps, vps_schema, "bare VPS reached in rescue mode"),
	FMAP("talos", struct config, talos, talos_schema, "Talos Linux"),
	FMAP("kubernetes", struct config, kubernetes, kubernetes_schema, "Kubernetes"),
	FMAP("network", struct config, network, network_schema, "node network"),
	FSAME("nodes", nodes_schema, "node pools"),
	FMAP("backup", struct config, backup, backup_schema,
	     "encrypted backups of the env folder (strata backup)"),
	FMAP("history", struct config, history, history_schema,
	     "the record of every apply and destroy in ENV/history"),
	FMAP("firewall", struct config, firewall, firewall_schema,
	     "Talos host firewall (always on vps; on proxmox when given)"),
	FMAP("gitops", struct config, gitops, gitops_schema, "Flux GitOps"),
	FMAP("components", struct config, components, components_schema,
	     "platform components, as toggles"),
	FLIST("vms", struct config, vms, n_vms, vm_schema, "plain cloud-init VMs handed to Ansible"),
	FEND
};

const struct schema config_schema = { "config", top_fields, 0 };

static const char *
type_name(const struct field *f)
{
	switch (f->type) {
	case T_STR: return "string";
	case T_NAME: return "name";
	case T_INT: return "integer";
	case T_BOOL: return "bool";
	case T_ENUM: return "enum";
	case T_IPV4: return "IPv4";
	case T_CIDR: return "CIDR";
	case T_MAC: return "MAC";
	case T_URL: return "URL";
	case T_MIB: return "size (MiB)";
	case T_GIB: return "size (GiB)";
	case T_STRLIST: return "list of strings";
	case T_STR_OR_LIST: return "string or list";
	case T_SECRET: return "secret";
	case T_DURATION: return "duration";
	case T_MAP: return "mapping";
	case T_LIST: return "list of mappings";
	case T_CUSTOM: return "see docs";
	}
	return "?";
}

static void
print_schema(FILE *fp, const struct schema *s, const char *prefix)
{
	const struct field *f;

	for (f = s->fields; f->key; f++) {
		char *path = prefix[0] ? xasprintf("%s.%s", prefix, f->key)
				       : xstrdup(f->key);

		if (f->type == T_LIST) {
			char *lp = xasprintf("%s[]", path);

			fprintf(fp, "%-48s %-16s %s\n", path, type_name(f), f->doc);
			print_schema(fp, f->sub, lp);
			free(lp);
		} else if (f->type == T_MAP) {
			fprintf(fp, "%-48s %-16s %s\n", path, type_name(f), f->doc);
			print_schema(fp, f->sub, path);
		} else {
			fprintf(fp, "%-48s %-16s %s", path, type_name(f), f->doc);
			if (f->type == T_INT)
				fprintf(fp, " [%ld..%ld]", f->min, f->max);
			if (f->type == T_ENUM) {
				size_t i;

				fprintf(fp, " {");
				for (i = 0; f->enums[i]; i++)
					fprintf(fp, "%s%s", i ? "|" : "", f->enums[i]);
				fprintf(fp, "}");
			}
			fprintf(fp, "\n");
		}
		free(path);
	}
}

void
schema_print_keys(FILE *fp)
{
	print_schema(fp, &config_schema, "");
}
