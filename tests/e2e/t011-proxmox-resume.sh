#!/bin/sh
# kill -9 in the middle of apply, at several points (ISO download, the
# parallel create, start, Talos apply-config, the install reboot wait),
# then run apply again: the world ends as an uninterrupted run leaves it,
# no VM duplicated, none leaked, one Bootstrap, and the stale lock left by
# the killed process is taken over.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
# Slow enough to be caught mid-way: tasks take 0.6 s, calls 20 ms.
LABSIM_SCALE=0.3 labsim_start
labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null

owned() { labsim_py "sorted(int(k) for k, v in s['vms'].items() if 'strata-$1' in (v['config'].get('tags') or ''))"; }
running() { labsim_py "sum(1 for k, v in s['vms'].items() if 'strata-$1' in (v['config'].get('tags') or '') and v['status'] == 'running')"; }

# Kill points. Each is a condition on the simulator's state (polled every
# 20 ms) that the simulator cannot move past on its own while the test
# holds it (knobs task_hold, hold, talos_stuck: docs/labsim.md), so a
# loaded machine's slow polls cannot miss it; the hold is let go once
# strata is dead. During the ISO download (its task held), in the middle
# of the parallel create (create tasks held: VMs locked), while the VMs
# start (running, the guest-agent address lookup held: Talos not yet
# spoken to), once the first node took its config in maintenance mode,
# while nodes install (one node keeps its install from finishing:
# talos_stuck), and right after everything is done (VMs running). Where
# the condition alone cannot be outrun, strata's first boot-order change
# after an install (POST .../config) is held so the apply cannot end
# before the kill.
guard='{"hold": ["POST /qemu/[0-9]+/config$"]}'
n=0
for when in iso create start applycfg install done; do
	n=$((n + 1))
	name="r$n"
	base=$((1000 + n * 100))
	net="127.0.$((30 + n))"
	E="$T/envs/$name"
	write_env "$E" "$name" $base 3 5 "$net"
	ours="any($base <= nd['vmid'] < $base + 50 and nd['ip'] == c['node'] for nd in s['talos']['nodes'])"
	maint_applies="len(set(c['node'] for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['maintenance'] and $ours))"
	case $when in
	iso) cond="any(t['type'] == 'download' and t['status'] == 'running' for t in s['tasks'])"
	     labsim_ctl POST knobs '{"task_hold": ["download"]}' > /dev/null ;;
	create) cond="any(v['config'].get('lock') == 'create' for k, v in s['vms'].items() if $base <= int(k) < $base + 50)"
	     labsim_ctl POST knobs '{"task_hold": ["qmcreate"]}' > /dev/null ;;
	start) cond="any(v['status'] == 'running' for k, v in s['vms'].items() if $base <= int(k) < $base + 50) and any(h.endswith('/agent/network-get-interfaces') for h in s['held']) and not any(c['method'].endswith('/ApplyConfiguration') and $ours for c in s['talos']['calls'])"
	     labsim_ctl POST knobs '{"hold": ["GET /agent/network-get-interfaces$"]}' > /dev/null ;;
	applycfg) cond="$maint_applies >= 1"
	     labsim_ctl POST knobs "$guard" > /dev/null ;;
	install) cond="$maint_applies == 8 and [nd['stuck_applies'] for nd in s['talos']['nodes'] if nd['vmid'] == $((base + 7))] == [1]"
	     labsim_ctl POST knobs '{"task_hold": ["qmcreate"]}' > /dev/null ;;
	done) cond="len([k for k, v in s['vms'].items() if $base <= int(k) < $base + 50 and v['status'] == 'running']) == 8"
	     labsim_ctl POST knobs "$guard" > /dev/null ;;
	esac
	"$STRATA" apply "$E" --yes > "$T/apply.out" 2>&1 &
	pid=$!
	if [ "$when" = install ]; then
		# the last worker accepts its config but never installs (as long
		# as the test says so): strata waits for it as for any install
		labsim_wait_for "'$((base + 7))' in s['vms']" > /dev/null
		labsim_ctl POST vm "{\"vmid\": $((base + 7)), \"talos_stuck\": true}" > /dev/null
		labsim_ctl POST knobs '{"task_hold": []}' > /dev/null
	fi
	hit=$(labsim_wait_for "$cond")
	installing=$(labsim_py "sum(1 for nd in s['talos']['nodes'] if $base <= nd['vmid'] < $base + 50 and nd['state'] == 'installing')")
	if [ "$hit" = yes ] && kill -9 $pid 2>/dev/null; then
		wait $pid 2>/dev/null
		ok "killed apply of $name at '$when' with $(owned $name | $PY -c 'import sys; print(len(eval(sys.stdin.read())))') VMs tagged, $installing Talos nodes installing"
	else
		wait $pid
		bad "apply of $name was not caught at '$when' (hit '$hit')"
		sed 's/^/     | /' "$T/apply.out" | tail -5
	fi
	labsim_ctl POST knobs '{"task_hold": [], "hold": [], "task_seconds_by_type": {}}' > /dev/null
	[ "$when" = install ] && labsim_ctl POST vm "{\"vmid\": $((base + 7)), \"talos_stuck\": false}" > /dev/null
	expect_rc 0 "re-run of $name converges" -- "$STRATA" apply "$E" --yes --timeout 120s
	want=$($PY -c "print(list(range($base, $base + 8)))")
	[ "$(owned $name)" = "$want" ] && ok "$name: exactly VMs $base..$((base + 7)), no duplicate or leak" || bad "$name: VMs $(owned $name)"
	[ "$(running $name)" = 8 ] && ok "$name: all 8 running" || bad "$name: $(running $name) running"
	expect_rc 0 "$name: plan after resume" -- "$STRATA" plan "$E"
	expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete, 8 unchanged" "$T/out" "$name: nothing left to do"
	b=$(talos_calls Bootstrap "$net.11")
	[ "$b" = 1 ] && ok "$name: one Bootstrap" || bad "$name: $b Bootstrap calls"
	[ -s "$E/kubeconfig" ] && ok "$name: kubeconfig fetched" || bad "$name: no kubeconfig"
