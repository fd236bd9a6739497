#!/bin/sh
# Two edges of the Kubernetes rolls (issue 15, docs/upgrade.md), on a
# cluster whose nodes boot from cidata drives (proxmox.first_boot: cidata):
#  - a worker added with a kubernetes.version bump gets its config on its
#    cidata ISO, not over the network: the ISO's config carries the images
#    the others run (1.35.4), so its first kubelet is never newer than an
#    API server; the roll then moves it with the others;
#  - one edit that changes images and also something Talos applies only
#    with a reboot (a talos patch adding machine.install.extraKernelArgs),
#    with a kubernetes.version bump, then with a patch pinning images: the
#    step's config is refused NO_REBOOT, so each node gets the other
#    changes first, alone, with its images as they run, in mode AUTO
#    (Talos reboots it), one node at a time (a worker drained), the gate
#    after; then its step. No two nodes down together, every node rebooted
#    once, the roll converges; killed while a drained worker reboots, the
#    re-run uncordons it and finishes without a second reboot; with 2
#    control planes (a reboot would leave etcd without quorum) refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
FIRST_BOOT=cidata LABSIM_SCALE=0.02 k8sup_env cj 1240 3 1 124
events() { $PY "$TOP/tests/e2e/roll_events.py" "$T/out" > "$T/events" 2>&1; sed 's/^/     : /' "$T/events"; }
# reboots SINCE BOOT_IDS [VERSION]: reboot_log.py's findings in $T/reboots
reboots() { $PY "$TOP/tests/e2e/reboot_log.py" "$LABSIM_DIR" "$@" > "$T/reboots" 2>&1; sed 's/^/     : /' "$T/reboots"; }
first_kubelet() { labsim_py "[(n['k8s_first'] or {}).get('kubelet') for n in s['talos']['nodes'] if n['vmid'] == $1]"; }

k8sup_apply "apply 3+1 from cidata drives at Kubernetes 1.35.4"
expect_grep "installed from its cidata drive" "$T/err" "the nodes installed from their cidata drives"

# (c) a worker joins from its cidata drive during a Kubernetes upgrade
sed -i 's/  version: 1.35.4/  version: 1.35.5/' "$E/config.yml"
sed -i 's/workers: {count: 1,/workers: {count: 2,/' "$E/config.yml"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "+ joining at Kubernetes 1.35.4: cj-w-2" "$T/out" "plan: the new worker joins at 1.35.4"
t0=$(now)
expect_rc 0 "apply: cj-w-2 joins from cidata, Kubernetes rolls" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
expect_grep "cidata: uploading strata.cj.cj-w-2.cidata.iso" "$T/err" "its config went on a cidata ISO"
[ "$(labsim_py "sum(1 for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['maintenance'])")" = 0 ] \
	&& ok "no config sent in maintenance mode" || bad "maintenance-mode applies"
[ "$(first_kubelet 1244)" = "['ghcr.io/siderolabs/kubelet:v1.35.4']" ] \
	&& ok "cj-w-2's first kubelet is v1.35.4 (the ISO's config)" || bad "first kubelet $(first_kubelet 1244)"
roll "$t0" 1.35.5
expect_grep "^order 1240:kube-apiserver 1241:kube-apiserver 1242:kube-apiserver 1240:kube-controller-manager 1241:kube-controller-manager 1242:kube-controller-manager 1240:kube-scheduler 1241:kube-scheduler 1242:kube-scheduler 1240:kubelet 1241:kubelet 1242:kubelet 1243:kubelet 1244:kubelet$" \
	"$T/roll" "cj-w-2's kubelet moves last, after every API server"
expect_grep "^kubelets 1240:v1.35.5 1241:v1.35.5 1242:v1.35.5 1243:v1.35.5 1244:v1.35.5$" "$T/roll" "every kubelet at v1.35.5"
[ "$($PY -c "import json; t=json.load(open('$E/state.json'))['talos']['cj-w-2']; print(t['kubernetes_version'], 'k8s_step' in t)")" = "1.35.5 False" ] \
	&& ok "journal: cj-w-2 at 1.35.5" || bad "journal $($PY -c "import json; print(json.load(open('$E/state.json'))['talos']['cj-w-2'])")"

# (d) a kubernetes.version bump and a change that needs a reboot, in one edit
mkdir -p "$E/patches"
cat > "$E/patches/edit.yaml" <<'YAML'
machine:
  install:
    extraKernelArgs: [console=ttyS0]
YAML
cat >> "$E/config.yml" <<'YAML'
  patches:
    - patches/edit.yaml
YAML
sed -i 's/  version: 1.35.5/  version: 1.36.0/' "$E/config.yml"
expect_rc 0 "plan shows the Kubernetes roll" -- "$STRATA" plan "$E"
expect_grep "Kubernetes upgrade 1.35.5 -> 1.36.0, rolling" "$T/out" "announces it"
b0=$(boot_ids)
t1=$(now)
expect_rc 0 "apply -o json: each node's other changes with a reboot, then its steps" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
[ "$rc" = 0 ] || tail -30 "$T/err"
events
expect_grep "kube-apiserver on cj-cp-1: Talos refused it NO_REBOOT (.*): the same edit changes more than images" "$T/err" "says why"
for n in cj-cp-1 cj-cp-2 cj-cp-3 cj-w-1 cj-w-2; do
	expect_grep "$n: the edit's other changes applied (Talos reboots it)" "$T/err" "$n: Talos reboots it for them (the reply's mode)"
