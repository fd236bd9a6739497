#!/bin/sh
# components.ingress: gateway (the Gateway API through Cilium): validate
# refuses it without Cilium's kube-proxy replacement; a Gateway is refused
# (404) while its CRD does not exist; Cilium's chart makes no GatewayClass
# when the CRDs are missing at install time; with ingress: gateway the cni
# phase applies the CRDs before the chart (Established first), turns on
# gatewayAPI in the values (valid against the chart's schema), the
# GatewayClass "cilium" is created and accepted and status shows it; a
# Gateway then applies and one without a class is refused (422); a re-run
# starts no Job and writes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/gw"
write_env "$E" gw 3200 1 1 127.0.32
EP=https://127.0.32.10:6443
calls() { labsim_py "[c['method'] + ' ' + c['path'] for c in s['talos']['kubernetes']['$EP']['calls'] if c['method'] == 'PATCH']"; }
writes() { labsim_py "sum(1 for c in s['talos']['kubernetes']['$EP']['calls'] if c['method'] in ('PATCH', 'DELETE', 'POST', 'PUT'))"; }
GWPATH=/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/web
GW='{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "default"}, "spec": {"gatewayClassName": "cilium", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}'

# validate: the Gateway API needs Cilium and its kube-proxy replacement.
cp "$E/config.yml" "$T/base.yml"
printf 'components:\n  ingress: gateway\n' >> "$E/config.yml"
sed -i 's/^  vip: \(.*\)$/  vip: \1\n  cni: {name: flannel}/' "$E/config.yml"
expect_rc 2 "validate: gateway with flannel" -- "$STRATA" validate "$E"
expect_grep "'gateway' is the Gateway API through Cilium; set kubernetes.cni.name: cilium" "$T/err" "says it needs cilium"
sed -i 's/^  cni: {name: flannel}/  cni: {values: {kubeProxyReplacement: false}}/' "$E/config.yml"
expect_rc 2 "validate: gateway with kube-proxy kept" -- "$STRATA" validate "$E"
expect_grep "kubeProxyReplacement must stay true with components.ingress: gateway" "$T/err" "says kube-proxy replacement is needed"
sed -i 's/^  cni: {values: .*/  cni: {values: {k8sServicePort: 6443}}/' "$E/config.yml"
expect_rc 2 "validate: gateway without KubePrism" -- "$STRATA" validate "$E"
expect_grep "k8sServiceHost/k8sServicePort must stay localhost:7445 (KubePrism)" "$T/err" "says KubePrism is needed"
sed -i 's/^  cni: {values: .*/  cni: {values: {gatewayAPI: {enabled: false}}}/' "$E/config.yml"
expect_rc 2 "validate: gateway with gatewayAPI.enabled false" -- "$STRATA" validate "$E"
expect_grep "gatewayAPI.enabled is false but components.ingress is gateway" "$T/err" "says the values contradict"
sed -i '/^  cni: {values: /d' "$E/config.yml"
expect_rc 0 "validate accepts ingress: gateway" -- "$STRATA" validate "$E"

# First a cluster whose Cilium has gatewayAPI on but no CRDs.
cp "$T/base.yml" "$E/config.yml"
sed -i 's/^  vip: \(.*\)$/  vip: \1\n  cni: {values: {gatewayAPI: {enabled: true}}}/' "$E/config.yml"
expect_rc 0 "apply without the Gateway API CRDs" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cni: cilium 1.18.4 running, 2 nodes Ready" "$T/err" "cilium runs"
if kube_req PATCH "$E" "$GWPATH" "$GW" > "$T/gw0" 2>&1; then
	bad "a Gateway was accepted before its CRD: $(cat "$T/gw0")"
else
	expect_grep '"code": *404' "$T/gw0" "a Gateway before its CRD: 404"
	expect_grep "the server could not find the requested resource" "$T/gw0" "with the API server's message"
fi
kube_get "$E" /apis/gateway.networking.k8s.io/v1/gatewayclasses/cilium > "$T/gc0" 2>&1 \
	&& bad "a GatewayClass exists without its CRD" || ok "no GatewayClass served without the CRDs"
[ "$(labsim_py "s['talos']['kubernetes']['$EP']['objects']" | grep -c "gatewayclasses")" = 0 ] \
	&& ok "the chart made no GatewayClass (create: auto, no CRD)" || bad "the chart stored a GatewayClass without its CRD"
