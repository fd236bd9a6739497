#!/bin/sh
# A changed Talos config that needs a reboot, on a running cluster of 3+2
# (docs/upgrade.md, "Changes that need a reboot"): a talos patch adding
# machine.install.extraKernelArgs. talos-install sends each changed config
# NO_REBOOT; Talos refuses it (the simulator's rule: an install change needs
# a reboot) and nothing changes; phase talos-reboot then applies it one
# node at a time in mode AUTO, control planes first, a worker cordoned and
# drained first, each node back with a new boot id and the health gate
# after it. Never two nodes down together; a change Talos takes live still
# goes to every node at once without a reboot; killed while a drained worker
# reboots, the re-run uncordons it and finishes without a second reboot;
# with 2 control planes refused (etcd quorum).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
. "$(dirname "$0")/k8sup.sh"
LABSIM_SCALE=0.02 k8sup_env rr 780 3 2 78
# reboots SINCE BOOT_IDS [VERSION]: reboot_log.py's findings in $T/reboots
reboots() { $PY "$TOP/tests/e2e/reboot_log.py" "$LABSIM_DIR" "$@" > "$T/reboots" 2>&1; sed 's/^/     : /' "$T/reboots"; }
journal_left() { $PY -c "import json; t=json.load(open('$E/state.json'))['talos']; print(sorted(n for n, v in t.items() if set(v) & {'reboot_pending', 'reboot_boot_id', 'reboot_refused'}))"; }
downs_since() { labsim_py "len([e for e in s['talos']['node_events'] if e['t'] >= $1 and e['event'] == 'down'])"; }

k8sup_apply "apply 3+2"

# (a) a change Talos applies live: every node at once, no reboot
mkdir -p "$E/patches"
cat > "$E/patches/edit.yaml" <<'YAML'
machine:
  sysctls:
    net.core.somaxconn: "4096"
YAML
cat >> "$E/config.yml" <<'YAML'
  patches:
    - patches/edit.yaml
YAML
t0=$(now)
expect_rc 0 "apply a sysctl (Talos takes it live)" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
[ "$(downs_since "$t0")" = 0 ] && ok "no node rebooted" || bad "$(downs_since "$t0") nodes went down"
[ "$(labsim_py "sorted(c.get('mode') for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t0)")" = "[2, 2, 2, 2, 2]" ] \
	&& ok "five ApplyConfiguration, all NO_REBOOT" || bad "modes $(labsim_py "sorted(c.get('mode') for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t0)")"

# (b) a change that needs a reboot: one node at a time
cat > "$E/patches/edit.yaml" <<'YAML'
machine:
  sysctls:
    net.core.somaxconn: "4096"
  install:
    extraKernelArgs: [console=ttyS0]
YAML
expect_rc 0 "plan" -- "$STRATA" plan "$E"
b0=$(boot_ids)
t1=$(now)
expect_rc 0 "apply the kernel argument" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -30 "$T/err"
expect_grep "changed config needs a reboot: left to talos-reboot" "$T/err" "talos-install leaves it to the rolling reboot"
cat "$T/out" "$T/err" > "$T/both"
expect_grep "a change it applies only with a reboot goes one node at a time" "$T/both" "the confirmation list says how a change that needs a reboot goes"
expect_grep "~ rr-w-2 .*nodes/rr-w-2.yaml" "$T/both" "and lists rr-w-2's config"
for n in rr-cp-1 rr-cp-2 rr-cp-3 rr-w-1 rr-w-2; do
	expect_grep "$n: Talos refused its changed config NO_REBOOT (.*requires a reboot.*)" "$T/err" "$n: says Talos refused it NO_REBOOT, with Talos's words"
	expect_grep "$n: config applied (Talos reboots it)" "$T/err" "$n: applied in mode AUTO, Talos reboots it"
done
for n in rr-w-1 rr-w-2; do
	expect_grep "$n: cordoned, drained" "$T/err" "$n drained before its reboot"
