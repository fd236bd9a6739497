#!/bin/sh
# Run every test suite against the binaries in $1 (build/asan by default)
# and print one counted closing line: "N passed, N failed, N skipped".
#   cmocka unit tests   build/asan/tests/test_*
#   config corpus       tests/corpus/run.sh
#   fuzzing             build/fuzz/fuzz_config, bounded time
#   lab simulator       tests/labsim/run_tests.sh
#   end to end          tests/e2e/t*.sh
set -u
B=${1:-build/asan}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export STRATA="$top/$B/strata"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0 fail=0 skip=0
failed=""
log=$(mktemp -d /tmp/strata-tests.XXXXXX)
trap 'rm -rf "$log"' EXIT INT TERM

# count_line FILE: read "N passed, N failed[, N skipped]" or cmocka lines
count() {
	name=$1 out=$2 rc=$3
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
	if [ -z "$p$f" ]; then
		line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 | sed 's/^[A-Za-z-]*: //')
		p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
		f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
		s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	fi
	p=${p:-0} f=${f:-0} s=${s:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1   # crashed or exited non-zero without counting a failure
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	if [ "$f" -ne 0 ]; then
		failed="$failed $name"
		echo "---- $name failed (exit $rc); its output:"
		tail -60 "$out"
	fi
	echo "suite $name: $p passed, $f failed, $s skipped"
}

run() {
	name=$1; shift
	out="$log/$(echo "$name" | tr '/' '_').out"
	"$@" >"$out" 2>&1
	count "$name" "$out" $?
}

for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	run "unit/$(basename "$t")" "$t"
done
[ -x tests/corpus/run.sh ] && run corpus sh tests/corpus/run.sh
if [ -x build/fuzz/fuzz_config ]; then
	run fuzz sh tests/fuzz/run.sh build/fuzz/fuzz_config
fi
[ -x tests/labsim/run_tests.sh ] && run labsim sh tests/labsim/run_tests.sh
# End-to-end scripts run side by side (E2E_JOBS at a time, default 3), each
# in its own network namespace when we may make one (root with unshare), so
# the loopback addresses and fixed ports of one script never meet another's.
# Without namespaces they run one at a time. Outputs are counted in order.
jobs=${E2E_JOBS:-3}
netns=""
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 &&
   unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
	netns=1
else
	jobs=1
fi
# The slowest scripts start first (their wall seconds from a CI run, the
# "slowest e2e" line below), so the run does not end with one long
# script going alone while the other slots are idle.
slow="t011 t118 t124 t080 t078 t125 t075 t003 t117"
{
	for s in $slow; do ls tests/e2e/"$s"-*.sh 2>/dev/null; done
	ls tests/e2e/t[0-9]*.sh 2>/dev/null |
		grep -v -E "/($(echo $slow | tr ' ' '|'))-"
} | xargs -r -n 1 -P "$jobs" sh tests/e2e/run-one.sh "$log" "$netns"
for t in tests/e2e/t[0-9]*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh)
	count "e2e/$name" "$log/e2e_$name.out" "$(cat "$log/e2e_$name.rc" 2>/dev/null || echo 1)"
done

# The slowest scripts (wall seconds, side by side with the others): what
# to look at when the suite grows toward CI's limit.
for f in "$log"/e2e_*.secs; do
	[ -f "$f" ] && echo "$(cat "$f") $(basename "$f" .secs | sed 's/^e2e_//')"
done | sort -rn | head -8 | awk 'BEGIN { printf "slowest e2e:" } { printf " %s %ss", $2, $1 } END { print "" }'

echo
# The failures again, last, so the end of the output (all a CI page may
# show) says what broke and why.
for name in $failed; do
	echo "---- $name (the end of its output):"
	tail -40 "$log/$(echo "$name" | tr '/' '_').out" 2>/dev/null
done
[ -n "$failed" ] && echo "failed suites:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
