/*
 * config: environments/<env>/config.yml loaded into a typed struct.
 *
 * config_load parses with libfyaml, decodes against the schema table in
 * config_schema.c (types, ranges, unknown keys), fills defaults, then runs
 * the semantic checks of config_validate.c. Every problem becomes a
 * diagnostic "FILE:LINE:COL: error: PATH: message"; all of them are
 * collected in one run. The struct is valid only when diag has no errors.
 *
 * Ownership: everything hangs off struct config and is freed by
 * config_free (NULL-safe). Nothing here knows about HTTP or Proxmox calls.
 */
#ifndef STRATA_CONFIG_CONFIG_H
#define STRATA_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/diag.h"

struct fy_document;
struct fy_node;

/* Enum values index the names in schema.c; UNSET marks "not in the file". */
enum platform { PLATFORM_UNSET = -1, PLATFORM_PROXMOX = 0, PLATFORM_VPS };
/* How a new Proxmox VM gets its first machine config (docs/bootstrap.md). */
enum first_boot { FIRST_BOOT_UNSET = -1, FIRST_BOOT_CIDATA = 0,
		  FIRST_BOOT_MAINTENANCE };
enum discovery { DISCOVERY_UNSET = -1, DISCOVERY_GUEST_AGENT = 0,
		 DISCOVERY_DHCP_LEASE, DISCOVERY_STATIC };
/* The image the Cilium install Job runs helm from (pinned; the tag is the
 * helm version). */
#define DEFAULT_HELM_IMAGE "docker.io/alpine/helm:3.19.0"

enum cni { CNI_UNSET = -1, CNI_CILIUM = 0, CNI_FLANNEL, CNI_NONE };
/* proxmox.restart: how apply restarts VMs whose changes wait for a restart */
enum restart_policy { RESTART_ROLLING = 0, RESTART_NEVER };
enum node_role { ROLE_CONTROLPLANE = 0, ROLE_WORKER };

/* A secret: "${VAR}", "file:PATH" or a literal. The value is resolved only
 * when a command needs it (config_secret_resolve), never printed. */
struct secret_ref {
	enum { SECRET_NONE = 0, SECRET_LITERAL, SECRET_ENV, SECRET_FILE } kind;
	char *text;        /* literal value, variable name or file path */
};

struct str_list {
	char **v;
	size_t n;
};

struct tls_config {
	char *ca_file;
	char *fingerprint;  /* SHA-256, 64 hex digits, colons removed, lowercase */
	bool insecure;
};

struct proxmox_config {
	char *endpoint;            /* https://host:8006 */
	char *token_id;            /* user@realm!tokenid */
	struct secret_ref token_secret;
	struct tls_config tls;
	struct str_list nodes;     /* Proxmox cluster nodes VMs may go on */
	char *pool;                /* optional resource pool */
	char *disk_storage;        /* storage.disks */
	char *iso_storage;         /* storage.isos */
	char *image_factory;       /* Image Factory the Talos ISO comes from */
	char *bridge;
	int vlan;                  /* 0 = untagged */
	int vmid_base;             /* first VM id this env owns */
	int vmid_count;            /* ids [base, base+count) */
	char *cpu_type;            /* default x86-64-v2-AES */
	enum restart_policy restart; /* default rolling */
	enum first_boot first_boot; /* default cidata */
	int memory_warn_percent;   /* preflight: warn above this commit (0 = 100) */
};

struct vps_config {
	char *host;                /* public address reached over SSH */
	char *ssh_user;
	int ssh_port;
	char *ssh_key_file;
	char *ssh_host_fingerprint; /* SHA256:... as ssh-keygen prints */
	char *rescue;              /* provider rescue flavour: "hetzner", "generic" */
	char *disk;                /* target disk, e.g. /dev/sda */
	char *image_factory;       /* Image Factory base URL, https://factory.talos.dev */
};

/* The Talos host firewall (NetworkDefaultActionConfig + NetworkRuleConfig),
 * always generated on platform vps, on proxmox when the section is given. */
