#!/bin/sh
# bench/destroy.sh [SIZE]: with SIZE, the scale bench of bench/scale.sh.
# Without: destroy of 8 running VMs whose guests ignore ACPI
# shutdown, against destroying one such VM (realistic 20 ms API latency,
# 1 s tasks). A hard stop never waits for the guest, and all VMs go in
# parallel, so 8 should cost about what 1 does.
. "$(dirname "$0")/lib.sh"
if [ -n "${1:-}" ]; then   # a size: the scale bench (bench/scale.sh)
	. "$(dirname "$0")/scale.sh"
	scale_report destroy
	exit 0
fi
SCALE=${BENCH_SCALE:-0.5}

run_destroy() {   # NAME CP WORKERS -> $T/NAME.wall
	labsim_stop
	rm -rf "$T/labsim"
	LABSIM_SCALE=$SCALE labsim_start
	write_env "$T/$1/env" "$1" 3000 "$2" "$3"
	"$STRATA" apply "$T/$1/env" --yes > "$T/$1.apply" 2>&1 || { cat "$T/$1.apply" >&2; exit 1; }
	for id in $(seq 3000 $((2999 + $2 + $3))); do
		labsim_ctl POST vm "{\"vmid\": $id, \"acpi_ignored\": true}" > /dev/null 2>&1
	done
	labsim_ctl POST knobs '{"latency": 0.02}' > /dev/null
	t0=$(now)
	"$STRATA" destroy "$T/$1/env" --yes > "$T/$1.out" 2>&1 || { cat "$T/$1.out" >&2; exit 1; }
	elapsed "$t0" > "$T/$1.wall"
	left=$(labsim_py "len(s['vms'])")
	[ "$left" = 0 ] || { echo "destroy left $left VMs" >&2; exit 1; }
}

run_destroy one 1 0
run_destroy many 3 5
one=$(cat "$T/one.wall") many=$(cat "$T/many.wall")
echo "destroy, 1 VM ignoring ACPI:  ${one}s"
echo "destroy, 8 VMs ignoring ACPI: ${many}s"
awk -v a="$many" -v b="$one" 'BEGIN { printf "8 VMs / 1 VM: %.2f\n", a / b }'
