#!/bin/sh
# Ctrl-C while destroy waits for a retried DELETE's first destroy (issue
# 16): the DELETE's answer is lost, the retry's task fails "VM is locked
# (destroyed)" while the first destroy still runs (FACTS.md §3), and
# strata waits for the VM to leave /cluster/resources
# (pve_vm_wait_destroyed). SIGINT then ends destroy with exit 3 and
# "interrupted" at once (it used to report the retry's lock error, exit
# 1); a re-run finishes the destroy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/dint"
write_env "$E" dint 2800 1 1 127.0.28
now_ms() { $PY -c 'import time; print(int(time.monotonic() * 1000))'; }

expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(labsim_py "len(s['vms'])")" = 2 ] && ok "two VMs" || bad "vms: $(labsim_py "sorted(s['vms'])")"

# Every VM DELETE is carried out but its answer lost once; destroys take
# 20 s, so the retry meets the first destroy still running.
labsim_ctl POST knobs '{"lose_reply": {"DELETE /nodes/[^/]+/qemu/[0-9]+$": 2}, "task_seconds_by_type": {"qmdestroy": 2000}}' > /dev/null
"$STRATA" destroy "$E" --yes > "$T/out" 2> "$T/err" &
pid=$!
w=$(labsim_wait_for "sum(1 for t in s['tasks'] if t['type'] == 'qmdestroy' and t['exitstatus'] == 'VM is locked (destroyed)') >= 1")
[ "$w" = yes ] && ok "a retried DELETE met the lock: destroy waits for the first one" || bad "no retry met the lock"
sleep 0.5   # inside the wait for the first destroy (20 s)
t0=$(now_ms)
kill -INT $pid
wait $pid
rc=$?
ms=$(( $(now_ms) - t0 ))
_capture "$T/out" "$T/err"
echo "     | exit $rc ${ms} ms after SIGINT"
[ $rc = 3 ] && ok "exit 3 (interrupted)" || { bad "exit $rc, want 3"; sed 's/^/     | /' "$T/err" | tail -8; }
# the wait it cuts short has more than 15 s left: 10 s is "at once" with
# room for a loaded machine
[ $ms -lt 10000 ] && ok "stopped at once (${ms} ms)" || bad "took ${ms} ms"
expect_grep "interrupted" "$T/err" "says interrupted"
expect_grep "interrupted while waiting for vm 280[01] to be destroyed" "$T/err" "names the wait it stopped"
if grep -q "VM is locked" "$T/err"; then bad "the retry's lock error was reported"; else ok "the retry's lock error is not reported"; fi

# The re-run, once the first destroys are done, finishes.
labsim_ctl POST knobs '{"lose_reply": {}, "task_seconds_by_type": {"qmdestroy": 1}}' > /dev/null
labsim_wait_for "all(t['status'] != 'running' for t in s['tasks'])" > /dev/null
expect_rc 0 "destroy again finishes" -- "$STRATA" destroy "$E" --yes
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "both VMs are gone" || bad "vms left: $(labsim_py "sorted(s['vms'])")"

finish
