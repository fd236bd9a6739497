#!/bin/sh
# A DELETE whose answer is lost is retried; the retry finds the first
# destroy still running: Proxmox's second task fails "VM is locked
# (destroyed)" because the first one holds `lock: destroyed` while it
# frees the disks (../shared/reference/proxmox/FACTS.md §3). strata must
# wait for the first destroy and report success, not a failure. Then the
# other order: the retry arrives after the first destroy finished (500
# "Configuration file ... does not exist"): also a success. And a destroy
# that really fails is still reported.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/del"
write_env "$E" del 1600 1 1 127.0.16
locked_tasks() { labsim_py "sum(1 for t in s['tasks'] if t['type'] == 'qmdestroy' and t['exitstatus'] == 'VM is locked (destroyed)')"; }
reqs_deleting() { labsim_ctl GET requests | $PY -c "import json,sys; d=json.load(sys.stdin)['data']; print(sum(1 for r in d if r['method'] == 'DELETE' and '/qemu/' in r['path']))"; }

expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(labsim_py "len(s['vms'])")" = 2 ] && ok "two VMs" || bad "vms: $(labsim_py "sorted(s['vms'])")"

# Every VM DELETE is carried out but its answer lost once; destroys are slow
# (1.5 s), so the retry meets the first destroy still running.
labsim_ctl POST knobs '{"lose_reply": {"DELETE /nodes/[^/]+/qemu/[0-9]+$": 2}, "task_seconds_by_type": {"qmdestroy": 150}}' > /dev/null
d0=$(reqs_deleting)
expect_rc 0 "destroy --yes with the DELETE answers lost" -- "$STRATA" destroy "$E" --yes
d1=$(reqs_deleting)
[ "$((d1 - d0))" -ge 4 ] && ok "each VM's DELETE was sent twice ($((d1 - d0)) DELETEs for 2 VMs)" || bad "only $((d1 - d0)) DELETEs: the answer was not lost?"
[ "$(locked_tasks)" -ge 2 ] && ok "the retries' tasks failed 'VM is locked (destroyed)', as Proxmox's do" \
	|| bad "no retried task met the lock: $(labsim_py "[(t['type'], t['exitstatus']) for t in s['tasks'] if t['type'] == 'qmdestroy']")"
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "both VMs are gone" || bad "vms left: $(labsim_py "sorted(s['vms'])")"
if grep -q "VM is locked" "$T/err"; then bad "the lock of the first destroy was reported as a failure"; else ok "no failure reported"; fi

# The retry after the first destroy finished: "does not exist", a success.
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
labsim_ctl POST knobs '{"lose_reply": {"DELETE /nodes/[^/]+/qemu/[0-9]+$": 2}, "task_seconds_by_type": {"qmdestroy": 1}}' > /dev/null
expect_rc 0 "destroy --yes, retries after the destroys ended" -- "$STRATA" destroy "$E" --yes
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "both VMs are gone" || bad "vms left: $(labsim_py "sorted(s['vms'])")"

# A destroy that fails for real (the task errors) is still a failure.
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
labsim_ctl POST knobs '{"lose_reply": {}, "task_seconds_by_type": {}, "task_fail": {"qmdestroy": "base volume is still in use by linked cloned"}}' > /dev/null
expect_rc 1 "destroy --yes when the destroy task fails" -- "$STRATA" destroy "$E" --yes
expect_grep "base volume is still in use by linked cloned" "$T/err" "the task's error is reported"
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null

finish
