/*
 * help: the text of 'strata --help', 'strata CMD --help' and the man page
 * strata.1, all from the one table below. A command's help has fixed
 * parts: a usage line, a description, ENV forms, options, exit status
 * and one example; cmd_man turns the same parts into roff.
 */
#include "cmd/cmd.h"

#include <stdbool.h>
#include <string.h>

#define ENV_FORMS                                                          \
	"ENV is an environment folder: a path with a '/' (a path to a\n"      \
	"config.yml means its folder), or a NAME: ./NAME when that folder\n"  \
	"holds a config.yml, else environments/NAME.\n"

#define EXIT_RUNTIME "  1  failed while working: network, TLS, an answer such as HTTP 401/403\n"
#define EXIT_CONFIG  "  2  usage or config error (also an unset environment variable or a\n" \
		     "     missing secret file the config names)\n"
/* apply and destroy */
#define EXIT_CHANGES "  0  done\n" EXIT_RUNTIME                                  \
	"     or a failed task; run it again to resume; also: declined at\n"   \
	"     the question\n" EXIT_CONFIG                                      \
	"     or nothing confirms: no terminal and no --yes\n"                 \
	"  3  interrupted; run it again to resume\n"

static const struct cmd_help helps[] = {
	{
		"init", cmd_init,
		"create an environment folder from an example",
		"ENV --platform proxmox|vps [--from EXAMPLE]",
		"Create the environment folder ENV (mode 0700) from an example:\n"
		"examples/<platform>-example, or examples/EXAMPLE with --from (its\n"
		"platform must match --platform when both are given). The copy's\n"
		"'name:' is set to the folder's name. A .gitignore inside keeps the\n"
		"folder (which will hold secrets) out of git. An existing folder with\n"
		"a config.yml is never touched. Examples are looked up in\n"
		"$STRATA_EXAMPLES, next to the binary, then in the installed share\n"
		"folder; a wrong --from lists them.\n",
		"ENV is the folder to create: a path with a '/', or a NAME, created\n"
		"as environments/NAME.\n",
		"  -p, --platform P   proxmox or vps\n"
		"      --from NAME    copy examples/NAME instead (e.g. homelab)\n"
		"  -h, --help         show this help\n",
		"  0  created\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata init homelab --platform proxmox",
	},
	{
		"validate", cmd_validate,
		"check config.yml; every error as FILE:LINE:COL",
		"ENV [--quiet] [--nodes] [-o json] | --keys",
		"Check ENV/config.yml: syntax, types, ranges, unknown keys and the\n"
		"semantic rules (addresses inside the network, no duplicates, VM id\n"
		"ranges, versions), talos.patches against the Talos config schema,\n"
		"and that every secret reference is there (${VAR} set, file: present\n"
		"and not empty; never printed). Every problem is reported, one per\n"
		"line, as FILE:LINE:COL: error: PATH: message. Nothing is contacted\n"
		"or written.\n",
		ENV_FORMS,
		"  -q, --quiet   print only errors and warnings\n"
		"  -n, --nodes   also print every node and VM as strata expands them\n"
		"                (names, addresses, VM ids, placement, sizes)\n"
		"  -o json       the diagnostics (with --nodes also the nodes) as one\n"
		"                JSON object on stdout, nothing on stderr (docs/json.md)\n"
		"      --keys    print every config key with its type and meaning\n"
		"  -h, --help    show this help\n",
		"  0  valid (warnings allowed)\n  2  errors found, or a usage error\n",
		"strata validate --nodes homelab",
	},
	{
		"gen", cmd_gen,
		"write secrets (once), Talos machine configs and talosconfig; offline",
		"ENV [-o json]",
		"Write every Talos file of ENV, offline: secrets.yaml (generated once,\n"
		"never overwritten), controlplane.yaml and worker.yaml, patches/NODE.yaml\n"
		"(address, routes, nameservers, VIP, install disk), nodes/NODE.yaml (base\n"
		"+ node patch + talos.patches from config.yml) and talosconfig. Files are\n"
		"rewritten only when their contents change. Prints the Talos ISO URL and\n"
		"the installer image of the environment's schematic.\n"
		"\n"
		"With gitops set, also the GitOps tree for Flux in ENV/gitops\n"
		"(gitops.local_path): cluster/kubernetes/{flux,platform,apps}, a\n"
		"HelmRelease per enabled component, secrets SOPS-encrypted to the\n"
		"cluster's age key ENV/sops.agekey (made once, 0600). Files under apps/\n"
		"are yours: created once, never overwritten (docs/gitops.md).\n",
		ENV_FORMS,
		"  -o json     print the result as one JSON object (docs/json.md)\n"
		"  -h, --help  show this help\n",
		"  0  done\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata gen homelab",
	},
	{
		"ansible", cmd_ansible,
		"run ansible-playbook on the environment's cloud-init VMs",
		"ENV [--] PLAYBOOK [ARGS...]",
		"Write ENV/ansible/inventory.yml from config.yml's vms (the same file\n"
		"'strata gen' writes) and run 'ansible-playbook -i' that inventory\n"
		"PLAYBOOK ARGS. Every VM is a host with ansible_host (its ip),\n"
		"ansible_user (its user) and its ansible.vars; each name in\n"
		"ansible.groups is a group. The inventory holds no secrets: use\n"
		"Ansible Vault for them. Everything after PLAYBOOK (or after '--') is\n"
		"ansible-playbook's. Needs ansible-playbook on PATH (Debian:\n"
		"ansible-core).\n",
		ENV_FORMS,
		"  -h, --help  show this help (before PLAYBOOK or '--')\n",
		"  0  the playbook ran (otherwise ansible-playbook's own status)\n"
		EXIT_RUNTIME "     or ansible-playbook not on PATH\n" EXIT_CONFIG,
		"strata ansible ubuntu-vm -- site.yml --limit web",
	},
	{
		"template", cmd_template,
		"build a cloud-init template from a cloud image, or check one",
		"ENV --vmid ID [--image URL] [--node NODE] [--sha256 HEX] | ENV [--vmid ID] --check",
		"Build Proxmox template ID from an official cloud image (the one image\n"
		"config.yml's vms name, or --image): download-url into a storage with\n"
		"'import' content (a .img saved as .qcow2; with --sha256 checked by\n"
		"Proxmox), a VM whose scsi0 is imported from it, a cloud-init drive,\n"
		"serial console and the guest agent on, then converted to a template.\n"
		"Needs Proxmox VE 8.4 or later (import through the API); an older node\n"
		"is refused with the commands to run on it. ID must be outside the\n"
		"env's vmid range. A re-run on a finished template does nothing; one\n"
		"that stopped half-way finishes it. With --check: only say whether ID\n"
		"is a template a cloud-init VM can be cloned from (a cloud-init drive,\n"
		"the guest agent enabled); without --vmid, every template vms[] names.\n"
		"apply does not clone from it yet.\n",
		ENV_FORMS,
		"  --vmid ID     the template's VM id (required but with --check)\n"
		"  --image URL   the cloud image (default: the one vms[] names)\n"
		"  --node NODE   where to build it (default: the first of proxmox.nodes)\n"
		"  --sha256 HEX  the image's SHA-256, checked by Proxmox\n"
		"  --check       check template ID (or vms[]'s) instead of building\n"
		"  -h, --help    show this help\n",
		"  0  built, already there, or (--check) fit to clone\n" EXIT_RUNTIME
		"     or a node too old to import, or (--check) not fit\n" EXIT_CONFIG,
		"strata template ubuntu-vm --vmid 9000",
	},
	{
		"plan", cmd_plan,
		"show what apply would change in Proxmox or on the servers (-o json)",
		"ENV [-o json]",
		"Compare the live Proxmox state with ENV/config.yml and print what\n"
		"apply would do: create, update in place (cores, memory, disk grow,\n"
		"tags, MAC), replace (placement or disk shrink), delete (VMs this\n"
		"environment owns that the config no longer names) and drift (values\n"
		"changed in Proxmox by hand). VMs strata does not own are never\n"
		"touched; one that holds a wanted VM id is reported as a conflict.\n"
		"Reads only: /cluster/resources once, then the config and pending\n"
		"values of owned VMs (and /pools when proxmox.pool is set). A change\n"
		"to a running VM's cores or memory is shown as needing a restart.\n"
		"Then the preflight checks (strata preflight) run, and their problems\n"
		"are printed; apply would stop on an error.\n"
		"On platform vps: for each node, what apply would do to its server,\n"
		"found from ENV/state.json, a look at the node's Talos API and the\n"
		"Talos files gen would write: install (the rescue write of the metal\n"
		"image over SSH, or only the config when it is in maintenance mode),\n"
		"update (its Talos config changed), unchanged, or conflict (another\n"
		"cluster's Talos, or maintenance mode where the journal says\n"
		"installed: apply refuses). For a node to install from the rescue\n"
		"system, plan logs in over SSH as apply does (host key pinned) and\n"
		"runs its read-only disk checks: a missing, mounted or too small disk\n"
		"is a conflict. Nothing written.\n",
		ENV_FORMS,
		"  -o json     print the plan as JSON (docs/json.md)\n"
		"  -h, --help  show this help\n",
		"  0  planned (with changes or not)\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata plan homelab -o json",
	},
	{
		"apply", cmd_apply,
		"make Proxmox, Talos and Kubernetes match the config; resumable",
		"ENV [--yes] [--dry-run] [--parallel N] [--timeout D] [-o json] [--reinstall NODE]...",
		"Make the live state match ENV/config.yml. Prints the plan (VM changes,\n"
		"or on vps what happens to each server, and nodes whose Talos config\n"
		"changed since it was applied), asks for\n"
		"confirmation (unless --yes), then runs the phases in order:\n"
		"  talos-config   secrets (once), machine configs, talosconfig generated\n"
		"  iso            the Talos ISO is in ISO storage (downloaded once)\n"
		"  cidata         each new node's config on a cidata ISO, uploaded\n"
		"                 (proxmox.first_boot: cidata, the default)\n"
		"  remove-nodes   Talos nodes no longer in the config leave the cluster\n"
		"                 one at a time, the health gate before each: cordon,\n"
		"                 drain honouring PodDisruptionBudgets, etcd (leave, or\n"
		"                 removal by id; refused without quorum), Reset, Node\n"
		"                 deleted (docs/scale.md)\n"
		"  vms            a missing proxmox.pool created; VMs created, updated,\n"
		"                 replaced and deleted, in parallel\n"
		"  start          every VM running\n"
		"  talos-install  each node confirmed over mTLS at its static address\n"
		"                 after installing from its cidata ISO (or, with\n"
		"                 first_boot: maintenance, its config applied in\n"
		"                 maintenance mode); then it boots from disk, ISOs\n"
		"                 detached, the cidata ISO deleted; a control plane\n"
		"                 joining a running cluster goes alone, between two\n"
		"                 health gates\n"
		"  cidata-sweep   no cidata ISO of this env left in the ISO storage\n"
		"  bootstrap      etcd bootstrapped once on the first control plane\n"
		"  kubernetes     ENV/kubeconfig fetched; every node registered\n"
		"  restart        VMs whose cores/memory change waits for a restart are\n"
		"                 rebooted one at a time, each waited for until healthy\n"
		"                 (proxmox.restart: rolling), or left pending (never)\n"
		"  talos-reboot   changed configs Talos refused NO_REBOOT (they need\n"
		"                 a reboot) applied one node at a time, control\n"
		"                 planes first, a worker drained, the gate between\n"
		"  talos-upgrade  nodes not at talos.version (or the installer image)\n"
		"                 upgraded: control planes one at a time, then workers;\n"
		"                 each back with a new boot id and the version, then\n"
		"                 every node healthy, before the next; a changed\n"
		"                 kubernetes.version then rolls in the upgrade-k8s\n"
		"                 order (API server, controller manager, scheduler,\n"
		"                 kube-proxy on each control plane, then the kubelets),\n"
		"                 each node's config applied NO_REBOOT and waited for\n"
		"                 (docs/upgrade.md)\n"
		"On a terminal the Talos files are generated before asking, so the\n"
		"question lists the running nodes they change. Without a terminal and\n"
		"without --yes, apply decides from the plan and the files it would\n"
		"write, and refuses before writing anything when there is a change.\n"
		"Each step is journaled in ENV/state.json; an interrupted or failed\n"
		"apply (Ctrl-C, kill, lost connection) is resumed by running it again,\n"
		"without duplicating a VM. A second apply on the same ENV refuses while\n"
		"the first holds ENV/.lock. The last line says what was created,\n"
		"changed and deleted, and how long it took.\n",
		ENV_FORMS,
		"  -y, --yes          do not ask (needed when stdin is not a terminal)\n"
		"  -n, --dry-run      print the phases and what they would do; change nothing\n"
		"  -j, --parallel N   at most N VMs at a time (default 16); also the\n"
		"                     workers upgraded at once (default 1)\n"
		"  -t, --timeout D    bound on each wait for nodes and APIs, e.g. 90s, 10m\n"
		"                     (default 15m)\n"
		"  -o json            stream events on stdout, one JSON object per line,\n"
		"                     ending with a summary (docs/json.md); the human\n"
		"                     output goes to stderr\n"
		"      --reinstall NODE  let NODE get its config in maintenance mode\n"
		"                     although state.json records it as installed (you\n"
		"                     wiped or reset it on purpose). Without it, a machine\n"
		"                     answering in maintenance mode for an installed node\n"
		"                     is treated as an impostor and gets nothing\n"
		"                     (docs/bootstrap.md). On vps it also lets the\n"
		"                     rescue system rewrite an installed node's disk\n"
		"                     when Talos does not answer. Repeatable\n"
		"  -h, --help         show this help\n",
		EXIT_CHANGES,
		"strata apply homelab --yes",
	},
	{
		"destroy", cmd_destroy,
		"hard-stop and delete every VM this env owns (vps: Talos Reset)",
		"ENV [--yes] [--parallel N] [--purge-state] [-o json]",
		"Hard-stop and delete (with purge) every VM this environment owns, in\n"
		"parallel (--parallel at a time). A VM is owned only when it carries the strata-ENV tag,\n"
		"strata's marker in its description and an id in the env's range;\n"
		"nothing else is touched. There is no ACPI wait: a guest that ignores\n"
		"shutdown does not hold destroy up.\n"
		"On platform vps: Talos Reset of the node (reboot into maintenance\n"
		"mode, STATE and EPHEMERAL wiped), after the same confirmation.\n"
		"The env folder keeps its secrets (secrets.yaml, talosconfig) so the\n"
		"cluster can be rebuilt with the same identity, unless --purge-state.\n"
		"The last line says what was deleted and what was kept.\n",
		ENV_FORMS,
		"  -y, --yes          do not ask (needed when stdin is not a terminal)\n"
		"  -j, --parallel N   at most N VMs at a time (1..256, default 32); each\n"
		"                     holds one API connection while its tasks run\n"
		"      --purge-state  also remove generated files and secrets from ENV\n"
		"                     (config.yml and patches you wrote stay)\n"
		"  -o json            stream events on stdout, one JSON object per line,\n"
		"                     ending with a summary (docs/json.md)\n"
		"  -h, --help         show this help\n",
		EXIT_CHANGES,
		"strata destroy homelab --yes",
	},
	{
		"status", cmd_status,
		"machines, Talos, etcd and Kubernetes next to the config (-o json)",
		"ENV [--health] [-o json]",
		"Show each machine of the environment next to what the config wants.\n"
		"On Proxmox a machine is a VM as Proxmox sees it (VM id, node, power\n"
		"state, size), with drift marked (a size or placement that differs\n"
		"from the config, like plan) and the VMs the environment owns that\n"
		"the config no longer names. For Talos\n"
		"nodes, also what the node says over mTLS at its address (Talos\n"
		"version, or maintenance / down / foreign when another CA answers),\n"
		"etcd's state on control planes, and the Kubernetes node's readiness\n"
		"(from ENV/kubeconfig). Ends with a summary line, then the addons:\n"
		"Cilium's version and ready/desired agents, each Flux Kustomization's\n"
		"Ready condition and last applied revision. Reads only; every probe\n"
		"is bounded to a few seconds.\n"
		"On platform vps one row per node: its server, the image write the\n"
		"journal records (writing, verified, rebooted), Talos, etcd, the\n"
		"Kubernetes node, and whether its Talos config is applied as\n"
		"generated.\n"
		"\n"
		"--health adds the health gate apply runs between disruptive steps\n"
		"(nodes removed, control planes added), one line per check: Talos\n"
		"answering on every node, etcd Running and healthy on every control\n"
		"plane, etcd's members (one started voter per control plane, the same\n"
		"list everywhere, one leader), the Kubernetes\n"
		"API answering, every node registered as a Node and no Node left over,\n"
		"the control planes' static pods (kube-apiserver,\n"
		"kube-controller-manager, kube-scheduler) Running and Ready, every node\n"
		"Ready (unless kubernetes.cni is none), the kube-proxy DaemonSet's pods\n"
		"ready (when it exists), CoreDNS available (with a CNI), no node\n"
		"cordoned by strata. A check after a failed one is shown as skipped.\n",
		ENV_FORMS,
		"  --health    also run the health gate's checks (exit 1 if one fails)\n"
		"  -o json     machine-readable output (docs/json.md)\n"
		"  -h, --help  show this help\n",
		"  0  shown (with drift or not)\n" EXIT_RUNTIME
		"     or, with --health, the cluster is not healthy\n" EXIT_CONFIG,
		"strata status homelab",
	},
	{
		"backup", cmd_backup,
		"write the env folder as one age-encrypted archive",
		"ENV --to FILE|DIR [--with-etcd]",
		"Write every file of the env folder (config.yml, secrets.yaml,\n"
		"talosconfig, kubeconfig, state.json, nodes/, patches/, gitops/...;\n"
		"not the lock, temp files or symlinks) into one ustar archive,\n"
		"encrypted in the age format to backup.recipients (age1... keys) or\n"
		"with backup.passphrase from config.yml. 'age -d' opens it and\n"
		"'tar -x' unpacks it without strata. With --to DIR the file is\n"
		"DIR/ENV-<UTC time>.age; an existing file is never replaced. The\n"
		"file is 0600; the env lock is held while the folder is read.\n"
		"etcd snapshots in ENV/etcd/ are left out unless --with-etcd, which\n"
		"adds the latest one (as recorded in ENV/etcd/snapshots.json).\n",
		ENV_FORMS,
		"  --to FILE|DIR  where the encrypted archive goes\n"
		"  --with-etcd    include the latest etcd snapshot\n"
		"  -h, --help     show this help\n",
		"  0  written\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata backup homelab --to /mnt/usb/",
	},
	{
		"restore", cmd_restore,
		"rebuild an env folder from a 'strata backup' archive, or a cluster from an etcd snapshot",
		"ENV --from FILE (--identity FILE | --passphrase-env VAR)\n"
		"       strata restore ENV --etcd FILE [--yes] [--timeout D] [--confirm PHRASE]",
		"Decrypt FILE (an age file, as strata backup writes it) with an age\n"
		"identity file or the passphrase in environment variable VAR, check\n"
		"every entry of the archive (relative names, files and folders only,\n"
		"a config.yml at the top), then create ENV (0700) and write the\n"
		"files. ENV must not exist: restore never writes into an existing\n"
		"folder. Nothing is written when the key is wrong or the file is\n"
		"cut or altered. After it, plan and apply see the same cluster.\n"
		"With --etcd FILE (a 'strata etcd snapshot'): disaster recovery into\n"
		"the existing env folder. Apply's phases run (VMs provisioned, configs\n"
		"applied) but instead of a fresh bootstrap every control plane's etcd\n"
		"must wait empty, the snapshot is uploaded to the first one\n"
		"(EtcdRecover) and Bootstrap runs with recover_etcd; then kubeconfig,\n"
		"every node Ready, the CNI and Flux as apply does them. Refused while a\n"
		"control plane's etcd is healthy, unless --confirm 'replace healthy\n"
		"etcd' is given.\n",
		"ENV is a path (with '/') or a NAME, restored as environments/NAME.\n",
		"  --from FILE           the backup\n"
		"  -i, --identity FILE   an age identity file (AGE-SECRET-KEY-1...)\n"
		"  --passphrase-env VAR  the passphrase is in $VAR\n"
		"  --etcd FILE           recover the cluster's etcd from this snapshot\n"
		"  -y, --yes             (--etcd) do not ask before the changes\n"
		"  -t, --timeout D       (--etcd) bound on each wait, as apply's\n"
		"  --confirm PHRASE      (--etcd) 'replace healthy etcd': go on although\n"
		"                        etcd is healthy\n"
		"  -h, --help            show this help\n",
		"  0  restored\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata restore homelab --from homelab-20261201T120000Z.age -i ~/.age/key.txt",
	},
	{
		"etcd", cmd_etcd,
		"etcd snapshots and members of an environment's cluster",
		"snapshot ENV [--out FILE] | members ENV",
		"snapshot: stream an etcd snapshot (FACTS: EtcdSnapshot) from the\n"
		"first control plane whose etcd member is healthy (a leader known,\n"
		"not a learner, no alarm), with a client certificate of role\n"
		"os:etcd:backup only (ENV/talosconfig-etcd-backup, 0600, made from\n"
		"ENV/secrets.yaml). The file is ENV/etcd/<cluster>-<UTC>.snapshot\n"
		"or --out FILE (0600, never replacing a file); its size and SHA-256\n"
		"are printed and recorded in ENV/etcd/snapshots.json. It holds every\n"
		"Kubernetes Secret: keep it like the env folder.\n"
		"members: the etcd member list (id, name, learner, peer URL).\n"
		"'strata restore ENV --etcd FILE' brings a snapshot back.\n",
		ENV_FORMS,
		"  --out FILE  where the snapshot goes (default ENV/etcd/)\n"
		"  -h, --help  show this help\n",
		"  0  done\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata etcd snapshot homelab --out /mnt/usb/homelab.snapshot",
	},
	{
		"history", cmd_history,
		"what every apply and destroy did (ENV/history)",
		"ENV [ENTRY] [-o json]",
		"Every apply and destroy that goes ahead writes a record to\n"
		"ENV/history/<UTC time>-<command>.jsonl (0600): a header with the\n"
		"command, strata's version, config.yml's SHA-256 and the plan it\n"
		"executed, then its event stream (the events 'apply -o json' prints),\n"
		"ending with the summary. A killed command leaves its record up to\n"
		"the last phase that finished (shown as incomplete). history.keep\n"
		"(default 50) bounds how many are kept. Without ENTRY: the list,\n"
		"newest first. With ENTRY (1 = newest, or a file name): its events.\n",
		ENV_FORMS,
		"  -o json     the list as a JSON array, or the entry's JSON lines\n"
		"  -h, --help  show this help\n",
		"  0  shown\n" EXIT_CONFIG,
		"strata history homelab 1",
	},
	{
		"preflight", cmd_preflight,
		"check the Proxmox cluster (Layer 0) is ready for this plan",
		"ENV [-o json]",
		"The checks plan and apply run before any change, on their own:\n"
		"every node named exists and is online; the bridge exists on each node\n"
		"that gets a VM, VLAN-aware when proxmox.vlan is set; the disk and ISO\n"
		"storages exist there, are enabled, allow 'images' and 'iso', and have\n"
		"room for the new disks (thin pools only warn); each node has the CPUs\n"
		"of its largest VM and the memory of all of them (a warning above\n"
		"proxmox.memory_warn_percent, counting other VMs too); the token holds\n"
		"every privilege the plan needs on its path (GET /access/permissions),\n"
		"listed by path and privilege when missing. Every problem is reported\n"
		"in one run with what to fix (the config key, or the pveum/pvesh\n"
		"command). Errors stop apply; warnings do not. Reads only.\n",
		ENV_FORMS,
		"  -o json     the problems as one JSON object (docs/preflight.md)\n"
		"  -h, --help  show this help\n",
		"  0  no errors (warnings may be printed)\n"
		"  1  errors found (apply would stop), or reading failed\n" EXIT_CONFIG,
		"strata preflight homelab",
	},
	{
		"hypervisor", cmd_hypervisor,
		"show the Proxmox cluster as strata sees it (Layer 0)",
		"ENV [-o json]",
		"The Layer 0 strata relies on, the way plan shows the VMs: each node\n"
		"(status, CPUs, memory used and committed to VMs, Proxmox version and\n"
		"load where the token has Sys.Audit), its bridges (VLAN-aware, ports)\n"
		"and storages (type, content, shared, free space), and the token's\n"
		"effective privileges on the paths this environment uses. Read-only:\n"
		"strata never changes Layer 0.\n",
		ENV_FORMS,
		"  -o json     one JSON object (docs/preflight.md)\n"
		"  -h, --help  show this help\n",
		"  0  shown\n" EXIT_RUNTIME EXIT_CONFIG,
		"strata hypervisor homelab -o json",
	},
};

