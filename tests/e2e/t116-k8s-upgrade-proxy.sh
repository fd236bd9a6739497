#!/bin/sh
# A patch upgrade (1.35.4 -> 1.35.5, same minor) of a cluster that keeps
# kube-proxy (kubernetes.cni none: no Cilium to replace it): the health
# gate checks the kube-proxy DaemonSet's pods (they use the host network,
# so they run without a CNI; CoreDNS is not checked before a CNI), and the
# roll brings the DaemonSet to the new kube-proxy image (Talos does not
# update its bootstrap manifests), waiting for its rollout before the
# kubelets.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
k8sup_env kp 1850 1 1 116 "  cni: {name: none}"
ds_image() { kube_get "$E" /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy | $PY -c "import json,sys; print(json.load(sys.stdin)['spec']['template']['spec']['containers'][0]['image'])"; }

k8sup_apply "apply 1+1, no CNI, at Kubernetes 1.35.4"
expect_rc 0 "status --health" -- "$STRATA" status "$E" --health
expect_grep "ok.*kube-proxy.*kube-proxy DaemonSet: 2/2 pods ready" "$T/out" "the gate checks kube-proxy's pods"
if grep -q "coredns" "$T/out"; then bad "CoreDNS checked without a CNI"; else ok "CoreDNS not checked before a CNI"; fi
expect_grep "ok.*static-pods.*Running and Ready on 1 control plane" "$T/out" "and the static pods"
[ "$(ds_image)" = "registry.k8s.io/kube-proxy:v1.35.4" ] && ok "kube-proxy DaemonSet at v1.35.4" || bad "image $(ds_image)"

sed -i 's/  version: 1.35.4/  version: 1.35.5/' "$E/config.yml"
expect_rc 0 "plan shows the patch upgrade" -- "$STRATA" plan "$E"
expect_grep "Kubernetes upgrade 1.35.4 -> 1.35.5, rolling" "$T/out" "a same-minor upgrade is a supported path"
t0=$(now)
expect_rc 0 "apply rolls to 1.35.5" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t0" 1.35.5
expect_grep "^order 1850:kube-apiserver 1850:kube-controller-manager 1850:kube-scheduler 1850:kubelet 1851:kubelet$" "$T/roll" "the upgrade-k8s order"
expect_grep "^kubelets 1850:v1.35.5 1851:v1.35.5$" "$T/roll" "both kubelets at v1.35.5"
expect_grep "kube-proxy DaemonSet rolled out with registry.k8s.io/kube-proxy:v1.35.5" "$T/err" "the DaemonSet rolled out before the kubelets"
[ "$(ds_image)" = "registry.k8s.io/kube-proxy:v1.35.5" ] && ok "kube-proxy DaemonSet at v1.35.5" || bad "image $(ds_image)"
# the DaemonSet was updated before the first kubelet's config went out
first_kubelet=$(labsim_py "min(e['t'] for e in s['talos']['node_events'] if e['event'].startswith('k8s kubelet ') and e['t'] >= $t0)")
# (the first PATCH of the roll: the bootstrap manifests, applied again
# after the kubelets, patch it once more)
ds_patch=$(labsim_py "min(c['t'] for k in s['talos']['kubernetes'].values() for c in k['calls'] if c['method'] == 'PATCH' and c['path'] == '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy' and c['t'] >= $t0)")
$PY -c "import sys; sys.exit(0 if $ds_patch < $first_kubelet else 1)" && ok "kube-proxy before the kubelets" || bad "DaemonSet patched at $ds_patch, kubelet at $first_kubelet"
expect_rc 0 "status --health after the roll" -- "$STRATA" status "$E" --health
expect_grep "ok.*kube-proxy.*2/2 pods ready" "$T/out" "kube-proxy ready again"
finish
