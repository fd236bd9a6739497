#!/bin/sh
# Control planes 1 -> 3 -> 1, one member at a time with the health gate
# between: each new control plane is installed only after the gate passed
# and waited for until etcd lists it as a started voting member; each
# removed one leaves etcd (EtcdLeaveCluster after handing on leadership),
# is reset and its Node deleted before its VM is destroyed. The etcd
# member list is checked after every step; no member, Node or VM is left
# behind, and talosconfig's endpoints follow.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.106.192/26
E="$T/envs/sc"
write_env "$E" sc 1060 1 1 127.0.106

members() { labsim_py "' '.join(sorted(m['name'] + ('(learner)' if m['learner'] else '') for e in s['talos']['etcd'].values() for m in e['members']))"; }
etcd_log() { labsim_py "[' '.join(x) for e in s['talos']['etcd'].values() for x in e['log']]"; }
nodes() { kube_get "$E" /api/v1/nodes | $PY -c "import json,sys; print(' '.join(sorted(n['metadata']['name'] for n in json.load(sys.stdin)['items'])))"; }
vms() { labsim_py "' '.join(sorted(s['vms']))"; }
endpoints() { $PY -c "import yaml,sys; c=yaml.safe_load(open('$E/talosconfig')); print(' '.join(c['contexts'][c['context']]['endpoints']))"; }

expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sc-cp-1" ] && ok "etcd: one member" || bad "members $(members)"
[ "$(endpoints)" = "127.0.106.11" ] && ok "talosconfig: one endpoint" || bad "endpoints $(endpoints)"

# 1 -> 3
sed -i 's/controlplane: {count: 1,/controlplane: {count: 3,/' "$E/config.yml"
expect_rc 0 "plan 1 -> 3" -- "$STRATA" plan "$E"
expect_grep "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete" "$T/out" "two control planes to create"
expect_rc 0 "apply 1 -> 3" -- "$STRATA" apply "$E" --yes --timeout 60s
grep -E "gate|snapshot" "$T/err" | sed "s/^/     : /"
expect_grep "health gate before adding control plane sc-cp-2: passed" "$T/err" "gate before cp-2"
expect_grep "health gate before the next step (sc-cp-2 joined etcd): passed" "$T/err" "cp-2 waited for until it is a voting member"
expect_grep "health gate before adding control plane sc-cp-3: passed" "$T/err" "gate before cp-3"
expect_grep "health gate before the next step (sc-cp-3 joined etcd): passed" "$T/err" "cp-3 waited for"
[ "$(members)" = "sc-cp-1 sc-cp-2 sc-cp-3" ] && ok "etcd: three voting members" || bad "members $(members)"
$PY - "$(etcd_log)" <<'PYEOF' > "$T/order"
import ast, sys
log = ast.literal_eval(sys.argv[1])
i = lambda e: log.index(e) if e in log else -1
ok = 0 <= i("promote sc-cp-2") < i("add-learner sc-cp-3")
print("one-at-a-time" if ok else "OVERLAP", log)
PYEOF
expect_grep "one-at-a-time" "$T/order" "cp-3 joined only after cp-2 was promoted"
[ "$(endpoints)" = "127.0.106.11 127.0.106.12 127.0.106.13" ] && ok "talosconfig: three endpoints" || bad "endpoints $(endpoints)"
expect_rc 0 "status --health with 3 control planes" -- "$STRATA" status "$E" --health
expect_grep "ok   etcd-members 3 members on 3 control planes agree" "$T/out" "the gate sees three members"

# 3 -> 1
sed -i 's/controlplane: {count: 3,/controlplane: {count: 1,/' "$E/config.yml"
expect_rc 0 "plan 3 -> 1" -- "$STRATA" plan "$E"
expect_grep "1. sc-cp-3 (control plane): refused if etcd would lose quorum; cordon, drain" "$T/out" "cp-3 first, the steps named"
expect_grep "2. sc-cp-2 (control plane)" "$T/out" "then cp-2"
resets0=$(talos_calls Reset)
expect_rc 0 "apply 3 -> 1" -- "$STRATA" apply "$E" --yes --timeout 60s
grep -E "remove|gate|drain|snapshot" "$T/err" | sed "s/^/     : /"
expect_grep "health gate before removing sc-cp-3: passed (3 nodes" "$T/err" "gate before cp-3 (cp-1, w-1, cp-2; cp-3 may be down)"
expect_grep "remove sc-cp-3: left etcd (EtcdLeaveCluster" "$T/err" "cp-3 left etcd"
expect_grep "remove sc-cp-3: etcd has 2 members now" "$T/err" "two members after cp-3"
expect_grep "health gate before removing sc-cp-2: passed (2 nodes" "$T/err" "gate before cp-2"
expect_grep "remove sc-cp-2: etcd has 1 member now" "$T/err" "one member after cp-2"
expect_grep "health gate before destroying the removed VMs: passed" "$T/err" "gate after the last"
[ "$(members)" = "sc-cp-1" ] && ok "etcd: cp-1 alone, no member left behind" || bad "members $(members)"
[ "$(nodes)" = "sc-cp-1 sc-w-1" ] && ok "Nodes: cp-1 and w-1, none left behind" || bad "nodes $(nodes)"
[ "$(vms)" = "1060 1061" ] && ok "VMs of cp-2 and cp-3 destroyed" || bad "vms $(vms)"
[ "$(talos_calls Reset)" = $((resets0 + 2)) ] && ok "two Resets" || bad "resets $(talos_calls Reset) (before $resets0)"
[ "$(talos_calls EtcdLeaveCluster)" = 2 ] && ok "two EtcdLeaveCluster calls" || bad "leaves $(talos_calls EtcdLeaveCluster)"
[ "$(talos_calls EtcdForfeitLeadership)" = 2 ] && ok "leadership forfeited before each leave" || bad "forfeits $(talos_calls EtcdForfeitLeadership)"
[ "$(endpoints)" = "127.0.106.11" ] && ok "talosconfig: back to one endpoint" || bad "endpoints $(endpoints)"
expect_rc 0 "status --health with 1 control plane" -- "$STRATA" status "$E" --health
expect_grep "ok   etcd-members 1 member on 1 control plane agree" "$T/out" "the gate sees one member"
expect_rc 0 "plan after" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 2 unchanged." "$T/out" "nothing left to do"
finish
