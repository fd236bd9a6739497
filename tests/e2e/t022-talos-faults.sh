#!/bin/sh
# Talos bootstrap faults: a node that never leaves maintenance mode (apply
# stops after a bounded wait naming the node and its addresses, undoes
# nothing, and a later run recovers), and a machine of another cluster at
# a node's address (strata refuses to talk to it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
# Slow enough to flip a knob between a VM's create and its boot (2 s).
LABSIM_SCALE=0.1 labsim_start

# --- a worker stuck in maintenance mode
E="$T/envs/s1"
write_env "$E" s1 3000 1 1 127.0.40
# The create tasks are held until the worker is marked stuck: its boot
# (0.2 s at this scale) cannot outrun a loaded machine's polls.
labsim_ctl POST knobs '{"task_hold": ["qmcreate"]}' > /dev/null
"$STRATA" apply "$E" --yes --timeout 8s > "$T/out" 2> "$T/err" &
pid=$!
[ "$(labsim_wait_for "'3001' in s['vms']")" = yes ] || bad "vm 3001 never created"
labsim_ctl POST vm '{"vmid": 3001, "talos_stuck": true}' > /dev/null
labsim_ctl POST knobs '{"task_hold": []}' > /dev/null
wait $pid
rc=$?
[ $rc = 1 ] && ok "apply with a stuck node fails (exit 1)" || { bad "exit $rc, want 1"; sed 's/^/     | /' "$T/err" | tail -5; }
expect_grep "node 's1-w-1' (vm 3001): still in maintenance mode at 127.0.10.[0-9]*:50000 8s after its config was applied; it never came up at 127.0.40.21:50000" \
	"$T/err" "the error names the node, its maintenance and static addresses"
[ "$(labsim_py "len([k for k in s['vms'] if 3000 <= int(k) < 3050])")" = 2 ] && ok "both VMs kept" || bad "VMs removed"
expect_rc 0 "status after the failure" -- "$STRATA" status "$E"
expect_grep "s1-cp-1 .*running .*v1.12.11" "$T/out" "the control plane stays installed"
expect_grep "s1-w-1 .*running .*down" "$T/out" "the stuck worker shows as down at its address"
[ "$(talos_calls Bootstrap 127.0.40.11)" = 0 ] && ok "no bootstrap while a node is missing" || bad "bootstrapped anyway"

labsim_ctl POST vm '{"vmid": 3001, "talos_stuck": false}' > /dev/null
expect_rc 0 "once the node can install, apply again converges" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "Kubernetes: 2/2 nodes registered" "$T/err" "both nodes registered"
[ "$(talos_calls Bootstrap 127.0.40.11)" = 1 ] && ok "one Bootstrap" || bad "Bootstrap calls $(talos_calls Bootstrap 127.0.40.11)"

# --- another cluster's machine at a node's address
labsim_ctl POST talos/foreign '{"ip": "127.0.41.11"}' > /dev/null
F="$T/envs/f1"
write_env "$F" f1 3100 1 0 127.0.41
expect_rc 1 "apply refuses a node answering with another CA" -- "$STRATA" apply "$F" --yes --timeout 20s
expect_grep "node 'f1-cp-1'.*127.0.41.11:50000.*not signed by this cluster's OS CA" "$T/err" "the error says why and where"
[ "$(talos_calls ApplyConfiguration 127.0.41.11)" = 0 ] && ok "no config sent to the foreign machine" || bad "config sent to it"
[ "$(talos_calls Bootstrap 127.0.41.11)" = 0 ] && ok "no bootstrap of the foreign machine" || bad "bootstrap sent to it"
expect_rc 0 "status" -- "$STRATA" status "$F"
expect_grep "f1-cp-1 .*foreign-ca" "$T/out" "status marks it foreign-ca"

finish
