#!/bin/sh
# apply under injected faults: 5xx answers, dropped connections, a failing
# task, a VM lock. apply either converges or stops with an error chain that
# names the VM, the call and Proxmox's message; re-runs converge once the
# fault is gone; VMs of another environment are never touched.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/flt"
write_env "$E" flt 2000 3 5

# Another environment's VMs, and a stranger, on the same cluster.
for id in 2100 2101; do
	labsim_ctl POST vm "{\"vmid\": $id, \"node\": \"pve1\", \"config\": {\"name\": \"other-$id\", \"tags\": \"strata-other;talos\", \"description\": \"managed-by=strata env=other\", \"memory\": \"2048\"}, \"status\": \"running\"}" > /dev/null
done
labsim_ctl POST vm '{"vmid": 2040, "node": "pve2", "config": {"name": "stranger", "memory": "512"}, "status": "running"}' > /dev/null
foreign_intact() {
	labsim_py "all(s['vms'].get(k, {}).get('status') == 'running' for k in ('2100', '2101', '2040')) and s['vms']['2040']['config'].get('memory') == '512'"
}
owned() { labsim_py "len([k for k, v in s['vms'].items() if 'strata-flt' in (v['config'].get('tags') or '')])"; }

# 1. A failing create task: the error names the VM, the call, the message.
labsim_ctl POST knobs '{"task_fail": {"qmcreate": "unable to create VM - storage local-lvm is full"}}' > /dev/null
expect_rc 1 "apply with failing create tasks fails" -- "$STRATA" apply "$E" --yes
expect_grep "create vm 'flt-cp-1': task qmcreate [0-9]* on pve1 failed: unable to create VM - storage local-lvm is full" "$T/err" "error chain: VM, task, Proxmox's message"
expect_grep "phase 'vms'" "$T/err" "error chain names the phase"
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null
expect_rc 0 "apply converges once the storage has room" -- "$STRATA" apply "$E" --yes
[ "$(owned)" = 8 ] && ok "8 VMs" || bad "$(owned) VMs"

# 2. 10% injected 500s and 5% dropped connections on every call: apply
#    either converges or fails with a named call; a few re-runs converge.
labsim_ctl POST knobs '{"error_rate": {".": 0.10}, "drop_rate": {".": 0.05}}' > /dev/null
sed -i 's/workers: {count: 5, ip_start: 127.0.20.21, memory: 2GiB/workers: {count: 5, ip_start: 127.0.20.21, memory: 3GiB/' "$E/config.yml"
sed -i 's/controlplane: {count: 3,/controlplane: {count: 2,/' "$E/config.yml"
sed -i 's/^kubernetes:/kubernetes:\n  allow_scheduling_on_controlplanes: false/' "$E/config.yml"
converged=0 tries=0 named=1
while [ $tries -lt 12 ] && [ $converged -eq 0 ]; do
	tries=$((tries + 1))
	if "$STRATA" apply "$E" --yes > "$T/out" 2> "$T/err"; then
		converged=1
	elif ! grep -q "error: apply '.*': .*\(GET\|POST\|PUT\|DELETE\) /" "$T/err"; then
		named=0
		sed 's/^/     | /' "$T/err" | tail -5
	fi
done
[ $converged -eq 1 ] && ok "converged under faults after $tries run(s)" || bad "no convergence in $tries runs"
[ $named -eq 1 ] && ok "every failed run named the API call" || bad "a failure without the call named"
labsim_ctl POST knobs '{"error_rate": {}, "drop_rate": {}}' > /dev/null
expect_rc 0 "plan after the faults" -- "$STRATA" plan "$E"
expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete, 7 unchanged" "$T/out" "world matches the config"
[ "$(labsim_py "s['vms']['2003']['config']['memory']")" = 3072 ] && ok "workers resized to 3 GiB" || bad "worker memory"
[ "$(labsim_py "'2002' in s['vms']")" = False ] && ok "third control plane removed" || bad "2002 still there"

# 3. A VM locked by a backup: the update fails naming the VM and the lock.
labsim_ctl POST vm '{"vmid": 2003, "lock": "backup"}' > /dev/null
sed -i 's/memory: 3GiB/memory: 4GiB/' "$E/config.yml"
expect_rc 1 "update of a locked VM fails" -- "$STRATA" apply "$E" --yes
expect_grep "update vm 'flt-w-1': .*VM is locked (backup)" "$T/err" "names the VM and the lock"
labsim_ctl POST vm '{"vmid": 2003, "lock": ""}' > /dev/null
expect_rc 0 "apply converges once the lock is gone" -- "$STRATA" apply "$E" --yes

[ "$(foreign_intact)" = True ] && ok "other environments' VMs never touched" || bad "a foreign VM was touched"
reqs=$(labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r.get('method') != 'GET' and any('/%s' % i in r.get('path','') for i in ('2100','2101','2040'))))")
[ "$reqs" = 0 ] && ok "no write request ever addressed a foreign VM" || bad "$reqs write requests to foreign VMs"
finish
