#!/bin/sh
# Tasks followed per Proxmox node outside the VM phase too (issue 13): the
# ISO downloads and the cidata uploads are followed with one listing per
# node and tick (source=all, since), a task that ends OK in the listing
# costs no status read, a download that fails is reported with its own
# task, exit status and log; destroy --parallel N runs at most N VMs at a
# time and reads no pending values. The simulator runs without Talos, so
# apply stops in talos-install (--timeout 1s); the phases before it are
# what is looked at.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
LABSIM_SCALE=0.3 labsim_start --no-talos
labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
reqs() { labsim_ctl GET requests > "$T/req.json"; }
# rq 'python expression over r (the request list)'
rq() { $PY -c "import json; r = json.load(open('$T/req.json'))['data']; print($1)"; }
# phase_result FILE PHASE: result of PHASE's phase_end in an event stream
phase_result() {
	$PY -c "
import json, sys
print([e.get('result') for e in map(json.loads, open(sys.argv[1])) if e.get('type') == 'phase_end' and e.get('phase') == sys.argv[2]])" "$1" "$2"
}

A="$T/envs/a"
FIRST_BOOT=cidata write_env "$A" a 8100 1 2 127.0.81

# --- the ISO download fails on both nodes
labsim_ctl POST knobs '{"task_fail": {"download": "download failed: HTTP 404 Not Found"}}' > /dev/null
expect_rc 1 "apply with failing ISO downloads fails" -- "$STRATA" apply "$A" --yes --timeout 1s
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null
expect_grep "download Talos ISO to local on 'pve[12]'" "$T/err" "the error names the storage and node"
expect_grep "download.* failed: download failed: HTTP 404 Not Found" "$T/err" "the error carries the download task's own exit status"
reqs
[ "$(rq "sorted(__import__('collections').Counter(x['path'].split('/')[6] for x in r if ':download:' in __import__('urllib.parse').parse.unquote(x['path']) and x['path'].endswith('/status')).values())")" = "[1, 1]" ] \
	&& ok "each failed download's status read once" || bad "download status reads: $(rq "[x['path'] for x in r if x['path'].endswith('/status')]")"
[ "$(rq "len(set(x['path'] for x in r if ':download:' in __import__('urllib.parse').parse.unquote(x['path']) and x['path'].endswith('/log')))")" = 2 ] \
	&& ok "each failed download's own log read" || bad "log reads: $(rq "[x['path'] for x in r if x['path'].endswith('/log')]")"
[ "$(rq "sorted(set(x['path'].split('/')[4] for x in r if x['path'].endswith('/tasks') and x['params'].get('source') == 'all' and x['params'].get('since')))")" = "['pve1', 'pve2']" ] \
	&& ok "the downloads were followed with listings of pve1 and pve2" || bad "listings: $(rq "[(x['path'], x['params']) for x in r if x['path'].endswith('/tasks')]")"
[ "$(labsim_py "sum(1 for k in s['vms'] if 8100 <= int(k) < 8150)")" = 0 ] && ok "no VM created without its ISO" \
	|| bad "VMs: $(labsim_py "sorted(s['vms'])")"
labsim_ctl POST reset-requests > /dev/null

# --- downloads, uploads, creates: every task ends OK in a listing
"$STRATA" apply "$A" --yes --timeout 1s -o json > "$T/a.json" 2> "$T/err"
for ph in iso cidata vms start; do
	[ "$(phase_result "$T/a.json" $ph)" = "['done']" ] && ok "phase $ph done" || { bad "phase $ph: $(phase_result "$T/a.json" $ph)"; tail -3 "$T/err"; }
done
reqs
[ "$(rq "sum(1 for x in r if x['method'] == 'POST' and x['path'].endswith('/download-url'))")" = 2 ] \
	&& ok "one download per node" || bad "downloads: $(rq "[x['path'] for x in r if 'download' in x['path']]")"
[ "$(rq "sum(1 for x in r if x['method'] == 'POST' and x['path'].endswith('/upload'))")" = 3 ] \
	&& ok "one cidata upload per VM" || bad "uploads: $(rq "[x['path'] for x in r if 'upload' in x['path']]")"
[ "$(rq "sum(1 for x in r if '/tasks/' in x['path'])")" = 0 ] \
	&& ok "no task status or log read: downloads, uploads and creates ended OK in the listings" \
	|| bad "per-task reads: $(rq "[__import__('urllib.parse').parse.unquote(x['path']).split(':')[5] for x in r if '/tasks/' in x['path']]")"
