#!/bin/sh
# The maintenance-mode send is bound to the certificate the probe saw. A
# node installed and journaled goes down; a machine at its address answers
# like a fresh node in maintenance mode, and the user asks for exactly
# that node to be reinstalled (--reinstall), so the trust module allows a
# maintenance-mode send. Between strata's probe and its send the machine
# at the address changes (a new random certificate on the next handshake,
# as when another host takes the IP). The send must abort inside the TLS
# handshake: the impostor receives no ApplyConfiguration and no byte of
# the config (asserted on its side), and apply fails saying the
# certificate changed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
IMP_PID=
stop_impostor() { [ -n "$IMP_PID" ] && kill "$IMP_PID" 2>/dev/null && wait "$IMP_PID" 2>/dev/null; IMP_PID=; }
trap 'stop_impostor; cleanup' EXIT INT TERM

E="$T/envs/swap"
write_env "$E" swap 1500 1 1 127.0.15
expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep '"installed": "mtls"' "$E/state.json" "the journal records the worker installed"

labsim_ctl POST vm '{"vmid": 1501, "status": "stopped"}' > /dev/null
mkdir -p "$T/imp"
IMPOSTOR_SWAP=1 $PY "$TOP/tests/e2e/impostor.py" 127.0.15.21 "$T/imp" > "$T/imp/out" 2>&1 &
IMP_PID=$!
i=0
until grep -q READY "$T/imp/out" 2>/dev/null || [ $i -gt 200 ]; do i=$((i + 1)); sleep 0.05; done
grep -q READY "$T/imp/out" && ok "swapping impostor listening at 127.0.15.21:50000" || { bad "impostor did not start"; cat "$T/imp/out"; }

expect_rc 1 "apply --reinstall against a machine that swaps its certificate" -- \
	"$STRATA" apply "$E" --yes --timeout 20s --reinstall swap-w-1
expect_grep "ApplyConfiguration on 127.0.15.21:50000: the server's certificate (sha256 [0-9a-f]*) is not the one it showed a moment ago (sha256 [0-9a-f]*); sent nothing" \
	"$T/err" "apply stops: the certificate changed between probe and send"
n=$($PY -c "import json; print(sum(1 for l in open('$T/imp/calls.jsonl') if json.loads(l)['method'].endswith('/Version')))")
[ "$n" -ge 1 ] && ok "the machine was probed ($n Version calls)" || bad "no Version call reached the impostor"
[ "$(wc -l < "$T/imp/certs.txt")" -ge 2 ] && ok "it served $(wc -l < "$T/imp/certs.txt") different certificates" \
	|| bad "the impostor never swapped its certificate"
a=$($PY -c "import json; print(sum(1 for l in open('$T/imp/calls.jsonl') if json.loads(l)['method'].endswith('/ApplyConfiguration')))")
[ "$a" = 0 ] && ok "no ApplyConfiguration reached the swapped machine" || bad "$a ApplyConfiguration calls reached it"
[ "$(stat -c %s "$T/imp/received.bin")" = 0 ] && ok "it received no request bytes at all" \
	|| bad "it received $(stat -c %s "$T/imp/received.bin") bytes"
tok=$(grep -m1 -E '^\s+token: ' "$E/nodes/swap-w-1.yaml" | sed 's/.*token: *//')
[ -n "$tok" ] && ! grep -q -F "$tok" "$T/imp/received.bin" && ok "none of the node's secrets in its bytes" \
	|| bad "token '$tok' in the impostor's bytes (or no token found)"
stop_impostor

finish
