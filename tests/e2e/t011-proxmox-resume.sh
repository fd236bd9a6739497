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

# Kill points, as conditions on the simulator's state (polled every 20 ms):
# during the ISO download, in the middle of the parallel create, while the
# VMs start (before Talos is spoken to), once the first node took its config in maintenance mode, while
# nodes install (reboot wait), and right after everything is done.
n=0
for when in iso create start applycfg install done; do
	n=$((n + 1))
	name="r$n"
	base=$((1000 + n * 100))
	net="127.0.$((30 + n))"
	E="$T/envs/$name"
	write_env "$E" "$name" $base 3 5 "$net"
	case $when in
	# the download lasts 3 s (10 s x 0.3): a window a loaded machine's
	# 20 ms state polls cannot miss (the default 0.6 s sometimes was)
	iso) cond="any(t['type'] == 'download' and t['status'] == 'running' for t in s['tasks'])"
	     labsim_ctl POST knobs '{"task_seconds_by_type": {"download": 10}}' > /dev/null ;;
	create) cond="any(v['config'].get('lock') == 'create' for k, v in s['vms'].items() if $base <= int(k) < $base + 50)" ;;
	# create starts each VM (start=1), so all 8 turn running within a few
	# ms of each other: the window is from the first running VM until
	# Talos is first spoken to (the maintenance boot, 6 s here), not "some
	# but not all running", which a loaded machine missed in CI
	start) cond="any(v['status'] == 'running' for k, v in s['vms'].items() if $base <= int(k) < $base + 50) and not any(c['method'].endswith('/ApplyConfiguration') for c in s['talos']['calls'] if any($base <= nd['vmid'] < $base + 50 and nd['ip'] == c['node'] for nd in s['talos']['nodes']))" ;;
	applycfg) cond="any(c['method'].endswith('/ApplyConfiguration') and c['maintenance'] for c in s['talos']['calls'] if any(nd['vmid'] >= $base and nd['vmid'] < $base + 50 and nd['ip'] == c['node'] for nd in s['talos']['nodes']))" ;;
	install) cond="any(nd['state'] == 'installing' for nd in s['talos']['nodes'] if $base <= nd['vmid'] < $base + 50)" ;;
	done) cond="len([k for k, v in s['vms'].items() if $base <= int(k) < $base + 50 and v['status'] == 'running']) == 8" ;;
	esac
	[ "$when" = iso ] || labsim_ctl POST knobs '{"task_seconds_by_type": {}}' > /dev/null
	"$STRATA" apply "$E" --yes > "$T/apply.out" 2>&1 &
	pid=$!
	hit=$(labsim_wait_for "$cond")
	if [ "$hit" = yes ] && kill -9 $pid 2>/dev/null; then
		wait $pid 2>/dev/null
		ok "killed apply of $name at '$when' with $(owned $name | $PY -c 'import sys; print(len(eval(sys.stdin.read())))') VMs tagged"
	else
		wait $pid
		bad "apply of $name was not caught at '$when' (hit '$hit')"
		sed 's/^/     | /' "$T/apply.out" | tail -5
	fi
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
sleep 0.8
labsim_ctl POST vm '{"vmid": 1900, "lock": "", "config": {"name": "r9-cp-1", "tags": "controlplane;strata-r9;talos", "description": "strata node role=controlplane\nmanaged-by=strata env=r9", "cores": 2, "memory": "2048", "scsi0": "local-lvm:vm-1900-disk-0,size=10G"}}' > /dev/null
wait $pid
grep -q "vm 1900 is locked (create): waiting" "$T/plan9.err" && ok "plan waits for a create lock" || bad "no wait for the create lock"
grep -q "1 unchanged" "$T/plan9.out" && ok "the VM is ours once its create ends" || { bad "half-made VM judged foreign"; cat "$T/plan9.out"; }

isos=$(labsim_py "sum(1 for n in s['nodes'].values() for i in n['storage']['local']['items'] if 'talos-v1.12.11' in i)")
[ "$isos" = 2 ] && ok "one ISO per Proxmox node, whatever the kills" || bad "ISO files: $isos"
finish
