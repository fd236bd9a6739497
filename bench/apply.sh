#!/bin/sh
# bench/apply.sh [SIZE]: with SIZE, the scale bench of bench/scale.sh
# (8, 50, 200 VMs). Without: `strata apply` of the 3+5 example shape against the lab
# simulator with realistic latencies (20 ms per API call, 1 s tasks,
# ISO download included, Talos boot 10 s and install 15 s at the default
# scale), from an empty simulator to every node registered in Kubernetes,
# compared with the critical path: the same apply for a single node on a
# fresh simulator (its chain is what each node does: create, start, boot,
# apply-config, install, bootstrap, kubeconfig).
# Prints wall time, the ratio (target <= 1.10), Proxmox API calls per VM
# (target <= 5 plus task polls) and Talos API calls per node. Both runs
# include the addon phases (cni always, gitops for 3+5): their time is
# printed split into the installer Jobs, the waits for rollouts/nodes/CRDs
# and strata's own work (target < 1 s for cni + gitops on 3+5).
. "$(dirname "$0")/lib.sh"
if [ -n "${1:-}" ]; then   # a size: the scale bench (bench/scale.sh)
	. "$(dirname "$0")/scale.sh"
	scale_report apply
	exit 0
fi
SCALE=${BENCH_SCALE:-0.5}

run_apply() {   # NAME CP WORKERS -> $T/NAME.wall; leaves the simulator running
	labsim_stop
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start
	labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
	write_env "$T/$1/env" "$1" 3000 "$2" "$3"
	[ -n "${4:-}" ] && printf 'gitops:\n  repo: ssh://git@git.example.org/lab/fleet.git\n  known_hosts: "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"\n' >> "$T/$1/env/config.yml"
	t0=$(now)
	"$STRATA" apply "$T/$1/env" --yes > "$T/$1.out" 2>&1 || { cat "$T/$1.out" >&2; exit 1; }
	elapsed "$t0" > "$T/$1.wall"
}

run_apply one 1 0
run_apply many 3 5 gitops
one=$(cat "$T/one.wall") many=$(cat "$T/many.wall")
total=$(requests_where "True")
polls=$(requests_where "'/tasks/' in r['path'] or r['path'].endswith('/tasks')")   # status reads and shared listings
agent=$(requests_where "'/agent/' in r['path']")
calls=$((total - polls - agent))
echo "apply, 1 VM (critical path): ${one}s"
echo "apply, 3+5 VMs:              ${many}s"
awk -v a="$many" -v b="$one" 'BEGIN { printf "wall / critical path: %.2f (target <= 1.10)\n", a / b }'
awk -v c="$calls" -v p="$polls" -v a="$agent" 'BEGIN { printf "API calls per VM: %.1f plus %.1f task polls and %.1f guest-agent polls while the VM boots (target <= 5 plus polls)\n", c / 8, p / 8, a / 8 }'
labsim_py "s['talos']['calls']" | $PY -c "
import ast, sys, collections
calls = ast.literal_eval(sys.stdin.read())
c = collections.Counter(x['method'].rsplit('/', 1)[-1] + (' (maintenance)' if x.get('maintenance') else '') for x in calls)
print('Talos API calls per node: %.1f (%d in all; probes while a node installs are retries)' % (len(calls) / 8, len(calls)))
for k, v in sorted(c.items(), key=lambda x: -x[1]): print('  %3d %s' % (v, k))"
labsim_ctl GET requests | $PY -c "
import json, sys, collections, re
c = collections.Counter()
for r in json.load(sys.stdin)['data']:
    if '/tasks/' in r['path'] or r['path'].endswith('/tasks') or '/agent/' in r['path']: continue
    c[r['method'] + ' ' + re.sub(r'/\d{3,}', '/ID', re.sub(r'^/api2/json', '', r['path']))] += 1
for k, v in sorted(c.items(), key=lambda x: -x[1]): print('  %3d %s' % (v, k))"
# The addon phases: "<phase>: took As: Job Bs, <waits> Cs, strata Ds"
$PY - "$T/many.out" <<'PYEOF'
import re, sys
own = 0.0
for line in open(sys.argv[1]):
    m = re.search(r"(cni|gitops): took ([\d.]+)s: Job ([\d.]+)s, (.*) ([\d.]+)s, strata ([\d.]+)s", line)
    if m:
        own += float(m.group(6))
        print("%-6s %6.2fs: Job %.2fs, %s %.2fs, strata's own %.3fs" % (m.group(1), float(m.group(2)),
              float(m.group(3)), m.group(4), float(m.group(5)), float(m.group(6))))
print("addons, strata's own time (cni + gitops, 3+5): %.3fs (target < 1 s)" % own)
PYEOF
