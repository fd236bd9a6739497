#!/bin/sh
# Images a user's talos patch changes roll (issue 15 item 4, "the plan must
# order them"): a patch moving the API server and the kubelets to
# Kubernetes 1.35.5 on 3+2 is not applied to every node at once but in the
# upgrade-k8s order: kube-apiserver on each control plane one at a time,
# then the kubelets (control planes, then workers), each node's config
# applied NO_REBOOT and waited for (the static pod Ready at the new image;
# the Node reports the new kubelet), the health gate between. plan shows it
# (and -o json, with the Talos and Kubernetes rolls); kill -9 mid-roll, then
# a re-run converges; a patched machine.install.image and a patched image
# of another minor are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
LABSIM_SCALE=0.02 k8sup_env ir 1170 3 2 117
cat >> "$E/config.yml" <<'YAML'
  patches:
    - patches/images.yaml
YAML
images() {
	cat > "$E/patches/images.yaml" <<YAML
machine:
  kubelet:
    image: ghcr.io/siderolabs/kubelet:$1
${2:-}
cluster:
  apiServer:
    image: registry.k8s.io/kube-apiserver:$1
YAML
}
mkdir -p "$E/patches"
images v1.35.4
rolls() { $PY "$TOP/tests/e2e/plan_rolls.py" "$T/out" > "$T/rolls" 2>&1; sed 's/^/     : /' "$T/rolls"; }

k8sup_apply "apply 3+2 at Kubernetes 1.35.4 (the patch names the default images)"
expect_rc 0 "plan -o json: no roll" -- "$STRATA" plan "$E" -o json
rolls
expect_grep "^talos none" "$T/rolls" "json: no Talos upgrade"
expect_grep "^kubernetes none" "$T/rolls" "json: no Kubernetes upgrade"
expect_grep "^images none" "$T/rolls" "json: no image roll"

# refusals, nothing sent
a0=$(applies)
images v1.36.0
expect_rc 2 "a patched image of another minor: refused" -- "$STRATA" plan "$E"
expect_grep "cluster.apiServer.image is registry.k8s.io/kube-apiserver:v1.36.0 (Kubernetes 1.36) but kubernetes.version is 1.35.4" "$T/err" "names the image and kubernetes.version"
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E" --yes --timeout 60s
images v1.35.4 "$(printf '  install:\n    image: ghcr.io/siderolabs/installer:v1.13.9')"
expect_rc 2 "a patched machine.install.image: refused" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "machine.install.image is ghcr.io/siderolabs/installer:v1.13.9, not the installer strata rolls" "$T/err" "says what is wrong"
expect_grep "change talos.version, talos.schematic or talos.installer_image instead" "$T/err" "and what to do"
images v1.35.4
[ "$(applies)" = "$a0" ] && ok "no config sent to any node" || bad "ApplyConfiguration $a0 -> $(applies)"

# the roll: plan, then apply
images v1.35.5
expect_rc 0 "plan shows the image roll" -- "$STRATA" plan "$E"
expect_grep "Images changed by the talos patches, rolled in the upgrade-k8s order" "$T/out" "announces the roll"
expect_grep "\^ kube-apiserver  *ir-cp-1, ir-cp-2, ir-cp-3  (cluster.apiServer.image: registry.k8s.io/kube-apiserver:v1.35.4 -> registry.k8s.io/kube-apiserver:v1.35.5" "$T/out" "API servers first, one control plane at a time"
expect_grep "\^ kubelet  *ir-cp-1, ir-cp-2, ir-cp-3, ir-w-1, ir-w-2  (machine.kubelet.image" "$T/out" "then the kubelets, workers last"
if grep -q "kube-scheduler\|kube-controller-manager" "$T/out"; then bad "plan lists steps that do not change"; else ok "only the changed steps"; fi
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
rolls
expect_grep "^images 8 kube-apiserver=ir-cp-1:v1.35.4>v1.35.5,ir-cp-2:v1.35.4>v1.35.5,ir-cp-3:v1.35.4>v1.35.5;kubelet=ir-cp-1:v1.35.4>v1.35.5,ir-cp-2:v1.35.4>v1.35.5,ir-cp-3:v1.35.4>v1.35.5,ir-w-1:v1.35.4>v1.35.5,ir-w-2:v1.35.4>v1.35.5$" \
	"$T/rolls" "json: the image roll's steps, nodes and images in order"
