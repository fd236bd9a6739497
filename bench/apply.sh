#!/bin/sh
# bench/apply.sh: `strata apply` of the 3+5 example shape against the lab
# simulator with realistic latencies (20 ms per API call, 1 s tasks,
# ISO download included), compared with the critical path: the same apply
# for a single VM on a fresh simulator (its chain is what each VM does).
# Prints wall time, the ratio (target <= 1.10) and API calls per VM
# (target <= 5 plus task polls).
. "$(dirname "$0")/lib.sh"
SCALE=${BENCH_SCALE:-0.5}

run_apply() {   # NAME CP WORKERS -> $T/NAME.wall; leaves the simulator running
	labsim_stop
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start
	labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
	write_env "$T/$1/env" "$1" 3000 "$2" "$3"
	t0=$(now)
	"$STRATA" apply "$T/$1/env" --yes > "$T/$1.out" 2>&1 || { cat "$T/$1.out" >&2; exit 1; }
	elapsed "$t0" > "$T/$1.wall"
}

run_apply one 1 0
run_apply many 3 5
one=$(cat "$T/one.wall") many=$(cat "$T/many.wall")
total=$(requests_where "True")
polls=$(requests_where "'/tasks/' in r['path']")
calls=$((total - polls))
echo "apply, 1 VM (critical path): ${one}s"
echo "apply, 3+5 VMs:              ${many}s"
awk -v a="$many" -v b="$one" 'BEGIN { printf "wall / critical path: %.2f (target <= 1.10)\n", a / b }'
awk -v c="$calls" -v p="$polls" 'BEGIN { printf "API calls per VM: %.1f plus %.1f task polls (target <= 5 plus polls)\n", c / 8, p / 8 }'
labsim_ctl GET requests | $PY -c "
import json, sys, collections, re
c = collections.Counter()
for r in json.load(sys.stdin)['data']:
    if '/tasks/' in r['path']: continue
    c[r['method'] + ' ' + re.sub(r'/\d{3,}', '/ID', re.sub(r'^/api2/json', '', r['path']))] += 1
for k, v in sorted(c.items(), key=lambda x: -x[1]): print('  %3d %s' % (v, k))"
