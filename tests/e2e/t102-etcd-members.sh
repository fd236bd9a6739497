#!/bin/sh
# The etcd membership calls of src/talos/etcd (what scale-down and the
# rolling upgrades build on), through tests/unit/etcd_call against the
# simulator: member list, status, forfeit leadership, remove by id (an
# unknown id counts as done), a leave that really leaves, quorum refusals,
# and a worker sent to a control plane.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
CALL=${ETCD_CALL:-$(dirname "$STRATA")/tests/etcd_call}
[ -x "$CALL" ] || { echo "skip: $CALL not built (make unit)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
labsim_start
E="$T/envs/em"
write_env "$E" em 3300 3 1 127.0.102
TC="$E/talosconfig"
call() { "$CALL" "$TC" "$@" > "$T/call" 2>&1; }

expect_rc 0 "apply 3+1" -- "$STRATA" apply "$E" --yes --timeout 60s
call 127.0.102.11 members && ok "member list" || bad "members: $(cat "$T/call")"
[ "$(grep -c ' em-cp-[123] voter$' "$T/call")" = 3 ] && ok "three voters em-cp-1..3" || { bad "members:"; cat "$T/call"; }
grep -Eq '^[0-9a-f]{16} ' "$T/call" && ok "ids as 16 hex digits" || bad "ids: $(cat "$T/call")"
id3=$(grep ' em-cp-3 ' "$T/call" | cut -d' ' -f1)
id2=$(grep ' em-cp-2 ' "$T/call" | cut -d' ' -f1)

call 127.0.102.11 status && ok "status" || bad "status: $(cat "$T/call")"
lead=$(sed -n 's/.* leader \([0-9a-f]*\) .*/\1/p' "$T/call")
grep -q "version 3.6.4" "$T/call" && ok "etcd version in status" || bad "status: $(cat "$T/call")"
leader_ip=; other_ip=
for n in 1 2 3; do
	call 127.0.102.1$n status
	if grep -q "^member $lead " "$T/call"; then leader_ip=127.0.102.1$n; else other_ip=127.0.102.1$n; fi
done
[ -n "$leader_ip" ] && ok "the leader is one of the members ($leader_ip)" || bad "no member is the leader $lead"
call "$other_ip" forfeit && grep -q "^new leader ''$" "$T/call" && ok "forfeit on a non-leader: ''" || bad "forfeit: $(cat "$T/call")"
call "$leader_ip" forfeit && grep -Eq "^new leader '[0-9a-f]{16}'$" "$T/call" && ok "forfeit on the leader names the new one" || bad "forfeit: $(cat "$T/call")"
grep -q "'$lead'" "$T/call" && bad "leadership did not move" || ok "leadership moved"

call 127.0.102.11 remove 00000000000000ff && grep -q "already gone" "$T/call" && ok "remove of an unknown id counts as done" \
	|| bad "remove unknown: $(cat "$T/call")"
call 127.0.102.21 members; rc=$?
[ $rc = 1 ] && grep -q "ask a control-plane node.*member list is only available on control plane nodes" "$T/call" \
	&& ok "a worker: the API's refusal, and what to do" || bad "worker: rc $rc $(cat "$T/call")"

call 127.0.102.13 leave && ok "em-cp-3 leaves" || bad "leave: $(cat "$T/call")"
call 127.0.102.11 members
[ "$(wc -l < "$T/call")" = 2 ] && ! grep -q "$id3" "$T/call" && ok "two members left, em-cp-3 gone" || { bad "after leave:"; cat "$T/call"; }
call 127.0.102.11 remove "$id2" && grep -q "^removed" "$T/call" && ok "em-cp-2 removed by id from em-cp-1" || bad "remove: $(cat "$T/call")"
call 127.0.102.11 members
[ "$(wc -l < "$T/call")" = 1 ] && ok "one member left" || { bad "after remove:"; cat "$T/call"; }
call 127.0.102.11 leave; rc=$?
[ $rc = 1 ] && grep -q "not enough started members" "$T/call" && ok "the last member may not leave" || bad "last leave: rc $rc $(cat "$T/call")"
call 127.0.102.11 forfeit; rc=$?
[ $rc = 1 ] && ok "forfeit with one member fails" || bad "forfeit alone: rc $rc $(cat "$T/call")"

labsim_stop
finish
