#!/bin/sh
# The health gate and a failed node in a rolling Kubernetes upgrade:
# - a static pod Running but not Ready (the simulator's
#   k8s_static_pod_unready) fails the gate's static-pods check: the roll
#   does not start, the message names the check, the pod and the node, and
#   nothing is sent;
# - a controller manager that crash loops with its new image (knob
#   k8s_static_pod_fail_update) stops the roll at that node with an error
#   naming it, the component and the pod's state; the next control plane
#   is not touched; once it runs, a re-run finishes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
k8sup_env kg 1800 3 1 115

k8sup_apply "apply 3+1 at Kubernetes 1.35.4"

# kg-cp-3's scheduler is not Ready: the gate refuses to start the roll
labsim_ctl POST knobs '{"k8s_static_pod_unready": {"1802": "kube-scheduler"}}' > /dev/null
expect_rc 1 "status --health fails" -- "$STRATA" status "$E" --health
expect_grep "FAIL.*static-pods.*static pod kube-scheduler on kg-cp-3 (registry.k8s.io/kube-scheduler:v1.35.4) is Running but not Ready" "$T/out" \
	"status --health names the pod and the node"
sed -i 's/  version: 1.35.4/  version: 1.36.0/' "$E/config.yml"
a0=$(applies)
expect_rc 1 "apply: the gate before the roll fails (--timeout 2s)" -- "$STRATA" apply "$E" --yes --timeout 2s
expect_grep "health gate before the Kubernetes upgrade: the cluster was not healthy within 2 s: static-pods: static pod kube-scheduler on kg-cp-3" "$T/err" \
	"the failure names the check"
[ "$(applies)" = "$a0" ] && ok "no config sent" || bad "ApplyConfiguration $a0 -> $(applies)"
labsim_ctl POST knobs '{"k8s_static_pod_unready": {}}' > /dev/null

# kg-cp-2's controller manager crash loops with the new image
labsim_ctl POST knobs '{"k8s_static_pod_fail_update": {"1801": "kube-controller-manager"}}' > /dev/null
t0=$(now)
expect_rc 1 "apply: the roll stops at kg-cp-2's controller manager (--timeout 4s)" -- "$STRATA" apply "$E" --yes --timeout 4s
expect_grep "kube-controller-manager on kg-cp-2 did not come up with registry.k8s.io/kube-controller-manager:v1.36.0 in 4s (last: kube-controller-manager on kg-cp-2 runs registry.k8s.io/kube-controller-manager:v1.36.0 but is not Ready (CrashLoopBackOff)); the Kubernetes upgrade stopped here (4 of 16 node steps done)" \
	"$T/err" "the error names the node, the component and the pod's state"
roll "$t0" 1.36.0
expect_grep "^order 1800:kube-apiserver 1801:kube-apiserver 1802:kube-apiserver 1800:kube-controller-manager 1801:kube-controller-manager$" "$T/roll" \
	"stopped there: kg-cp-3's controller manager not touched"
expect_grep "^kubelets 1800:v1.35.4 1801:v1.35.4 1802:v1.35.4 1803:v1.35.4$" "$T/roll" "no kubelet changed"

labsim_ctl POST knobs '{"k8s_static_pod_fail_update": {}}' > /dev/null
t1=$(now)
expect_rc 0 "apply again: the roll continues and finishes" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t1" 1.36.0
expect_grep "^order 1802:kube-controller-manager 1800:kube-scheduler 1801:kube-scheduler 1802:kube-scheduler 1800:kubelet 1801:kubelet 1802:kubelet 1803:kubelet$" "$T/roll" \
	"continues where it stopped"
expect_grep "^kubelets 1800:v1.36.0 1801:v1.36.0 1802:v1.36.0 1803:v1.36.0$" "$T/roll" "every kubelet at v1.36.0"
expect_rc 0 "status --health after the roll" -- "$STRATA" status "$E" --health
expect_grep "ok.*static-pods" "$T/out" "static pods healthy"
finish
