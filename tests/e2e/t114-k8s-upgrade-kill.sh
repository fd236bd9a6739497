#!/bin/sh
# A rolling Kubernetes upgrade killed with kill -9 in the middle (the
# controller manager of the second control plane restarting with the new
# image), then re-run: the journal (k8s_step per node) says which steps
# each node has done, so the re-run continues with the step it was in
# instead of starting over, and converges: every static pod and kubelet at
# the new version, each changed once, in the upgrade-k8s order.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
LABSIM_SCALE=0.02 k8sup_env kk 1750 3 2 114

k8sup_apply "apply 3+2 at Kubernetes 1.35.4"
# a static pod takes 1 s (50 s x 0.02) to restart with its new image
labsim_ctl POST knobs '{"k8s_static_pod_seconds": 50}' > /dev/null
sed -i 's/  version: 1.35.4/  version: 1.36.0/' "$E/config.yml"
t0=$(now)
a0=$(applies)
"$STRATA" apply "$E" --yes --timeout 60s > "$T/out" 2> "$T/err" &
pid=$!
got=$(labsim_wait_for "any(e['vmid'] == 1751 and e['event'].startswith('k8s kube-controller-manager ') and e['event'].endswith(':v1.36.0') for e in s['talos']['node_events'])")
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
_capture "$T/out" "$T/err"
[ "$got" = yes ] && ok "apply killed once kk-cp-2's controller manager restarted with v1.36.0" || bad "never saw it"
[ "$($PY -c "import json; print(json.load(open('$E/state.json'))['addons']['bootstrap-manifests']['pending'])")" = 1.36.0 ] \
	&& ok "the journal marks the bootstrap manifests pending since the roll began" || bad "no pending marker"
n1=$(( $(applies) - a0 ))
[ "$n1" = 5 ] && ok "5 steps applied before the kill (3 API servers, 2 controller managers)" || bad "applies before the kill: $n1"
expect_rc 0 "plan after the kill still shows the rest of the roll" -- "$STRATA" plan "$E"
expect_grep "\^ kube-controller-manager  *kk-cp-2, kk-cp-3 \|\^ kube-controller-manager  *kk-cp-3 " "$T/out" "kk-cp-1's controller manager is done"
expect_grep "\^ kube-apiserver  *(done)" "$T/out" "the API servers are done"

a1=$(applies)
expect_rc 0 "apply again: the roll continues" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
n2=$(( $(applies) - a1 ))
[ "$n2" -ge 12 ] && [ "$n2" -le 13 ] && ok "the re-run applied only what was left ($n2 of 17)" || bad "re-run applies: $n2"
roll "$t0" 1.36.0
expect_grep "^order 1750:kube-apiserver 1751:kube-apiserver 1752:kube-apiserver 1750:kube-controller-manager 1751:kube-controller-manager 1752:kube-controller-manager 1750:kube-scheduler 1751:kube-scheduler 1752:kube-scheduler 1750:kubelet 1751:kubelet 1752:kubelet 1753:kubelet 1754:kubelet$" \
	"$T/roll" "each container changed once, in the upgrade-k8s order, across the kill"
expect_grep "^one-at-a-time yes" "$T/roll" "one node step at a time"
expect_grep "^no-reboot yes" "$T/roll" "no node rebooted"
expect_grep "^kubelets 1750:v1.36.0 1751:v1.36.0 1752:v1.36.0 1753:v1.36.0 1754:v1.36.0$" "$T/roll" "converged: every kubelet at v1.36.0"
expect_grep "bootstrap manifests: .* rendered by kk-cp-1's Talos applied again" "$T/err" "then the bootstrap manifests applied again"
a2=$(applies)
expect_rc 0 "apply once more" -- "$STRATA" apply "$E" --yes --timeout 60s
if grep -q "bootstrap manifests:" "$T/err"; then bad "manifests applied again with nothing pending"; else ok "nothing pending after"; fi
[ "$(applies)" = "$a2" ] && ok "nothing left to send" || bad "ApplyConfiguration $a2 -> $(applies)"
finish
