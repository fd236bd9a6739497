#!/bin/sh
# Ctrl-C during long waits: SIGINT while apply waits on a slow Proxmox
# task, and while an HTTP reply is slow to come, ends apply with exit 3
# at once (the wait used to run to its 10-30 minute bound), names the
# phase and says how to resume; the re-run resumes and converges.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/int"
write_env "$E" int 3300 1 1 127.0.62

now_ms() { $PY -c 'import time; print(int(time.monotonic() * 1000))'; }
# interrupt DESC 'condition over s' PHASE: start apply, SIGINT it once the
# simulator's state shows it waiting, check how it ends
interrupt() {
	"$STRATA" apply "$E" --yes > "$T/out" 2> "$T/err" &
	pid=$!
	[ "$(labsim_wait_for "$2")" = yes ] && ok "$1: apply is waiting" || bad "$1: never seen waiting"
	sleep 0.3   # well inside the wait
	t0=$(now_ms)
	kill -INT $pid
	wait $pid
	rc=$?
	ms=$(( $(now_ms) - t0 ))
	echo "     | $1: exit $rc ${ms} ms after SIGINT"
	[ $rc = 3 ] && ok "$1: exit 3" || { bad "$1: exit $rc, want 3"; sed 's/^/     | /' "$T/err" | tail -5; }
	# A bound for a loaded 2-core machine under ASan; the wait it cuts
	# short has more than 8 s left.
	[ $ms -lt 3000 ] && ok "$1: stopped at once (${ms} ms)" || bad "$1: took ${ms} ms"
	expect_grep "interrupted in phase '$3'" "$T/err" "$1: names the phase"
	expect_grep "run the same command again to resume" "$T/err" "$1: says how to resume"
}

# 1. A slow task: the ISO download takes 10 s (1000 x 0.01).
labsim_ctl POST knobs '{"task_seconds": 1000}' > /dev/null
interrupt "SIGINT during a task wait" \
	"any(t['type'] == 'download' and t['status'] == 'running' for t in s['tasks'])" iso

# 2. A slow reply: once the download is done, every task listing (how
#    the VM phase follows its tasks, issue 13) and task status poll
#    answers after 10 s; SIGINT while apply waits for the create task.
labsim_wait_for "all(t['status'] != 'running' for t in s['tasks'])" > /dev/null
labsim_ctl POST knobs '{"task_seconds": 2.0, "latency": {"/tasks$": 10, "/tasks/.*/status$": 10}}' > /dev/null
interrupt "SIGINT during a slow HTTP reply" "any(t['type'] == 'qmcreate' for t in s['tasks'])" vms

# 3. The re-run resumes and converges.
labsim_ctl POST knobs '{"latency": 0}' > /dev/null
expect_rc 0 "apply again converges" -- "$STRATA" apply "$E" --yes
n=$(labsim_py "sum(1 for k, v in s['vms'].items() if 'strata-int' in (v['config'].get('tags') or '') and v['status'] == 'running')")
[ "$n" = 2 ] && ok "both VMs running" || bad "$n VMs running, want 2"
expect_rc 0 "plan after it" -- "$STRATA" plan "$E"
expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete" "$T/out" "nothing left to do"

finish
