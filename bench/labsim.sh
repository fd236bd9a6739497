#!/bin/sh
# bench/labsim.sh: the lab simulator's own capacity (issue 13: it must
# carry 200 VMs at realistic timings on this 2-core machine). Its
# Proxmox API's CPU per request, latency 0, for GET /version (transport,
# parsing, token check: what every request pays) and for a VM create
# with the parameters strata sends (schema check, the create, its task),
# from 1 client and from 16 at once (other processes: bench/labsim_load.py).
# What it bounds: the simulator is one Python process, at most one core
# at a time, so N creates take at least N x its CPU per create, however
# many connections carry them; at 200 VMs with a 1.12 s critical path,
# wall / critical path <= 1.05 leaves 0.056 s for the 200 creates.
# ROUNDS (default 3) runs of each, on a fresh simulator each; the
# median is printed.
. "$(dirname "$0")/lib.sh"
command -v ok > /dev/null || ok() { :; }
command -v bad > /dev/null || bad() { echo "$*" >&2; }
ROUNDS=${ROUNDS:-3}
fresh() {
	labsim_stop > /dev/null
	rm -rf "$T/labsim"
	labsim_start --no-talos
	labsim_ctl POST knobs '{"latency": 0,
		"node_resources": {"pve1": {"maxmem": 17592186044416}, "pve2": {"maxmem": 17592186044416}, "pve3": {"maxmem": 17592186044416}},
		"storage": {"pve1": {"local-lvm": {"total": 70368744177664}}, "pve2": {"local-lvm": {"total": 70368744177664}}, "pve3": {"local-lvm": {"total": 70368744177664}}}}' > /dev/null
}
# median: the middle one of the values in $T/rounds, into $v. The rounds
# run in this shell (no pipe, no $(...)): a simulator started in a
# subshell would be out of labsim_stop's reach and outlive the bench.
median() {
	v=$(sort -n "$T/rounds" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	rm -f "$T/rounds"
}
per_request() {   # a "KIND CLIENTS N cpu_s wall_s" line: ms of CPU per request
	awk '{ printf "%.4f\n", $4 / $3 * 1000 }' "$T/round" >> "$T/rounds"
}
run() {   # KIND CLIENTS N: v = the median of ROUNDS, ms of the simulator's CPU per request
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		fresh
		$PY "$TOP/bench/labsim_load.py" "$PVE_PORT" "PVEAPIToken=$PVE_TOKEN_ID=$PVE_TOKEN_SECRET" \
			"$LABSIM_PID" "$@" > "$T/round" || { echo "labsim_load failed" >&2; exit 1; }
		per_request
		i=$((i + 1))
	done
	median
}
bare() {   # KIND CLIENTS N: v = the median of ROUNDS, ms of bench/labsim_bare.py's CPU per request
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		rm -f "$T/bare.port"
		$PY "$TOP/bench/labsim_bare.py" "$T/labsim/pve-ssl.pem" "$T/labsim/pve-ssl.key" > "$T/bare.port" &
		bpid=$!
		j=0
		while [ ! -s "$T/bare.port" ] && [ $j -lt 100 ]; do sleep 0.05; j=$((j + 1)); done
		$PY "$TOP/bench/labsim_load.py" "$(cat "$T/bare.port")" "none" "$bpid" "$@" > "$T/round" \
			|| { kill "$bpid"; echo "labsim_load failed (bare server)" >&2; exit 1; }
		kill "$bpid"
		wait "$bpid" 2>/dev/null
		per_request
		i=$((i + 1))
	done
	median
}
echo "lab simulator, CPU per request (median of $ROUNDS; load average $(cut -d' ' -f1 /proc/loadavg) at the start, 2 cores):"
for c in 1 16; do
	run version $c 2000
	awk -v m="$v" -v c="$c" 'BEGIN { printf "  GET /version, %d client(s): %.3f ms (%.0f a CPU-second)\n", c, m, 1000 / m }'
done
for c in 1 16; do
	run create $c 400
	awk -v m="$v" -v c="$c" 'BEGIN { printf "  POST /nodes/{node}/qemu (create, start=1), %d client(s): %.3f ms (%.0f a CPU-second): 200 creates take >= %.3fs of its one core (0.056 s at wall / critical path 1.05)\n", c, m, 1000 / m, 200 * m / 1000 }'
done
# The floor under any simulator on the standard library's server: the
# same POSTs to bench/labsim_bare.py (the same server classes and TLS,
# the simulator's certificate, one fixed answer, no Proxmox model).
for c in 1 16; do
	bare create $c 400
	awk -v m="$v" -v c="$c" 'BEGIN { printf "  the same POSTs to the standard library'"'"'s HTTPS server alone (bench/labsim_bare.py: no model), %d client(s): %.3f ms: 200 take >= %.3fs of one core\n", c, m, 200 * m / 1000 }'
done
