#!/bin/sh
# The removed-API check of a Kubernetes upgrade (talosctl upgrade-k8s step
# 1, FACTS-day2 4b; src/kube/removed.c): Kubernetes 1.32 no longer serves
# flowcontrol.apiserver.k8s.io/v1beta3 (the Deprecated API Migration
# Guide). On 1+1 at 1.31.4, a FlowSchema and a PriorityLevelConfiguration
# written through v1beta3 make plan and apply refuse 1.31.4 -> 1.32.0,
# naming both and what to do, with nothing sent to any node; the API
# server's own FlowSchemas (written through v1, listed through v1beta3 as
# well) are not named. Once one is migrated to v1 and the other deleted,
# the upgrade rolls, and the 1.32 API server answers 404 for v1beta3.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
k8sup_env ra 1190 1 1 119
sed -i 's/  version: 1.35.4/  version: 1.31.4/' "$E/config.yml"
FC=/apis/flowcontrol.apiserver.k8s.io

k8sup_apply "apply 1+1 at Kubernetes 1.31.4"
kube_get "$E" $FC/v1beta3/flowschemas > "$T/fs.json" && ok "a 1.31 API server serves flowcontrol v1beta3" \
	|| bad "v1beta3 not served: $(head -c 300 "$T/fs.json")"
[ "$($PY -c "import json; print(sorted(o['metadata']['name'] for o in json.load(open('$T/fs.json'))['items']))")" = "['catch-all', 'exempt']" ] \
	&& ok "its own FlowSchemas (written through v1) are listed through v1beta3 too" || bad "$(head -c 300 "$T/fs.json")"
kube_req PATCH "$E" $FC/v1beta3/flowschemas/legacy-fs "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
kind: FlowSchema
metadata: {name: legacy-fs}
spec: {matchingPrecedence: 500, priorityLevelConfiguration: {name: legacy-plc}}" > /dev/null \
	&& ok "a FlowSchema written through v1beta3" || bad "FlowSchema not created"
PLC="kind: PriorityLevelConfiguration
metadata: {name: legacy-plc}
spec: {type: Limited, limited: {nominalConcurrencyShares: 5, limitResponse: {type: Reject}}}"
kube_req PATCH "$E" $FC/v1beta3/prioritylevelconfigurations/legacy-plc "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
$PLC" > /dev/null && ok "a PriorityLevelConfiguration written through v1beta3" || bad "PLC not created"

sed -i 's/  version: 1.31.4/  version: 1.32.0/' "$E/config.yml"
a0=$(applies) p0=$(talos_calls ImagePull) s0=$(talos_calls EtcdSnapshot)
expect_rc 2 "plan refuses 1.31.4 -> 1.32.0" -- "$STRATA" plan "$E"
sed 's/^/     | /' "$T/err"
expect_grep "uses an API the new Kubernetes no longer serves: FlowSchema legacy-fs" "$T/err" "a warning line per object"
expect_grep "Kubernetes 1.31.4 -> 1.32.0: 2 objects use an API that 1.32 no longer serves" "$T/err" "says why"
expect_grep "FlowSchema legacy-fs (flowcontrol.apiserver.k8s.io/v1beta3, written by kube_req)" "$T/err" "names the FlowSchema and who writes it"
expect_grep "PriorityLevelConfiguration legacy-plc (flowcontrol.apiserver.k8s.io/v1beta3, written by kube_req)" "$T/err" "and the PriorityLevelConfiguration"
expect_grep "flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema, PriorityLevelConfiguration: migrate to flowcontrol.apiserver.k8s.io/v1 (set that apiVersion" "$T/err" "says what to migrate to"
expect_grep "Then run apply again; the upgrade did not start, nothing was changed" "$T/err" "and what to do then"
if grep -q "exempt\|catch-all" "$T/err"; then bad "the API server's own FlowSchemas named"; else ok "the API server's own FlowSchemas are not named"; fi
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "FlowSchema legacy-fs (flowcontrol.apiserver.k8s.io/v1beta3" "$T/err" "naming the objects"
[ "$(applies)" = "$a0" ] && ok "no config sent to any node" || bad "ApplyConfiguration $a0 -> $(applies)"
[ "$(talos_calls ImagePull)" = "$p0" ] && ok "no image pulled" || bad "ImagePull $p0 -> $(talos_calls ImagePull)"
[ "$(talos_calls EtcdSnapshot)" = "$s0" ] && ok "no etcd snapshot taken" || bad "EtcdSnapshot $s0 -> $(talos_calls EtcdSnapshot)"
kube_get "$E" /api/v1/nodes > "$T/nodes.json"
[ "$($PY -c "import json; print(sorted(set(n['status']['nodeInfo']['kubeletVersion'] for n in json.load(open('$T/nodes.json'))['items'])))")" = "['v1.31.4']" ] \
	&& ok "every kubelet still at v1.31.4" || bad "kubelets $(head -c 300 "$T/nodes.json")"

# migrate the PriorityLevelConfiguration (the same manager through v1),
# delete the FlowSchema
kube_req PATCH "$E" $FC/v1/prioritylevelconfigurations/legacy-plc "apiVersion: flowcontrol.apiserver.k8s.io/v1
$PLC" > /dev/null && ok "the PriorityLevelConfiguration applied again through v1" || bad "migration failed"
kube_req DELETE "$E" $FC/v1beta3/flowschemas/legacy-fs > /dev/null && ok "the FlowSchema deleted" || bad "delete failed"
expect_rc 0 "plan shows the roll now" -- "$STRATA" plan "$E"
expect_grep "Kubernetes upgrade 1.31.4 -> 1.32.0, rolling" "$T/out" "the roll announced"
t0=$(now)
expect_rc 0 "apply rolls Kubernetes to 1.32.0" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t0" 1.32.0
expect_grep "^kubelets 1190:v1.32.0 1191:v1.32.0$" "$T/roll" "both kubelets at v1.32.0"
if kube_get "$E" $FC/v1beta3/flowschemas > "$T/fs.json"; then bad "a 1.32 API server still serves v1beta3"
else ok "the 1.32 API server answers 404 for flowcontrol v1beta3"; fi
kube_get "$E" $FC/v1/prioritylevelconfigurations/legacy-plc > /dev/null \
	&& ok "the migrated PriorityLevelConfiguration is still there (v1)" || bad "legacy-plc gone"
finish