[ "$(applies)" = "$a0" ] && ok "plan sent nothing" || bad "ApplyConfiguration $a0 -> $(applies)"

t0=$(now)
# ir-w-2 answers ImagePull with Unimplemented (a Talos without it)
labsim_ctl POST knobs '{"talos_image_pull_unimplemented": [1174]}' > /dev/null
expect_rc 0 "apply rolls the images" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
# pre-pull (FACTS-day2 4b step 2): control-plane images in NS_CRI on the
# control planes, the kubelet in NS_SYSTEM everywhere, before any config
pulls() { labsim_py "' '.join('%s:%s' % (n['vmid'], ','.join('%s=%s' % (p['namespace'], p['ref'].rsplit('/', 1)[1]) for p in n['pulls'] if p['t'] >= $1)) for n in sorted(s['talos']['nodes'], key=lambda n: n['vmid'] or 0) if n['vmid'])"; }
pulls "$t0" > "$T/pulls"; sed 's/^/     : /' "$T/pulls"
expect_grep "^1170:NS_CRI=kube-apiserver:v1.35.5,NS_SYSTEM=kubelet:v1.35.5 1171:NS_CRI=kube-apiserver:v1.35.5,NS_SYSTEM=kubelet:v1.35.5 1172:NS_CRI=kube-apiserver:v1.35.5,NS_SYSTEM=kubelet:v1.35.5 1173:NS_SYSTEM=kubelet:v1.35.5 1174:$" \
	"$T/pulls" "pre-pulled: the API server image in NS_CRI on the control planes, the kubelet in NS_SYSTEM on every node"
expect_grep "pre-pull on ir-w-2: ImagePull not implemented there, skipped" "$T/err" "Unimplemented: skipped"
[ "$(labsim_py "max(p['t'] for n in s['talos']['nodes'] for p in n['pulls'] if p['t'] >= $t0) < min(c['t'] for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t0)")" = True ] \
	&& ok "every pull before the first config of the roll" || bad "a pull after a config went out"
labsim_ctl POST knobs '{"talos_image_pull_unimplemented": []}' > /dev/null
expect_grep "config change left to the image roll" "$T/err" "talos-install does not apply the changed configs at once"
roll "$t0" 1.35.5
expect_grep "^order 1170:kube-apiserver 1171:kube-apiserver 1172:kube-apiserver 1170:kubelet 1171:kubelet 1172:kubelet 1173:kubelet 1174:kubelet$" \
	"$T/roll" "the upgrade-k8s order, node by node"
expect_grep "^one-at-a-time yes" "$T/roll" "no two nodes changed together"
expect_grep "^gate-between yes" "$T/roll" "the health gate ran between the steps"
expect_grep "^no-reboot yes" "$T/roll" "no node rebooted"
expect_grep "^kubelets 1170:v1.35.5 1171:v1.35.5 1172:v1.35.5 1173:v1.35.5 1174:v1.35.5$" "$T/roll" "every kubelet at v1.35.5"
n=$(( $(applies) - a0 ))
[ "$n" = 8 ] && ok "8 NO_REBOOT applies (3 API servers, 5 kubelets)" || bad "applies $n"
a1=$(applies)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(applies)" = "$a1" ] && ok "a re-run sends nothing" || bad "ApplyConfiguration $a1 -> $(applies)"

# a pre-pull that fails stops the roll before anything changes
images v1.35.6
labsim_ctl POST knobs '{"talos_image_pull_fail": {"kubelet:v1.35.6": "manifest unknown"}}' > /dev/null
a3=$(applies)
expect_rc 1 "a failing pre-pull stops the roll" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "pre-pull of ghcr.io/siderolabs/kubelet:v1.35.6 on ir-cp-1 (NS_SYSTEM): the image roll did not start, nothing was changed" "$T/err" "names the image, the node and that nothing changed"
[ "$(applies)" = "$a3" ] && ok "no config sent" || bad "ApplyConfiguration $a3 -> $(applies)"
labsim_ctl POST knobs '{"talos_image_pull_fail": {}}' > /dev/null

