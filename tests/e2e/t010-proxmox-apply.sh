#!/bin/sh
# plan / apply / destroy against the lab simulator's Proxmox API: creation,
# idempotent re-runs, drift, deletes, foreign VMs never touched, conflicts,
# the env lock, destroy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/lab"
write_env "$E" lab 1000 1 2

vm() { labsim_py "s['vms'].get('$1', {}).get($2)"; }
# a VM's config as GET config shows it: pending values merged in
vmcfg() { labsim_py "dict(s['vms'].get('$1', {}).get('config', {}), **s['vms'].get('$1', {}).get('pending', {})).get('$2')"; }
# what the VM runs with (pending values not yet applied)
vmcur() { labsim_py "s['vms'].get('$1', {}).get('config', {}).get('$2')"; }
count_ours() { labsim_py "sum(1 for v in s['vms'].values() if 'strata-lab' in (v['config'].get('tags') or ''))"; }
creates() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r.get('method')=='POST' and r.get('path','').rstrip('/').endswith('/qemu')))"; }

expect_rc 0 "plan on an empty simulator" -- "$STRATA" plan "$E"
expect_grep "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged." "$T/out" "plan lists 3 creates"
expect_grep "lab-cp-1 .*create .*vmid 1000 on pve1" "$T/out" "placement and ids in the plan"
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
[ "$($PY -c "import json; print(json.load(open('$T/out'))['summary']['create'])")" = 3 ] && ok "json summary" || bad "json summary"

expect_rc 2 "apply without --yes off a terminal refuses" -- "$STRATA" apply "$E" < /dev/null
expect_grep "pass --yes" "$T/err" "says how to confirm"
expect_rc 0 "apply --dry-run" -- "$STRATA" apply "$E" --dry-run
[ "$(count_ours)" = 0 ] && ok "dry run created nothing" || bad "dry run created VMs"

expect_rc 0 "apply --yes" -- "$STRATA" apply "$E" --yes
expect_grep "apply complete" "$T/err" "apply says it completed"
[ "$(count_ours)" = 3 ] && ok "3 VMs exist" || bad "VM count $(count_ours)"
for id in 1000 1001 1002; do
	[ "$(vm $id "'status'")" = running ] && ok "vm $id running" || bad "vm $id status $(vm $id "'status'")"
done
case "$(vmcfg 1000 description)" in *"managed-by=strata env=lab"*) ok "ownership marker in description";; *) bad "no marker";; esac
[ "$(vmcfg 1000 tags)" = "controlplane;strata-lab;talos" ] && ok "tags" || bad "tags $(vmcfg 1000 tags)"
[ "$(vmcfg 1000 cpu)" = "x86-64-v2-AES" ] && ok "Talos-capable cpu type" || bad "cpu $(vmcfg 1000 cpu)"
created_with=$(labsim_ctl GET requests | $PY -c "import json,sys; print([r.get('params', {}).get('ide2') for r in json.load(sys.stdin)['data'] if r.get('method')=='POST' and r.get('path','').rstrip('/').endswith('/qemu')][0])")
case "$created_with" in *"iso/talos-v1.12.11-"*"media=cdrom"*) ok "created with the Talos ISO attached";; *) bad "create ide2 $created_with";; esac
[ "$(vmcfg 1000 ide2) $(vmcfg 1000 boot)" = "none,media=cdrom order=scsi0" ] && ok "after the install: ISO detached, boots from disk" \
	|| bad "ide2 $(vmcfg 1000 ide2) boot $(vmcfg 1000 boot)"
# The MAC is strata's (locally administered, journaled before the create)
# and sent with the create, which also starts the VM (start=1): one task
# per VM, no start call, no config read back.
case "$(vmcfg 1001 net0)" in virtio=[0-9A-F][26AE]:*) ok "NIC with a locally administered MAC";; *) bad "net0 $(vmcfg 1001 net0)";; esac
[ "$(labsim_ctl GET requests | $PY -c "
import json, sys
r = json.load(sys.stdin)['data']
c = [x for x in r if x['method'] == 'POST' and x['path'].rstrip('/').endswith('/qemu')]
print(len(c), sorted(set(x['params'].get('start') for x in c)),
      sum(1 for x in r if x['path'].endswith('/status/start')),
      sum(1 for x in r if x['method'] == 'GET' and x['path'].endswith('/config')))")" = "3 ['1'] 0 0" ] \
	&& ok "3 creates with start=1, no start call, no config read back" \
	|| bad "creates: $(labsim_ctl GET requests | $PY -c "import json,sys; print([(x['method'], x['path']) for x in json.load(sys.stdin)['data'] if '/qemu' in x['path']])")"
[ "$($PY -c "import json; print(json.load(open('$E/state.json'))['macs']['$(vmcfg 1001 name)'])")" = "$(vmcfg 1001 net0 | sed 's/virtio=\([^,]*\),.*/\1/')" ] \
	&& ok "the MAC sent is the one journaled under macs" || bad "macs: $(cat "$E/state.json")"
[ "$(vm 1002 "'node'")" = pve2 ] && ok "round-robin placement" || bad "placement"
isos=$(labsim_py "sum(1 for n in s['nodes'].values() for i in n['storage']['local']['items'] if 'talos-v1.12.11' in i)")
[ "$isos" = 2 ] && ok "ISO fetched once per node (2)" || bad "ISO count $isos"
mac=$(vmcfg 1001 net0 | sed 's/virtio=\([^,]*\),.*/\1/')
grep -q "$mac" "$E/state.json" && ok "assigned MAC journaled" || bad "MAC not in state.json"
[ "$(stat -c %a "$E/state.json")" = 600 ] && ok "state.json is 0600" || bad "state.json mode"

