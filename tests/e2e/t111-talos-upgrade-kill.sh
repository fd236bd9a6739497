#!/bin/sh
# A rolling Talos upgrade killed with kill -9 in the middle (a node
# rebooting into the new version), then re-run: the run waits for that
# node, knows from its new boot id and version that it is done (no second
# Upgrade), and finishes the others; workers with --parallel 2 go two at a
# time while control planes still go one at a time.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
LABSIM_SCALE=0.02 labsim_start --talos-net 127.0.111.128/25
E="$T/envs/uk"
write_env "$E" uk 1550 3 2 127.0.111
cat >> "$E/config.yml" <<'YAML'
talos:
  version: v1.12.10
YAML
roll() { $PY "$TOP/tests/e2e/upgrade_log.py" "$LABSIM_DIR" "$1" "$2" > "$T/roll" 2>&1; sed 's/^/     : /' "$T/roll"; }
now() { $PY -c 'import time; print(time.time())'; }
upgrades() { labsim_py "len([u for n in s['talos']['nodes'] for u in n['upgrades']])"; }

expect_rc 0 "apply 3+2 at v1.12.10" -- "$STRATA" apply "$E" --yes --timeout 60s
sed -i 's/version: v1.12.10/version: v1.12.11/' "$E/config.yml"
t0=$(now)
"$STRATA" apply "$E" --yes --timeout 60s > "$T/out" 2> "$T/err" &
pid=$!
# kill -9 while the second control plane (vmid 1551) is rebooting
got=$(labsim_wait_for "any(n['vmid'] == 1551 and n['state'] == 'upgrading' and n['upgrades'] for n in s['talos']['nodes'])")
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ "$got" = yes ] && ok "apply killed while uk-cp-2 reboots into the upgrade" || bad "never saw uk-cp-2 upgrading"
_capture "$T/out" "$T/err"
n_kill=$(upgrades)
[ "$n_kill" = 2 ] && ok "two Upgrade calls before the kill" || bad "upgrades before the kill: $n_kill"

expect_rc 0 "apply again (--parallel 2)" -- "$STRATA" apply "$E" --yes --timeout 60s --parallel 2
[ "$rc" = 0 ] || tail -5 "$T/err"
roll "$t0" v1.12.11
expect_grep "^order 1550 1551 1552 1553 1554$\|^order 1550 1551 1552 1554 1553$" "$T/roll" "every node upgraded once, uk-cp-2 not twice"
expect_grep "uk-cp-2 was upgraded to .* by an earlier apply" "$T/err" "the re-run knows uk-cp-2 rebooted into the upgrade (its boot id changed)"
expect_grep "^all-at yes" "$T/roll" "the roll converged: every node at v1.12.11"
expect_grep "^cp-overlap 1$" "$T/roll" "never two control planes down at once, across the kill"
# --parallel 2: both workers in one batch with one gate after it (their
# reboots overlap only when their drains end together; not asserted)
expect_grep "^down-overlap [12]$" "$T/roll" "never more than the two workers down at once"
[ "$(upgrades)" = 5 ] && ok "five Upgrade calls in all" || bad "upgrades $(upgrades)"
expect_grep "health gate after uk-w-1, uk-w-2\|health gate after uk-w-2, uk-w-1" "$T/err" "one gate after the worker batch"
expect_grep "workers 2 at a time" "$T/err" "the summary says how many workers at a time"
# the journal agrees: the staged configs became the applied ones
expect_rc 0 "plan after the roll" -- "$STRATA" plan "$E"
if grep -q "Talos upgrade to" "$T/out"; then bad "plan still shows an upgrade"; else ok "plan shows no upgrade left"; fi
expect_rc 0 "apply once more" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Talos: all 5 nodes up with their current config, nothing to do" "$T/err" "every config recorded as applied"
expect_grep "Talos: all 5 nodes run v1.12.11, nothing to upgrade" "$T/err" "nothing to upgrade"
finish
