#!/bin/sh
# platform vps: the journal says the node is installed, but its address now
# answers as someone else. t071's rescue system (labsim.sh vps_lab) at
# 127.0.74.10:2274. (1) Talos of another cluster (the simulator's foreign
# node: its own OS CA, asks for a client certificate): plan shows a
# conflict; apply refuses in rescue-install, before any SSH session, with
# no config sent and the disk left alone; destroy resets nothing. (2) a
# machine posing as a fresh node in maintenance mode (impostor.py): plan
# shows a conflict; apply writes nothing to the disk and sends it no byte
# of config (the journal rule of docs/bootstrap.md), naming --reinstall.
# (3) nothing answers: apply does not rewrite an installed node's disk
# unless --reinstall NODE, which writes it from the rescue system.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

vps_need_sshd
vps_lab 127.0.74 2274
IMP_PID=
stop_impostor() { [ -n "$IMP_PID" ] && kill "$IMP_PID" 2>/dev/null && wait "$IMP_PID" 2>/dev/null; IMP_PID=; }
trap 'stop_impostor; stop_sshd; cleanup' EXIT INT TERM
start_sshd hostkey "$R/bin:/usr/bin:/bin"
write_vps "$DISK"
logins() { grep -c "Accepted publickey" "$R/sshd.log" 2>/dev/null || true; }

expect_rc 0 "apply installs the server" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep '"installed": "mtls"' "$E/state.json" "the journal records the node installed"

# The server boots something else; another cluster's Talos takes the address.
dd if=/dev/zero of="$DISK" bs=4096 count=1 conv=notrunc 2>/dev/null
labsim_ctl POST metal/boot "{\"ip\": \"$IP\", \"disk\": \"$DISK\"}" > /dev/null
labsim_ctl POST talos/foreign "{\"ip\": \"$IP\"}" > "$T/foreign"
grep -q '"ca"' "$T/foreign" && ok "another cluster's Talos answers at $IP:50000" || { bad "foreign node not started"; cat "$T/foreign"; }
applies=$(talos_calls ApplyConfiguration) l=$(logins) resets=$(talos_calls Reset)
cp "$E/state.json" "$T/state.before"

expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "^  ! edge-cp-1 *conflict  server $IP: $IP:50000 answers as Talos of another cluster: apply refuses to touch it" "$T/out" \
	"plan shows the conflict"
expect_grep "^1 conflict: apply will refuse until resolved\.$" "$T/out" "plan says apply will refuse"
expect_rc 1 "apply refuses" -- "$STRATA" apply "$E" --yes --timeout 20s
expect_grep "phase 'rescue-install'.*node 'edge-cp-1': $IP:50000 answers as Talos of another cluster (.*); strata does not touch it" \
	"$T/err" "the error names the phase, the node, the address and why"
[ "$(logins)" = "$l" ] && ok "no SSH session to the rescue system" || bad "SSH logins $l -> $(logins)"
[ "$(talos_calls ApplyConfiguration)" = "$applies" ] && ok "no config sent" || bad "ApplyConfiguration $applies -> $(talos_calls ApplyConfiguration)"
[ "$(head -c 4096 "$DISK" | tr -d '\0' | wc -c)" = 0 ] && ok "the disk was not written" || bad "the disk was written"
cmp -s "$E/state.json" "$T/state.before" && ok "the journal is unchanged" || bad "the journal changed"
expect_rc 1 "destroy refuses to reset it" -- "$STRATA" destroy "$E" --yes
expect_grep "answers as Talos of another cluster.*strata resets only its own nodes" "$T/err" "destroy says why"
expect_grep "^  - edge-cp-1 *$IP *refused: answers as Talos of another cluster$" "$T/out" "destroy's list says it refuses that node"
[ "$(talos_calls Reset)" = "$resets" ] && ok "no Reset sent" || bad "Reset calls $resets -> $(talos_calls Reset)"
labsim_ctl DELETE talos/foreign "{\"ip\": \"$IP\"}" > /dev/null

