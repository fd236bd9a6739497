#!/bin/sh
# Issue 15's scale test in one cluster: control planes 1 -> 3 -> 1 and
# workers 5 -> 3, with the etcd member list checked in the simulator (not
# only in strata's own messages) after every step: after each join, after
# the workers left (etcd untouched), and after each single removal of the
# 3 -> 1 step (replayed from the simulator's etcd log: cp-3 out first,
# then cp-2, never both at once). No member, learner, Node or VM is left
# behind, and `status --health` agrees after each step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.120.192/26
E="$T/envs/sm"
write_env "$E" sm 1200 1 5 127.0.120

members() { labsim_py "' '.join(sorted(m['name'] + ('(learner)' if m['learner'] else '') + ('' if m['started'] else '(stopped)') for e in s['talos']['etcd'].values() for m in e['members']))"; }
etcd_log() { labsim_py "[list(x) for e in s['talos']['etcd'].values() for x in e['log']]"; }
nodes() { kube_get "$E" /api/v1/nodes | $PY -c "import json,sys; print(' '.join(sorted(n['metadata']['name'] for n in json.load(sys.stdin)['items'])))"; }
vms() { labsim_py "' '.join(sorted(s['vms']))"; }
# replay LOG FROM: the member set after each removal among the log's
# entries from index FROM on ("a b | a" for two removals)
replay() {
	$PY - "$1" "$2" <<'PYEOF'
import ast, sys
log, start = ast.literal_eval(sys.argv[1]), int(sys.argv[2])
cur, after = set(), []
for i, (ev, what) in enumerate(log):
    if ev in ("bootstrap", "add-learner"):
        cur.add(what)
    elif ev == "remove":
        cur.discard(what)
        if i >= start:
            after.append(" ".join(sorted(cur)))
print(" | ".join(after) if after else "no removal")
PYEOF
}
gate_members() {
	expect_rc 0 "status --health ($1)" -- "$STRATA" status "$E" --health
	expect_grep "ok   etcd-members $2" "$T/out" "the gate sees $2"
}

expect_rc 0 "apply 1+5" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sm-cp-1" ] && ok "etcd: one member" || bad "members $(members)"
gate_members "1+5" "1 member on 1 control plane agree"

# control planes 1 -> 3
sed -i 's/controlplane: {count: 1,/controlplane: {count: 3,/' "$E/config.yml"
expect_rc 0 "apply 1 -> 3 control planes" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sm-cp-1 sm-cp-2 sm-cp-3" ] && ok "etcd: three started voting members" || bad "members $(members)"
[ "$(nodes)" = "sm-cp-1 sm-cp-2 sm-cp-3 sm-w-1 sm-w-2 sm-w-3 sm-w-4 sm-w-5" ] && ok "Nodes: 3+5" || bad "nodes $(nodes)"
gate_members "3+5" "3 members on 3 control planes agree"
n_log=$($PY -c "import ast,sys; print(len(ast.literal_eval(sys.argv[1])))" "$(etcd_log)")

# workers 5 -> 3: etcd is not touched
sed -i 's/workers: {count: 5,/workers: {count: 3,/' "$E/config.yml"
expect_rc 0 "apply 5 -> 3 workers" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(members)" = "sm-cp-1 sm-cp-2 sm-cp-3" ] && ok "etcd: still the three members" || bad "members $(members)"
[ "$(replay "$(etcd_log)" "$n_log")" = "no removal" ] && ok "no etcd removal while workers left" \
	|| bad "etcd removals: $(replay "$(etcd_log)" "$n_log")"
[ "$(nodes)" = "sm-cp-1 sm-cp-2 sm-cp-3 sm-w-1 sm-w-2 sm-w-3" ] && ok "Nodes: w-4 and w-5 gone" || bad "nodes $(nodes)"
[ "$(vms)" = "1200 1201 1202 1203 1206 1207" ] && ok "VMs of w-4 (1204) and w-5 (1205) destroyed" || bad "vms $(vms)"
gate_members "3+3" "3 members on 3 control planes agree"
n_log=$($PY -c "import ast,sys; print(len(ast.literal_eval(sys.argv[1])))" "$(etcd_log)")

# control planes 3 -> 1: one member at a time
sed -i 's/controlplane: {count: 3,/controlplane: {count: 1,/' "$E/config.yml"
expect_rc 0 "apply 3 -> 1 control planes" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(replay "$(etcd_log)" "$n_log")" = "sm-cp-1 sm-cp-2 | sm-cp-1" ] && ok "etcd after each removal: cp-1 cp-2, then cp-1" \
	|| bad "members after each removal: $(replay "$(etcd_log)" "$n_log")"
[ "$(members)" = "sm-cp-1" ] && ok "etcd: cp-1 alone, no member or learner left behind" || bad "members $(members)"
[ "$(nodes)" = "sm-cp-1 sm-w-1 sm-w-2 sm-w-3" ] && ok "Nodes: cp-1 and w-1..3, none left behind" || bad "nodes $(nodes)"
[ "$(vms)" = "1200 1201 1202 1203" ] && ok "VMs of cp-2 (1206) and cp-3 (1207) destroyed" || bad "vms $(vms)"
gate_members "1+3" "1 member on 1 control plane agree"
expect_rc 0 "plan after" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 4 unchanged." "$T/out" "nothing left to do"
labsim_stop
finish
