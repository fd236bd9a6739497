#!/bin/sh
# The e2e secret scan (lib.sh) itself: a test whose output shows a value of
# secrets.yaml, or the simulator's token secret, fails; one that does not
# passes.
. "$(dirname "$0")/lib.sh"

# run_inner BODY: a throw-away test script sourcing lib.sh; prints its rc
run_inner() {
	cat > "$T/inner.sh" <<EOS
. "$TOP/tests/e2e/lib.sh"
$1
finish
EOS
	sh "$T/inner.sh" > "$T/inner.out" 2>&1
	echo $?
}

mkdir -p "$T/env"
expect_rc 0 "gen writes a secrets bundle" -- "$STRATA" init "$T/env/s" --platform proxmox
expect_rc 0 "gen" -- "$STRATA" gen "$T/env/s"
[ -s "$T/env/s/secrets.yaml" ] || bad "no secrets.yaml"

rc=$(run_inner "cp -r '$T/env/s' \"\$T/s\"; expect_rc 0 'prints a secret' -- grep -h secret: \"\$T/s/secrets.yaml\"")
[ "$rc" = 1 ] && ok "a printed secrets.yaml value fails the test" || { bad "inner rc $rc"; sed 's/^/     | /' "$T/inner.out"; }
grep -q "secret scan: output printed a secret value" "$T/inner.out" && ok "the failure names the scan" || bad "no scan line"
if grep -q -F "$(awk '/secret:/ {print $2; exit}' "$T/env/s/secrets.yaml")" "$T/inner.out"; then
	bad "the scan's report repeats the secret"; else ok "the report does not repeat the secret"; fi
rc=$(run_inner "PVE_TOKEN_SECRET=0f2b8a3c-1d4e-4f6a-9b7c-5e8d2a1f3c4b; expect_rc 0 'prints the token' -- echo 'token 0f2b8a3c-1d4e-4f6a-9b7c-5e8d2a1f3c4b'")
[ "$rc" = 1 ] && ok "the simulator's token secret in output fails the test" || bad "token not caught (rc $rc)"
rc=$(run_inner "cp -r '$T/env/s' \"\$T/s\"; expect_rc 0 'gen again' -- '$STRATA' gen \"\$T/s\"")
[ "$rc" = 0 ] && ok "gen's own output passes the scan" || { bad "gen output flagged"; sed 's/^/     | /' "$T/inner.out"; }
finish
