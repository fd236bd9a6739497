#!/bin/sh
# Changes that wait for a restart: memory raised on running VMs stays
# pending in Proxmox (the simulator keeps non-hot-pluggable changes
# pending). plan says "needs restart"; apply with proxmox.restart: rolling
# reboots the VMs one at a time, each back and healthy before the next
# (never two control planes down at once); with restart: never the change
# stays pending and plan and status keep showing it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.36.0/24
E="$T/envs/rs"
write_env "$E" rs 1400 3 1 127.0.26

expect_rc 0 "apply 3+1" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Kubernetes: 4/4 nodes registered" "$T/err" "cluster up"
cur() { labsim_py "[s['vms'][str(i)]['config']['memory'] for i in (1400, 1401, 1402, 1403)]"; }
restarts() { labsim_py "sum(1 for e in s['events'] if e['event'] == 'vm-stop')"; }

# a CNI DaemonSet makes the nodes Ready (simulated): restarts then also wait
# for the Kubernetes node to be Ready again
ready_wanted=
if command -v kubectl >/dev/null 2>&1; then
	cat > "$T/cni.yaml" <<'YAML'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cilium, namespace: kube-system}
spec:
  selector: {matchLabels: {app: cilium}}
  template:
    metadata: {labels: {app: cilium}}
    spec: {containers: [{name: agent, image: quay.io/cilium/cilium:v1.17.0}]}
YAML
	if [ "$(labsim_py "all(c['cni_ready'] for c in s['talos']['kubernetes'].values())")" = True ]; then
		ok "nodes Ready (apply's cni phase installed the CNI)"; ready_wanted=1
	elif kubectl --kubeconfig "$E/kubeconfig" apply --server-side --validate=false -f "$T/cni.yaml" > "$T/k" 2>&1; then
		ok "CNI DaemonSet applied"; ready_wanted=1
	else
		bad "kubectl apply"; sed 's/^/     | /' "$T/k"
	fi
else
	echo "skip Ready checks: kubectl not installed"
fi
sed -i 's/memory: 2GiB, disk: 10GiB}/memory: 3GiB, disk: 10GiB}/; s/memory: 2GiB, disk: 20GiB}/memory: 3GiB, disk: 20GiB}/' "$E/config.yml"
expect_rc 0 "plan after raising memory" -- "$STRATA" plan "$E"
expect_grep "memory   2048 MiB -> 3072 MiB, needs restart" "$T/out" "plan: the change needs a restart"
expect_grep "4 VMs need a restart for changes to take effect: apply restarts them one at a time" "$T/out" "plan: rolling restart announced"
# rs-cp-2 comes back from its reboot 1 s (100 s x 0.01) later than the others
labsim_ctl POST knobs '{"talos_slow": {"1401": 100}}' > /dev/null
expect_rc 0 "apply (rolling)" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "restarting rs-cp-1 (vmid 1400) for memory 2048 -> 3072 MiB" "$T/err" "says what the restart is for"
expect_grep "rs-cp-2 is back: Talos up, etcd healthy" "$T/err" "a control plane waited for until etcd is healthy"
expect_grep "rs-w-1 is back: Talos up" "$T/err" "the worker waited for"
[ -z "$ready_wanted" ] || expect_grep "rs-w-1 is back: Talos up, Kubernetes node Ready" "$T/err" "and until its Kubernetes node is Ready again"
[ -z "$ready_wanted" ] || expect_grep "rs-cp-3 is back: Talos up, etcd healthy, Kubernetes node Ready" "$T/err" "a control plane too"
expect_grep "restarted 4 VMs one at a time" "$T/err" "four restarts"
grep -E "restart|is back" "$T/err" | sed "s/^/     : /"
[ "$(cur)" = "['3072', '3072', '3072', '3072']" ] && ok "every VM runs with the new memory" || bad "memory $(cur)"
[ "$(labsim_py "[v.get('pending') for v in s['vms'].values()]")" = "[{}, {}, {}, {}]" ] && ok "nothing pending any more" \
	|| bad "pending $(labsim_py "[v.get('pending') for v in s['vms'].values()]")"