#define N_HELPS (sizeof(helps) / sizeof(helps[0]))

const struct cmd_help *
cmd_help_table(size_t *n)
{
	*n = N_HELPS;
	return helps;
}

const struct cmd_help *
cmd_help_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_HELPS; i++)
		if (!strcmp(helps[i].name, name))
			return &helps[i];
	return NULL;
}

static const char exit_table[] =
	"  0  success\n"
	"  1  failed while working: network, TLS, an answer from Proxmox or Talos\n"
	"     (HTTP 401/403 included: the token or its privileges), a failed task;\n"
	"     apply and destroy resume when run again\n"
	"  2  usage or config error, found before anything is contacted: the\n"
	"     command line, config.yml, an unset environment variable or a\n"
	"     missing or empty secret file it names; apply/destroy without a\n"
	"     terminal and without --yes\n"
	"  3  interrupted (Ctrl-C, SIGTERM); run the same command again to resume\n";

void
cmd_help_print(const struct cmd_help *h, FILE *fp)
{
	fprintf(fp, "usage: strata %s %s\n\n%s\n%s\n%s\nExit status:\n%s\n"
		"Example:\n  %s\n", h->name, h->synopsis, h->description,
		h->env_forms, h->options, h->exits, h->example);
}

void
cmd_main_usage(FILE *fp)
{
	size_t i;

	fprintf(fp,
		"usage: strata [--version] [--help] COMMAND [ARGS]\n"
		"\n"
		"strata turns one config.yml per environment into a running\n"
		"Talos Kubernetes platform on Proxmox VE or a VPS: machines, Talos\n"
		"installed, etcd bootstrapped, kubeconfig, Cilium and Flux; then day 2\n"
		"(scaling, upgrades, etcd and env backups). The environment folder is\n"
		"the state.\n"
		"\n"
		"commands:\n");
	for (i = 0; i < N_HELPS; i++)
		fprintf(fp, "  %-10s %s\n", helps[i].name, helps[i].summary);
	fprintf(fp,
		"\n"
		"'strata COMMAND --help' describes a command; 'man strata' all of them.\n"
		"\n%s\n"
		"Exit status (every command):\n%s"
		"\n"
		"NO_COLOR turns colour off.\n", ENV_FORMS, exit_table);
}