struct firewall_config {
	struct str_list admin_cidrs;    /* may reach 50000 (apid) and 6443 */
	bool allow_admin_from_anywhere; /* the words that allow no admin_cidrs */
	struct str_list open_ports;     /* "443/tcp", "30000-32767/udp": from anywhere */
	char *try_timeout;              /* TRY mode's try_mode_timeout; NULL: 1m */
	char *strata_address;           /* the address the nodes see strata
					 * connect from (a NAT's, a VPN's);
					 * NULL: strata's own toward each node */
	bool given;                     /* the section is in config.yml (set while
					 * validating: cfg->doc must not be read
					 * after config_load, its text is gone) */
};

/* strata backup: who can open the encrypted env archives. */
struct backup_config {
	struct str_list recipients;     /* age X25519 recipients, age1... */
	struct secret_ref passphrase;   /* or one passphrase (scrypt) */
	bool etcd_before_changes;       /* apply snapshots etcd before a
	                                 * disruptive step (default true) */
};

/* ENV/history: how many entries are kept (default 50). */
struct history_config {
	int keep;
};

struct talos_patch {
	char *file;                /* relative to the env folder, or NULL */
	char *inline_yaml;         /* emitted YAML of an inline patch, or NULL */
	int line, col;             /* where it was written, for errors */
};

struct talos_config {
	char *version;             /* "v1.12.11" */
	int minor;                 /* 12 */
	char *schematic_id;        /* 64 hex; computed from extensions if unset */
	struct str_list extensions;
	struct str_list kernel_args;
	char *install_disk;        /* default /dev/sda (proxmox: /dev/sda, vps: vps.disk) */
	char *installer_image;     /* computed unless given */
	struct talos_patch *patches;
	size_t n_patches;
};

struct kubernetes_config {
	char *cluster_name;
	char *version;             /* "1.35.4" (no leading v) */
	char *endpoint;            /* https://VIP:6443 */
	char *vip;                 /* IPv4 or NULL */
	char *pod_subnet;
	char *service_subnet;
	char *dns_domain;
	enum cni cni;
	char *cni_version;         /* cilium chart version */
	char *cni_values;          /* kubernetes.cni.values as one-line JSON, or NULL */
	char *cni_helm_image;      /* image running helm in the install Job */
	bool kube_proxy;           /* false when cilium replaces it */
	bool allow_scheduling_on_controlplanes;
	/* Talos >= v1.13: a re-apply of the bootstrap manifests deletes what
	 * strata applied from them before and Talos no longer renders
	 * (default true; talosctl upgrade-k8s --manifests-no-prune is false) */
	bool manifests_prune;
};

struct network_config {
	char *cidr;                /* 10.0.0.0/24 */
	uint32_t net, mask;        /* host byte order */
	int prefix;
	char *gateway;
	struct str_list nameservers;
	enum discovery discovery;
	bool gateway_onlink;       /* gateway may be outside the CIDR (VPS) */
};

/* One machine after pool expansion: what a VM and a Talos node are made from. */
struct node {
	char *name;
	enum node_role role;
	char *pool;                /* "controlplane" or "workers" */
	char *ip;
	char *mac;                 /* NULL: Proxmox assigns, strata records it */
	int vmid;                  /* 0: base + index */
	char *placement;           /* Proxmox node name */
	int cores;
	int memory_mib;
	int disk_gib;
	char *install_disk;
	char *path;                /* config path it came from, for errors */
	bool ip_explicit;          /* written in the config, not allocated */
	bool vmid_explicit;        /* vmid written in the config */
};

struct node_pool {
	int count;                 /* -1 when not given */
	int cores, memory_mib, disk_gib;
	char *ip_start;
	char *prefix;              /* node name prefix */
	struct str_list placement;
	struct node *list;         /* explicit nodes, when given */
	size_t n_list;
	bool has_list;
};

