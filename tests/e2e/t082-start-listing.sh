#!/bin/sh
# The start phase reads what runs once per Proxmox node (issue 13):
# GET /nodes/{node}/qemu, after the vms phase, so a VM that is not running
# by then (a create whose autostart failed: the task still ends OK,
# FACTS.md §4; or a VM someone stopped) is found and started; no VM's
# status/current is read, neither after its create nor in the start
# phase. Here a VM is stopped from outside after its create ended, while
# the start phase's listing of its node is on its way (the simulator's
# per-path latency holds that answer back). The simulator runs without
# Talos, so apply stops in talos-install (--timeout 1s).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
LABSIM_SCALE=0.3 labsim_start --no-talos
labsim_ctl POST knobs '{"latency": {".": 0.01, "^/nodes/pve1/qemu$": 2.5}}' > /dev/null
reqs() { labsim_ctl GET requests > "$T/req.json"; }
rq() { $PY -c "import json; r = json.load(open('$T/req.json'))['data']; print($1)"; }
phase_result() {
	$PY -c "
import json, sys
print([e.get('result') for e in map(json.loads, open(sys.argv[1])) if e.get('type') == 'phase_end' and e.get('phase') == sys.argv[2]])" "$1" "$2"
}
running() { labsim_py "sum(1 for k, v in s['vms'].items() if 8200 <= int(k) < 8250 and v['status'] == 'running')"; }

A="$T/envs/a"
write_env "$A" a 8200 1 2 127.0.82
"$STRATA" apply "$A" --yes --timeout 1s -o json > "$T/a.json" 2> "$T/a.err" &
apid=$!
# every create ended (its VM runs): stop the VM on pve1 before the start
# phase's listing of pve1 answers
i=0
while [ "$(running)" != 3 ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
[ "$(running)" = 3 ] && ok "the 3 creates started their VMs (start=1)" || bad "running: $(running)"
victim=$(labsim_py "min(int(k) for k, v in s['vms'].items() if 8200 <= int(k) < 8250 and v['node'] == 'pve1')")
labsim_ctl POST vm "{\"vmid\": $victim, \"status\": \"stopped\"}" > /dev/null
wait $apid
labsim_ctl POST knobs '{"latency": 0.01}' > /dev/null
[ "$(phase_result "$T/a.json" start)" = "['done']" ] && ok "phase start done" \
	|| { bad "phase start: $(phase_result "$T/a.json" start)"; tail -3 "$T/a.err"; }
[ "$(running)" = 3 ] && ok "the VM stopped after its create runs again" || bad "running after apply: $(running)"
reqs
[ "$(rq "sum(1 for x in r if x['method'] == 'POST' and x['path'].endswith('/qemu/$victim/status/start'))")" = 1 ] \
	&& ok "the start phase started vm $victim (one start)" \
	|| bad "starts: $(rq "[x['path'] for x in r if x['path'].endswith('/status/start')]")"
[ "$(rq "sum(1 for x in r if x['method'] == 'POST' and x['path'].endswith('/status/start'))")" = 1 ] \
	&& ok "no other VM started (their creates did)" || bad "starts: $(rq "[x['path'] for x in r if x['path'].endswith('/status/start')]")"
[ "$(rq "sum(1 for x in r if x['path'].endswith('/status/current'))")" = 0 ] \
	&& ok "no VM's status/current read" || bad "status reads: $(rq "[x['path'] for x in r if x['path'].endswith('/status/current')]")"
[ "$(rq "sorted(x['path'].split('/')[4] for x in r if x['method'] == 'GET' and x['path'].endswith('/qemu'))")" = "['pve1', 'pve2']" ] \
	&& ok "one VM listing per node" || bad "listings: $(rq "[x['path'] for x in r if x['path'].endswith('/qemu')]")"

# --- the next apply: nothing created, nothing to start; still one
#     listing per node and no status read per VM
labsim_ctl POST reset-requests > /dev/null
labsim_ctl POST vm "{\"vmid\": $victim, \"status\": \"stopped\"}" > /dev/null
"$STRATA" apply "$A" --yes --timeout 1s -o json > "$T/b.json" 2> "$T/b.err"
[ "$(phase_result "$T/b.json" start)" = "['done']" ] && ok "re-run: phase start done" \
	|| { bad "re-run phase start: $(phase_result "$T/b.json" start)"; tail -3 "$T/b.err"; }
reqs
[ "$(rq "sum(1 for x in r if x['path'].endswith('/status/current'))")" = 0 ] \
	&& ok "re-run: no status/current read for VMs it did not create" || bad "status reads: $(rq "[x['path'] for x in r if x['path'].endswith('/status/current')]")"
[ "$(rq "[x['path'].rsplit('/', 3)[1] for x in r if x['method'] == 'POST' and x['path'].endswith('/status/start')]")" = "['$victim']" ] \
	&& ok "re-run: the stopped VM started, the running ones left alone" \
	|| bad "re-run starts: $(rq "[x['path'] for x in r if x['path'].endswith('/status/start')]")"
[ "$(running)" = 3 ] && ok "re-run: all 3 running" || bad "re-run running: $(running)"
expect_rc 0 "destroy" -- "$STRATA" destroy "$A" --yes
finish
