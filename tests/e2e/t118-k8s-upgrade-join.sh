#!/bin/sh
# A node added in the same apply as a kubernetes.version bump (issue 15,
# day 2): it must not run a kubelet newer than the API servers (the
# upgrade-k8s order puts the kubelets last). It joins at the version the
# cluster runs, the roll's from: its config's Kubernetes images set back to
# 1.35.4; the journal says so; the roll then moves it with the others, its
# kubelet in the kubelet phase after every API server. plan says so (and
# -o json: kubernetes_upgrade.joining).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
LABSIM_SCALE=0.02 k8sup_env jn 1180 3 1 118

k8sup_apply "apply 3+1 at Kubernetes 1.35.4"

# one more worker and Kubernetes 1.36.0 in one edit
sed -i 's/  version: 1.35.4/  version: 1.36.0/' "$E/config.yml"
sed -i 's/workers: {count: 1,/workers: {count: 2,/' "$E/config.yml"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "+ joining at Kubernetes 1.35.4: jn-w-2  (new nodes get the images the others run" "$T/out" "plan: the new worker joins at 1.35.4"
expect_grep "\^ kubelet  *jn-cp-1, jn-cp-2, jn-cp-3, jn-w-1, jn-w-2  (control planes, then workers" "$T/out" "and its kubelet rolls with the others"
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
$PY "$TOP/tests/e2e/plan_rolls.py" "$T/out" > "$T/rolls" 2>&1; sed 's/^/     : /' "$T/rolls"
expect_grep "^kubernetes 1.35.4 1.36.0 .*kubelet=jn-cp-1,jn-cp-2,jn-cp-3,jn-w-1,jn-w-2 joining=jn-w-2$" "$T/rolls" "json: joining names the new worker"

# watch the new node's kubelet from the moment it runs one, against the API servers
$PY - "$PVE_PORT" > "$T/watch" <<'PYEOF' &
import http.client, json, ssl, sys, time
ctx = ssl._create_unverified_context()
seen, bad, deadline = None, [], time.time() + 120
while time.time() < deadline:
    c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]), context=ctx)
    c.request("GET", "/_labsim/state")
    s = json.loads(c.getresponse().read())["data"]["talos"]
    c.close()
    nodes = [n for n in s["nodes"] if n["vmid"] is not None and n["type"]]
    api = [n["k8s"].get("kube-apiserver", "") for n in nodes if n["type"] == "controlplane"]
    for n in nodes:
        k = n["k8s"].get("kubelet")
        if n["vmid"] == 1184 and k:
            if seen is None:
                seen = k
            # a kubelet newer than some API server?
            if k.endswith(":v1.36.0") and not all(a.endswith(":v1.36.0") for a in api):
                bad.append(k)
    if seen and seen.endswith(":v1.36.0"):
        break
    time.sleep(0.02)
print("first", seen)
print("newer-than-apiserver", "yes" if bad else "no")
PYEOF
wpid=$!
t0=$(now)
expect_rc 0 "apply: the worker joins, Kubernetes rolls" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
wait $wpid
sed 's/^/     : /' "$T/watch"
expect_grep "^first ghcr.io/siderolabs/kubelet:v1.35.4$" "$T/watch" "the new worker's first kubelet is v1.35.4"
expect_grep "^newer-than-apiserver no$" "$T/watch" "never a kubelet newer than an API server"
roll "$t0" 1.36.0
expect_grep "^order 1180:kube-apiserver 1181:kube-apiserver 1182:kube-apiserver 1180:kube-controller-manager 1181:kube-controller-manager 1182:kube-controller-manager 1180:kube-scheduler 1181:kube-scheduler 1182:kube-scheduler 1180:kubelet 1181:kubelet 1182:kubelet 1183:kubelet 1184:kubelet$" \
	"$T/roll" "the new worker's kubelet moves last, in the kubelet phase"
expect_grep "^one-at-a-time yes" "$T/roll" "one node step at a time"
expect_grep "^kubelets 1180:v1.36.0 1181:v1.36.0 1182:v1.36.0 1183:v1.36.0 1184:v1.36.0$" "$T/roll" "every kubelet at v1.36.0"
# the version roll's pre-pull: every image still to change, where it runs
pulls() { labsim_py "' '.join('%s:%s' % (n['vmid'], ','.join('%s=%s' % (p['namespace'], p['ref'].rsplit('/', 1)[1]) for p in n['pulls'] if p['t'] >= $1)) for n in sorted(s['talos']['nodes'], key=lambda n: n['vmid'] or 0) if n['vmid'])"; }
pulls "$t0" > "$T/pulls"; sed 's/^/     : /' "$T/pulls"
cp="NS_CRI=kube-apiserver:v1.36.0,NS_CRI=kube-controller-manager:v1.36.0,NS_CRI=kube-scheduler:v1.36.0,NS_SYSTEM=kubelet:v1.36.0"
expect_grep "^1180:$cp 1181:$cp 1182:$cp 1183:NS_SYSTEM=kubelet:v1.36.0 1184:NS_SYSTEM=kubelet:v1.36.0$" "$T/pulls" \
	"pre-pulled: control-plane images in NS_CRI on the control planes, the kubelet in NS_SYSTEM on every node (the new one too)"
[ "$($PY -c "import json; d=json.load(open('$E/state.json')); t=d['talos']['jn-w-2']; print(t['kubernetes_version'], 'k8s_step' in t)")" = "1.36.0 False" ] \
	&& ok "journal: jn-w-2 at 1.36.0, no step left" || bad "journal $($PY -c "import json; print(json.load(open('$E/state.json'))['talos']['jn-w-2'])")"
a1=$(talos_calls ApplyConfiguration)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(talos_calls ApplyConfiguration)" = "$a1" ] && ok "a re-run sends nothing" || bad "re-run sent configs"
finish
