#!/bin/sh
# bench/gen.sh [N] [EXAMPLE]: wall time and peak RSS of `strata gen` on a
# copy of an example env (default: the 3+5 prod example). The first run
# generates the secrets bundle (RSA-4096 keygen dominates); the next N runs
# are the steady state, which must write nothing.
# Targets (issue 3): re-run under 20 ms, peak RSS under 16 MB.
set -eu
n=${1:-20}
example=${2:-examples/prod}
strata=${STRATA:-build/strata}
here=$(cd "$(dirname "$0")" && pwd)
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
cp -r "$example" "$top/env"
first=$("$here/measure.py" "$strata" gen "$top/env" 2>&1 >/dev/null | tail -1)
i=0 total=0 maxrss=0 walls=""
while [ "$i" -lt "$n" ]; do
	out=$("$strata" gen "$top/env")
	case "$out" in
	*"0 files written"*) ;;
	*) echo "run $i wrote files:" >&2; echo "$out" >&2; exit 1 ;;
	esac
	m=$("$here/measure.py" "$strata" gen "$top/env" 2>&1 >/dev/null | tail -1)
	total=$(echo "$total $m" | awk '{split($2, a, "="); print $1 + a[2]}')
	walls="$walls $(echo "$m" | sed 's/.*wall_s=\([0-9.]*\).*/\1/')"
	rss=$(echo "$m" | sed 's/.*maxrss_kb=\([0-9]*\).*/\1/')
	[ "$rss" -gt "$maxrss" ] && maxrss=$rss
	i=$((i + 1))
done
echo "gen first run (new secrets): $first"
# The median too: on a shared machine a few slow runs move the mean.
med=$(echo "$walls" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{v[NR] = $1} END {
	print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
awk -v t="$total" -v n="$n" -v r="$maxrss" -v m="$med" 'BEGIN {
	printf "gen steady state: %.1f ms per run over %d runs (median %.1f ms), peak RSS %.1f MB (targets: < 20 ms, < 16 MB)\n", t * 1000 / n, n, m * 1000, r / 1024
}'
