#!/bin/sh
# Pruning the bootstrap manifests after a Kubernetes upgrade (talosctl
# upgrade-k8s step 6, FACTS-day2 4b: from v1.13 the re-apply deletes what
# Talos no longer renders; --manifests-no-prune, here
# kubernetes.manifests_prune: false, turns it off; v1.12 does not prune).
# On 1+1 keeping kube-proxy (cni none), Talos v1.13.9: the first roll
# journals the 4 objects it applied (bootstrap_manifests_applied); a talos
# patch then turns CoreDNS off (cluster.coreDNS.disabled: Talos stops
# rendering 11-core-dns, and deletes nothing itself); the next roll deletes
# the CoreDNS Deployment, and a Deployment made by hand in kube-system (in
# no record) stays; that roll's DELETE of CoreDNS first fails (HTTP 500):
# apply stops naming it, the record kept, and the re-run prunes. With
# manifests_prune: false the same change leaves CoreDNS, and so does Talos
# v1.12.11 (a second simulator).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"

DNS=/apis/apps/v1/namespaces/kube-system/deployments/coredns
HAND=/apis/apps/v1/namespaces/kube-system/deployments/hand-dns
present() { kube_get "$E" "$1" > /dev/null 2>&1; }
record() { $PY -c "import json; print(' '.join(sorted('%s/%s/%s/%s' % (o['apiVersion'], o['kind'], o.get('namespace', '-'), o['name']) for o in json.load(open('$E/state.json')).get('bootstrap_manifests_applied', []))))"; }
dns_off() {
	cat >> "$E/config.yml" <<'YAML'
  patches:
    - cluster: {coreDNS: {disabled: true}}
YAML
	expect_rc 0 "apply the patch turning CoreDNS off (no roll)" -- "$STRATA" apply "$E" --yes --timeout 60s
	[ "$rc" = 0 ] || tail -20 "$T/err"
	present $DNS && ok "the CoreDNS Deployment stays (Talos deletes nothing it applied)" || bad "CoreDNS gone before the roll"
}
# to VERSION: plan (in $T/plan) and apply the roll to VERSION
to() {
	sed -i "s/^  version: 1\.35\.[0-9]*\$/  version: $1/" "$E/config.yml"
	expect_rc 0 "plan the roll to $1" -- "$STRATA" plan "$E"
	cp "$T/out" "$T/plan"
	t0=$(now)
	expect_rc 0 "apply rolls to $1" -- "$STRATA" apply "$E" --yes --timeout 60s
	[ "$rc" = 0 ] || tail -20 "$T/err"
	roll "$t0" "$1"
}
no_pruned() {
	if grep -q "bootstrap manifests: pruned" "$T/err"; then bad "$1: $(grep pruned "$T/err")"; else ok "$1"; fi
}
ALL4="apps/v1/DaemonSet/kube-system/kube-proxy apps/v1/Deployment/kube-system/coredns rbac.authorization.k8s.io/v1/ClusterRoleBinding/-/system-bootstrap-approve-node-client-csr v1/Secret/kube-system/bootstrap-token-"
NODNS="apps/v1/DaemonSet/kube-system/kube-proxy rbac.authorization.k8s.io/v1/ClusterRoleBinding/-/system-bootstrap-approve-node-client-csr v1/Secret/kube-system/bootstrap-token-"

# --- Talos v1.13.9, pruning on (the default)
k8sup_env bm 1250 1 1 125 "  cni: {name: none}"
k8sup_apply "apply 1+1, no CNI, at Kubernetes 1.35.4 on Talos v1.13.9"
kube_req PATCH "$E" $HAND '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hand-dns", "namespace": "kube-system"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hand-dns"}}, "template": {"metadata": {"labels": {"app": "hand-dns"}}, "spec": {"containers": [{"name": "dns", "image": "registry.k8s.io/coredns/coredns:v1.12.0"}]}}}}' > /dev/null \
	&& ok "a Deployment made by hand in kube-system" || bad "hand-dns not created"