done
expect_grep "^one-at-a-time yes" "$T/events" "one step at a time"
expect_grep "^summary done talos=0 kubernetes=17 images=0$" "$T/events" "summary: 17 Kubernetes steps (3 x 5 + 2)"
reboots "$t1" "$b0" 1.36.0
expect_grep "^reboots 1240 1241 1242 1243 1244$" "$T/reboots" "every node rebooted once, control planes first"
expect_grep "^down-together 1$" "$T/reboots" "never two nodes down together"
expect_grep "^new-boot-ids True$" "$T/reboots" "every node has a new boot id"
expect_grep "^images-after-reboot yes$" "$T/reboots" "each node's images moved only after its reboot"
roll "$t1" 1.36.0
expect_grep "^kubelets 1240:v1.36.0 1241:v1.36.0 1242:v1.36.0 1243:v1.36.0 1244:v1.36.0$" "$T/roll" "every kubelet at v1.36.0"
expect_grep "^gate-between yes" "$T/roll" "the gate between the steps"

# (d) images pinned by a patch and a change that needs a reboot, in one
# edit; killed while the drained cj-w-1 reboots
cat > "$E/patches/edit.yaml" <<'YAML'
machine:
  install:
    extraKernelArgs: [console=ttyS1]
  kubelet:
    image: ghcr.io/siderolabs/kubelet:v1.36.1
cluster:
  apiServer:
    image: registry.k8s.io/kube-apiserver:v1.36.1
YAML
expect_rc 0 "plan shows the image roll" -- "$STRATA" plan "$E"
expect_grep "\^ kube-apiserver  *cj-cp-1, cj-cp-2, cj-cp-3 " "$T/out" "the API servers roll"
b0=$(boot_ids)
t2=$(now)
labsim_ctl POST knobs '{"talos_slow": {"1243": 150}}' > /dev/null
"$STRATA" apply "$E" --yes --timeout 60s -o json > "$T/out" 2> "$T/err" &
pid=$!
got=$(labsim_wait_for "any(e['vmid'] == 1243 and e['event'] == 'down' and e['t'] >= $t2 for e in s['talos']['node_events'])")
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
_capture "$T/out" "$T/err"
[ "$got" = yes ] && ok "apply killed while cj-w-1 reboots" || bad "cj-w-1 never went down"
expect_grep "cj-w-1: cordoned, drained" "$T/err" "the worker was drained before its reboot"
[ "$(cordoned)" = "['cj-w-1']" ] && ok "the kill left cj-w-1 cordoned" || bad "cordoned: $(cordoned)"
labsim_ctl POST knobs '{"talos_slow": {}}' > /dev/null
expect_rc 0 "apply -o json again: the roll goes on" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
[ "$rc" = 0 ] || tail -30 "$T/err"
events
expect_grep "cj-w-1: uncordoned (an earlier apply cordoned it for its reboot)" "$T/err" "the re-run uncordons cj-w-1 first"
expect_grep "^steps image_roll cj-w-1:kubelet cj-w-2:kubelet$" "$T/events" "the re-run: the two kubelets left"
expect_grep "^summary done talos=0 kubernetes=0 images=2$" "$T/events" "summary: 2 image steps"
reboots "$t2" "$b0" 1.36.1
expect_grep "^reboots 1240 1241 1242 1243 1244$" "$T/reboots" "every node rebooted once across the kill (cj-w-1 not twice)"
expect_grep "^down-together 1$" "$T/reboots" "never two nodes down together"
expect_grep "^images-after-reboot yes$" "$T/reboots" "each node's images moved only after its reboot"
roll "$t2" 1.36.1
expect_grep "^order 1240:kube-apiserver 1241:kube-apiserver 1242:kube-apiserver 1240:kubelet 1241:kubelet 1242:kubelet 1243:kubelet 1244:kubelet$" \
	"$T/roll" "the upgrade-k8s order across the kill"
expect_grep "^kubelets 1240:v1.36.1 1241:v1.36.1 1242:v1.36.1 1243:v1.36.1 1244:v1.36.1$" "$T/roll" "every kubelet at v1.36.1"
[ "$(cordoned)" = "[]" ] && ok "no node left cordoned" || bad "cordoned: $(cordoned)"
[ "$($PY -c "import json; t=json.load(open('$E/state.json'))['talos']; print(sorted(k for k, v in t.items() if 'reboot_boot_id' in v))")" = "[]" ] \
	&& ok "journal: no reboot pending" || bad "journal reboot_boot_id left"
a1=$(applies)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(applies)" = "$a1" ] && ok "a re-run sends nothing" || bad "ApplyConfiguration $a1 -> $(applies)"

# with 2 control planes a reboot would leave etcd without quorum: refused
sed -i 's/controlplane: {count: 3,/controlplane: {count: 2,/' "$E/config.yml"
expect_rc 0 "scale the control planes to 2" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
sed -i 's/console=ttyS1/console=ttyS2/; s/:v1.36.1/:v1.36.2/' "$E/patches/edit.yaml"
t3=$(now)
expect_rc 2 "images and a reboot change on a 2-member etcd: refused" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "rebooting a control plane of a 2-member etcd leaves the other without quorum. Nothing was changed on cj-cp-1: scale the control planes to 3 first" \
	"$T/err" "says why and what to do"
[ "$(labsim_py "len([e for e in s['talos']['node_events'] if e['t'] >= $t3 and e['event'] == 'down'])")" = 0 ] \
	&& ok "no node rebooted" || bad "a node went down"
[ "$(labsim_py "len([c for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t3])")" = 1 ] \
	&& ok "one ApplyConfiguration (the NO_REBOOT Talos refused)" || bad "applies since: $(labsim_py "len([c for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t3])")"
finish