[ "$(rq "all(x['params'].get('source') == 'all' and x['params'].get('since') for x in r if x['path'].endswith('/tasks'))")" = True ] \
	&& ok "every listing asks for the tasks since the oldest followed" || bad "listing params"
[ "$(labsim_py "sum(1 for k, v in s['vms'].items() if 8100 <= int(k) < 8150 and v['status'] == 'running')")" = 3 ] \
	&& ok "all 3 VMs running" || bad "not all running"
labsim_ctl POST reset-requests > /dev/null

# --- destroy --parallel
expect_rc 2 "destroy --parallel 0 is a usage error" -- "$STRATA" destroy "$A" --yes --parallel 0
expect_grep "1..256" "$T/err" "it names the range"
expect_rc 2 "destroy --parallel without a number" -- "$STRATA" destroy "$A" --yes --parallel
expect_rc 0 "destroy --parallel 2" -- "$STRATA" destroy "$A" --yes --parallel 2
reqs
# with 2 at a time, the third VM's stop goes out only after a delete
[ "$(rq "(lambda s, d: len(s) == 3 and s[2] >= d[0])(sorted(x['t'] for x in r if x['path'].endswith('/status/stop')), sorted(x['t'] for x in r if x['method'] == 'DELETE' and '/qemu/' in x['path']))")" = True ] \
	&& ok "at most 2 VMs at a time" || bad "stops/deletes: $(rq "sorted((x['t'], x['method'], x['path']) for x in r if x['path'].endswith('/status/stop') or x['method'] == 'DELETE')")"
[ "$(rq "sum(1 for x in r if x['path'].endswith('/pending'))")" = 0 ] \
	&& ok "destroy reads no pending values" || bad "pending reads in destroy"
[ "$(rq "sum(1 for x in r if x['path'].endswith('/status/current'))")" = 0 ] \
	&& ok "destroy reads no VM status" || bad "status reads in destroy"
[ "$(labsim_py "sum(1 for k in s['vms'] if 8100 <= int(k) < 8150)")" = 0 ] && ok "all gone" \
	|| bad "VMs left: $(labsim_py "sorted(s['vms'])")"
labsim_ctl POST reset-requests > /dev/null

# --- pve1's listing fails while one thread follows the uploads: they
#     are polled one by one there, pve2's still end in its listing
B="$T/envs/b"
FIRST_BOOT=cidata write_env "$B" b 8150 1 2 127.0.82
labsim_ctl POST knobs '{"error_rate": {"^/nodes/pve1/tasks$": 1.0}, "task_seconds_by_type": {"imgcopy": 10}}' > /dev/null
"$STRATA" apply "$B" --yes --timeout 1s -o json > "$T/b.json" 2> "$T/err"
labsim_ctl POST knobs '{"error_rate": {}, "task_seconds_by_type": {}}' > /dev/null
for ph in cidata vms; do
	[ "$(phase_result "$T/b.json" $ph)" = "['done']" ] && ok "b: phase $ph done with pve1's listing failing" || { bad "b: phase $ph: $(phase_result "$T/b.json" $ph)"; tail -3 "$T/err"; }
done
reqs
# status reads per imgcopy task, by node
copies() { rq "sorted(__import__('collections').Counter(x['path'] for x in r if x['path'].startswith('/api2/json/nodes/$1/tasks/') and 'imgcopy' in __import__('urllib.parse').parse.unquote(x['path']) and x['path'].endswith('/status')).values())"; }
c1=$(copies pve1) c2=$(copies pve2)
[ "$(echo "$c1" | $PY -c "import sys; c = eval(sys.stdin.read()); print(len(c) == 2 and min(c) > 1)")" = True ] \
	&& ok "pve1's 2 uploads polled one by one ($c1 status reads)" || bad "pve1 upload status reads: $c1"
[ "$c2" = "[]" ] && [ "$(rq "sum(1 for x in r if x['path'] == '/api2/json/nodes/pve2/tasks' and x.get('status') == 200) > 0")" = True ] \
	&& ok "pve2's upload ended OK in its listing, no status read" || bad "pve2 upload status reads: $c2"
expect_rc 0 "destroy b" -- "$STRATA" destroy "$B" --yes
"$STRATA" destroy --help > "$T/help" 2>&1
expect_grep "\-\-parallel N" "$T/help" "destroy --help names --parallel"
finish
