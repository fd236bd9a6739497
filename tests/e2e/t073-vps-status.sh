#!/bin/sh
# strata status on platform vps: the server and its node next to the
# config, Talos version, etcd, the Kubernetes node's readiness, the
# addons, and --health. t071's rescue system (labsim.sh vps_lab) at
# 127.0.73.10:2273. Before the first apply nothing is known (and status
# writes nothing); after it the node is up and Ready; a changed talos
# patch shows as a config to apply; status reads only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

vps_need_sshd
vps_lab 127.0.73 2273
start_sshd hostkey "$R/bin:/usr/bin:/bin"
write_vps "$DISK"
jget() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
envsum() { (cd "$E" && find . -type f ! -name .lock | sort | xargs -r sha256sum) | sha256sum; }

# --- before the first apply ----------------------------------------------
before=$(envsum)
expect_rc 0 "status before the first apply" -- "$STRATA" status "$E"
expect_grep "^~ edge-cp-1 *controlplane  $IP *$IP *- *- *- *- *not applied$" "$T/out" "the node's row: nothing known, no config applied"
expect_grep "^edge: 1 machine (server $IP); Talos 0/1 up; Kubernetes 0/1 Ready; 1 Talos config to apply$" "$T/out" "the summary line"
expect_grep "Kubernetes: no ENV/kubeconfig yet" "$T/err" "it says why Kubernetes was not read"
[ "$(envsum)" = "$before" ] && [ ! -e "$E/secrets.yaml" ] && ok "status wrote nothing into ENV" || bad "status changed ENV: $(ls -A "$E")"
expect_rc 1 "status --health before the first apply fails" -- "$STRATA" status "$E" --health
expect_grep "no .*talosconfig yet: run 'strata apply' first" "$T/err" "--health says to apply first"

# --- installed -------------------------------------------------------------
expect_rc 0 "apply" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_rc 0 "status after apply" -- "$STRATA" status "$E"
expect_grep "^  edge-cp-1 *controlplane  $IP *$IP *rebooted  v1.12.11 *[Rr]unning *Ready *applied$" "$T/out" \
	"the node's row: image written and rebooted, Talos v1.12.11, etcd running, Ready, config applied"
expect_grep "^edge: 1 machine (server $IP); Talos 1/1 up; Kubernetes 1/1 Ready$" "$T/out" "the summary line"
expect_grep "^cni *cilium" "$T/out" "the addons: Cilium"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
s=$(jget "$T/out" "d['platform'], d['summary'], [(m['name'], m['server'], m['image'], m['talos'], m['kubernetes'], m['config']) for m in d['machines']], d['addons']['cni']['name']")
[ "$s" = "vps {'machines': 1, 'talos_nodes': 1, 'talos_up': 1, 'kubernetes_ready': 1, 'config_differs': 0} [('edge-cp-1', '$IP', 'rebooted', 'v1.12.11', 'Ready', 'applied')] cilium" ] \
	&& ok "status -o json: the machine, Talos, Kubernetes, addons" || bad "json: $s"
$PY "$(dirname "$0")/status_shape.py" "$T/out" vps > "$T/shape" 2>&1
expect_grep "^edge-cp-1 controlplane vps server=$IP disk=$DISK image=rebooted$" "$T/shape" \
	"status json: the machines array of every platform, server, disk and image as fields of the machine, no vms"
expect_rc 0 "status --health" -- "$STRATA" status "$E" --health
expect_grep "health (the gate apply runs between disruptive steps): healthy" "$T/out" "the health gate passes"
expect_rc 0 "status --health -o json" -- "$STRATA" status "$E" --health -o json
s=$(jget "$T/out" "d['health']['healthy'], len(d['health']['checks']) > 0")
[ "$s" = "True True" ] && ok "status -o json carries the health report" || bad "health json: $s"

# --- a changed patch: a config to apply; status changes nothing ----------
sed -i 's|^  install_disk: /dev/vda.*|&\n  patches:\n    - machine: {sysctls: {net.core.somaxconn: "4096"}}|' "$E/config.yml"
before=$(envsum) applies=$(talos_calls ApplyConfiguration)
expect_rc 0 "status after a patch change" -- "$STRATA" status "$E"
expect_grep "^~ edge-cp-1 .* changed$" "$T/out" "the row says the config changed"
expect_grep "; 1 Talos config to apply$" "$T/out" "the summary counts it"
expect_grep "'strata plan .*/edge' says what apply would do" "$T/out" "and points at plan"
[ "$(envsum)" = "$before" ] && ok "status did not regenerate the node's config" || bad "status changed ENV"
[ "$(talos_calls ApplyConfiguration)" = "$applies" ] && ok "status sent no config" || bad "status sent a config"

# --- the server boots something else (its disk no longer the image): down -
dd if=/dev/zero of="$DISK" bs=4096 count=1 conv=notrunc 2>/dev/null
labsim_ctl POST metal/boot "{\"ip\": \"$IP\", \"disk\": \"$DISK\"}" > /dev/null
expect_rc 0 "status with the node down" -- "$STRATA" status "$E"
expect_grep "^~ edge-cp-1 *controlplane  $IP *$IP *rebooted  down *- *- *changed$" "$T/out" "the row says Talos is down"
expect_grep "Talos 0/1 up" "$T/out" "the summary says 0/1 up"
expect_rc 1 "status --health with the node down exits 1" -- "$STRATA" status "$E" --health
expect_grep "NOT healthy" "$T/out" "the health gate fails"
stop_sshd
labsim_stop
finish