/* roff: escape backslashes, leading dots/quotes and hyphens in flags. */
static void
roff_text(FILE *fp, const char *s, size_t n)
{
	size_t i;

	if (n && (s[0] == '.' || s[0] == '\''))
		fputs("\\&", fp);
	for (i = 0; i < n; i++) {
		if (s[i] == '\\')
			fputs("\\e", fp);
		else if (s[i] == '-')
			fputs("\\-", fp);
		else
			fputc(s[i], fp);
	}
}

/* Paragraph text: lines joined; lines indented by two spaces kept as a
 * literal block (the phase list of apply). */
static void
roff_para(FILE *fp, const char *s)
{
	bool lit = false;

	fputs(".PP\n", fp);
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		bool indented = n > 2 && s[0] == ' ' && s[1] == ' ';

		if (indented && !lit) {
			fputs(".RS 2\n.nf\n", fp);
			lit = true;
		} else if (!indented && lit) {
			fputs(".fi\n.RE\n", fp);
			lit = false;
		}
		roff_text(fp, indented ? s + 2 : s, indented ? n - 2 : n);
		fputc('\n', fp);
		s += n + (nl != NULL);
	}
	if (lit)
		fputs(".fi\n.RE\n", fp);
}

/* Options: "  -y, --yes   text" starts an item, deeper lines continue it. */
static void
roff_options(FILE *fp, const char *s)
{
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s), i = 0, j;

		while (i < n && s[i] == ' ')
			i++;
		if (i <= 6 && i < n && s[i] == '-') {
			j = i;
			while (j + 1 < n && !(s[j] == ' ' && s[j + 1] == ' '))
				j++;
			fputs(".TP\n.B ", fp);
			roff_text(fp, s + i, j - i);
			fputc('\n', fp);
			while (j < n && s[j] == ' ')
				j++;
			roff_text(fp, s + j, n - j);
		} else {
			roff_text(fp, s + i, n - i);
		}
		fputc('\n', fp);
		s += n + (nl != NULL);
	}
}

