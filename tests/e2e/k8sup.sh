# Shared by the rolling Kubernetes upgrade tests (t113-t118). Source after
# lib.sh and labsim.sh.
#
# k8sup_env NAME VMID_BASE CP_COUNT WORKER_COUNT N [KUBERNETES_LINE]: start
# the simulator (LABSIM_SCALE as labsim_start; its Talos nodes in
# 127.0.N.128/25) and write E=$T/envs/NAME: a proxmox env in 127.0.N.0/24
# at Kubernetes 1.35.4 on Talos v1.13.9 (which runs 1.35 and 1.36);
# KUBERNETES_LINE (e.g. "  cni: {name: none}") goes under kubernetes:.
k8sup_env() {
	labsim_start --talos-net "127.0.$5.128/25"
	E="$T/envs/$1"
	write_env "$E" "$1" "$2" "$3" "$4" "127.0.$5"
	sed -i 's/^kubernetes:$/kubernetes:\n  version: 1.35.4/' "$E/config.yml"
	[ -n "${6:-}" ] && sed -i "s/^  version: 1.35.4\$/&\n$6/" "$E/config.yml"
	cat >> "$E/config.yml" <<'YAML'
talos:
  version: v1.13.9
YAML
}

# k8sup_apply DESCRIPTION: the first apply of $E (exit 0 expected; the
# end of its log when not)
k8sup_apply() {
	expect_rc 0 "$1" -- "$STRATA" apply "$E" --yes --timeout 60s
	[ "$rc" = 0 ] || tail -20 "$T/err"
}

# roll SINCE VERSION: the roll's log since time SINCE (k8s_roll_log.py) in
# $T/roll, printed indented
roll() { $PY "$TOP/tests/e2e/k8s_roll_log.py" "$LABSIM_DIR" "$1" "$2" > "$T/roll" 2>&1; sed 's/^/     : /' "$T/roll"; }
now() { $PY -c 'import time; print(time.time())'; }
applies() { talos_calls ApplyConfiguration; }

# boot_ids: {vmid: boot id} of the simulator's Talos nodes now
boot_ids() { labsim_py "{n['vmid']: n['boot_id'] for n in s['talos']['nodes'] if n['vmid']}"; }
# cordoned: the names of $E's Kubernetes nodes that are unschedulable
cordoned() { kube_get "$E" /api/v1/nodes > "$T/nodes.json" && $PY -c "import json; print(sorted(n['metadata']['name'] for n in json.load(open('$T/nodes.json'))['items'] if n['spec'].get('unschedulable')))"; }
