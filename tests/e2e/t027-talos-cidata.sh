#!/bin/sh
# First boot from a cidata ISO (proxmox.first_boot: cidata, the default):
# from an empty simulator to etcd bootstrapped and a kubeconfig without a
# single machine config sent over the network. Each node's config goes on
# an ISO uploaded through the API; the nocloud ISO reads it and installs;
# no node ever serves maintenance mode; the ISOs are detached and deleted
# once the nodes answer over mTLS; a re-run does nothing; an apply killed
# right after the uploads converges when run again. Addresses: 127.0.27.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.27.192/26
E="$T/envs/ci"
write_env "$E" ci 2700 1 2 127.0.27
sed -i '/^  first_boot:/d' "$E/config.yml"     # the default
S="s['nodes']"
cidata_vols() { labsim_py "sorted(i for n in $S.values() for st in n['storage'].values() for i in st['items'] if i.endswith('.cidata.iso'))"; }
vm_ids() { labsim_py "sorted(int(k) for k in s['vms'] if $1 <= int(k) < $1 + 50)"; }

expect_rc 0 "validate: first_boot defaults to cidata" -- "$STRATA" apply "$E" --dry-run
expect_grep "upload local:iso/strata.ci.ci-cp-1.cidata.iso to pve1 (nodes/ci-cp-1.yaml as user-data), attached as ide3" \
	"$T/err" "dry run lists the cidata uploads"
expect_grep "nocloud-amd64.iso" "$T/err" "dry run: the nocloud ISO"
expect_grep "ci-w-2: unless up at 127.0.27.22:50000 over mTLS, wait for it to install from its cidata drive" \
	"$T/err" "dry run: talos-install waits, sends nothing"

labsim_ctl POST reset-requests > /dev/null
expect_rc 0 "apply --yes of 1+2 with cidata" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cidata: 3 ISOs in local" "$T/err" "three cidata ISOs uploaded"
expect_grep "bootstrapped etcd on ci-cp-1" "$T/err" "etcd bootstrapped"
expect_grep "Kubernetes: 3/3 nodes registered" "$T/err" "every node registered"
expect_grep "installed from its cidata drive" "$T/err" "nodes say how they were installed"
[ "$(stat -c %a "$E/kubeconfig")" = 600 ] && ok "kubeconfig written, 0600" || bad "kubeconfig"

# strata chose each VM's MAC and journaled it before the create, so the
# config on the cidata ISO already selects the link by that MAC: it is the
# node's final config, and no ApplyConfiguration follows once it is up.
[ "$(labsim_py "sum(1 for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration'))")" = 0 ] \
	&& ok "no ApplyConfiguration at all: the cidata config was the final one" \
	|| bad "ApplyConfiguration calls: $(labsim_py "[(c['node'], c['maintenance']) for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration')]")"
for n in ci-cp-1 ci-w-1 ci-w-2; do
	mac=$(labsim_py "[v['config']['net0'] for v in s['vms'].values() if v['config'].get('name') == '$n'][0].split(',')[0].split('=')[1].lower()")
	grep -qF "match: \"glob(\\\"$mac\\\", mac(link.hardware_addr))\"" "$E/nodes/$n.yaml" \
		&& ok "$n: its config (the ISO's user-data) links by the VM's MAC $mac" \
		|| bad "$n: no link by $mac in nodes/$n.yaml"
done
[ "$(labsim_py "sum(1 for c in s['talos']['calls'] if c['maintenance'])")" = 0 ] \
	&& ok "no call reached a maintenance-mode server" || bad "calls to maintenance servers"
[ "$(labsim_py "sorted((n['maintenance_ca'] is None, n['platform'], n['state']) for n in s['talos']['nodes'] if 2700 <= n['vmid'] < 2750)")" \
	= "[(True, 'nocloud', 'running'), (True, 'nocloud', 'running'), (True, 'nocloud', 'running')]" ] \
	&& ok "no node ever started a maintenance server; all nocloud, running" \
	|| bad "talos nodes: $(labsim_py "[(n['vmid'], n['state'], n['platform'], n['first_boot']) for n in s['talos']['nodes']]")"
[ "$(labsim_ctl GET requests | $PY -c "
import json, sys
r = json.load(sys.stdin)['data']
up = [x for x in r if x['path'].endswith('/upload')]
print(len(up), sorted(set(x['params']['content'] for x in up)), sorted(x['path'].split('/')[4] for x in up))")" \
	= "3 ['iso'] ['pve1', 'pve1', 'pve2']" ] && ok "three uploads, content=iso, each to its VM's Proxmox node" \
	|| bad "uploads: $(labsim_ctl GET requests | $PY -c "import json,sys; print([(x['path'], x.get('status')) for x in json.load(sys.stdin)['data'] if 'upload' in x['path']])")"
