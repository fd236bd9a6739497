#!/bin/sh
# backup.etcd_before_changes (default true): apply takes one etcd snapshot
# before its first disruptive step (here the rolling restart of VMs with
# memory pending), recorded in ENV/etcd/snapshots.json with why; with the
# key false, no snapshot; nothing is taken before etcd was bootstrapped.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/bc"
write_env "$E" bc 3200 3 0 127.0.101
snaps() { ls "$E"/etcd/*.snapshot 2>/dev/null | wc -l; }

expect_rc 0 "apply 3+0" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(snaps)" = 0 ] && ok "no snapshot while the cluster was being built" || bad "$(snaps) snapshots before any change"

sed -i 's/memory: 2GiB, disk: 10GiB}/memory: 3GiB, disk: 10GiB}/' "$E/config.yml"
expect_rc 0 "apply of raised memory (restarts)" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "etcd snapshot before the restart of bc-cp-1: .*/etcd/bc-.*\.snapshot ([0-9]* bytes, sha256 " "$T/err" "a snapshot before the first restart"
[ "$(grep -c "etcd snapshot before" "$T/err")" = 1 ] && ok "one snapshot per apply, not one per node" || bad "$(grep -c "etcd snapshot before" "$T/err") snapshots"
first=$(grep -n "etcd snapshot before" "$T/err" | head -1 | cut -d: -f1)
restart=$(grep -n "restarting bc-cp-1" "$T/err" | head -1 | cut -d: -f1)
[ -n "$first" ] && [ -n "$restart" ] && [ "$first" -lt "$restart" ] && ok "taken before the restart" || bad "order: snapshot line $first, restart line $restart"
[ "$(snaps)" = 1 ] && ok "the snapshot is in ENV/etcd/" || bad "$(snaps) snapshots"
$PY -c "import json; r=json.load(open('$E/etcd/snapshots.json'))[-1]; print('why:', r['why'])" > "$T/why" 2>&1
expect_grep "why: the restart of bc-cp-1" "$T/why" "recorded with why"

printf '\nbackup:\n  etcd_before_changes: false\n' >> "$E/config.yml"
sed -i 's/memory: 3GiB, disk: 10GiB}/memory: 4GiB, disk: 10GiB}/' "$E/config.yml"
expect_rc 0 "apply with etcd_before_changes: false" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "restarting bc-cp-1" "$T/err" "the restart still ran"
grep -q "etcd snapshot before" "$T/err" && bad "a snapshot although switched off" || ok "no snapshot when switched off"
[ "$(snaps)" = 1 ] && ok "no new snapshot file" || bad "$(snaps) snapshots"

labsim_stop
finish