# A machine posing as a fresh node in maintenance mode at the address.
mkdir -p "$T/imp"
$PY "$TOP/tests/e2e/impostor.py" "$IP" "$T/imp" > "$T/imp/out" 2>&1 &
IMP_PID=$!
i=0
until grep -q READY "$T/imp/out" 2>/dev/null || [ $i -gt 200 ]; do i=$((i + 1)); sleep 0.05; done
grep -q READY "$T/imp/out" && ok "impostor listening at $IP:50000" || { bad "impostor did not start"; cat "$T/imp/out"; }
expect_rc 0 "plan with the impostor" -- "$STRATA" plan "$E"
expect_grep "^  ! edge-cp-1 *conflict  server $IP: in maintenance mode at $IP:50000, but the journal records it installed: apply sends it no config" \
	"$T/out" "plan shows the conflict and why"
expect_grep "strata apply --reinstall edge-cp-1" "$T/out" "plan names --reinstall"
expect_rc 1 "apply refuses the impostor" -- "$STRATA" apply "$E" --yes --timeout 20s
expect_grep "node 'edge-cp-1': refusing to send its machine config.*$IP:50000.*records this node as installed" \
	"$T/err" "the error names the node, the address and why"
b=$($PY -c "import json; print(sum(json.loads(l)['bytes'] for l in open('$T/imp/calls.jsonl') if json.loads(l)['method'].endswith('/ApplyConfiguration')))")
[ "$b" = 0 ] && ok "the impostor received 0 ApplyConfiguration bytes" || bad "the impostor received $b bytes of config"
[ "$(stat -c %s "$T/imp/received.bin")" = 0 ] && ok "the impostor received no request bytes at all" \
	|| bad "the impostor received $(stat -c %s "$T/imp/received.bin") bytes"
[ "$(logins)" = "$l" ] && ok "no SSH session to the rescue system" || bad "SSH logins $l -> $(logins)"
[ "$(head -c 4096 "$DISK" | tr -d '\0' | wc -c)" = 0 ] && ok "the disk was not written" || bad "the disk was written"
stop_impostor

# Nothing answers at the address (the server in its rescue system, say):
# an installed node's disk is not rewritten without --reinstall.
expect_rc 0 "plan with nothing at the address" -- "$STRATA" plan "$E"
expect_grep "^  ! edge-cp-1 *conflict  server $IP: Talos does not answer at $IP:50000, but the journal records it installed: apply does not rewrite its disk" \
	"$T/out" "plan shows the conflict"
expect_rc 1 "apply refuses to rewrite an installed node's disk" -- "$STRATA" apply "$E" --yes --timeout 20s
expect_grep "node 'edge-cp-1' is installed (journal) but Talos does not answer at $IP:50000; strata does not rewrite an installed node's disk.*--reinstall edge-cp-1" \
	"$T/err" "the error says why and names --reinstall"
[ "$(logins)" = "$l" ] && ok "no SSH session to the rescue system" || bad "SSH logins $l -> $(logins)"
[ "$(head -c 4096 "$DISK" | tr -d '\0' | wc -c)" = 0 ] && ok "the disk was not written" || bad "the disk was written"
# --reinstall: written from the rescue system and given its config. (Not
# asserted: what follows for the only control plane. Its etcd is gone on a
# real server, and the simulator keeps the cluster's.)
"$STRATA" apply "$E" --yes --timeout 30s --reinstall edge-cp-1 > "$T/out" 2> "$T/err"
_capture "$T/out" "$T/err"
expect_grep "and verified (SHA-256 " "$T/err" "apply --reinstall rewrites the disk from the rescue system"
cmp -s -n "$(stat -c %s "$T/image.raw")" "$T/image.raw" "$DISK" && ok "the disk holds the image again" || bad "the disk differs from the image"
expect_grep "edge-cp-1 .* ok: installed (Talos v1.12.11)" "$T/err" "and the node gets its config in maintenance mode"
expect_grep ": 1 machine installed, 0 unchanged" "$T/err" "the closing line counts the machine written"
stop_sshd
labsim_stop
finish
