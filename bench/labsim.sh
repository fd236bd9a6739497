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
run() {   # KIND CLIENTS N -> the median of ROUNDS, ms of the simulator's CPU per request
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		fresh
		$PY "$TOP/bench/labsim_load.py" "$PVE_PORT" "PVEAPIToken=$PVE_TOKEN_ID=$PVE_TOKEN_SECRET" \
			"$LABSIM_PID" "$@" > "$T/round" || { echo "labsim_load failed" >&2; exit 1; }
		awk '{ printf "%.4f\n", $4 / $3 * 1000 }' "$T/round"
		i=$((i + 1))
	done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
echo "lab simulator, CPU per request (median of $ROUNDS; load average $(cut -d' ' -f1 /proc/loadavg) at the start, 2 cores):"
for c in 1 16; do
	v=$(run version $c 2000)
	awk -v m="$v" -v c="$c" 'BEGIN { printf "  GET /version, %d client(s): %.3f ms (%.0f a CPU-second)\n", c, m, 1000 / m }'
done
for c in 1 16; do
	v=$(run create $c 400)
	awk -v m="$v" -v c="$c" 'BEGIN { printf "  POST /nodes/{node}/qemu (create, start=1), %d client(s): %.3f ms (%.0f a CPU-second): 200 creates take >= %.3fs of its one core (0.056 s at wall / critical path 1.05)\n", c, m, 1000 / m, 200 * m / 1000 }'
done
