# Shared by bench/*.sh: a temp dir, the lab simulator, timing helpers.
# Source it first: a bench run by hand starts over inside a private
# network namespace (bench/netns.sh), as `make bench` runs them.
TOP=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${STRATA_NETNS:-}" ] || exec sh "$TOP/bench/netns.sh" sh "$0" "$@"
STRATA=${STRATA:-$TOP/build/strata}
T=$(mktemp -d /tmp/strata-bench.XXXXXX)
. "$TOP/tests/e2e/labsim.sh"
trap 'labsim_stop; rm -rf "$T"' EXIT
# a signal (a pipe closed by `| head` too) ends the bench through the EXIT
# trap: the simulator is stopped, never left running in the namespace
trap 'exit 1' INT TERM HUP PIPE
export NO_COLOR=1

now() { date +%s.%N; }
# elapsed START [END]
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.3f", b - a }'; }
# count of API requests whose method/path match a Python condition on r
requests_where() {
	labsim_ctl GET requests | $PY -c "import json,sys,re; print(sum(1 for r in json.load(sys.stdin)['data'] if $1))"
}
