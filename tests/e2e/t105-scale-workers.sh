#!/bin/sh
# Scale workers 5 -> 3 without debris: each removed worker is cordoned and
# drained through evictions that honour PodDisruptionBudgets, reset
# (graceful), its Kubernetes Node deleted, then its VM destroyed; one at a
# time with the health gate before each and after the last. A PDB that
# forbids an eviction stops the apply at that node (cordoned, not reset,
# nothing destroyed); once the budget allows it, a re-run finishes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.105.192/26
E="$T/envs/sw"
write_env "$E" sw 1050 1 5 127.0.105

# kube_apply ENV PATH YAML: server-side apply of one object (labsim.sh's
# kube_req); its answer is printed only when it failed
kube_apply() {
	kube_req PATCH "$1" "$2" "$3" > "$T/kube_apply.out" || { cat "$T/kube_apply.out"; return 1; }
}
nodes() { kube_get "$E" /api/v1/nodes | $PY -c "import json,sys; print(' '.join(sorted(n['metadata']['name'] for n in json.load(sys.stdin)['items'])))"; }
vms() { labsim_py "' '.join(sorted(s['vms']))"; }
pod_on() { kube_get "$E" "/api/v1/namespaces/default/pods/$1" | $PY -c "import json,sys; print(json.load(sys.stdin)['spec']['nodeName'])" 2>/dev/null || echo gone; }
evictions() { labsim_py "sum(1 for c in list(s['talos']['kubernetes'].values())[0]['calls'] if c['method'] == 'POST' and c['path'].endswith('/$1/eviction'))"; }

expect_rc 0 "apply 1+5" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Kubernetes: 6/6 nodes registered" "$T/err" "cluster up"
expect_rc 0 "status --health on the new cluster" -- "$STRATA" status "$E" --health
expect_grep "health (the gate apply runs between disruptive steps): healthy" "$T/out" "healthy"
expect_grep "ok   etcd-members" "$T/out" "etcd members checked"
expect_grep "ok   ready .*6 nodes Ready" "$T/out" "every node Ready"

# workloads: web-a on w-5 may go (web-b on w-1 keeps the budget),
# solo on w-4 may not (its budget wants it available)
for p in "web-a sw-w-5 web" "web-b sw-w-1 web" "solo sw-w-4 solo"; do
	set -- $p
	kube_apply "$E" "/api/v1/namespaces/default/pods/$1" "{apiVersion: v1, kind: Pod, metadata: {name: $1, labels: {app: $3}}, spec: {nodeName: $2, containers: [{name: c, image: 'nginx:1.27'}]}}" \
		&& ok "pod $1 on $2" || bad "pod $1"