expect_rc 0 "status" -- "$STRATA" status "$E"
if grep -q "^gateway" "$T/out"; then bad "status shows a gateway row without one"; else ok "status shows no gateway"; fi

# Now ingress: gateway: the CRDs first, then the chart with gatewayAPI.
cp "$T/base.yml" "$E/config.yml"
printf 'components:\n  ingress: gateway\n' >> "$E/config.yml"
expect_rc 0 "apply --dry-run names the CRDs" -- "$STRATA" apply "$E" --dry-run
cat "$T/out" "$T/err" > "$T/plan"
expect_grep "first the Gateway API CRDs (gatewayclasses.gateway.networking.k8s.io" "$T/plan" "the plan says the CRDs go first"
expect_rc 0 "apply with ingress: gateway" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cni: 6 Gateway API CRDs Established" "$T/err" "the CRDs are Established"
expect_grep "cni: Job kube-system/strata-cilium-install started" "$T/err" "then the install Job ran"
calls > "$T/calls"
$PY - "$T/calls" > "$T/order" 2>&1 <<'PYEOF'
import ast, sys
c = ast.literal_eval(open(sys.argv[1]).read())
crd = [i for i, p in enumerate(c) if "customresourcedefinitions/" in p and "gateway.networking.k8s.io" in p]
job = [i for i, p in enumerate(c) if p.endswith("/jobs/strata-cilium-install")]
print("crds", len(set(c[i] for i in crd)), "ordered" if crd and job and max(crd) < job[-1] else "NOT ordered")
PYEOF
expect_grep "^crds 6 ordered" "$T/order" "six CRDs applied before the Job"
kube_get "$E" /api/v1/namespaces/kube-system/configmaps/strata-cilium-install > "$T/cm.json"
$PY -c "import json,sys; sys.stdout.write(json.load(open('$T/cm.json'))['data']['values.yaml'])" > "$T/values.yaml"
$PY - "$T/values.yaml" "$REF/kubernetes/charts/cilium-1.18.4/values.schema.json" > "$T/v" 2>&1 <<'PYEOF'
import json, sys, yaml, jsonschema
v = yaml.safe_load(open(sys.argv[1]))
errs = list(jsonschema.Draft7Validator(json.load(open(sys.argv[2]))).iter_errors(v))
for e in errs:
    print("invalid:", list(e.path), e.message)
assert v["gatewayAPI"] == {"enabled": True, "enableAlpn": True, "enableAppProtocol": True}, v["gatewayAPI"]
assert v["kubeProxyReplacement"] is True and v["k8sServiceHost"] == "localhost" and v["k8sServicePort"] == 7445
print("valid" if not errs else "INVALID")
PYEOF
expect_grep "^valid" "$T/v" "gatewayAPI values validate against cilium 1.18.4's values.schema.json"
i=0
until kube_get "$E" /apis/gateway.networking.k8s.io/v1/gatewayclasses/cilium > "$T/gc" 2>/dev/null && grep -q '"Accepted"' "$T/gc" || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect_grep '"controllerName": "io.cilium/gateway-controller"' "$T/gc" "the chart created the GatewayClass cilium"
expect_rc 0 "status" -- "$STRATA" status "$E"
expect_grep "^gateway  *GatewayClass cilium  *True  *io.cilium/gateway-controller" "$T/out" "status shows the accepted GatewayClass"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
$PY -c "import json,sys; g=json.load(open('$T/out'))['addons']['gateway']; print('json', g['class'], g['accepted'])" > "$T/j" 2>&1
expect_grep "^json cilium True" "$T/j" "status -o json has the gateway"

if kube_req PATCH "$E" "$GWPATH" "$GW" > "$T/gw1" 2>&1; then ok "a Gateway applies once the CRDs exist"; else bad "Gateway refused: $(cat "$T/gw1")"; fi
NOCLASS='{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "bare"}, "spec": {"listeners": []}}'
if kube_req PATCH "$E" /apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/bare "$NOCLASS" > "$T/gw2" 2>&1; then
	bad "a Gateway without gatewayClassName was accepted"
else
	expect_grep '"code": *422' "$T/gw2" "a Gateway without a class: 422"
	expect_grep "gatewayClassName" "$T/gw2" "naming the missing field"
fi

w0=$(writes)
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "cilium 1.18.4 installed with these values; no Job" "$T/err" "re-run starts no Job"
[ "$(writes)" = "$w0" ] && ok "re-run wrote nothing to the cluster" || bad "re-run wrote $(( $(writes) - w0 )) times"

finish
