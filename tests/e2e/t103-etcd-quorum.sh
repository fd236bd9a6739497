#!/bin/sh
# etcd without quorum (issue 15 item 7): two of three control planes down.
# The simulated Kubernetes API then fails every read and write as an API
# server whose etcd lost quorum does ("etcdserver: request timed out",
# readyz failing on etcd) while /version still answers; `strata status
# --health` names the lost quorum first, with `strata restore --etcd` as
# the way out (the member still running is Running but not healthy, as
# Talos reports it); `strata etcd snapshot` refuses (no member knows a leader);
# once the members are back, writes work again and the gate passes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/q"
write_env "$E" q 1030 3 0 127.0.103
EP=https://127.0.103.10:6443

kube_cm() {
	kube_req PATCH "$1" "/api/v1/namespaces/default/configmaps/$2" \
		"{apiVersion: v1, kind: ConfigMap, metadata: {name: $2, namespace: default}, data: {made: $2}}"
}

expect_rc 0 "apply 3+0" -- "$STRATA" apply "$E" --yes --timeout 60s
kube_cm "$E" with-quorum > /dev/null 2>&1 && ok "a write with quorum works" || bad "write with quorum failed"

labsim_ctl POST vm '{"vmid": 1031, "status": "stopped"}' > /dev/null
labsim_ctl POST vm '{"vmid": 1032, "status": "stopped"}' > /dev/null
[ "$(labsim_wait_for "not s['talos']['etcd']['$EP']['has_quorum']")" = yes ] \
	&& ok "etcd lost quorum (1 of 3 members started)" || bad "etcd still has quorum"

# the API server without quorum
if kube_cm "$E" without-quorum > "$T/w" 2>&1; then
	bad "a write without quorum was accepted: $(cat "$T/w")"
else
	ok "a write without quorum fails"
fi
expect_grep "etcdserver: request timed out" "$T/w" "with etcd's timeout"
kube_get "$E" /api/v1/namespaces/default/configmaps/with-quorum > "$T/r" 2>&1 \
	&& bad "a read without quorum answered" || ok "a read without quorum fails too"
kube_get "$E" /version > "$T/v" 2>&1 && ok "/version still answers (no etcd behind it)" || bad "/version: $(cat "$T/v")"

# strata says what it is and the way out
expect_rc 1 "status --health fails" -- "$STRATA" status "$E" --health
expect_grep "FAIL etcd-quorum .*etcd lacks quorum: its service is healthy on 0 of 3 control planes and a majority needs 2" "$T/out" "the gate names the lost quorum"
# the surviving member's service runs but its health check (a quorum read)
# fails, as Talos reports it (FACTS-day2 4e): never "Running and healthy"
expect_grep "etcd on [^ ]* is Running but not healthy" "$T/out" "the surviving member: Running but not healthy"
expect_grep "strata restore ENV --etcd FILE" "$T/out" "and restore --etcd as the way out"
expect_grep "cannot list Nodes: .*etcdserver: request timed out" "$T/out" "the Kubernetes check shows etcd's timeout"
expect_rc 1 "etcd snapshot refused without quorum" -- "$STRATA" etcd snapshot "$E"
expect_grep "knows no leader (quorum lost?)" "$T/err" "no member knows a leader"
[ -z "$(ls "$E"/etcd/*.snapshot 2>/dev/null)" ] && ok "no snapshot file left" || bad "a snapshot file was written"
ls -a "$E/etcd" 2>/dev/null | grep -q '\.tmp$' && bad "a temporary file was left" || ok "no temporary file left"

# members back: writes work, the gate passes
labsim_ctl POST vm '{"vmid": 1031, "status": "running"}' > /dev/null
labsim_ctl POST vm '{"vmid": 1032, "status": "running"}' > /dev/null
[ "$(labsim_wait_for "s['talos']['etcd']['$EP']['has_quorum']")" = yes ] && ok "quorum back" || bad "no quorum"
kube_cm "$E" quorum-back > /dev/null 2>&1 && ok "writes work again" || bad "write after quorum came back failed"
expect_rc 0 "apply converges" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_rc 0 "status --health passes" -- "$STRATA" status "$E" --health
grep -q "etcd-quorum" "$T/out" && bad "etcd-quorum still reported" || ok "no quorum item when healthy"

labsim_stop
finish