done

# Deterministic form of the race above: a VM still locked by its create
# task has no tags yet; plan must wait for the lock, then see it as ours.
E="$T/envs/r9"
write_env "$E" r9 1900 1 0
labsim_ctl POST vm '{"vmid": 1900, "node": "pve1", "config": {}, "lock": "create"}' > /dev/null
"$STRATA" plan "$E" > "$T/plan9.out" 2> "$T/plan9.err" &
pid=$!
# until plan says it waits (not a fixed sleep: a loaded machine may take
# longer to get there), then the create ends
i=0
while [ $i -lt 1200 ] && ! grep -q "vm 1900 is locked (create): waiting" "$T/plan9.err"; do
	sleep 0.05; i=$((i + 1))
done
labsim_ctl POST vm '{"vmid": 1900, "lock": "", "config": {"name": "r9-cp-1", "tags": "controlplane;strata-r9;talos", "description": "strata node role=controlplane\nmanaged-by=strata env=r9", "cores": 2, "memory": "2048", "scsi0": "local-lvm:vm-1900-disk-0,size=10G"}}' > /dev/null
wait $pid
grep -q "vm 1900 is locked (create): waiting" "$T/plan9.err" && ok "plan waits for a create lock" || bad "no wait for the create lock"
grep -q "1 unchanged" "$T/plan9.out" && ok "the VM is ours once its create ends" || { bad "half-made VM judged foreign"; cat "$T/plan9.out"; }

isos=$(labsim_py "sum(1 for n in s['nodes'].values() for i in n['storage']['local']['items'] if 'talos-v1.12.11' in i)")
[ "$isos" = 2 ] && ok "one ISO per Proxmox node, whatever the kills" || bad "ISO files: $isos"
finish
