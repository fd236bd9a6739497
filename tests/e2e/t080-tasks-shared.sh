#!/bin/sh
# One task chain per VM and tasks followed per Proxmox node (issue 13):
# kill -9 during the create (start=1, the MAC chosen and journaled before)
# converges with no duplicated or leaked VM and the journaled MACs; a task
# that fails while its node's tasks are listed together is reported with
# its own task id, exit status and log; a node whose task listing fails
# has its tasks polled one by one and the apply goes on.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
LABSIM_SCALE=0.3 labsim_start
labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
reqs() { labsim_ctl GET requests > "$T/req.json"; }
# rq 'python expression over r (the request list)'
rq() { $PY -c "import json; r = json.load(open('$T/req.json'))['data']; print($1)"; }

# --- kill -9 while the VMs are being created
E="$T/envs/k"
write_env "$E" k 8000 1 3 127.0.80
cond="any(v['config'].get('lock') == 'create' for k, v in s['vms'].items() if 8000 <= int(k) < 8050)"
"$STRATA" apply "$E" --yes > "$T/apply.out" 2>&1 &
pid=$!
if [ "$(labsim_wait_for "$cond")" = yes ] && kill -9 $pid 2>/dev/null; then
	wait $pid 2>/dev/null
	ok "killed apply while a create (start=1) ran"
else
	wait $pid
	bad "apply was not caught during the create"
fi
macs_before=$($PY -c "import json; print(sorted(json.load(open('$E/state.json')).get('macs', {}).items()))")
[ "$(echo "$macs_before" | $PY -c "import sys; print(len(eval(sys.stdin.read())))")" = 4 ] \
	&& ok "the 4 MACs were journaled before any create" || bad "journal macs at the kill: $macs_before"
expect_rc 0 "re-run converges" -- "$STRATA" apply "$E" --yes --timeout 120s
[ "$(labsim_py "sorted(int(k) for k, v in s['vms'].items() if 'strata-k' in (v['config'].get('tags') or ''))")" = "[8000, 8001, 8002, 8003]" ] \
	&& ok "exactly VMs 8000..8003, no duplicate or leak" || bad "VMs: $(labsim_py "sorted(s['vms'])")"
[ "$(labsim_py "sum(1 for k, v in s['vms'].items() if 8000 <= int(k) < 8050 and v['status'] == 'running')")" = 4 ] \
	&& ok "all 4 running" || bad "not all running"
[ "$($PY -c "import json; print(sorted(json.load(open('$E/state.json'))['macs'].items()))")" = "$macs_before" ] \
	&& ok "the resume kept the journaled MACs" || bad "macs changed by the resume"
[ "$(labsim_py "sorted((v['config']['name'], v['config']['net0'].split(',')[0].split('=')[1]) for k, v in s['vms'].items() if 8000 <= int(k) < 8050)")" = "$macs_before" ] \
	&& ok "every VM has the MAC journaled for it" || bad "VM MACs: $(labsim_py "[(v['config']['name'], v['config']['net0']) for k, v in s['vms'].items() if 8000 <= int(k) < 8050]")"
reqs
[ "$(rq "max(__import__('collections').Counter(x['params'].get('vmid') for x in r if x['method'] == 'POST' and x['path'].rstrip('/').endswith('/qemu') and x.get('status') == 200).values())")" = 1 ] \
	&& ok "no VM was created twice" || bad "creates: $(rq "[x['params'].get('vmid') for x in r if x['method'] == 'POST' and x['path'].endswith('/qemu')]")"
expect_rc 0 "plan after the resume" -- "$STRATA" plan "$E"
expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete, 4 unchanged" "$T/out" "nothing left to do"
labsim_ctl POST reset-requests > /dev/null

# --- a create task fails while pve1's tasks are listed together
F="$T/envs/f"
write_env "$F" f 8100 1 3 127.0.81
labsim_ctl POST knobs '{"task_fail": {"qmcreate": "unable to create VM - storage local-lvm is full"}}' > /dev/null
expect_rc 1 "apply with failing create tasks fails" -- "$STRATA" apply "$F" --yes --timeout 5s
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null
for id in 8100 8101 8102 8103; do
	grep -q "task qmcreate $id on pve[12] failed: unable to create VM - storage local-lvm is full" "$T/err" \
		&& ok "vm $id: its own task id and exit status in the error" || { bad "vm $id: no error of its own task"; grep -i "error\|fail" "$T/err" | head -5; }
