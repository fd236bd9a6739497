#!/bin/sh
# bench/vms.sh: `strata apply` of 1 and of 8 cloud-init VMs (vms[]) cloned
# from one template, against the lab simulator at realistic timings (20 ms
# per API call, 1 s tasks and the guest agent answering 5 s after start at
# the default scale 1; BENCH_SCALE to change), from the template to every
# agent reporting its static address. Clones of one stopped template run in
# parallel (the source gets a shared lock only, FACTS.md §3), so nothing is
# serialised per storage. Prints both wall times, their ratio (target
# <= 1.3), and the Proxmox API requests per VM (writes, reads, task polls
# and agent polls apart). Run inside a private network namespace.
. "$(dirname "$0")/lib.sh"
SCALE=${BENCH_SCALE:-1}
command -v ok > /dev/null || ok() { :; }
command -v bad > /dev/null || bad() { echo "$*" >&2; }
KEY=$(ssh-keygen -q -t ed25519 -N '' -C bench@vms -f "$T/k" && cat "$T/k.pub")
IMG=https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img

env_with() {   # DIR N
	mkdir -p "$1"; chmod 700 "$1"
	cat > "$1/config.yml" <<Y
name: bench
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1]
  vmid: {base: 5000, count: 20}
network:
  cidr: 127.0.95.0/24
  gateway: 127.0.95.1
vms:
Y
	i=1
	while [ $i -le "$2" ]; do
		printf '  - name: vm-%d\n    template: 9000\n    ip: 127.0.95.%d\n    mac: "BC:24:11:5E:95:%02x"\n    user: ubuntu\n    ssh_keys: ["%s"]\n' \
			$i $((10 + i)) $((10 + i)) "$KEY" >> "$1/config.yml"
		i=$((i + 1))
	done
}

counts() {   # all, writes, task polls, agent polls so far
	labsim_ctl GET requests | $PY -c "
import json, sys
d = json.load(sys.stdin)['data']
print('all', len(d))
print('writes', sum(1 for r in d if r['method'] in ('POST', 'PUT', 'DELETE')))
print('polls', sum(1 for r in d if '/tasks' in r['path']))
print('agent', sum(1 for r in d if '/agent/' in r['path']))"
}

run() {   # N -> $T/N.wall, $T/N.req
	labsim_stop > /dev/null
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start --nodes pve1
	rm -rf "$T"/e*
	env_with "$T/e$1" "$1"
	"$STRATA" template "$T/e$1" --vmid 9000 --image "$IMG" > "$T/tpl.out" 2>&1 || { cat "$T/tpl.out" >&2; exit 1; }
	labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
	counts > "$T/$1.before"
	t0=$(now)
	"$STRATA" apply "$T/e$1" --yes > "$T/$1.out" 2>&1 || { cat "$T/$1.out" >&2; exit 1; }
	elapsed "$t0" > "$T/$1.wall"
	counts > "$T/$1.after"
	paste "$T/$1.before" "$T/$1.after" | awk '{ print $1, $4 - $2 }' > "$T/$1.req"
	w0=$(requests_where "r['method'] in ('POST', 'PUT', 'DELETE')")
	"$STRATA" apply "$T/e$1" --yes > /dev/null 2>&1
	echo "rerun_writes $(( $(requests_where "r['method'] in ('POST', 'PUT', 'DELETE')") - w0 ))" >> "$T/$1.req"
}

run 1
run 8
one=$(cat "$T/1.wall") eight=$(cat "$T/8.wall")
echo "apply, 1 cloud-init VM:  ${one}s"
echo "apply, 8 cloud-init VMs: ${eight}s"
awk -v a="$eight" -v b="$one" 'BEGIN { printf "wall 8 / 1: %.2f (target <= 1.3; clones of one template are not serialised)\n", a / b }'
for n in 1 8; do
	awk -v n=$n '{ v[$1] = $2 } END { printf "requests per VM (%d VMs, since the template): %.1f in all: %.1f writes, %.1f task polls, %.1f agent polls, %.1f other reads; a re-run: %d writes\n", n, v["all"] / n, v["writes"] / n, v["polls"] / n, v["agent"] / n, (v["all"] - v["writes"] - v["polls"] - v["agent"]) / n, v["rerun_writes"] }' "$T/$n.req"
done
