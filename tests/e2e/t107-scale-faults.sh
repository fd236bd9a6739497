#!/bin/sh
# Scale-down when things go wrong: apply killed (-9) in the middle of a
# removal, then a re-run converges with nothing left behind; a control
# plane that is down is removed from etcd by id from a surviving member;
# removing a control plane while etcd has no quorum is refused with
# nothing changed, and works once the member is back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.107.192/26
E="$T/envs/sf"
write_env "$E" sf 1070 3 3 127.0.107

members() { labsim_py "' '.join(sorted(m['name'] for e in s['talos']['etcd'].values() for m in e['members']))"; }
nodes() { kube_get "$E" /api/v1/nodes | $PY -c "import json,sys; print(' '.join(sorted(n['metadata']['name'] for n in json.load(sys.stdin)['items'])))"; }
vms() { labsim_py "' '.join(sorted(s['vms']))"; }

expect_rc 0 "apply 3+3" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sf-cp-1 sf-cp-2 sf-cp-3" ] && ok "etcd: three members" || bad "members $(members)"

# kill -9 right after the first Reset went out
sed -i 's/workers: {count: 3,/workers: {count: 1,/' "$E/config.yml"
"$STRATA" apply "$E" --yes --timeout 60s > "$T/kill.out" 2> "$T/kill.err" &
pid=$!
[ "$(labsim_wait_for "any(c['method'].endswith('/Reset') and c['node'] == '127.0.107.23' for c in s['talos']['calls'])")" = yes ] \
	&& ok "w-3's Reset went out" || bad "no Reset on w-3"
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ "$(vms)" = "1070 1071 1072 1073 1074 1075" ] && ok "killed before any VM was destroyed" || bad "vms $(vms)"
expect_rc 0 "re-run after kill -9" -- "$STRATA" apply "$E" --yes --timeout 60s
grep -E "remove|gate" "$T/err" | sed "s/^/     : /"
expect_grep "removed sf-w-2 from the cluster" "$T/err" "w-2 removed on the re-run"
[ "$(nodes)" = "sf-cp-1 sf-cp-2 sf-cp-3 sf-w-1" ] && ok "Nodes: none left behind" || bad "nodes $(nodes)"
[ "$(vms)" = "1070 1071 1072 1073" ] && ok "VMs of w-2 and w-3 destroyed" || bad "vms $(vms)"
expect_rc 0 "status --health after the re-run" -- "$STRATA" status "$E" --health
expect_grep "ok   cordon .*no node cordoned by strata" "$T/out" "no cordon left behind"

# a control plane that is down: removed from etcd by id
labsim_ctl POST vm '{"vmid": 1072, "status": "stopped"}' > /dev/null
sed -i 's/controlplane: {count: 3,/controlplane: {count: 2,/' "$E/config.yml"
expect_rc 0 "apply 3 -> 2 with cp-3 down" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "remove sf-cp-3: does not answer; etcd member [0-9a-f]\{16\} removed by id on sf-cp-1" "$T/err" "removed by id from a survivor"
expect_grep "remove sf-cp-3: Talos does not answer at 127.0.107.13; nothing to reset" "$T/err" "no Reset for a dead node"
[ "$(talos_calls EtcdRemoveMemberByID 127.0.107.11)" = 1 ] && ok "EtcdRemoveMemberByID sent to cp-1" || bad "removes $(talos_calls EtcdRemoveMemberByID)"
[ "$(members)" = "sf-cp-1 sf-cp-2" ] && ok "etcd: two members" || bad "members $(members)"
[ "$(nodes)" = "sf-cp-1 sf-cp-2 sf-w-1" ] && ok "cp-3's Node deleted" || bad "nodes $(nodes)"
[ "$(vms)" = "1070 1071 1073" ] && ok "cp-3's VM destroyed" || bad "vms $(vms)"

# without quorum: refused, nothing changed
labsim_ctl POST vm '{"vmid": 1071, "status": "stopped"}' > /dev/null
sed -i 's/controlplane: {count: 2,/controlplane: {count: 1,/' "$E/config.yml"
leaves=$(talos_calls EtcdLeaveCluster) removes=$(talos_calls EtcdRemoveMemberByID)
expect_rc 1 "apply 2 -> 1 with cp-2 down is refused" -- "$STRATA" apply "$E" --yes --timeout 3s
expect_grep "health gate before removing sf-cp-2: the cluster was not healthy" "$T/err" "the gate refuses"
expect_grep "removing sf-cp-2 was not started" "$T/err" "and says nothing was started"
[ "$(talos_calls EtcdLeaveCluster)$(talos_calls EtcdRemoveMemberByID)" = "$leaves$removes" ] && ok "no etcd change sent" || bad "etcd calls sent"
[ "$(members)" = "sf-cp-1 sf-cp-2" ] && ok "etcd: still two members" || bad "members $(members)"
[ "$(vms)" = "1070 1071 1073" ] && ok "no VM destroyed" || bad "vms $(vms)"
labsim_ctl POST vm '{"vmid": 1071, "status": "running"}' > /dev/null
expect_rc 0 "apply again once cp-2 is back" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sf-cp-1" ] && ok "etcd: one member" || bad "members $(members)"
[ "$(nodes)" = "sf-cp-1 sf-w-1" ] && ok "Nodes: cp-1 and w-1" || bad "nodes $(nodes)"
[ "$(vms)" = "1070 1073" ] && ok "VMs: cp-1 and w-1" || bad "vms $(vms)"
finish
