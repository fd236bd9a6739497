#!/bin/sh
# bench/gen.sh [N] [EXAMPLE]: time `strata gen` on a copy of an example env.
# The first run generates the secrets bundle (RSA-4096 keygen dominates);
# the next N runs are the steady state, which must write nothing.
set -eu
n=${1:-20}
example=${2:-examples/prod}
strata=${STRATA:-build/strata}
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
cp -r "$example" "$top/env"
t0=$(date +%s.%N)
"$strata" gen "$top/env" >/dev/null
t1=$(date +%s.%N)
i=0
while [ "$i" -lt "$n" ]; do
	out=$("$strata" gen "$top/env")
	case "$out" in
	*"0 files written"*) ;;
	*) echo "run $i wrote files:" >&2; echo "$out" >&2; exit 1 ;;
	esac
	i=$((i + 1))
done
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$n" 'BEGIN {
	printf "first run (new secrets): %.3f s\n", b - a
	printf "steady state: %.1f ms per run over %d runs\n", (c - b) * 1000 / n, n
}'
