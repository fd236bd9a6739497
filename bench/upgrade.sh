#!/bin/sh
# bench/upgrade.sh: a rolling Talos upgrade of 3+5 against the lab
# simulator at realistic timings (BENCH_SCALE, default 0.5: a node's
# upgrade reboot takes 15 s, 20 ms per Proxmox call). The cluster is built
# at v1.12.10, then talos.version goes to v1.12.11 and apply rolls it.
# Prints the roll's wall time against the sum of the per-node minimum (for
# each node: from the simulator receiving its Upgrade to the node up again,
# i.e. the reboot; the gate adds nothing when every node is healthy at
# once), strata's overhead per node (the difference, divided by 8; target
# under 200 ms), and strata's own time per node as it reports it (wall
# minus its waits for nodes and gates).
. "$(dirname "$0")/lib.sh"
ok() { :; }; bad() { echo "bad: $*" >&2; }   # labsim_stop reports through these
SCALE=${BENCH_SCALE:-0.5}
LABSIM_SCALE=$SCALE labsim_start --talos-net 127.0.99.128/25
labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
write_env "$T/env" bu 3100 3 5 127.0.99
printf 'talos:\n  version: v1.12.10\n' >> "$T/env/config.yml"
"$STRATA" apply "$T/env" --yes > "$T/build.out" 2>&1 || { cat "$T/build.out" >&2; exit 1; }
sed -i 's/version: v1.12.10/version: v1.12.11/' "$T/env/config.yml"
t0=$(now)
"$STRATA" apply "$T/env" --yes > "$T/roll.out" 2>&1 || { cat "$T/roll.out" >&2; exit 1; }
wall=$(elapsed "$t0")
labsim_ctl GET state > "$T/state.json"
# BENCH_KEEP=DIR keeps the roll's output and the simulator's state there:
# its Talos and Kubernetes call logs and node events carry times (t), to
# see where a roll's time goes between a node's return and the next
# Upgrade.
if [ -n "${BENCH_KEEP:-}" ]; then
	mkdir -p "$BENCH_KEEP" && cp "$T/state.json" "$T/roll.out" "$BENCH_KEEP/"
fi
$PY - "$T/state.json" "$T/roll.out" "$wall" <<'PYEOF'
import json, re, sys
s = json.load(open(sys.argv[1]))["data"]["talos"]
out = open(sys.argv[2]).read()
wall = float(sys.argv[3])
ip_vm = {n["ip"]: n["vmid"] for n in s["nodes"] if n["vmid"] is not None}
ups = sorted((c for c in s["calls"] if c["method"].endswith("/Upgrade")), key=lambda c: c["t"])
mins = []
for c in ups:
    vm = ip_vm[c["node"]]
    back = min(e["t"] for e in s["node_events"] if e["vmid"] == vm and e["event"] == "up" and e["t"] > c["t"])
    mins.append(back - c["t"])
first, last_up = ups[0]["t"], None
m = re.search(r"Talos: (\d+) nodes upgraded to \S+ .* in ([\d.]+)s \(gates ([\d.]+)s\); strata's own time (\d+) ms a node", out)
if not m or int(m.group(1)) != 8:
    sys.exit("bench: the roll did not upgrade 8 nodes:\n" + out[-2000:])
roll, gates = float(m.group(2)), float(m.group(3))
total = sum(mins)
print("nodes upgraded:                       8 (3 control planes, 5 workers, one at a time)")
print("apply wall time (whole command):      %.2fs" % wall)
print("roll wall time (phase talos-upgrade): %.2fs" % roll)
print("sum of per-node minimum (reboots):    %.2fs (%.2fs a node)" % (total, total / 8))
print("roll / minimum:                       %.3f" % (roll / total))
print("health gates (9 passes, all nodes):   %.2fs (%.0f ms a pass)" % (gates, gates / 9 * 1000))
print("overhead per node (roll - min) / 8:   %.0f ms, of which gates %.0f ms" % ((roll - total) / 8 * 1000, gates / 8 * 1000))
print("overhead per node without the gates:  %.0f ms (target < 200 ms)" % ((roll - total - gates) / 8 * 1000))
print("strata's own time per node (reported): %s ms (wall minus its waits for nodes and gates)" % m.group(4))
PYEOF
# BENCH_TALOS_ONLY=1: the Talos roll alone (when looking at that one).
[ -z "${BENCH_TALOS_ONLY:-}" ] || exit 0
# Then a Kubernetes patch upgrade of the same cluster (1.35.4 -> 1.35.5,
# Talos v1.12 supports both): 3 control planes x 5 steps + 5 kubelets, each
# applied NO_REBOOT and waited for (the simulator restarts a static pod or
# the kubelet k8s_static_pod_seconds / k8s_kubelet_restart_seconds after a
# config, time-scaled). strata's own time per step is the roll's wall time
# minus its waits (pods, kubelets, gates).
sed -i 's/^kubernetes:$/kubernetes:\n  version: 1.35.5/' "$T/env/config.yml"
t1=$(now)
"$STRATA" apply "$T/env" --yes > "$T/k8s.out" 2>&1 || { cat "$T/k8s.out" >&2; exit 1; }
kwall=$(elapsed "$t1")
$PY - "$T/k8s.out" "$kwall" <<'PYEOF'
import re, sys
out = open(sys.argv[1]).read()
m = re.search(r"Kubernetes: (\d+) node steps to \S+ in ([\d.]+)s; strata's own time (\d+) ms a step", out)
if not m or int(m.group(1)) != 20:
    sys.exit("bench: the Kubernetes roll did not make 20 steps:\n" + out[-2000:])
gates = len(re.findall(r"health gate before .*: passed", out))
print("Kubernetes roll 1.35.4 -> 1.35.5:     %s node steps in %ss (apply %.2fs), %d gates" % (m.group(1), m.group(2), float(sys.argv[2]), gates))
print("strata's own time per step (reported): %s ms (wall minus its waits for pods, kubelets and gates)" % m.group(3))
PYEOF
