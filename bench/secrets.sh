#!/bin/sh
# bench/secrets.sh [BASELINE_BINARY]: what keeping libfyaml's copies of
# secrets out of the process costs (util/isolate: a fork per parse or
# emit of secret YAML). Times gen with an existing bundle, a no-op apply
# re-run and status of a 1+2 env against the lab simulator, N runs each,
# median and minimum; with BASELINE_BINARY (e.g. a build of main before
# the isolation) the same runs of it alternate with this binary's.
. "$(dirname "$0")/lib.sh"
N=${BENCH_RUNS:-7}
ok() { :; }
bad() { echo "$*" >&2; }
BASE=${1:-}
labsim_start
E="$T/env"
write_env "$E" bsec 2900 1 2 127.0.29
"$STRATA" apply "$E" --yes --timeout 120s > "$T/out" 2>&1 || { cat "$T/out"; exit 1; }

# run1 BIN CMD...: wall ms of one run
run1() {
	_b=$1; shift
	_t0=$(now)
	"$_b" "$@" > /dev/null 2>&1 || echo "failed: $_b $*" >&2
	awk -v a="$_t0" -v b="$(now)" 'BEGIN { printf "%d\n", (b - a) * 1000 }'
}
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %d ms, min %d ms", v[int((NR + 1) / 2)], v[1] }'; }

for what in "gen $E" "apply $E --yes" "status $E"; do
	: > "$T/new"; : > "$T/base"
	i=0
	while [ $i -lt "$N" ]; do
		# shellcheck disable=SC2086
		run1 "$STRATA" $what >> "$T/new"
		# shellcheck disable=SC2086
		[ -n "$BASE" ] && run1 "$BASE" $what >> "$T/base"
		i=$((i + 1))
	done
	printf '%-8s this binary: %s' "${what%% *}" "$(stats < "$T/new")"
	[ -n "$BASE" ] && printf '; baseline: %s' "$(stats < "$T/base")"
	echo
done
