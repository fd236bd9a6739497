#!/bin/sh
# No machine config to an impostor. A node installed and journaled, then
# down; a machine posing as a fresh Talos node in maintenance mode takes
# its address (random certificate, no client-certificate request, Version
# Unimplemented). apply must send it nothing (asserted on the impostor's
# side: no ApplyConfiguration, none of the node's secrets in the bytes it
# received), fail naming the node and --reinstall, and --reinstall must
# name a node. Then the legitimate case: a node really reset to
# maintenance mode is refused the same way until `--reinstall NODE`, which
# reinstalls it at the address the Proxmox guest agent gives.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
IMP_PID=
stop_impostor() { [ -n "$IMP_PID" ] && kill "$IMP_PID" 2>/dev/null && wait "$IMP_PID" 2>/dev/null; IMP_PID=; }
trap 'stop_impostor; cleanup' EXIT INT TERM

E="$T/envs/imp"
write_env "$E" imp 3200 1 1 127.0.45
expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep '"installed": "mtls"' "$E/state.json" "the journal records the worker installed (seen over mTLS)"

# The worker goes down; something else answers at its address.
labsim_ctl POST vm '{"vmid": 3201, "status": "stopped"}' > /dev/null
mkdir -p "$T/imp"
$PY "$TOP/tests/e2e/impostor.py" 127.0.45.21 "$T/imp" > "$T/imp/out" 2>&1 &
IMP_PID=$!
i=0
until grep -q READY "$T/imp/out" 2>/dev/null || [ $i -gt 200 ]; do i=$((i + 1)); sleep 0.05; done
grep -q READY "$T/imp/out" && ok "impostor listening at 127.0.45.21:50000" || { bad "impostor did not start"; cat "$T/imp/out"; }

expect_rc 1 "apply refuses the impostor" -- "$STRATA" apply "$E" --yes --timeout 20s
expect_grep "node 'imp-w-1': refusing to send its machine config.*127.0.45.21:50000.*records this node as installed" \
	"$T/err" "the error names the node, the address and why"
expect_grep "strata apply $E --reinstall imp-w-1" "$T/err" "the error names the flag for a wanted reinstall"
n=$($PY -c "import json; print(sum(1 for l in open('$T/imp/calls.jsonl') if json.loads(l)['method'].endswith('/Version')))")
[ "$n" -ge 1 ] && ok "the impostor was looked at ($n Version calls)" || bad "the impostor saw no Version call"
b=$($PY -c "import json; print(sum(json.loads(l)['bytes'] for l in open('$T/imp/calls.jsonl') if json.loads(l)['method'].endswith('/ApplyConfiguration')))")
[ "$b" = 0 ] && ok "the impostor received 0 ApplyConfiguration bytes" || bad "the impostor received $b bytes of config"
tok=$(grep -m1 -E '^\s+token: ' "$E/nodes/imp-w-1.yaml" | sed 's/.*token: *//')
[ -n "$tok" ] && ! grep -q -F "$tok" "$T/imp/received.bin" && ok "none of the node's secrets in what the impostor received" \
	|| bad "token '$tok' in the impostor's bytes (or no token found)"
[ "$(stat -c %s "$T/imp/received.bin")" = 0 ] && ok "the impostor received no request bytes at all" \
	|| bad "the impostor received $(stat -c %s "$T/imp/received.bin") bytes"
expect_rc 2 "--reinstall needs a node of the environment" -- "$STRATA" apply "$E" --yes --reinstall nope
expect_grep "'nope' is not a node of this environment" "$T/err" "and says so"
stop_impostor

# A node reset to maintenance mode on purpose: refused until --reinstall.
R="$T/envs/rst"
write_env "$R" rst 3300 1 1 127.0.46
expect_rc 0 "apply 1+1 (second env)" -- "$STRATA" apply "$R" --yes --timeout 60s
$PY - "$R/talosconfig" "$LABSIM_DIR/pb" > "$T/py" 2>&1 <<'PYEOF'
import base64, sys, yaml, grpc
sys.path.insert(0, sys.argv[2])
import machine_pb2
tc = yaml.safe_load(open(sys.argv[1]))
ctx = tc["contexts"][tc["context"]]
b = lambda k: base64.b64decode(ctx[k])
creds = grpc.ssl_channel_credentials(root_certificates=b("ca"), private_key=b("key"), certificate_chain=b("crt"))
ch = grpc.secure_channel("127.0.46.21:50000", creds)
call = ch.unary_unary("/machine.MachineService/Reset", request_serializer=lambda x: x,
                      response_deserializer=machine_pb2.ResetResponse.FromString)
# reboot=True: back in maintenance mode (reboot=false would power it off)
print("reset", call(machine_pb2.ResetRequest(reboot=True).SerializeToString(), timeout=5).messages[0].actor_id != "")
PYEOF
expect_grep "^reset True" "$T/py" "the worker is reset over mTLS"
i=0
until [ "$(labsim_py "[n['state'] for n in s['talos']['nodes'] if n.get('vmid') == 3301][0]")" = maintenance ] || [ $i -gt 200 ]; do
	i=$((i + 1)); sleep 0.05; done
before=$(talos_calls ApplyConfiguration)
expect_rc 1 "apply refuses a reset node without --reinstall" -- "$STRATA" apply "$R" --yes --timeout 20s
expect_grep "node 'rst-w-1': refusing to send its machine config.*--reinstall rst-w-1" "$T/err" "naming the flag"
[ "$(talos_calls ApplyConfiguration)" = "$before" ] && ok "no config sent to it" || bad "config sent"
expect_rc 0 "apply --reinstall rst-w-1 reinstalls it" -- "$STRATA" apply "$R" --yes --timeout 60s --reinstall rst-w-1
[ "$(talos_calls ApplyConfiguration)" = $((before + 1)) ] && ok "one ApplyConfiguration, in maintenance mode" \
	|| bad "ApplyConfiguration calls $(($(talos_calls ApplyConfiguration) - before))"
# Progress: one line per retry reason (repeats are counted, not printed).
grep 'rst-w-1 ' "$T/err" | sed 's/^\[[^]]*\] *rst-w-1 *[0-9.]*s //; s/ (before: .*//' > "$T/lines"
[ "$(grep -c 'applying config in maintenance mode at' "$T/lines")" = 1 ] && ok "'applying config in maintenance mode' printed once" \
	|| { bad "applying-config lines: $(grep -c 'applying config in maintenance mode at' "$T/lines")"; cat "$T/lines"; }
[ -z "$(uniq -d "$T/lines")" ] && ok "no progress line repeats itself" || { bad "repeated lines"; uniq -c "$T/lines"; }
expect_rc 0 "a later apply without the flag has nothing to do" -- "$STRATA" apply "$R" --yes --timeout 30s
expect_grep "all 2 nodes up with their current config, nothing to do" "$T/err" "nothing to do"

finish
