#!/bin/sh
# Against the strict simulator: an ISO storage shared by the Proxmox nodes
# gets one download for VMs on two nodes; a VM on a bridge the node does not
# have fails its start with Proxmox's task error, named in apply's error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --shared-iso-storage isos --talos-net 127.0.34.0/24
E="$T/envs/sh"
write_env "$E" sh 1500 1 2 127.0.24
sed -i 's/^  nodes: \[pve1, pve2\]$/  nodes: [pve1, pve2]\n  storage: {isos: isos}/' "$E/config.yml"
downloads() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['path'].endswith('/download-url')))"; }

expect_rc 0 "apply 1+2 on two nodes with a shared ISO storage" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(labsim_py "sorted(set(v['node'] for v in s['vms'].values()))")" = "['pve1', 'pve2']" ] && ok "VMs on pve1 and pve2" \
	|| bad "placement $(labsim_py "sorted(v['node'] for v in s['vms'].values())")"
[ "$(downloads)" = 1 ] && ok "one download serves both nodes" || bad "download-url calls: $(downloads)"
expect_grep "Kubernetes: 3/3 nodes registered" "$T/err" "cluster up"

# a bridge that does not exist on the node
F="$T/envs/br"
write_env "$F" br 1600 1 0 127.0.25
sed -i 's/^  nodes: \[pve1, pve2\]$/  nodes: [pve1, pve2]\n  bridge: vmbr7/' "$F/config.yml"
# (the preflight finds it before anything is created: issue 17, t061)
expect_rc 1 "apply onto a missing bridge fails" -- "$STRATA" apply "$F" --yes --timeout 30s
expect_grep "bridge 'vmbr7' (proxmox.bridge) does not exist on node pve1" "$T/err" "the preflight names the bridge and the node"
expect_grep "pvesh create /nodes/pve1/network --iface vmbr7 --type bridge" "$T/err" "and how to create it"
[ "$(labsim_py "'1600' in s['vms']")" = False ] && ok "no VM created" || bad "vm 1600 was created"
finish