# Re-running changes nothing.
before=$(creates)
expect_rc 0 "second plan" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged." "$T/out" "nothing to change"
expect_rc 0 "second apply" -- "$STRATA" apply "$E" --yes
expect_grep "create, update and delete VMs: nothing to do" "$T/err" "apply says nothing to do"
[ "$(creates)" = "$before" ] && ok "no create call on re-run" || bad "re-run created VMs"

# Drift: memory changed by hand in Proxmox.
labsim_ctl POST vm '{"vmid": 1001, "config": {"memory": "4096"}}' > /dev/null
expect_rc 0 "plan after manual change" -- "$STRATA" plan "$E"
expect_grep "memory   4096 MiB -> 2048 MiB, needs restart   (drift: changed in Proxmox)" "$T/out" "drift shown field by field"
expect_rc 0 "apply corrects drift" -- "$STRATA" apply "$E" --yes
[ "$(vmcur 1001 memory)" = 2048 ] && ok "memory back to 2048 (restarted)" || bad "memory $(vmcur 1001 memory)"

# Foreign VMs: one in our id range without our tag; never touched.
labsim_ctl POST vm '{"vmid": 1020, "node": "pve1", "config": {"name": "grafana", "memory": "1024"}, "status": "running"}' > /dev/null
# Fewer workers: the last one is deleted.
sed -i 's/workers: {count: 2,/workers: {count: 1,/' "$E/config.yml"
expect_rc 0 "plan with one worker less" -- "$STRATA" plan "$E"
expect_grep "lab-w-2 .*delete .*vmid 1002: no longer in the config" "$T/out" "delete planned"
expect_rc 0 "apply deletes it" -- "$STRATA" apply "$E" --yes
[ "$(vm 1002 "'vmid'")" = None ] && ok "vm 1002 deleted" || bad "vm 1002 still there"
[ "$(vm 1020 "'status'")" = running ] && ok "foreign vm untouched" || bad "foreign vm touched"

# A foreign VM sitting on an id we want is a conflict; apply refuses.
labsim_ctl POST vm '{"vmid": 1002, "node": "pve1", "config": {"name": "intruder", "tags": "other"}}' > /dev/null
sed -i 's/workers: {count: 1,/workers: {count: 2,/' "$E/config.yml"
expect_rc 0 "plan with a conflict" -- "$STRATA" plan "$E"
expect_grep "VM id 1002 is held by 'intruder' on pve1, which strata does not own" "$T/out" "conflict explained"
expect_rc 1 "apply refuses on conflict" -- "$STRATA" apply "$E" --yes
expect_grep "conflict" "$T/err" "apply names the conflict"
[ "$(vmcfg 1002 name)" = intruder ] && ok "conflicting VM untouched" || bad "conflicting VM touched"
sed -i 's/workers: {count: 2,/workers: {count: 1,/' "$E/config.yml"

# The env lock is the kernel's (flock on ENV/.lock); the "pid host" in the
# file is information only. A live holder keeps a second apply out and is
# named; flock(1) takes the same kind of lock.
flock -o "$E/.lock" sh -c 'echo "$$ $(hostname)" > "$0"; exec sleep 60' "$E/.lock" &
holder=$!
i=0; while ! grep -q " " "$E/.lock" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
hpid=$(cut -d' ' -f1 "$E/.lock")
expect_rc 1 "apply refuses while locked" -- "$STRATA" apply "$E" --yes
expect_grep "locked by pid $hpid on $(hostname)" "$T/err" "names the holder"
# A holder whose pid means nothing here (another container sharing this
# hostname, its own pid namespace) still holds: the old check judged it
# stale and took over.
echo "999999 $(hostname)" > "$E/.lock"
expect_rc 1 "a holder with a pid unknown here still locks" -- "$STRATA" apply "$E" --yes
expect_grep "environment is locked" "$T/err" "says locked"
kill "$hpid" 2>/dev/null; wait "$holder" 2>/dev/null
# The file naming a live pid without the kernel lock is no lock.
echo "$LABSIM_PID $(hostname)" > "$E/.lock"
expect_rc 0 "a lock file without a holder is no lock" -- "$STRATA" apply "$E" --yes
[ -f "$E/.lock" ] && ok "the lock file stays (never unlinked)" || bad "lock file removed"

# destroy: only what we own, hard stop, secrets kept.
labsim_ctl POST vm '{"vmid": 1000, "acpi_ignored": true}' > /dev/null
expect_rc 2 "destroy without --yes off a terminal refuses" -- "$STRATA" destroy "$E" < /dev/null
expect_rc 0 "destroy --yes" -- "$STRATA" destroy "$E" --yes
[ "$(count_ours)" = 0 ] && ok "owned VMs gone" || bad "owned VMs left: $(count_ours)"
[ "$(vm 1020 "'status'")" = running ] && ok "foreign vm 1020 survives destroy" || bad "foreign 1020 destroyed"
[ "$(vmcfg 1002 name)" = intruder ] && ok "foreign vm 1002 survives destroy" || bad "foreign 1002 destroyed"
[ -f "$E/state.json" ] && ok "journal kept without --purge-state" || bad "journal removed"
expect_rc 0 "destroy again is a no-op" -- "$STRATA" destroy "$E" --yes --purge-state
expect_grep "owns no VMs" "$T/err" "says there is nothing"
[ ! -f "$E/state.json" ] && ok "--purge-state removes the journal" || bad "journal still there"
[ -f "$E/config.yml" ] && ok "config.yml kept" || bad "config.yml removed"

finish