labsim_ctl GET requests > "$T/requests.json"
[ "$($PY - "$E/nodes/ci-cp-1.yaml" "$T/requests.json" "$T/err" "$T/out" <<'PYEOF'
import sys, yaml
key = next(yaml.safe_load_all(open(sys.argv[1])))["machine"]["ca"]["key"]
print(sum(key in open(f).read() for f in sys.argv[2:]))
PYEOF
)" = 0 ] && ok "the OS CA key is in no request parameter and no output" || bad "the CA key leaked"
[ "$(cidata_vols)" = "[]" ] && ok "the cidata ISOs are deleted" || bad "cidata volumes left: $(cidata_vols)"
[ "$(labsim_py "[k for k, v in s['vms'].items() if 2700 <= int(k) < 2750 and 'ide3' in v['config']]")" = "[]" ] \
	&& ok "and detached from every VM" || bad "ide3 still attached"
[ "$(labsim_py "sorted(v['config'].get('ide2') for k, v in s['vms'].items() if 2700 <= int(k) < 2750)")" \
	= "['none,media=cdrom', 'none,media=cdrom', 'none,media=cdrom']" ] && ok "boot ISO detached too" || bad "ide2"
[ "$($PY -c "import json; t=json.load(open('$E/state.json'))['talos']; print(sorted(v.get('cidata') for v in t.values()))")" \
	= "['deleted', 'deleted', 'deleted']" ] && ok "journal: cidata deleted for every node" || bad "journal cidata"
[ "$(labsim_py "sorted(i for i in $S['pve1']['storage']['local']['items'] if 'nocloud' in i)")" != "[]" ] \
	&& ok "the nocloud ISO was downloaded" || bad "no nocloud ISO"

labsim_ctl POST reset-requests > /dev/null
applies_before=$(talos_calls ApplyConfiguration)
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "all 3 nodes up with their current config, nothing to do" "$T/err" "re-run: nothing to do"
[ "$(labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] != 'GET'))")" = 0 ] \
	&& ok "re-run sent Proxmox nothing but reads" || bad "re-run changed Proxmox"
[ "$(talos_calls ApplyConfiguration)" = "$applies_before" ] && ok "re-run: no ApplyConfiguration" || bad "re-run applied"

# An orphan of this env (a node gone from the config, an apply that failed
# before the create) is swept; another env's ISO and other files are kept.
for v in strata.ci.ci-old-1.cidata.iso strata.ci-b.ci-b-cp-1.cidata.iso strata.ci.notes.iso; do
	labsim_ctl POST volume "{\"node\": \"pve2\", \"storage\": \"local\", \"volid\": \"local:iso/$v\"}" > /dev/null
done
expect_rc 0 "apply with an orphaned cidata ISO" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "cidata: deleted 1 ISO nothing uses any more" "$T/err" "the orphan is swept"
[ "$(cidata_vols)" = "['local:iso/strata.ci-b.ci-b-cp-1.cidata.iso']" ] && ok "another env's cidata ISO is kept" \
	|| bad "after the sweep: $(cidata_vols)"
[ "$(labsim_py "'local:iso/strata.ci.notes.iso' in $S['pve2']['storage']['local']['items']")" = True ] \
	&& ok "a file that is no cidata ISO is kept" || bad "strata.ci.notes.iso deleted"
curl -sk -X DELETE -H "Authorization: PVEAPIToken=$PVE_TOKEN_ID=$PVE_TOKEN_SECRET" \
	"https://127.0.0.1:$PVE_PORT/api2/json/nodes/pve2/storage/local/content/local:iso/strata.ci-b.ci-b-cp-1.cidata.iso" > /dev/null
# until its imgdel task has removed it (not a fixed sleep)
[ "$(labsim_wait_for "'local:iso/strata.ci-b.ci-b-cp-1.cidata.iso' not in $S['pve2']['storage']['local']['items']")" = yes ] \
	|| bad "the other env's cidata ISO was not deleted"

# small_env DIR NAME VMID_BASE X: 1+1 (or 1+0 with W=0) with its VIP at
# 127.0.27.X0, nodes from .X1 and .X1+10, the default first boot.
small_env() {
	write_env "$1" "$2" "$3" 1 "${W:-1}" 127.0.27
	sed -i "/^  first_boot:/d; s/127\\.0\\.27\\.10\$/127.0.27.${4}0/; s/ip_start: 127\\.0\\.27\\.11,/ip_start: 127.0.27.${4}1,/; s/ip_start: 127\\.0\\.27\\.21,/ip_start: 127.0.27.$(($4 + 1))1,/" "$1/config.yml"
}
# kill_apply ENV WHAT COND: start apply of ENV, kill -9 it once the shell
# function COND succeeds (polled every 50 ms, 60 s at most); the apply is
# held by the simulator (knob hold) at its next call, so it cannot run
# past COND before the kill; the held call is dropped, never carried out.
kill_apply() {
	"$STRATA" apply "$1" --yes --timeout 60s > "$T/kill.out" 2>&1 &
	pid=$!
	hit=no i=0
	while [ $i -lt 1200 ]; do
		if $3; then hit=yes; break; fi
		sleep 0.05; i=$((i + 1))
	done
	if [ $hit = yes ] && kill -9 $pid 2>/dev/null; then
		wait $pid 2>/dev/null
		ok "killed apply of $(basename "$1") $2"
	else
		wait $pid; bad "apply of $(basename "$1") not caught $2"; tail -5 "$T/kill.out" | sed 's/^/     | /'
	fi
	labsim_ctl POST knobs '{"hold": []}' > /dev/null
}
held() { [ "$(labsim_py "len(s['held'])")" -ge 1 ]; }

