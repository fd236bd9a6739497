#!/bin/sh
# The rolls in apply's event stream (issue 15, docs/json.md): `apply -o
# json` of a Kubernetes upgrade and of an image roll emits one "step" per
# node step (phase talos-upgrade, the node as item, roll, component and
# image), running then ok, one at a time in the upgrade-k8s order, and the
# summary counts them (rolls); a Talos upgrade likewise, a step per node.
# The image roll of a talos patch changing
# cluster.proxy.image (FACTS-day2 4b step 4): the image set on each control
# plane NO_REBOOT, the simulator shows it on every control plane, the
# kube-proxy DaemonSet follows, nothing reboots, the workers untouched.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
LABSIM_SCALE=0.02 k8sup_env re 1230 3 1 123 "  cni: {name: none}"
events() { $PY "$TOP/tests/e2e/roll_events.py" "$T/out" > "$T/events" 2>&1; sed 's/^/     : /' "$T/events"; }
proxy_images() { labsim_py "' '.join('%s:%s' % (n['vmid'], n['proxy_image']) for n in sorted(s['talos']['nodes'], key=lambda n: n['vmid'] or 0) if n['vmid'] and n['type'] == 'controlplane')"; }
ds_image() { kube_get "$E" /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy | $PY -c "import json,sys; print(json.load(sys.stdin)['spec']['template']['spec']['containers'][0]['image'])"; }
boots() { labsim_py "sorted((n['vmid'], n['boot_id']) for n in s['talos']['nodes'] if n['vmid'])"; }

k8sup_apply "apply 3+1, no CNI (kube-proxy runs), at Kubernetes 1.35.4"

# (a) a Kubernetes upgrade, -o json
sed -i 's/  version: 1.35.4/  version: 1.35.5/' "$E/config.yml"
t0=$(now)
expect_rc 0 "apply -o json rolls Kubernetes to 1.35.5" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
[ "$rc" = 0 ] || tail -20 "$T/err"
events
cp="re-cp-1:kube-apiserver re-cp-2:kube-apiserver re-cp-3:kube-apiserver re-cp-1:kube-controller-manager re-cp-2:kube-controller-manager re-cp-3:kube-controller-manager re-cp-1:kube-scheduler re-cp-2:kube-scheduler re-cp-3:kube-scheduler re-cp-1:kube-proxy re-cp-2:kube-proxy re-cp-3:kube-proxy"
expect_grep "^steps kubernetes_upgrade $cp re-cp-1:kubelet re-cp-2:kubelet re-cp-3:kubelet re-w-1:kubelet$" "$T/events" \
	"a step event per node step, in the upgrade-k8s order"
expect_grep "^one-at-a-time yes" "$T/events" "each step running then ok before the next began"
expect_grep "^images re-cp-1:kube-apiserver=registry.k8s.io/kube-apiserver:v1.35.5 .* re-cp-1:kube-proxy=registry.k8s.io/kube-proxy:v1.35.5 .* re-w-1:kubelet=ghcr.io/siderolabs/kubelet:v1.35.5$" \
	"$T/events" "each names the image it moved to"
expect_grep "^summary done talos=0 kubernetes=16 images=0$" "$T/events" "summary: rolls.kubernetes_upgrade 16 node steps"
expect_grep "^plan-rolls - kubernetes_upgrade -$" "$T/events" "the plan event has the Kubernetes roll"
roll "$t0" 1.35.5
expect_grep "^order 1230:kube-apiserver 1231:kube-apiserver 1232:kube-apiserver 1230:kube-controller-manager 1231:kube-controller-manager 1232:kube-controller-manager 1230:kube-scheduler 1231:kube-scheduler 1232:kube-scheduler 1230:kubelet 1231:kubelet 1232:kubelet 1233:kubelet$" \
	"$T/roll" "the events' order is the simulator's"
[ "$(proxy_images)" = "1230:registry.k8s.io/kube-proxy:v1.35.5 1231:registry.k8s.io/kube-proxy:v1.35.5 1232:registry.k8s.io/kube-proxy:v1.35.5" ] \
	&& ok "cluster.proxy.image v1.35.5 on every control plane" || bad "proxy images $(proxy_images)"

# (b) an image roll of cluster.proxy.image, -o json
mkdir -p "$E/patches"
cat > "$E/patches/proxy.yaml" <<'YAML'
cluster:
  proxy:
    image: registry.k8s.io/kube-proxy:v1.35.6
YAML
cat >> "$E/config.yml" <<'YAML'
  patches:
    - patches/proxy.yaml