# one at a time: each VM is stopped only after the previous one was started
# again and had time to boot (talos boot 20 s x 0.01)
$PY - "$LABSIM_DIR" <<'PYEOF' > "$T/order" 2>&1
import json, ssl, sys, urllib.request
r = json.load(open(sys.argv[1] + "/ready"))
ctx = ssl.create_default_context(cafile=r["proxmox"]["ca_cert"])
s = json.load(urllib.request.urlopen(r["control"] + "state", context=ctx))["data"]
ev = [e for e in s["events"] if e["vmid"] in (1400, 1401, 1402, 1403)]
stops = [e for e in ev if e["event"] == "vm-stop"]
starts = [e for e in ev if e["event"] == "vm-start"]
order = [e["vmid"] for e in stops]
ok = order == [1400, 1401, 1402, 1403]
slow = True
for a, b in zip(stops, stops[1:]):
    back = [e["t"] for e in starts if e["vmid"] == a["vmid"] and e["t"] >= a["t"]][0]
    ok = ok and b["t"] > back + 0.2
    if a["vmid"] == 1401:
        slow = b["t"] > back + 1.2    # boot 0.2 s + slow 1 s: waited for
print("order", order, "one-at-a-time" if ok else "OVERLAP", "waited-for-slow" if slow else "DID-NOT-WAIT")
PYEOF
expect_grep "one-at-a-time" "$T/order" "restarts in config order, never two at once"
expect_grep "waited-for-slow" "$T/order" "a node slow to come back is waited for before the next"
expect_rc 0 "plan after the restarts" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 4 unchanged." "$T/out" "nothing left to do"

# restart: never
sed -i 's/^  nodes: \[pve1, pve2\]$/  nodes: [pve1, pve2]\n  restart: never/' "$E/config.yml"
sed -i 's/ip_start: 127.0.26.21, memory: 3GiB/ip_start: 127.0.26.21, memory: 4GiB/' "$E/config.yml"
n0=$(restarts)
expect_rc 0 "plan with restart: never" -- "$STRATA" plan "$E"
expect_grep "1 VM needs a restart for changes to take effect: apply leaves them pending (proxmox.restart: never)" "$T/out" "plan: never"
expect_rc 0 "apply (never)" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "keeps changes pending until restarted (proxmox.restart: never)" "$T/err" "apply says it left it pending"
[ "$(restarts)" = "$n0" ] && ok "no VM restarted" || bad "restarts $n0 -> $(restarts)"
[ "$(labsim_py "s['vms']['1403']['pending']")" = "{'memory': '4096'}" ] && ok "Proxmox holds memory 4096 pending" \
	|| bad "pending $(labsim_py "s['vms']['1403']['pending']")"
expect_rc 0 "plan again" -- "$STRATA" plan "$E"
expect_grep "memory   3072 MiB -> 4096 MiB, needs restart (pending in Proxmox)" "$T/out" "plan keeps showing the pending change"
expect_rc 0 "status" -- "$STRATA" status "$E"
expect_grep "pending: rs-w-1 memory 3072 -> 4096 MiB, needs restart" "$T/out" "status shows it"
expect_grep "proxmox.restart: never" "$T/out" "and why it stays"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
[ "$($PY -c "import json; d=json.load(open('$T/out')); print([v['live'].get('pending') for v in d['machines'] if v['name'] == 'rs-w-1'])")" = "[{'memory_mib': 4096}]" ] \
	&& ok "status json: live.pending" || bad "status json pending"

# back to rolling: the pending change is applied by a restart, nothing sent again
sed -i 's/^  restart: never$/  restart: rolling/' "$E/config.yml"
expect_rc 0 "apply (rolling again)" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "restarting rs-w-1 (vmid 1403) for memory 3072 -> 4096 MiB" "$T/err" "the pending change is restarted in"
[ "$(labsim_py "s['vms']['1403']['config']['memory']")" = 4096 ] && ok "worker runs with 4096 MiB" || bad "worker memory"
finish
