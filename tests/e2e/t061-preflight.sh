#!/bin/sh
# Preflight (issue 17): strata preflight, plan and apply check Layer 0
# before any change: nodes named and online, the bridge on each node that
# gets a VM (VLAN-aware with proxmox.vlan), storages present, enabled, with
# the content type and free space, node CPUs and memory, and the token's
# privileges per path (GET /access/permissions). Every problem in one run,
# each with what to fix; apply writes nothing when there is an error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
LAB_SECRET=0d6c51f2-1111-4000-8000-00000000c0de
# strata@pve!lab: the README's role on every path, but without VM.Allocate
# on /vms and with only Datastore.Audit on the disk storage
cat > "$T/tokens.json" <<JSON
[{"id": "root@pam!strata", "secret": "$(cat /proc/sys/kernel/random/uuid)", "privs": ["*"]},
 {"id": "strata@pve!lab", "secret": "$LAB_SECRET", "acl": {
   "/vms": {"privs": ["VM.Audit", "VM.PowerMgmt", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Disk",
                      "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options",
                      "VM.GuestAgent.Audit"], "propagate": 1},
   "/storage/local": {"privs": ["Datastore.Audit", "Datastore.AllocateSpace", "Datastore.AllocateTemplate",
                                "Datastore.Allocate"], "propagate": 1},
   "/storage/local-lvm": {"privs": ["Datastore.Audit"], "propagate": 1},
   "/sdn/zones/localnetwork/vmbr0": {"privs": ["SDN.Use"], "propagate": 1},
   "/nodes": {"privs": ["Sys.AccessNetwork", "Sys.Audit"], "propagate": 1}}}]
JSON
labsim_start --tokens "$T/tokens.json" --no-talos
E="$T/envs/pf"
write_env "$E" pf 6100 1 1 127.0.61
# the control plane on pve1, the worker on pve2
sed -i 's/^\(  workers: {.*\)}$/\1, placement: [pve2]}/' "$E/config.yml"
grep -q 'placement: \[pve2\]' "$E/config.yml" && ok "worker placed on pve2" || bad "placement not in config"
ROOT_SECRET=$PVE_TOKEN_SECRET
requests_since() { labsim_ctl GET requests | $PY -c "import json,sys; r=json.load(sys.stdin)['data']; print(' '.join(sorted({x['method'] for x in r})))"; }

# a healthy cluster: nothing to report
expect_rc 0 "preflight on a healthy cluster" -- "$STRATA" preflight "$E"
expect_grep "preflight pf: 3 nodes, .* privilege paths checked: ok" "$T/out" "preflight says ok"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
grep -q "preflight" "$T/err" && bad "plan printed preflight problems: $(cat "$T/err")" || ok "plan: no preflight problem"

# the token: missing privileges named by path and privilege, in one run
sed "s/token_id: \"$PVE_TOKEN_ID\"/token_id: \"strata@pve!lab\"/" "$E/config.yml" > "$T/c" && cp "$T/c" "$E/config.yml"
export PVE_TOKEN_SECRET=$LAB_SECRET
expect_rc 1 "preflight with a token short of privileges" -- "$STRATA" preflight "$E"
expect_grep "error: preflight: token 'strata@pve!lab' lacks on /vms: VM.Allocate (create VMs)" "$T/err" "names VM.Allocate on /vms"
expect_grep "lacks on /storage/local-lvm: Datastore.AllocateSpace (create VM disks)" "$T/err" "names Datastore.AllocateSpace on /storage/local-lvm"
expect_grep "pveum acl modify /vms --roles StrataProvisioner --users strata@pve" "$T/err" "says the pveum command"
[ "$(grep -c '^error: preflight' "$T/err")" = 2 ] && ok "exactly the two paths reported" || bad "errors: $(cat "$T/err")"
expect_rc 0 "plan with that token still plans" -- "$STRATA" plan "$E"
expect_grep "apply would stop here: 2 problems above" "$T/err" "plan says apply would stop"
labsim_ctl POST reset-requests > /dev/null
expect_rc 1 "apply --yes stops at the preflight" -- "$STRATA" apply "$E" --yes
expect_grep "lacks on /vms: VM.Allocate" "$T/err" "apply names the privilege"
expect_grep "nothing was changed" "$T/err" "and that nothing changed"
[ "$(requests_since)" = GET ] && ok "apply sent only GETs" || bad "apply sent $(requests_since)"
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "no VM made" || bad "VMs were created"
[ -e "$E/talosconfig" ] && bad "apply generated Talos files" || ok "no Talos file written"

# Layer 0 wrong in every way at once (root token again)
sed 's/token_id: "strata@pve!lab"/token_id: "root@pam!strata"/' "$E/config.yml" > "$T/c" && cp "$T/c" "$E/config.yml"
export PVE_TOKEN_SECRET=$ROOT_SECRET
sed -i 's/^  nodes: \[pve1, pve2\]$/  nodes: [pve1, pve2, pve9]/' "$E/config.yml"
labsim_ctl POST knobs '{"bridges": {"pve2": ["vmbr1"]},
  "node_resources": {"pve1": {"maxcpu": 1, "maxmem": 1073741824}},
  "storage": {"pve2": {"local": {"content": ["vztmpl", "backup"]},
                       "local-lvm": {"total": 5368709120}}}}' > /dev/null
