#!/bin/sh
# kill -9 of apply in the middle of making cloud-init VMs (vms[] cloned
# from a template), at three points: a clone task running (the VM under
# lock: clone), a clone done but not yet configured (the template's tags
# still on it: only the journal says it is ours), and the VMs running but
# their guest agents not answering yet. Each time the next apply finishes
# the job: exactly the 3 VMs, no duplicate, no leaked VM or seed ISO, all
# reporting their static address, and plan has nothing left to do.
# Loopback 127.0.93.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

labsim_start --nodes pve1
KEY=$(ssh-keygen -q -t ed25519 -N '' -C ops@laptop -f "$T/k" && cat "$T/k.pub")
IMG=https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
conf() { # $1 env dir, $2 name, $3 vmid base, $4 third octet offset
	mkdir -p "$1"; chmod 700 "$1"
	cat > "$1/config.yml" <<Y
name: $2
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1]
  vmid: {base: $3, count: 10}
network:
  cidr: 127.0.93.0/24
  gateway: 127.0.93.1
vms:
Y
	for i in 1 2 3; do
		cat >> "$1/config.yml" <<Y
  - name: app-$i
    template: 9000
    ip: 127.0.93.$(($4 + i))
    mac: "BC:24:11:5E:93:$(printf %02x $(($4 + i)))"
    user: ubuntu
    ssh_keys: ["$KEY"]
Y
	done
}
owned() { labsim_py "sorted(int(k) for k, v in s['vms'].items() if 'strata-$1' in v['config'].get('tags', ''))"; }
inrange() { labsim_py "sorted(int(k) for k in s['vms'] if $1 <= int(k) < $1 + 10)"; }
seeds() { labsim_py "sum(1 for n in s['nodes'].values() for i in n['storage']['local']['items'] if i.startswith('local:iso/strata.$1.'))"; }

conf "$T/tpl" tpl 8000 100
expect_rc 0 "strata template builds 9000" -- "$STRATA" template "$T/tpl" --vmid 9000 --image "$IMG"

n=0
for when in clone config agent; do
	n=$((n + 1))
	name="k$n"; base=$((6000 + n * 100)); off=$((n * 10))
	E="$T/envs/$name"
	conf "$E" "$name" $base $off
	case $when in
	clone) labsim_ctl POST knobs '{"task_seconds_by_type": {"qmclone": 200}, "agent_delay": 5.0}' > /dev/null
	       cond="any(v['config'].get('lock') == 'clone' for k, v in s['vms'].items() if $base <= int(k) < $base + 10)" ;;
	config) labsim_ctl POST knobs '{"task_seconds_by_type": {"qmconfig": 200}, "agent_delay": 5.0}' > /dev/null
	       cond="any('strata-template' in v['config'].get('tags', '') and not v['config'].get('lock') for k, v in s['vms'].items() if $base <= int(k) < $base + 10)" ;;
	agent) labsim_ctl POST knobs '{"task_seconds_by_type": {}, "agent_delay": 200}' > /dev/null
	       cond="len([k for k, v in s['vms'].items() if $base <= int(k) < $base + 10 and v['status'] == 'running']) == 3" ;;
	esac
	"$STRATA" apply "$E" --yes > "$T/apply.out" 2>&1 &
	pid=$!
	hit=$(labsim_wait_for "$cond")
	if [ "$hit" = yes ] && kill -9 $pid 2>/dev/null; then
		wait $pid 2>/dev/null
		ok "killed apply of $name at '$when' (VMs in range: $(inrange $base))"
	else
		wait $pid
		bad "apply of $name was not caught at '$when' (hit '$hit')"
		sed 's/^/     | /' "$T/apply.out" | tail -5
	fi
	labsim_ctl POST knobs '{"task_seconds_by_type": {}, "agent_delay": 5.0}' > /dev/null
	expect_rc 0 "re-run of $name converges" -- "$STRATA" apply "$E" --yes --timeout 120s
	want=$($PY -c "print(list(range($base, $base + 3)))")
	[ "$(inrange $base)" = "$want" ] && [ "$(owned $name)" = "$want" ] \
		&& ok "$name: exactly VMs $base..$((base + 2)), ours, no duplicate or leak" \
		|| bad "$name: in range $(inrange $base), owned $(owned $name)"
	for i in 1 2 3; do grep -q "guest agent reports 127.0.93.$((off + i))" "$T/err" || miss=1; done
	[ -z "${miss:-}" ] && ok "$name: the 3 agents report their addresses" || { bad "$name: an address not reported"; sed 's/^/     | /' "$T/err" | tail -8; }
	miss=
	[ "$(seeds $name)" = 3 ] && ok "$name: 3 seed ISOs, none leaked" || bad "$name: $(seeds $name) seed ISOs"
	expect_rc 0 "$name: plan after resume" -- "$STRATA" plan "$E"
	expect_grep "0 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged" "$T/out" "$name: nothing left to do"
done
finish