struct gitops_config {
	bool enabled;
	char *repo;
	char *branch;
	char *path;
	char *interval;            /* Go duration, e.g. 5m */
	struct secret_ref token;
	char *local_path;          /* where gen writes the tree (ENV-relative) */
	struct secret_ref sops_identity; /* age identity to use, else generated */
	struct str_list sops_recipients; /* more age recipients for secrets */
	char *known_hosts;         /* host key lines of the Git server (ssh) */
};

struct components_config {
	bool longhorn;
	bool nfs;
	char *nfs_server;
	char *nfs_path;
	char *ingress;             /* "nginx" or NULL */
	char *tunnel;              /* "cloudflared" or NULL */
	struct secret_ref tunnel_token;
	bool monitoring;
	bool metrics_server;
	bool cert_manager;
	int longhorn_replicas;     /* default 2 */
	int replicas;              /* platform controllers: 1, or 3 with 3+ control planes */
};

struct kv {
	char *key;
	char *value;               /* scalar as written, or emitted YAML */
};

enum vm_clone { VM_CLONE_FULL = 0, VM_CLONE_LINKED };

struct vm_config {
	char *name;
	int template_vmid;         /* clone from this template, or 0 */
	enum vm_clone clone;       /* full (default) or linked */
	char *image;               /* cloud image URL, or NULL */
	char *image_sha256;        /* its SHA-256 (hex), checked by Proxmox's download */
	int cores, memory_mib, disk_gib;
	char *ip;
	char *mac;
	int vmid;
	bool vmid_explicit;
	char *placement;
	char *user;
	struct str_list ssh_keys;
	struct str_list packages;
	struct str_list search_domains;
	struct str_list groups;
	struct kv *vars;
	size_t n_vars;
	char *path;
};

struct config {
	char *file;                /* path as given */
	char *dir;                 /* env folder */
	char *name;
	enum platform platform;
	struct proxmox_config proxmox;
	struct vps_config vps;
	struct talos_config talos;
	struct kubernetes_config kubernetes;
	struct network_config network;
	struct node_pool cp_pool, worker_pool;
	struct node *nodes;        /* control planes first, then workers */
	size_t n_nodes, n_controlplanes;
	struct firewall_config firewall;
	struct backup_config backup;
	struct history_config history;
	struct gitops_config gitops;
	struct components_config components;
	struct vm_config *vms;
	size_t n_vms;

	struct fy_document *doc;   /* kept for positions of semantic errors */
};

/*
 * Load ENV/config.yml. Returns 0 when the config has no errors (warnings
 * allowed), -1 otherwise; every problem is in diag. *out is set whenever
 * parsing got far enough to build a struct (even with errors), else NULL.
 * `siblings` (may be NULL) is the folder holding other env folders, for the
 * VM id overlap check.
 */
int config_load(struct config **out, const char *path, struct diag *diag);
int config_load_env(struct config **out, const char *env_dir, struct diag *diag);
#define CONFIG_NO_SIBLINGS   0x1   /* skip the VM id overlap check */
#define CONFIG_CHECK_SECRETS 0x2   /* ${VAR} set, file: secrets present and not empty */
#define CONFIG_OFFLINE       0x4   /* gen: what only apply cannot do yet is not an error */
int config_load_env_opts(struct config **out, const char *env_dir,
			 struct diag *diag, unsigned flags);
void config_free(struct config *cfg);

/* Resolve a secret reference. Returns 0 and a malloc'd value, or fills err. */
struct err;
int config_secret_resolve(char **out, const struct config *cfg,
			  const struct secret_ref *ref, const char *what,
			  struct err *err);

/* Find the position of a display path ("nodes.workers.nodes[1].ip"). */
void config_pos(const struct config *cfg, const char *path, int *line, int *col);
/* The YAML node written at a display path, or NULL when it is absent. */
struct fy_node *config_node_at(const struct config *cfg, const char *path);

const char *platform_name(enum platform p);
const struct node *config_node(const struct config *cfg, const char *name);

#endif