[ -z "$(record)" ] && ok "nothing journaled before the first re-apply" || bad "record: $(record)"

to 1.35.5
if grep -q "manifests prune" "$T/plan"; then bad "plan shows a prune with no record"; else ok "no record yet: plan shows no prune"; fi
expect_grep "bootstrap manifests: 4 objects of 4 manifests rendered by bm-cp-1's Talos applied again" "$T/err" "the 4 objects applied again"
no_pruned "nothing pruned (all still rendered)"
case "$(record)" in "$ALL4"*) ok "the 4 objects journaled (bootstrap_manifests_applied)" ;; *) bad "record: $(record)" ;; esac

dns_off
# as if an earlier re-apply had applied two more (an extra manifest since
# dropped): a Namespace, and a ConfigMap someone already deleted
kube_req PATCH "$E" /api/v1/namespaces/strata-extra '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "strata-extra"}}' > /dev/null \
	&& ok "Namespace strata-extra" || bad "namespace not created"
$PY - "$E/state.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["bootstrap_manifests_applied"] += [{"apiVersion": "v1", "kind": "Namespace", "name": "strata-extra"},
                                     {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "kube-system", "name": "gone-already"}]
json.dump(s, open(sys.argv[1], "w"))
PYEOF
# the roll to 1.35.6 with the API server failing the CoreDNS Deployment's
# DELETE (500, labsim k8s_delete_fail): the roll's node steps are done, the
# apply fails naming the object and the server's message, and the record
# keeps what was not pruned; once the API deletes again, the re-run prunes
R=$(record)
labsim_ctl POST knobs '{"k8s_delete_fail": {"/namespaces/kube-system/deployments/coredns$": "etcdserver: request timed out"}}' > /dev/null
sed -i "s/^  version: 1\.35\.[0-9]*\$/  version: 1.35.6/" "$E/config.yml"
expect_rc 0 "plan the roll to 1.35.6" -- "$STRATA" plan "$E"
cp "$T/out" "$T/plan"
t0=$(now)
expect_rc 1 "apply rolls to 1.35.6, then fails pruning CoreDNS (DELETE answered 500)" -- "$STRATA" apply "$E" --yes --timeout 60s
roll "$t0" 1.35.6
expect_grep "^  ^ manifests prune  *then deleted: those of the 6 objects strata applied from them last time that Talos no longer renders" "$T/plan" "plan shows the prune"
expect_grep "^kubelets 1250:v1.35.6 1251:v1.35.6$" "$T/roll" "both kubelets at v1.35.6"
expect_grep "pruning Deployment kube-system/coredns (strata applied it from the bootstrap manifests before, bm-cp-1's Talos no longer renders it.*HTTP 500 InternalError: etcdserver: request timed out" "$T/err" "the failure names the object and the server's message"
expect_grep "re-applying the bootstrap manifests after the Kubernetes upgrade (its node steps are done): fix it and run apply again" "$T/err" "the failure says what to do"
present $DNS && ok "the CoreDNS Deployment is still there (the DELETE failed)" || bad "CoreDNS deleted although its DELETE failed"
[ "$(record)" = "$R" ] && ok "the record unchanged by the failed prune (CoreDNS still in it)" || bad "record: $(record), was: $R"
labsim_ctl POST knobs '{"k8s_delete_fail": {}}' > /dev/null
expect_rc 0 "apply again: the manifests re-applied and pruned" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
expect_grep "bootstrap manifests: pruned ConfigMap kube-system/gone-already (v1)" "$T/err" "an object already gone (404) counts as pruned"
expect_grep "bootstrap manifests: Namespace strata-extra is no longer rendered by bm-cp-1's Talos; not pruned: deleting a Namespace deletes objects strata never applied" "$T/err" "a Namespace is not pruned, with a warning"
present /api/v1/namespaces/strata-extra && ok "Namespace strata-extra stays" || bad "the Namespace was deleted"
expect_grep "bootstrap manifests: 3 objects of 3 manifests" "$T/err" "the 3 manifests still rendered applied again"
expect_grep "bootstrap manifests: pruned Deployment kube-system/coredns (apps/v1): applied by strata before, no longer rendered by bm-cp-1's Talos" "$T/err" "apply names the pruned object"
[ "$(grep -c "bootstrap manifests: pruned" "$T/err")" = 2 ] && ok "two objects pruned" || bad "pruned: $(grep pruned "$T/err")"
present $DNS && bad "the CoreDNS Deployment is still there" || ok "the CoreDNS Deployment deleted from Kubernetes"
present $HAND && ok "the hand-made Deployment (in no record) stays" || bad "hand-dns deleted"
present /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy && ok "kube-proxy (still rendered) stays" || bad "kube-proxy gone"
case "$(record)" in "$NODNS"*) ok "the record replaced: CoreDNS no longer in it" ;; *) bad "record: $(record)" ;; esac
expect_rc 0 "apply once more" -- "$STRATA" apply "$E" --yes --timeout 60s
no_pruned "nothing to do: nothing pruned"