done
kube_apply "$E" /apis/policy/v1/namespaces/default/poddisruptionbudgets/web "{apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: web}, spec: {minAvailable: 1, selector: {matchLabels: {app: web}}}}" && ok "PDB web" || bad "PDB web"
kube_apply "$E" /apis/policy/v1/namespaces/default/poddisruptionbudgets/solo "{apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: solo}, spec: {minAvailable: 1, selector: {matchLabels: {app: solo}}}}" && ok "PDB solo" || bad "PDB solo"
# until the three pods run Ready (not a fixed sleep)
ready_pods() {
	kube_get "$E" /api/v1/namespaces/default/pods 2>/dev/null | $PY -c "import json, sys
print(sum(1 for p in json.load(sys.stdin)['items'] if p['metadata']['name'] in ('web-a', 'web-b', 'solo') and {'type': 'Ready', 'status': 'True'} in [{'type': c.get('type'), 'status': c.get('status')} for c in (p.get('status') or {}).get('conditions') or []]))" 2>/dev/null
}
i=0
until [ "$(ready_pods)" = 3 ] || [ $i -gt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(ready_pods)" = 3 ] && ok "the three pods run Ready" || bad "pods Ready: $(ready_pods)"

sed -i 's/workers: {count: 5,/workers: {count: 3,/' "$E/config.yml"
expect_rc 0 "plan 5 -> 3 workers" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 2 to delete" "$T/out" "two VMs to delete"
expect_grep "Nodes leave the cluster one at a time before their VMs are destroyed" "$T/out" "plan says nodes leave first"
expect_grep "1. sw-w-5 (worker): cordon, drain (evictions honour PodDisruptionBudgets), Talos Reset (graceful, power off), delete Kubernetes Node sw-w-5" "$T/out" "w-5 first, every step named"
expect_grep "2. sw-w-4 (worker)" "$T/out" "then w-4"
expect_grep "then the health gate once more, and VMs are destroyed" "$T/out" "and the VMs last"
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
[ "$($PY -c "import json; d=json.load(open('$T/out')); print([(r['name'], r['role'], r['vmid'], r['steps']) for r in d['node_removals']])")" = \
  "[('sw-w-5', 'worker', 1055, ['health-gate', 'cordon', 'drain', 'talos-reset', 'delete-node']), ('sw-w-4', 'worker', 1054, ['health-gate', 'cordon', 'drain', 'talos-reset', 'delete-node'])]" ] \
	&& ok "plan json: node_removals in order with their steps" || bad "plan json: $($PY -c "import json; print(json.load(open('$T/out')).get('node_removals'))")"

resets0=$(talos_calls Reset)
expect_rc 1 "apply 5 -> 3 stops at the budget" -- "$STRATA" apply "$E" --yes --timeout 3s
expect_grep "health gate before removing sw-w-5: passed" "$T/err" "the gate ran before w-5"
expect_grep "drain sw-w-5: evicted pod default/web-a" "$T/err" "web-a evicted (the budget allowed it)"
expect_grep "remove sw-w-5: Kubernetes Node deleted" "$T/err" "w-5's Node deleted"
expect_grep "health gate before removing sw-w-4: passed" "$T/err" "the gate ran again before w-4"
expect_grep "Cannot evict pod as it would violate the pod's disruption budget" "$T/err" "the budget's refusal quoted"
expect_grep "the node stays cordoned and is not removed" "$T/err" "and what happens next"
[ "$(pod_on solo)" = sw-w-4 ] && ok "solo still runs on w-4" || bad "solo: $(pod_on solo)"
[ "$(pod_on web-a)" = gone ] && ok "web-a is gone" || bad "web-a: $(pod_on web-a)"
[ "$(evictions solo)" -ge 2 ] && ok "the refused eviction was retried ($(evictions solo) tries)" || bad "solo evictions $(evictions solo)"
[ "$(talos_calls Reset 127.0.105.25)" = 1 ] && ok "w-5 reset once" || bad "w-5 resets $(talos_calls Reset 127.0.105.25)"
[ "$(talos_calls Reset 127.0.105.24)" = 0 ] && ok "w-4 not reset" || bad "w-4 resets $(talos_calls Reset 127.0.105.24)"
[ "$(nodes)" = "sw-cp-1 sw-w-1 sw-w-2 sw-w-3 sw-w-4" ] && ok "Nodes: w-5 gone, w-4 still there" || bad "nodes $(nodes)"
[ "$(vms)" = "1050 1051 1052 1053 1054 1055" ] && ok "no VM destroyed yet" || bad "vms $(vms)"
expect_rc 1 "status --health: not healthy" -- "$STRATA" status "$E" --health
expect_grep "FAIL cordon .*Node sw-w-4 is cordoned by strata (removal)" "$T/out" "the gate sees our cordon"

kube_req DELETE "$E" /apis/policy/v1/namespaces/default/poddisruptionbudgets/solo > /dev/null && ok "PDB solo deleted" || bad "delete PDB"
expect_rc 0 "apply again finishes" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "drain sw-w-4: evicted pod default/solo" "$T/err" "solo evicted now"
expect_grep "remove sw-w-5: Talos does not answer" "$T/err" "w-5 (reset before) is not reset again"
expect_grep "health gate before destroying the removed VMs: passed" "$T/err" "the gate after the last removal"
[ "$(nodes)" = "sw-cp-1 sw-w-1 sw-w-2 sw-w-3" ] && ok "Nodes: cp-1, w-1..3, none left behind" || bad "nodes $(nodes)"
[ "$(vms)" = "1050 1051 1052 1053" ] && ok "VMs of w-4 and w-5 destroyed" || bad "vms $(vms)"
[ "$(talos_calls Reset)" = $((resets0 + 2)) ] && ok "two Resets in all" || bad "resets $(talos_calls Reset) (before $resets0)"
[ "$(pod_on web-b)" = sw-w-1 ] && ok "web-b untouched" || bad "web-b $(pod_on web-b)"
expect_rc 0 "status --health after the scale-down" -- "$STRATA" status "$E" --health
expect_grep "ok   cordon .*no node cordoned by strata" "$T/out" "nothing cordoned"
expect_grep "ok   nodes .*4/4 nodes registered" "$T/out" "no Node left over"
expect_rc 0 "plan after" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 4 unchanged." "$T/out" "nothing left to do"
finish