done
expect_grep "Talos: 5 changed configs that need a reboot applied one node at a time" "$T/err" "the summary"
reboots "$t1" "$b0"
expect_grep "^reboots 780 781 782 783 784$" "$T/reboots" "every node rebooted once, control planes first"
expect_grep "^down-together 1$" "$T/reboots" "never two nodes down together"
expect_grep "^new-boot-ids True$" "$T/reboots" "every node has a new boot id"
expect_grep "^gate-between yes 5$" "$T/reboots" "the gate between the nodes (etcd on every control plane asked)"
[ "$(cordoned)" = "[]" ] && ok "no node left cordoned" || bad "cordoned: $(cordoned)"
[ "$(journal_left)" = "[]" ] && ok "journal: nothing waits" || bad "journal: $(journal_left)"
grep -q "console=ttyS0" "$E/nodes/rr-w-2.yaml" && ok "the config carries the argument" || bad "not in nodes/rr-w-2.yaml"
a1=$(talos_calls ApplyConfiguration)
t2=$(now)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(talos_calls ApplyConfiguration)" = "$a1" ] && ok "a re-run sends nothing" || bad "ApplyConfiguration $a1 -> $(talos_calls ApplyConfiguration)"
[ "$(downs_since "$t2")" = 0 ] && ok "and reboots nothing" || bad "a node went down"

# (c) killed while the drained rr-w-1 reboots
sed -i 's/console=ttyS0/console=ttyS1/' "$E/patches/edit.yaml"
b0=$(boot_ids)
t3=$(now)
labsim_ctl POST knobs '{"talos_slow": {"783": 150}}' > /dev/null
"$STRATA" apply "$E" --yes --timeout 60s > "$T/out" 2> "$T/err" &
pid=$!
got=$(labsim_wait_for "any(e['vmid'] == 783 and e['event'] == 'down' and e['t'] >= $t3 for e in s['talos']['node_events'])")
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
_capture "$T/out" "$T/err"
[ "$got" = yes ] && ok "apply killed while rr-w-1 reboots" || bad "rr-w-1 never went down"
[ "$(cordoned)" = "['rr-w-1']" ] && ok "the kill left rr-w-1 cordoned" || bad "cordoned: $(cordoned)"
labsim_ctl POST knobs '{"talos_slow": {}}' > /dev/null
expect_rc 0 "apply again: the roll goes on" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -30 "$T/err"
expect_grep "rr-w-1: uncordoned (an earlier apply cordoned it for its reboot)" "$T/err" "the re-run uncordons rr-w-1"
reboots "$t3" "$b0"
expect_grep "^reboots 780 781 782 783 784$" "$T/reboots" "every node rebooted once across the kill (rr-w-1 not twice)"
expect_grep "^down-together 1$" "$T/reboots" "never two nodes down together"
[ "$(cordoned)" = "[]" ] && ok "no node left cordoned" || bad "cordoned: $(cordoned)"
[ "$(journal_left)" = "[]" ] && ok "journal: nothing waits" || bad "journal: $(journal_left)"

# (d) 2 control planes: a reboot would leave etcd without quorum
sed -i 's/controlplane: {count: 3,/controlplane: {count: 2,/' "$E/config.yml"
expect_rc 0 "scale the control planes to 2" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -20 "$T/err"
sed -i 's/console=ttyS1/console=ttyS2/' "$E/patches/edit.yaml"
t4=$(now)
expect_rc 2 "a change that needs a reboot on a 2-member etcd: refused" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "rebooting a control plane of a 2-member etcd leaves the other without quorum. Nothing was changed on them: scale the control planes to 3 first" \
	"$T/err" "says why and what to do"
[ "$(downs_since "$t4")" = 0 ] && ok "no node rebooted" || bad "a node went down"
[ "$(labsim_py "sorted(c.get('mode') for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t4)")" = "[2, 2, 2, 2]" ] \
	&& ok "only the NO_REBOOT applies Talos refused" || bad "modes $(labsim_py "sorted(c.get('mode') for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['t'] >= $t4)")"
finish
