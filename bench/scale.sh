# bench/scale.sh: sourced by bench/apply.sh and bench/destroy.sh when they
# are given a size (issue 13). SIZE Talos VMs (3 control planes, the rest
# workers) spread over 3 Proxmox nodes of the lab simulator, 20 ms per API
# call, 1 s tasks (BENCH_SCALE 0.5 of the simulator's 2 s). The nodes are
# given 256 GiB and a 4 TiB disk pool each, so 200 VMs of 2 GiB pass the
# preflight (as on a cluster sized for them). The simulator runs without
# Talos (--no-talos): what is measured is Proxmox's part, from `strata
# apply` starting to every VM running (the end of the phase "start"),
# and the whole of `strata destroy`. The apply then stops in talos-install
# after --timeout 1s; that is expected and not counted.
#
# Printed per size, each against the same run for 1 VM (its critical path):
# - wall / critical path, for the VM phases (vms and start: create ->
#   running) and for the whole apply up to running (preflight, ISO);
# - requests per VM addressed to one VM (its create, stop, delete, config
#   read, its tasks' own status/log reads), split into writes, reads and
#   task status/log reads: the figure the targets are about; and the
#   shared requests, addressed to no VM (the task listings per node that
#   follow every VM's task, the start phase's one VM listing per node,
#   GET /cluster/resources, storage and ISO calls), as counts at N VMs
#   and at 1 VM, so one sees they do not grow with the VM count
#   (bench/scale_count.py says which is which); and all requests per VM;
# - where the time goes: how long after the first VM's first request
#   the last VM's came, against the least the connection cap allows
#   (CONNS connections, LATENCY per call: no client does better; it
#   bounds wall / critical path from below); how long after their end
#   the tasks were found; when the last task ended; TLS handshakes;
# - CPU of strata and of the simulator (a single Python process: it
#   has one core at most) over the measured part, and the load average
#   (other processes on this 2-core machine slow both);
# - peak RSS and peak threads of strata (for apply also until every VM
#   runs: the apply goes on into talos-install, not part of this bench).
# Targets (issue 13): create -> running <= 2 requests per VM addressed to
# one VM, <= 4 in all at 8 VMs; destroy <= 3 addressed to one VM; wall /
# critical path <= 1.05 at 50 and 200; peak RSS < 64 MB at 200.
SCALE=${BENCH_SCALE:-0.5}
command -v ok > /dev/null || ok() { :; }
command -v bad > /dev/null || bad() { echo "$*" >&2; }
SIZE=$1
PARALLEL=${BENCH_PARALLEL:-$SIZE}
LATENCY=0.02
CONNS=$((PARALLEL < 32 ? 32 : PARALLEL > 128 ? 128 : PARALLEL))   # strata's connections to the endpoint at most: --parallel, 32 to 128 (proxmox.c)

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
  image_factory: $FACTORY_URL
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