done
reqs
[ "$(rq "sorted(set(x['path'].split('/')[4] for x in r if x['method'] == 'GET' and x['path'].endswith('/tasks') and x['params'].get('source') == 'all' and x['params'].get('since')))")" = "['pve1', 'pve2']" ] \
	&& ok "tasks followed with listings of pve1 and pve2 (source=all, since)" || bad "listings: $(rq "[(x['path'], x['params']) for x in r if x['path'].endswith('/tasks')]")"
[ "$(rq "sorted(__import__('collections').Counter(x['path'].split('/')[6] for x in r if 'qmcreate' in x['path'] and x['path'].endswith('/status')).values())")" = "[1, 1, 1, 1]" ] \
	&& ok "each failed task's status read once, after it left the listing" \
	|| bad "status reads: $(rq "[x['path'] for x in r if 'qmcreate' in x['path']]")"
[ "$(rq "len(set(x['path'].split('/')[6] for x in r if 'qmcreate' in x['path'] and x['path'].endswith('/log')))")" = 4 ] \
	&& ok "each failed task's own log read" || bad "log reads: $(rq "[x['path'] for x in r if x['path'].endswith('/log')]")"
[ "$(labsim_py "sum(1 for k in s['vms'] if 8100 <= int(k) < 8150)")" = 0 ] && ok "no VM left by the failed creates" \
	|| bad "VMs left: $(labsim_py "sorted(k for k in s['vms'] if 8100 <= int(k) < 8150)")"
labsim_ctl POST reset-requests > /dev/null

# --- pve1's task listing fails: its tasks are polled one by one
G="$T/envs/g"
write_env "$G" g 8200 1 3 127.0.82
# creates slowed to 6 s, so that per-task polling shows as several reads
labsim_ctl POST knobs '{"error_rate": {"^/nodes/pve1/tasks$": 1.0}, "task_seconds_by_type": {"qmcreate": 20}}' > /dev/null
"$STRATA" apply "$G" --yes --timeout 120s -o json > "$T/g.json" 2> "$T/err"
rc=$?
labsim_ctl POST knobs '{"error_rate": {}, "task_seconds_by_type": {}}' > /dev/null
[ $rc = 0 ] && ok "apply with pve1's task listing failing completes" || { bad "apply rc $rc"; tail -5 "$T/err"; }
$PY -c "
import json, sys
r = [e.get('result') for e in map(json.loads, open('$T/g.json')) if e.get('type') == 'phase_end' and e.get('phase') == 'vms']
sys.exit(r != ['done'])" && ok "the VM phase is done" || bad "vms phase: $(grep phase_end "$T/g.json" | head -3)"
reqs
[ "$(rq "sum(1 for x in r if x['path'] == '/api2/json/nodes/pve1/tasks' and x.get('status') == 500) > 0 and not any(x['path'] == '/api2/json/nodes/pve1/tasks' and x.get('status') == 200 for x in r)")" = True ] \
	&& ok "pve1's listing was refused (500), every time" || bad "pve1 listings: $(rq "[x.get('status') for x in r if x['path'] == '/api2/json/nodes/pve1/tasks']")"
# per node: the create tasks and the fewest status reads any of them had
per_node() { rq "(lambda c: (len(c), min(c.values() or [0])))(__import__('collections').Counter(x['path'] for x in r if x['path'].startswith('/api2/json/nodes/$1/tasks/') and 'qmcreate' in x['path'] and x['path'].endswith('/status')))"; }
n1=$(per_node pve1) n2=$(per_node pve2)
n1t=$(labsim_py "sum(1 for k, v in s['vms'].items() if 8200 <= int(k) < 8250 and v['node'] == 'pve1')")
case "$n1" in "($n1t, "*) [ "$(echo "$n1" | $PY -c "import sys; print(eval(sys.stdin.read())[1] > 2)")" = True ] \
	&& ok "pve1's $n1t create tasks polled one by one (each read $n1 times at least)" || bad "pve1 per-task reads $n1";;
	*) bad "pve1 status reads $n1 (want $n1t tasks)";; esac
n2t=$(labsim_py "sum(1 for k, v in s['vms'].items() if 8200 <= int(k) < 8250 and v['node'] == 'pve2')")
[ "$n2" = "(0, 0)" ] && [ "$(rq "sum(1 for x in r if x['path'] == '/api2/json/nodes/pve2/tasks' and x.get('status') == 200) > 0")" = True ] \
	&& ok "pve2's listing still used: its $n2t tasks ended OK in it, no status read" || bad "pve2: status reads $n2 for $n2t tasks"
[ "$(labsim_py "sum(1 for k, v in s['vms'].items() if 8200 <= int(k) < 8250 and v['status'] == 'running')")" = 4 ] \
	&& ok "all 4 VMs of g running" || bad "g: not all running"
finish
