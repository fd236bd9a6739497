#!/bin/sh
# Rolling Kubernetes upgrade of 3+2 (issue 15 item 4): a changed
# kubernetes.version 1.35.4 -> 1.36.0 (Talos v1.13.9 supports both) rolls
# in the upgrade-k8s order (FACTS-day2 4b): kube-apiserver on each control
# plane one at a time, then kube-controller-manager, kube-scheduler, the
# kube-proxy image, then the kubelets of the control planes and then of
# the workers; each step the node's config applied NO_REBOOT, waited for
# (the static pod runs the new image and is Ready; the Node reports the
# new kubelet), then the health gate. No node reboots. Plan shows the
# roll; a re-run is a no-op; a skipped minor and a downgrade are refused
# with nothing sent.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
k8sup_env ku 1700 3 2 113

k8sup_apply "apply 3+2 at Kubernetes 1.35.4"
expect_grep "Kubernetes: 5/5 nodes registered" "$T/err" "cluster up"
kube_get "$E" /api/v1/nodes > "$T/nodes.json"
[ "$($PY -c "import json; print(sorted(set(n['status']['nodeInfo']['kubeletVersion'] for n in json.load(open('$T/nodes.json'))['items'])))")" = "['v1.35.4']" ] \
	&& ok "every Node reports kubelet v1.35.4" || bad "kubelets $(cat "$T/nodes.json" | head -c 300)"
expect_rc 0 "status --health" -- "$STRATA" status "$E" --health
expect_grep "ok.*static-pods.*kube-apiserver, kube-controller-manager, kube-scheduler Running and Ready on 3 control planes" "$T/out" \
	"status --health prints the static pods check"
expect_grep "ok.*coredns.*CoreDNS Deployment: 2/2 replicas available" "$T/out" "and CoreDNS"
expect_grep "ok.*kube-proxy.*no kube-proxy DaemonSet (replaced by the CNI)" "$T/out" "kube-proxy replaced by Cilium: nothing to check"

# refusals: a skipped minor, a downgrade; nothing sent
a0=$(applies)
sed -i 's/  version: 1.35.4/  version: 1.37.0/' "$E/config.yml"
expect_rc 2 "a skipped minor: refused" -- "$STRATA" plan "$E"
sed -i 's/  version: 1.37.0/  version: 1.36.0/' "$E/config.yml"
sed -i 's/  version: v1.13.9/  version: v1.13.9/' "$E/config.yml"
sed -i 's/  version: 1.36.0/  version: 1.34.1/' "$E/config.yml"
expect_rc 2 "plan refuses a downgrade" -- "$STRATA" plan "$E"
expect_grep "Kubernetes 1.35.4 -> 1.34.1 is a downgrade" "$T/err" "named a downgrade"
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(applies)" = "$a0" ] && ok "no config sent to any node" || bad "ApplyConfiguration $a0 -> $(applies)"

# 1.35.4 -> 1.36.0: plan shows the roll
sed -i 's/  version: 1.34.1/  version: 1.36.0/' "$E/config.yml"
expect_rc 0 "plan shows the Kubernetes roll" -- "$STRATA" plan "$E"
expect_grep "Kubernetes upgrade 1.35.4 -> 1.36.0, rolling in the upgrade-k8s order" "$T/out" "announces the roll"
expect_grep "\^ kube-apiserver  *ku-cp-1, ku-cp-2, ku-cp-3  (each: its static pod Ready" "$T/out" "API servers first, over the control planes"
expect_grep "\^ kubelet  *ku-cp-1, ku-cp-2, ku-cp-3, ku-w-1, ku-w-2  (control planes, then workers" "$T/out" "kubelets last, workers after the control planes"
[ "$(applies)" = "$a0" ] && ok "plan sent nothing" || bad "ApplyConfiguration $a0 -> $(applies)"

t0=$(now)
expect_rc 0 "apply rolls Kubernetes to 1.36.0" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t0" 1.36.0
expect_grep "^order 1700:kube-apiserver 1701:kube-apiserver 1702:kube-apiserver 1700:kube-controller-manager 1701:kube-controller-manager 1702:kube-controller-manager 1700:kube-scheduler 1701:kube-scheduler 1702:kube-scheduler 1700:kubelet 1701:kubelet 1702:kubelet 1703:kubelet 1704:kubelet$" \
	"$T/roll" "the upgrade-k8s order, node by node"
expect_grep "^one-at-a-time yes" "$T/roll" "each step's change happened before the next node got its config"
expect_grep "^gate-between yes" "$T/roll" "the health gate ran between the steps"
expect_grep "^no-reboot yes" "$T/roll" "no node rebooted"
expect_grep "^kubelets 1700:v1.36.0 1701:v1.36.0 1702:v1.36.0 1703:v1.36.0 1704:v1.36.0$" "$T/roll" "every kubelet at v1.36.0"
expect_grep "kube-proxy on ku-cp-2 (registry.k8s.io/kube-proxy:v1.36.0, NO_REBOOT)" "$T/err" "the kube-proxy image on each control plane"
expect_grep "kubelet on ku-w-2: the Node reports the new kubelet" "$T/err" "apply says the Node reports it"
# 3 control planes x 5 steps + 2 workers x 1
n=$(labsim_py "len([c for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t0])")
[ "$n" = 17 ] && ok "17 NO_REBOOT applies (3 x 5 steps + 2 kubelets)" || bad "applies $n"
kube_get "$E" /api/v1/nodes > "$T/nodes.json"
[ "$($PY -c "import json; print(sorted(set(n['status']['nodeInfo']['kubeletVersion'] for n in json.load(open('$T/nodes.json'))['items'])))")" = "['v1.36.0']" ] \
	&& ok "every Node reports kubelet v1.36.0" || bad "kubelets $(head -c 300 "$T/nodes.json")"
kube_get "$E" "/api/v1/namespaces/kube-system/pods?labelSelector=tier%3Dcontrol-plane" > "$T/pods.json"
[ "$($PY -c "import json; print(sorted(set(p['spec']['containers'][0]['image'].rsplit(':',1)[1] for p in json.load(open('$T/pods.json'))['items'])), len(json.load(open('$T/pods.json'))['items']))")" = "['v1.36.0'] 9" ] \
	&& ok "the 9 static pods run v1.36.0 images" || bad "pods $(head -c 300 "$T/pods.json")"

a1=$(applies)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(applies)" = "$a1" ] && ok "a re-run sends nothing" || bad "ApplyConfiguration $a1 -> $(applies)"
expect_rc 0 "plan: nothing left" -- "$STRATA" plan "$E"
if grep -q "Kubernetes upgrade" "$T/out"; then bad "plan still shows a roll"; else ok "plan shows no roll"; fi
finish