# kill -9 right after the uploads (the VM create held to catch it),
# then apply again: the world converges, the ISOs are gone.
K="$T/envs/kc"
small_env "$K" kc 2800 11
# 3 uploads of env ci, then the 2 of kc, and no VM of kc yet
# (the create call held: it never reaches the simulator)
uploaded() {
	[ "$(labsim_py "sum(1 for t in s['tasks'] if t['type'] == 'imgcopy' and t['exitstatus'] == 'OK')")" -ge 5 ] &&
	[ "$(vm_ids 2800)" = "[]" ] && held
}
labsim_ctl POST knobs '{"hold": ["POST /qemu$"]}' > /dev/null
kill_apply "$K" "after its uploads, before any VM existed" uploaded
[ "$(cidata_vols)" = "['local:iso/strata.kc.kc-cp-1.cidata.iso', 'local:iso/strata.kc.kc-w-1.cidata.iso']" ] \
	&& ok "the killed apply left its two cidata ISOs" || bad "after kill: $(cidata_vols)"
expect_rc 0 "re-run after kill -9 converges" -- "$STRATA" apply "$K" --yes --timeout 60s
expect_grep "Kubernetes: 2/2 nodes registered" "$T/err" "kc: both nodes registered"
[ "$(vm_ids 2800)" = "[2800, 2801]" ] && ok "kc: two VMs, none duplicated" || bad "kc VMs: $(vm_ids 2800)"
[ "$(cidata_vols)" = "[]" ] && ok "kc: cidata ISOs deleted after the resume" || bad "left: $(cidata_vols)"
[ "$(labsim_py "sum(1 for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['maintenance'])")" = 0 ] \
	&& ok "kc: no ApplyConfiguration to a maintenance server either" || bad "kc applied configs in maintenance mode"
expect_rc 0 "kc: re-run" -- "$STRATA" apply "$K" --yes --timeout 30s
expect_grep "nothing to do" "$T/err" "kc: quiet re-run"

# kill -9 once the VMs exist with their cidata drives (held where the
# start phase lists the node's VMs after the create, start=1 having
# started them),
# then destroy: the VMs go, and their pending cidata ISOs with them.
D="$T/envs/kd"
small_env "$D" kd 2900 15
created() {
	[ "$(vm_ids 2900)" = "[2900, 2901]" ] && [ -f "$D/state.json" ] &&
	[ "$($PY -c "import json; t=json.load(open('$D/state.json')).get('talos', {}); print(sorted(v.get('cidata', '') for v in t.values()))" 2>/dev/null)" \
	  = "['local:iso/strata.kd.kd-cp-1.cidata.iso', 'local:iso/strata.kd.kd-w-1.cidata.iso']" ] && held
}
labsim_ctl POST knobs '{"hold": ["GET /nodes/[^/]+/qemu$"]}' > /dev/null
kill_apply "$D" "with both VMs created, their cidata ISOs journaled" created
expect_rc 0 "destroy kd" -- "$STRATA" destroy "$D" --yes
[ "$(vm_ids 2900)" = "[]" ] && ok "kd: VMs deleted" || bad "kd VMs: $(vm_ids 2900)"
[ "$(cidata_vols)" = "[]" ] && ok "kd: their cidata ISOs deleted with them" || bad "left after destroy: $(cidata_vols)"

# A node that does not read its cidata drive sits in maintenance mode at a
# DHCP address the guest agent reports: strata never sends it the config
# and says why after --timeout.
U="$T/envs/ku"
W=0 small_env "$U" ku 2950 17
labsim_ctl POST knobs '{"cidata_unread": true, "agent_delay": 0}' > /dev/null
a0=$(talos_calls ApplyConfiguration)
expect_rc 1 "apply of a node that ignores its cidata drive fails" -- "$STRATA" apply "$U" --yes --timeout 3s
expect_grep "node 'ku-cp-1' (vm 2950): not up at 127.0.27.171:50000 3s after booting with its config on local:iso/strata.ku.ku-cp-1.cidata.iso" \
	"$T/err" "the error names the node, its address and its cidata ISO"
expect_grep "must boot the Image Factory's nocloud ISO" "$T/err" "and what to check"
[ "$(labsim_py "[n['state'] for n in s['talos']['nodes'] if n['vmid'] == 2950]")" = "['maintenance']" ] \
	&& ok "the node was in maintenance mode all along" || bad "ku state: $(labsim_py "[n['state'] for n in s['talos']['nodes'] if n['vmid'] == 2950]")"
[ "$(talos_calls ApplyConfiguration)" = "$a0" ] && ok "and was never sent its config" \
	|| bad "ApplyConfiguration sent to a maintenance node in cidata mode"
labsim_ctl POST knobs '{"cidata_unread": false}' > /dev/null

finish
