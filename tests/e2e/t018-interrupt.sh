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
# simulator's state shows it waiting (the simulator holds that wait until
# the test lets go: knobs task_hold / hold), check how it ends
interrupt() {
	"$STRATA" apply "$E" --yes > "$T/out" 2> "$T/err" &
	pid=$!
	[ "$(labsim_wait_for "$2")" = yes ] && ok "$1: apply is waiting" || bad "$1: never seen waiting"
	sleep 0.3   # inside the wait (which lasts until the hold is let go)
	t0=$(now_ms)
	kill -INT $pid
	# The wait it cuts short never ends by itself, and an HTTP call has a
	# 30 s timeout: 15 s is "at once" with room for a loaded machine.
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
	ms=$(( $(now_ms) - t0 ))
	if kill -0 $pid 2>/dev/null; then
		bad "$1: still running ${ms} ms after SIGINT"
		kill -9 $pid
	else
		ok "$1: stopped at once (${ms} ms)"
	fi
	wait $pid
	rc=$?
	labsim_ctl POST knobs '{"task_hold": [], "hold": []}' > /dev/null
	echo "     | $1: exit $rc ${ms} ms after SIGINT"
	[ $rc = 3 ] && ok "$1: exit 3" || { bad "$1: exit $rc, want 3"; sed 's/^/     | /' "$T/err" | tail -5; }
	expect_grep "interrupted in phase '$3'" "$T/err" "$1: names the phase"
	expect_grep "run the same command again to resume" "$T/err" "$1: says how to resume"
}

# 1. A slow task: the ISO download does not end while held.
labsim_ctl POST knobs '{"task_hold": ["download"]}' > /dev/null
interrupt "SIGINT during a task wait" \
	"any(t['type'] == 'download' and t['status'] == 'running' for t in s['tasks'])" iso

# 2. A slow reply: once the download is done, every task listing (how
#    the VM phase follows its tasks, issue 13) and task status poll
#    waits unanswered; SIGINT while apply waits for one of them during the
#    create.
labsim_wait_for "all(t['status'] != 'running' for t in s['tasks'])" > /dev/null
labsim_ctl POST knobs '{"task_seconds": 2.0, "hold": ["GET /tasks$", "GET /tasks/.*/status$"]}' > /dev/null
interrupt "SIGINT during a slow HTTP reply" "any(t['type'] == 'qmcreate' for t in s['tasks']) and s['held']" vms

# 3. The re-run resumes and converges.
labsim_ctl POST knobs '{"latency": 0}' > /dev/null
expect_rc 0 "apply again converges" -- "$STRATA" apply "$E" --yes
n=$(labsim_py "sum(1 for k, v in s['vms'].items() if 'strata-int' in (v['config'].get('tags') or '') and v['status'] == 'running')")
[ "$n" = 2 ] && ok "both VMs running" || bad "$n VMs running, want 2"
expect_rc 0 "plan after it" -- "$STRATA" plan "$E"
expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete" "$T/out" "nothing left to do"

finish