# --- manifests_prune: false: CoreDNS back (the patch dropped), journaled,
# then turned off again with pruning off
sed -i '/^  patches:$/,$d' "$E/config.yml"
to 1.35.7
present $DNS && ok "CoreDNS rendered again: the Deployment re-created" || bad "CoreDNS not back"
case "$(record)" in "$ALL4"*) ok "CoreDNS journaled again" ;; *) bad "record: $(record)" ;; esac
sed -i 's/^  version: 1.35.7$/&\n  manifests_prune: false/' "$E/config.yml"
dns_off
to 1.35.8
expect_grep "^kubelets 1250:v1.35.8 1251:v1.35.8$" "$T/roll" "both kubelets at v1.35.8"
if grep -q "manifests prune" "$T/plan"; then bad "plan shows a prune with manifests_prune: false"; else ok "manifests_prune: false: plan shows no prune"; fi
expect_grep "bootstrap manifests: 1 objects strata applied before are no longer rendered by bm-cp-1's Talos, left in place (kubernetes.manifests_prune is false)" "$T/err" "apply says what it leaves"
no_pruned "manifests_prune: false: nothing pruned"
present $DNS && ok "the CoreDNS Deployment stays" || bad "CoreDNS deleted with manifests_prune: false"
case "$(record)" in "$NODNS"*) ok "the record replaced by what was applied" ;; *) bad "record: $(record)" ;; esac

# --- Talos v1.12.11: talosctl v1.12 does not prune
labsim_stop
mv "$T/labsim" "$T/labsim-v1.13"
k8sup_env bm12 1350 1 1 126 "  cni: {name: none}"
sed -i 's/^  version: v1.13.9$/  version: v1.12.11/' "$E/config.yml"
k8sup_apply "apply 1+1 at Kubernetes 1.35.4 on Talos v1.12.11"
to 1.35.5
no_pruned "v1.12, all rendered: nothing pruned"
case "$(record)" in "$ALL4"*) ok "v1.12: the 4 objects journaled too (for a later v1.13)" ;; *) bad "record: $(record)" ;; esac
dns_off
to 1.35.6
expect_grep "^kubelets 1350:v1.35.6 1351:v1.35.6$" "$T/roll" "both kubelets at v1.35.6"
if grep -q "manifests prune" "$T/plan"; then bad "plan shows a prune on v1.12"; else ok "v1.12: plan shows no prune"; fi
expect_grep "left in place (Talos v1.12: talosctl v1.12 does not prune)" "$T/err" "apply says v1.12 does not prune"
no_pruned "v1.12: nothing pruned"
present $DNS && ok "v1.12: the CoreDNS Deployment stays" || bad "CoreDNS deleted on v1.12"
finish