expect_rc 1 "preflight with every class of problem" -- "$STRATA" preflight "$E"
expect_grep "Proxmox node 'pve9' (proxmox.nodes\[2\]) is not in the cluster" "$T/err" "unknown node"
expect_grep "bridge 'vmbr0' (proxmox.bridge) does not exist on node pve2: create it on pve2: pvesh create /nodes/pve2/network --iface vmbr0 --type bridge" "$T/err" "missing bridge, with the pvesh command"
expect_grep "storage 'local' (proxmox.storage.isos) does not allow content 'iso'" "$T/err" "storage without iso content"
expect_grep "pvesm set local --content vztmpl,backup,iso" "$T/err" "with the pvesm command"
expect_grep "warning: preflight: storage 'local-lvm' on node pve2 has 5.0 GiB free, the new disks need 20 GiB (a thin pool" "$T/err" "thin pool short of space: a warning"
expect_grep "VM 'pf-cp-1' asks for 2 cores, node pve1 has 1 CPUs" "$T/err" "too few CPUs"
expect_grep "on node pve1 ask for 2048 MiB, the node has 1024 MiB" "$T/err" "too little memory"
expect_grep "5 errors, 1 warning (apply would stop)" "$T/out" "all counted in one run"
expect_rc 1 "preflight -o json" -- "$STRATA" preflight "$E" -o json
if $PY - "$T/out" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is False and d["errors"] == 5 and d["warnings"] == 1, d
assert len(d["problems"]) == 6
assert sorted({p["check"] for p in d["problems"]}) == ["bridge", "cpu", "memory", "node", "space", "storage"], d
assert all(p["fix"] and p["what"] for p in d["problems"])
PYEOF
then ok "json: 5 errors, 1 warning, each with what and fix"; else bad "json: $(head -c 600 "$T/out")"; fi

# a plain (dir) storage short of space is an error; VLAN needs a VLAN-aware bridge;
# an offline node; memory committed above proxmox.memory_warn_percent
sed -i 's/^  nodes: \[pve1, pve2, pve9\]$/  nodes: [pve1, pve2]\n  vlan: 30\n  memory_warn_percent: 40/' "$E/config.yml"
labsim_ctl POST knobs '{"bridges": {}, "bridge_vlan_aware": {},
  "node_resources": {"pve1": {"maxcpu": 16, "maxmem": 4294967296}, "pve2": {"status": "offline"}},
  "storage": {"pve2": {"local": {"content": ["iso", "vztmpl"]}},
              "pve1": {"local-lvm": {"type": "dir", "total": 5368709120}}}}' > /dev/null
expect_rc 1 "preflight: VLAN, dir storage, offline node" -- "$STRATA" preflight "$E"
expect_grep "bridge 'vmbr0' on node pve1 is not VLAN-aware, and proxmox.vlan is 30: make it VLAN-aware: pvesh set /nodes/pve1/network/vmbr0" "$T/err" "bridge not VLAN-aware"
expect_grep "error: preflight: storage 'local-lvm' on node pve1 has 5.0 GiB free, the new disks need 10 GiB" "$T/err" "dir storage short of space: an error"
expect_grep "node 'pve2', where 1 VM go, is offline" "$T/err" "offline node"
expect_grep "warning: preflight: node pve1: its VMs (others' and these) are given 2048 MiB, 50% of its 4096 MiB" "$T/err" "above memory_warn_percent: a warning"
labsim_ctl POST knobs '{"bridge_vlan_aware": {"pve1": ["vmbr0"], "pve2": ["vmbr0"]},
  "node_resources": {"pve2": {"status": "online"}},
  "storage": {"pve1": {"local-lvm": {"type": "lvmthin", "total": 536870912000}},
              "pve2": {"local-lvm": {"total": 536870912000}}}}' > /dev/null
sed -i 's/^  memory_warn_percent: 40$//' "$E/config.yml"
expect_rc 0 "preflight once Layer 0 is fixed" -- "$STRATA" preflight "$E"
expect_grep "checked: ok" "$T/out" "ok"
# Proxmox VE 7: refused, with what to do
labsim_ctl POST knobs '{"pve_version": "7.4-17"}' > /dev/null
expect_rc 1 "preflight: Proxmox VE 7" -- "$STRATA" preflight "$E"
expect_grep "error: preflight: Proxmox VE 7.4-17: strata needs 8.0 or later.*upgrade the cluster to Proxmox VE 8" "$T/err" "Proxmox VE 7 is refused"
labsim_ctl POST knobs '{"pve_version": "8.4.1"}' > /dev/null
expect_rc 0 "preflight on Proxmox VE 8 again" -- "$STRATA" preflight "$E"
expect_grep "checked: ok" "$T/out" "ok again"; cat "$T/err" | sed "s/^/     : /"
finish
