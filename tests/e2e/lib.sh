# Shared helpers for tests/e2e/t*.sh (POSIX sh). Each check prints one line;
# the script ends with "N passed, N failed" and exits non-zero on failure.
STRATA=${STRATA:-$(cd "$(dirname "$0")/../.." && pwd)/build/asan/strata}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
export NO_COLOR=1
export STRATA_EXAMPLES="$TOP/examples"
_pass=0 _fail=0
T=$(mktemp -d /tmp/strata-e2e.XXXXXX)
cleanup() { command -v labsim_stop >/dev/null && labsim_stop; rm -rf "$T"; }
trap cleanup EXIT INT TERM

ok() { _pass=$((_pass + 1)); echo "ok   $*"; }
bad() { _fail=$((_fail + 1)); echo "FAIL $*"; }

# Secret scan: every captured stdout/stderr is kept in $T/.captured, and the
# values of every secrets.yaml seen under $T in $T/.secrets; finish fails
# the test when any of them, or the simulator's token secret, was printed.
_capture() {
	cat "$@" >> "$T/.captured" 2>/dev/null
	find "$T" -name secrets.yaml -type f 2>/dev/null | while read -r _f; do
		awk 'NF == 2 && length($2) >= 16 { print $2 }' "$_f"
	done >> "$T/.secrets"
}

_secret_scan() {
	_capture "$T/out" "$T/err"
	: > "$T/.patterns"
	[ -n "${PVE_TOKEN_SECRET:-}" ] && printf '%s\n' "$PVE_TOKEN_SECRET" >> "$T/.patterns"
	[ -f "$T/.secrets" ] && sort -u "$T/.secrets" >> "$T/.patterns"
	[ -s "$T/.patterns" ] || return 0
	_n=$(wc -l < "$T/.patterns")
	if grep -q -F -f "$T/.patterns" "$T/.captured" 2>/dev/null; then
		bad "secret scan: output printed a secret value (of $_n checked; lines withheld)"
	else
		ok "secret scan: no secret value in any captured output ($_n values)"
	fi
}

# expect_rc WANT DESCRIPTION -- CMD...: run CMD, compare its exit status.
expect_rc() {
	want=$1 desc=$2; shift 3
	"$@" > "$T/out" 2> "$T/err"
	rc=$?
	_capture "$T/out" "$T/err"
	if [ "$rc" -eq "$want" ]; then ok "$desc"; else
		bad "$desc (exit $rc, want $want)"; sed 's/^/     | /' "$T/err" | head -20; fi
}

# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
	if grep -q -- "$1" "$2"; then ok "$3"; else
		bad "$3 (no '$1' in $2)"; sed 's/^/     | /' "$2" | head -20; fi
}

finish() {
	_secret_scan
	echo "$_pass passed, $_fail failed"
	[ "$_fail" -eq 0 ]
}
