# bench/scale.sh: sourced by bench/apply.sh and bench/destroy.sh when they
# are given a size (issue 13). SIZE Talos VMs (3 control planes, the rest
# workers) spread over 3 Proxmox nodes of the lab simulator, 20 ms per API
# call, 1 s tasks (BENCH_SCALE 0.5 of the simulator's 2 s). The simulator
# runs without Talos (--no-talos): what is measured is Proxmox's part,
# from `strata apply` starting to every VM running (the end of the phase
# "start"), and the whole of `strata destroy`. The apply then stops in
# talos-install after --timeout 1s; that is expected and not counted.
# Each is compared with the same run for 1 VM (its critical path).
# Requests per VM: writes (POST/PUT/DELETE), reads (other GETs), task
# polls split into per-task status reads and shared per-node listings
# (GET /nodes/{node}/tasks).
SCALE=${BENCH_SCALE:-0.5}
command -v ok > /dev/null || ok() { :; }
command -v bad > /dev/null || bad() { echo "$*" >&2; }
SIZE=$1
PARALLEL=${BENCH_PARALLEL:-$SIZE}

scale_env() {   # DIR NAME SIZE
	mkdir -p "$1"
	w=$(($3 > 3 ? $3 - 3 : 0)) cp=$(($3 > 3 ? 3 : $3))
	cat > "$1/config.yml" <<YAML
name: $2
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1, pve2, pve3]
  vmid: {base: 3000, count: 1000}
  first_boot: maintenance
network:
  cidr: 10.200.0.0/16
  gateway: 10.200.0.1
kubernetes:
  vip: 10.200.0.10
nodes:
  controlplane: {count: $cp, ip_start: 10.200.0.11, memory: 2GiB, disk: 10GiB}
YAML
	[ "$w" -gt 0 ] && echo "  workers: {count: $w, ip_start: 10.200.1.1, memory: 2GiB, disk: 20GiB}" >> "$1/config.yml"
	return 0
}

# scale_run KIND N: KIND apply or destroy; leaves $T/KIND-N.{wall,stat,req}
scale_run() {
	labsim_stop > /dev/null
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start --no-talos
	labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
	E="$T/$1-$2/env"
	scale_env "$E" "s$2" "$2"
	if [ "$1" = destroy ]; then
		"$STRATA" apply "$E" --yes --timeout 1s --parallel "$PARALLEL" > "$T/setup.out" 2>&1
		[ "$(labsim_py "sum(1 for v in s['vms'].values() if v['status'] == 'running')")" = "$2" ] \
			|| { echo "setup: not all $2 VMs running" >&2; tail -5 "$T/setup.out" >&2; cp "$T"/*.err "$T"/*.out /tmp/ 2>/dev/null; exit 1; }
		labsim_ctl POST reset-requests > /dev/null 2>&1
		since=$(now)
		$PY "$TOP/bench/procstat.py" "$T/$1-$2.stat" "$STRATA" destroy "$E" --yes \
			> "$T/$1-$2.out" 2>&1 || { tail -5 "$T/$1-$2.out" >&2; cp "$T"/*.err "$T"/*.out /tmp/ 2>/dev/null; exit 1; }
		elapsed "$since" > "$T/$1-$2.wall"
		[ "$(labsim_py "len(s['vms'])")" = 0 ] || { echo "destroy left VMs" >&2; cp "$T"/*.err "$T"/*.out /tmp/ 2>/dev/null; exit 1; }
		end=$(now)
	else
		since=$(now)
		$PY "$TOP/bench/procstat.py" "$T/$1-$2.stat" "$STRATA" apply "$E" --yes --timeout 1s \
			--parallel "$PARALLEL" -o json > "$T/$1-$2.out" 2> "$T/$1-$2.err"
		end=$($PY -c "
import json, sys, datetime
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get('type') == 'phase_end' and e.get('phase') == 'start':
        if e.get('result') != 'done': sys.exit('phase start: %s' % e)
        print(datetime.datetime.strptime(e['time'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp())
" "$T/$1-$2.out") || { tail -5 "$T/$1-$2.err" >&2; cp "$T"/*.err "$T"/*.out /tmp/ 2>/dev/null; exit 1; }
		elapsed "$since" "$end" > "$T/$1-$2.wall"
		[ "$(labsim_py "sum(1 for v in s['vms'].values() if v['status'] == 'running')")" = "$2" ] \
			|| { echo "apply: not all $2 VMs running" >&2; cp "$T"/*.err "$T"/*.out /tmp/ 2>/dev/null; exit 1; }
	fi
	labsim_ctl GET requests | $PY -c "
import json, sys
since, end, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
r = [x for x in json.load(sys.stdin)['data'] if since <= x['t'] <= end + 0.001]
w = sum(1 for x in r if x['method'] != 'GET')
lst = sum(1 for x in r if x['method'] == 'GET' and x['path'].rstrip('/').endswith('/tasks'))
st = sum(1 for x in r if x['method'] == 'GET' and '/tasks/' in x['path'])
rd = len(r) - w - lst - st
print('%d %d %d %d %d' % (len(r), w, rd, st, lst))
import collections, re
c = collections.Counter(x['method'] + ' ' + re.sub(r'UPID(%3A|:)[^/]*', '{upid}', re.sub(r'/\\d{3,}', '/{vmid}', re.sub(r'/pve\\d', '/{node}', x['path'][len('/api2/json'):]))) for x in r)
with open(sys.argv[4], 'w') as f:
    for k, v in sorted(c.items(), key=lambda x: -x[1]): f.write('  %5d %s\\n' % (v, k))" "$since" "$end" "$2" "$T/$1-$2.paths" > "$T/$1-$2.req"
}

scale_report() {   # KIND
	scale_run "$1" 1
	scale_run "$1" "$SIZE"
	one=$(cat "$T/$1-1.wall") many=$(cat "$T/$1-$SIZE.wall")
	read -r tot w rd st lst < "$T/$1-$SIZE.req"
	stat=$(cat "$T/$1-$SIZE.stat")
	what=$([ "$1" = apply ] && echo "apply, create -> running" || echo "destroy")
	echo "$what, $SIZE VMs on 3 Proxmox nodes (apply --parallel $PARALLEL): ${many}s; 1 VM (critical path): ${one}s"
	awk -v a="$many" -v b="$one" 'BEGIN { printf "wall / critical path: %.2f (target <= 1.05 at 50 and 200)\n", a / b }'
	awk -v n="$SIZE" -v t="$tot" -v w="$w" -v r="$rd" -v s="$st" -v l="$lst" 'BEGIN {
		printf "requests per VM: %.2f = %.2f writes + %.2f reads + %.2f task status reads + %.2f shared listings (%d listings in all)\n", t / n, w / n, r / n, s / n, l / n, l
		printf "requests per VM that are not shared listings: %.2f\n", (t - l) / n }'
	echo "$stat" | awk '{ split($1, a, "="); split($2, b, "="); printf "peak RSS %.1f MB, peak threads %d\n", a[2] / 1024, b[2] }'
	echo "requests by endpoint ($SIZE VMs):"
	cat "$T/$1-$SIZE.paths"
}