# phase_times FILE: "BEGIN END" epoch seconds from the start of phase vms
# to the end of phase start in an -o json event stream
phase_times() {
	$PY -c "
import json, sys, datetime
def ts(e): return datetime.datetime.strptime(e['time'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=datetime.timezone.utc).timestamp()
b = e_ = None
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get('type') == 'phase_start' and e.get('phase') == 'vms': b = ts(e)
    if e.get('type') == 'phase_end' and e.get('phase') == 'start':
        if e.get('result') != 'done': sys.exit('phase start: %s' % e)
        e_ = ts(e)
if b is None or e_ is None: sys.exit('no vms/start phases')
print(b, e_)" "$1"
}

# count_requests SINCE END OUT: the simulator's requests between SINCE
# and END, counted by bench/scale_count.py into OUT (JSON) and OUT.paths
count_requests() {
	labsim_ctl GET requests > "$T/requests.json"
	labsim_ctl GET state > "$T/state.json"
	$PY "$TOP/bench/scale_count.py" sum "$T/requests.json" "$T/state.json" "$1" "$2" \
		"$LATENCY" "$3"
}

# scale_run KIND N: KIND apply or destroy; leaves $T/KIND-N.{wall,pwall,stat,req,preq,paths}
scale_run() {
	labsim_stop > /dev/null
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start --no-talos
	labsim_ctl POST knobs '{"latency": '"$LATENCY"',
		"node_resources": {"pve1": {"maxmem": 274877906944}, "pve2": {"maxmem": 274877906944}, "pve3": {"maxmem": 274877906944}},
		"storage": {"pve1": {"local-lvm": {"total": 4398046511104}}, "pve2": {"local-lvm": {"total": 4398046511104}}, "pve3": {"local-lvm": {"total": 4398046511104}}}}' > /dev/null
	E="$T/$1-$2/env"
	scale_env "$E" "s$2" "$2"
	if [ "$1" = destroy ]; then
		"$STRATA" apply "$E" --yes --timeout 1s --parallel "$PARALLEL" > "$T/setup.out" 2>&1
		[ "$(labsim_py "sum(1 for v in s['vms'].values() if v['status'] == 'running')")" = "$2" ] \
			|| { echo "setup: not all $2 VMs running" >&2; tail -5 "$T/setup.out" >&2; exit 1; }
		labsim_ctl POST reset-requests > /dev/null 2>&1
		load0=$(cut -d' ' -f1 /proc/loadavg)
		since=$(now)
		PROCSTAT_OTHER=$LABSIM_PID $PY "$TOP/bench/procstat.py" "$T/$1-$2.stat" "$STRATA" destroy "$E" --yes \
			--parallel "$PARALLEL" > "$T/$1-$2.out" 2>&1 || { tail -5 "$T/$1-$2.out" >&2; exit 1; }
		end=$(now)
		echo "$since $end $load0 $(cut -d' ' -f1 /proc/loadavg)" > "$T/$1-$2.win"
		elapsed "$since" "$end" > "$T/$1-$2.wall"
		cp "$T/$1-$2.wall" "$T/$1-$2.pwall"
		[ "$(labsim_py "len(s['vms'])")" = 0 ] || { echo "destroy left VMs" >&2; exit 1; }
		count_requests "$since" "$end" "$T/$1-$2.req"
		cp "$T/$1-$2.req" "$T/$1-$2.preq"
		cp "$T/$1-$2.req.paths" "$T/$1-$2.paths"
	else
		load0=$(cut -d' ' -f1 /proc/loadavg)
		since=$(now)
		PROCSTAT_OTHER=$LABSIM_PID $PY "$TOP/bench/procstat.py" "$T/$1-$2.stat" "$STRATA" apply "$E" --yes --timeout 1s \
			--parallel "$PARALLEL" -o json > "$T/$1-$2.out" 2> "$T/$1-$2.err"
		pt=$(phase_times "$T/$1-$2.out") || { tail -5 "$T/$1-$2.err" >&2; exit 1; }
		pb=${pt% *} end=${pt#* }
		echo "$pb $end $load0 $(cut -d' ' -f1 /proc/loadavg)" > "$T/$1-$2.win"
		elapsed "$since" "$end" > "$T/$1-$2.wall"
		elapsed "$pb" "$end" > "$T/$1-$2.pwall"
		echo "$end" > "$T/$1-$2.end"
		[ "$(labsim_py "sum(1 for v in s['vms'].values() if v['status'] == 'running')")" = "$2" ] \
			|| { echo "apply: not all $2 VMs running" >&2; exit 1; }
		count_requests "$since" "$end" "$T/$1-$2.req"
		count_requests "$pb" "$end" "$T/$1-$2.preq"
		cp "$T/$1-$2.req.paths" "$T/$1-$2.allpaths"
		cp "$T/$1-$2.preq.paths" "$T/$1-$2.paths"
	fi
}

# per_vm LABEL REQ BEFORE CRIT: the counts of REQ (N VMs) against the
# same for 1 VM; BEFORE: requests per VM before its first task; CRIT:
# the 1-VM run's seconds
per_vm() {
	$PY "$TOP/bench/scale_count.py" report "$1" "$SIZE" "$CONNS" "$3" "$4" \
		"$(echo "$2" | sed "s/-$SIZE\./-1./")" "$2"
}

# cpu_over B E LABEL SAMPLES: CPU of strata and of the simulator between
# epoch seconds B and E (from procstat's samples, every 10 ms)
cpu_over() {
	awk -v b="$1" -v e="$2" -v what="$3" -v hz="$(getconf CLK_TCK)" '
		$1 >= b && !got { got = 1; s0 = $4; o0 = $5; t0 = $1 }
		$1 <= e { s1 = $4; o1 = $5; t1 = $1 }
		END { printf "%s (%.2fs): strata %.2fs, the simulator %.2fs", what, t1 - t0, (s1 - s0) / hz, (o1 - o0) / hz }' "$4"
}

# cpu_line KIND LABEL REQ: CPU over the measured part of the N-VM run and
# while the VMs' first requests went out (REQ: its counts), and the load
cpu_line() {
	read -r b e l0 l1 < "$T/$1-$SIZE.win"
	f=$($PY "$TOP/bench/scale_count.py" first "$3")
	echo "$2: CPU $(cpu_over "$b" "$e" "over the part measured" "$T/$1-$SIZE.stat.samples"); $(cpu_over "${f% *}" "${f#* }" "while the VMs' first requests went out" "$T/$1-$SIZE.stat.samples") (the simulator is one Python process: at most 1 s a second); load average $l0 at the start, $l1 at the end (2 cores; other processes count)"
}

scale_report() {   # KIND
	scale_run "$1" 1
	scale_run "$1" "$SIZE"
	stat=$(cat "$T/$1-$SIZE.stat")
	if [ "$1" = apply ]; then
		echo "apply, create -> running, $SIZE VMs on 3 Proxmox nodes (--parallel $PARALLEL)"
		awk -v a="$(cat "$T/apply-$SIZE.pwall")" -v b="$(cat "$T/apply-1.pwall")" 'BEGIN {
			printf "VM phases (vms + start): %.2fs; 1 VM (critical path) %.2fs; wall / critical path %.2f (target <= 1.05 at 50 and 200)\n", a, b, a / b }'
		awk -v a="$(cat "$T/apply-$SIZE.wall")" -v b="$(cat "$T/apply-1.wall")" 'BEGIN {
			printf "whole apply to running (preflight, ISO, VMs): %.2fs; 1 VM %.2fs; ratio %.2f\n", a, b, a / b }'
		per_vm "VM phases" "$T/apply-$SIZE.preq" 1 "$(cat "$T/apply-1.pwall")"
		per_vm "whole apply" "$T/apply-$SIZE.req" 1 "$(cat "$T/apply-1.wall")"
		echo "  (targets: <= 2 per VM addressed to one VM; <= 4 per VM in all at 8 VMs)"
		cpu_line apply "VM phases" "$T/apply-$SIZE.preq"
	else
		echo "destroy, $SIZE VMs on 3 Proxmox nodes (--parallel $PARALLEL)"
		awk -v a="$(cat "$T/destroy-$SIZE.wall")" -v b="$(cat "$T/destroy-1.wall")" 'BEGIN {
			printf "destroy: %.2fs; 1 VM (critical path) %.2fs; wall / critical path %.2f (target <= 1.05 at 50 and 200)\n", a, b, a / b }'
		per_vm "destroy" "$T/destroy-$SIZE.req" 2 "$(cat "$T/destroy-1.wall")"
		echo "  (target: <= 3 per VM addressed to one VM)"
		cpu_line destroy destroy "$T/destroy-$SIZE.req"
	fi
	echo "$stat" | awk '{ split($1, a, "="); split($2, b, "="); printf "peak RSS %.1f MB, peak threads %d, whole run (target RSS < 64 MB at 200)\n", a[2] / 1024, b[2] }'
	[ "$1" = apply ] && awk -v end="$(cat "$T/apply-$SIZE.end")" '$1 <= end && $2 > m { m = $2 } $1 <= end && $3 > t { t = $3 }
		END { printf "peak RSS %.1f MB, peak threads %d, until every VM runs (sampled every 10 ms; the rest is talos-install failing as expected)\n", m / 1024, t }' "$T/apply-$SIZE.stat.samples"
	echo "requests by endpoint ($SIZE VMs$([ "$1" = apply ] && echo ", VM phases")):"
	cat "$T/$1-$SIZE.paths"
	[ "$1" = apply ] && { echo "requests by endpoint, whole apply to running:"; cat "$T/apply-$SIZE.allpaths"; }
	return 0
}