YAML
expect_rc 0 "plan shows the image roll of kube-proxy" -- "$STRATA" plan "$E"
expect_grep "\^ kube-proxy  *re-cp-1, re-cp-2, re-cp-3  (cluster.proxy.image: registry.k8s.io/kube-proxy:v1.35.5 -> registry.k8s.io/kube-proxy:v1.35.6" \
	"$T/out" "kube-proxy over the control planes"
if grep -q "\^ kubelet\|\^ kube-apiserver" "$T/out"; then bad "plan lists steps that do not change"; else ok "only the kube-proxy step"; fi
b0=$(boots)
a0=$(applies)
aw=$(talos_calls ApplyConfiguration 127.0.123.21)
t1=$(now)
expect_rc 0 "apply -o json rolls the kube-proxy image" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
[ "$rc" = 0 ] || tail -20 "$T/err"
events
expect_grep "^steps image_roll re-cp-1:kube-proxy re-cp-2:kube-proxy re-cp-3:kube-proxy$" "$T/events" "a step per control plane, nothing else"
expect_grep "^one-at-a-time yes" "$T/events" "one control plane at a time"
expect_grep "^images re-cp-1:kube-proxy=registry.k8s.io/kube-proxy:v1.35.6 re-cp-2:kube-proxy=registry.k8s.io/kube-proxy:v1.35.6 re-cp-3:kube-proxy=registry.k8s.io/kube-proxy:v1.35.6$" \
	"$T/events" "each to the patched image"
expect_grep "^summary done talos=0 kubernetes=0 images=3$" "$T/events" "summary: rolls.image_roll 3 node steps"
expect_grep "^plan-rolls - - image_roll$" "$T/events" "the plan event has the image roll"
expect_grep "image roll: kube-proxy on re-cp-2: registry.k8s.io/kube-proxy:v1.35.5 -> registry.k8s.io/kube-proxy:v1.35.6 (NO_REBOOT)" "$T/err" "each NO_REBOOT"
[ "$(proxy_images)" = "1230:registry.k8s.io/kube-proxy:v1.35.6 1231:registry.k8s.io/kube-proxy:v1.35.6 1232:registry.k8s.io/kube-proxy:v1.35.6" ] \
	&& ok "the simulator: cluster.proxy.image v1.35.6 on every control plane" || bad "proxy images $(proxy_images)"
[ "$(ds_image)" = "registry.k8s.io/kube-proxy:v1.35.6" ] && ok "the kube-proxy DaemonSet runs v1.35.6" || bad "DaemonSet $(ds_image)"
[ "$(boots)" = "$b0" ] && ok "no node rebooted (boot ids unchanged)" || bad "boot ids $b0 -> $(boots)"
n=$(labsim_py "len([c for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t1 and c['node'] != '127.0.123.21'])")
[ "$n" = 3 ] && ok "3 applies to the control planes" || bad "applies to control planes $n"
[ "$($PY -c "import json; print(json.load(open('$E/state.json'))['talos']['re-cp-3']['k8s_images'])")" = "kube-apiserver=registry.k8s.io/kube-apiserver:v1.35.5 kube-controller-manager=registry.k8s.io/kube-controller-manager:v1.35.5 kube-scheduler=registry.k8s.io/kube-scheduler:v1.35.5 kube-proxy=registry.k8s.io/kube-proxy:v1.35.6 kubelet=ghcr.io/siderolabs/kubelet:v1.35.5" ] \
	&& ok "journal: re-cp-3 runs kube-proxy v1.35.6" || bad "journal $($PY -c "import json; print(json.load(open('$E/state.json'))['talos']['re-cp-3'])")"
a1=$(applies)
expect_rc 0 "apply -o json again" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
events
expect_grep "^summary done talos=0 kubernetes=0 images=0$" "$T/events" "a re-run: no roll step"
[ "$(applies)" = "$a1" ] && ok "a re-run sends nothing" || bad "ApplyConfiguration $a1 -> $(applies)"

# a Talos upgrade, -o json: a step per node, control planes first
sed -i 's/  version: v1.13.9/  version: v1.13.10/' "$E/config.yml"
expect_rc 0 "apply -o json rolls Talos to v1.13.10" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
[ "$rc" = 0 ] || tail -20 "$T/err"
events
expect_grep "^steps talos_upgrade re-cp-1:talos re-cp-2:talos re-cp-3:talos re-w-1:talos$" "$T/events" "a step event per node, control planes first"
expect_grep "^one-at-a-time yes" "$T/events" "one node at a time"
expect_grep "^images re-cp-1:talos=[^ ]*installer[^ ]*:v1.13.10 " "$T/events" "each names the installer image"
expect_grep "^summary done talos=4 kubernetes=0 images=0$" "$T/events" "summary: rolls.talos_upgrade 4 nodes"
expect_grep "^plan-rolls talos_upgrade - -$" "$T/events" "the plan event has the Talos roll"
finish
