#!/bin/sh
# Run the config-loader fuzzer for a bounded time, seeded with the examples
# and the bad-config corpus. FUZZ_SECONDS (default 30) sets the budget,
# FUZZ_SEED (default 1) the mutation seed: the same seed runs the same
# inputs first, so a failure CI found replays here. An input that failed
# is printed (base64) to rerun with: base64 -d > x; build/fuzz/fuzz_config x
set -u
bin=${1:-build/fuzz/fuzz_config}
secs=${FUZZ_SECONDS:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/strata-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus"
for f in "$top"/examples/*/config.yml "$top"/tests/corpus/cases/*.yml; do
	cp "$f" "$work/corpus/$(echo "$f" | md5sum | cut -c1-16)"
done
seed=${FUZZ_SEED:-1}
rm -f "$top"/build/fuzz/crash-* "$top"/build/fuzz/leak-* "$top"/build/fuzz/timeout-* \
	"$top"/build/fuzz/oom-* "$top"/build/fuzz/slow-unit-*
"$bin" -seed="$seed" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$top/build/fuzz/" "$work/corpus" > "$work/log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
if [ $rc -eq 0 ]; then
	echo "fuzz: ${runs:-?} inputs in ${secs}s (seed $seed), no crash"
	echo "fuzz: 1 passed, 0 failed"
else
	tail -40 "$work/log"
	for a in "$top"/build/fuzz/crash-* "$top"/build/fuzz/leak-* "$top"/build/fuzz/timeout-* \
		 "$top"/build/fuzz/oom-*; do
		[ -f "$a" ] || continue
		echo "fuzz: failing input $(basename "$a") ($(wc -c < "$a") bytes, seed $seed), base64:"
		head -c 1024 "$a" | base64
	done
	grep -E '^(==[0-9]+==)?(ERROR|SUMMARY)|Test unit written' "$work/log" | head -8
	echo "fuzz: 0 passed, 1 failed"
fi
exit $rc