void
cmd_man(FILE *fp)
{
	size_t i;

	fputs(".\\\" strata.1: generated by 'strata --man' from src/cmd/help.c; do not edit\n"
	      ".TH STRATA 1 \"\" \"strata " STRATA_VERSION "\" \"User Commands\"\n"
	      ".SH NAME\n"
	      "strata \\- one YAML file per environment to a running Talos Kubernetes homelab\n"
	      ".SH SYNOPSIS\n", fp);
	for (i = 0; i < N_HELPS; i++) {
		fprintf(fp, ".B strata %s\n", helps[i].name);
		roff_text(fp, helps[i].synopsis, strlen(helps[i].synopsis));
		fputs("\n.br\n", fp);
	}
	fputs(".SH DESCRIPTION\n", fp);
	roff_para(fp, "strata turns one config.yml per environment into a running Talos\n"
		  "Kubernetes platform on Proxmox VE or a VPS: machines, Talos installed,\n"
		  "etcd bootstrapped, kubeconfig, Cilium and Flux; then day 2 (scaling,\n"
		  "upgrades, etcd and env backups). The environment folder is the state.\n");
	roff_para(fp, ENV_FORMS);
	fputs(".SH COMMANDS\n", fp);
	for (i = 0; i < N_HELPS; i++) {
		const struct cmd_help *h = &helps[i];

		fprintf(fp, ".SS strata %s\n", h->name);
		roff_text(fp, h->synopsis, strlen(h->synopsis));
		fputc('\n', fp);
		roff_para(fp, h->description);
		if (strcmp(h->env_forms, ENV_FORMS))
			roff_para(fp, h->env_forms);
		roff_options(fp, h->options);
		fputs(".PP\nExit status:\n", fp);
		roff_para(fp, h->exits);
		fputs(".PP\nExample:\n.RS 2\n.nf\n", fp);
		roff_text(fp, h->example, strlen(h->example));
		fputs("\n.fi\n.RE\n", fp);
	}
	fputs(".SH EXIT STATUS\n", fp);
	roff_para(fp, exit_table);
	fputs(".SH ENVIRONMENT\n"
	      ".TP\n.B NO_COLOR\nturns colour off.\n"
	      ".TP\n.B STRATA_EXAMPLES\nthe folder init copies examples from.\n"
	      ".SH FILES\n"
	      ".TP\n.I ENV/config.yml\nthe environment, written by you.\n"
	      ".TP\n.I ENV/state.json\nthe journal of what apply did (0600).\n"
	      ".TP\n.I ENV/secrets.yaml, ENV/talosconfig, ENV/kubeconfig\n"
	      "cluster secrets and admin credentials (0600); never commit them.\n", fp);
}
