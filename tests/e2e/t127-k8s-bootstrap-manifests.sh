#!/bin/sh
# The bootstrap manifests after a Kubernetes upgrade (talosctl upgrade-k8s
# step 6, FACTS-day2 4b): Talos renders them from a control plane's
# machine config (COSI Manifests.kubernetes.talos.dev in namespace
# controlplane) but applies them to Kubernetes only once, at bootstrap.
# On 1+1 keeping kube-proxy (cni none), a talos patch moving CoreDNS to
# another image changes the config but not the cluster's Deployment; the
# roll 1.35.4 -> 1.35.5 then applies every rendered manifest again
# (server-side, as strata): CoreDNS at the patched image, kube-proxy at
# 1.35.5, the bootstrap token Secret applied too (and never printed). A
# re-run with the step journaled as pending (an apply killed after the
# kubelets) applies them again without a node step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
k8sup_env bm 1270 1 1 127 "  cni: {name: none}"
dep_image() { kube_get "$E" /apis/apps/v1/namespaces/kube-system/deployments/coredns | $PY -c "import json,sys; print(json.load(sys.stdin)['spec']['template']['spec']['containers'][0]['image'])"; }
ds_image() { kube_get "$E" /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy | $PY -c "import json,sys; print(json.load(sys.stdin)['spec']['template']['spec']['containers'][0]['image'])"; }
cosi_lists() { labsim_py "sum(1 for c in s['talos']['calls'] if c['method'] == '/cosi.resource.State/List')"; }

k8sup_apply "apply 1+1, no CNI, at Kubernetes 1.35.4"
[ "$(dep_image)" = "registry.k8s.io/coredns/coredns:v1.12.0" ] && ok "CoreDNS as Talos applied it at bootstrap" || bad "coredns $(dep_image)"

cat >> "$E/config.yml" <<'YAML'
  patches:
    - cluster: {coreDNS: {image: registry.k8s.io/coredns/coredns:v1.12.1}}
YAML
expect_rc 0 "apply the CoreDNS patch" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
grep -q "coredns/coredns:v1.12.1" "$E/nodes/bm-cp-1.yaml" && ok "the control plane's config has the patched image" || bad "patch not in nodes/bm-cp-1.yaml"
[ "$(dep_image)" = "registry.k8s.io/coredns/coredns:v1.12.0" ] \
	&& ok "the cluster's Deployment keeps the old image (Talos applies its manifests once)" || bad "coredns $(dep_image)"

sed -i 's/  version: 1.35.4/  version: 1.35.5/' "$E/config.yml"
expect_rc 0 "plan shows the roll" -- "$STRATA" plan "$E"
expect_grep "\^ bootstrap manifests  *then applied again from a control plane's Talos" "$T/out" "and the manifests after the kubelets"
c0=$(cosi_lists)
t0=$(now)
expect_rc 0 "apply rolls to 1.35.5" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t0" 1.35.5
expect_grep "^kubelets 1270:v1.35.5 1271:v1.35.5$" "$T/roll" "both kubelets at v1.35.5"
expect_grep "bootstrap manifests: 4 objects of 4 manifests rendered by bm-cp-1's Talos applied again" "$T/err" "apply says what it applied"
[ "$(cosi_lists)" = "$((c0 + 1))" ] && ok "the manifests listed once over COSI" || bad "COSI lists $c0 -> $(cosi_lists)"
[ "$(dep_image)" = "registry.k8s.io/coredns/coredns:v1.12.1" ] && ok "CoreDNS now runs the image the config renders" || bad "coredns $(dep_image)"
[ "$(ds_image)" = "registry.k8s.io/kube-proxy:v1.35.5" ] && ok "kube-proxy at v1.35.5" || bad "kube-proxy $(ds_image)"
kube_get "$E" /api/v1/namespaces/kube-system/secrets > "$T/secrets.json"
[ "$($PY -c "import json; print([m['manager'] for o in json.load(open('$T/secrets.json'))['items'] if o['metadata']['name'].startswith('bootstrap-token-') for m in o['metadata']['managedFields']])")" = "['talos', 'strata']" ] \
	&& ok "the bootstrap token Secret applied again by strata" || bad "secret managers $(head -c 300 "$T/secrets.json")"
pending() { $PY -c "import json; print(json.load(open('$E/state.json')).get('addons', {}).get('bootstrap-manifests', {}).get('pending'))"; }
[ "$(pending)" = None ] && ok "nothing left pending in the journal" || bad "the journal still marks the manifests pending: $(pending)"

# an apply killed after the kubelets: the journal says the manifests are
# pending; the re-run applies them (no node step)
a0=$(applies)
kube_req DELETE "$E" /apis/apps/v1/namespaces/kube-system/deployments/coredns > /dev/null && ok "CoreDNS Deployment deleted" || bad "delete failed"
$PY - "$E/state.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
s.setdefault("addons", {})["bootstrap-manifests"] = {"pending": "1.35.5"}
json.dump(s, open(sys.argv[1], "w"))
PYEOF
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "Kubernetes 1.35.5: the bootstrap manifests are still to be applied again" "$T/out" "plan says they are pending"
expect_grep "\^ manifests prune  *then deleted: those of the 4 objects strata applied" "$T/out" "and that the re-apply prunes what Talos no longer renders (Talos v1.13)"
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
expect_grep "bootstrap manifests: 4 objects of 4 manifests" "$T/err" "the pending manifests applied"
[ "$(dep_image)" = "registry.k8s.io/coredns/coredns:v1.12.1" ] && ok "CoreDNS is back" || bad "coredns $(dep_image)"
[ "$(applies)" = "$a0" ] && ok "no config sent to a node" || bad "ApplyConfiguration $a0 -> $(applies)"
expect_rc 0 "apply once more" -- "$STRATA" apply "$E" --yes --timeout 60s
if grep -q "bootstrap manifests:" "$T/err"; then bad "applied again with nothing pending"; else ok "nothing pending: not applied again"; fi
expect_rc 0 "plan" -- "$STRATA" plan "$E"
if grep -q "bootstrap manifests" "$T/out"; then bad "plan still shows them"; else ok "plan shows nothing pending"; fi
finish