# kill -9 in the middle, then a re-run converges
labsim_ctl POST knobs '{"k8s_static_pod_seconds": 50}' > /dev/null
t1=$(now)
"$STRATA" apply "$E" --yes --timeout 60s > "$T/out" 2> "$T/err" &
pid=$!
got=$(labsim_wait_for "any(e['vmid'] == 1171 and e['event'] == 'k8s kube-apiserver registry.k8s.io/kube-apiserver:v1.35.6' for e in s['talos']['node_events'])")
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
_capture "$T/out" "$T/err"
[ "$got" = yes ] && ok "apply killed once ir-cp-2's API server restarted with v1.35.6" || bad "never saw it"
expect_rc 0 "plan after the kill shows the rest" -- "$STRATA" plan "$E"
expect_grep "\^ kube-apiserver  *ir-cp-2, ir-cp-3 \|\^ kube-apiserver  *ir-cp-3 " "$T/out" "ir-cp-1's API server is done"
a2=$(applies)
expect_rc 0 "apply again: the roll continues" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
roll "$t1" 1.35.6
expect_grep "^order 1170:kube-apiserver 1171:kube-apiserver 1172:kube-apiserver 1170:kubelet 1171:kubelet 1172:kubelet 1173:kubelet 1174:kubelet$" \
	"$T/roll" "each container changed once, in order, across the kill"
expect_grep "^one-at-a-time yes" "$T/roll" "one node step at a time"
expect_grep "^kubelets 1170:v1.35.6 1171:v1.35.6 1172:v1.35.6 1173:v1.35.6 1174:v1.35.6$" "$T/roll" "converged"
n=$(( $(applies) - a2 ))
[ "$n" -ge 6 ] && [ "$n" -le 7 ] && ok "the re-run applied only what was left ($n of 8)" || bad "re-run applies $n"
kube_get "$E" "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-apiserver" > "$T/pods.json"
[ "$($PY -c "import json; print(sorted(set(p['spec']['containers'][0]['image'] for p in json.load(open('$T/pods.json'))['items'])))")" = "['registry.k8s.io/kube-apiserver:v1.35.6']" ] \
	&& ok "the API servers run v1.35.6" || bad "pods $(head -c 300 "$T/pods.json")"

# plan -o json with a Kubernetes upgrade, then with a Talos upgrade
sed -i 's/  version: 1.35.4/  version: 1.36.0/' "$E/config.yml"
images v1.36.0
expect_rc 0 "plan -o json with kubernetes.version 1.36.0" -- "$STRATA" plan "$E" -o json
rolls
expect_grep "^kubernetes 1.35.4 1.36.0 kube-apiserver=ir-cp-1,ir-cp-2,ir-cp-3;kube-controller-manager=ir-cp-1,ir-cp-2,ir-cp-3;kube-scheduler=ir-cp-1,ir-cp-2,ir-cp-3;kube-proxy=ir-cp-1,ir-cp-2,ir-cp-3;kubelet=ir-cp-1,ir-cp-2,ir-cp-3,ir-w-1,ir-w-2 joining=$" \
	"$T/rolls" "json: the Kubernetes upgrade's steps and nodes"
expect_grep "^images none" "$T/rolls" "json: no image roll while the version rolls"
sed -i 's/  version: 1.36.0/  version: 1.35.4/' "$E/config.yml"
images v1.35.6
sed -i 's/  version: v1.13.9/  version: v1.13.10/' "$E/config.yml"
expect_rc 0 "plan -o json with talos.version v1.13.10" -- "$STRATA" plan "$E" -o json
rolls
expect_grep "^talos v1.13.10 1 ir-cp-1:controlplane:v1.13.9:v1.13.10 ir-cp-2:controlplane:v1.13.9:v1.13.10 ir-cp-3:controlplane:v1.13.9:v1.13.10 ir-w-1:worker:v1.13.9:v1.13.10 ir-w-2:worker:v1.13.9:v1.13.10$" \
	"$T/rolls" "json: the Talos upgrade's nodes in order"
finish
