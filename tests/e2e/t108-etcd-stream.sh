#!/bin/sh
# etcd snapshots streamed to disk (issue 15 item 5): a 40 MiB snapshot in
# 1 MiB messages is written as it arrives, with its size and SHA-256
# recorded; a stream that breaks in the middle and one whose SHA-256
# trailer does not match leave no file behind (not even a temporary one)
# and no record; restore --etcd uploads the big file from disk and the
# objects of the snapshot are back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/st"
write_env "$E" st 1080 1 0 127.0.108
EP=https://127.0.108.10:6443
MIB40=$((40 * 1048576))

kube_cm() {
	kube_req PATCH "$1" "/api/v1/namespaces/default/configmaps/$2" \
		"{apiVersion: v1, kind: ConfigMap, metadata: {name: $2, namespace: default}, data: {made: $2}}" > /dev/null
}
records() { $PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$E/etcd/snapshots.json" 2>/dev/null || echo 0; }
leftovers() { ls -a "$1" | grep -c '\.tmp$'; }

expect_rc 0 "apply 1+0" -- "$STRATA" apply "$E" --yes --timeout 60s
kube_cm "$E" big-before && ok "ConfigMap big-before applied" || bad "could not apply big-before"
labsim_ctl POST knobs "{\"etcd_snapshot_bytes\": $MIB40, \"etcd_snapshot_chunk_bytes\": 1048576}" > /dev/null

expect_rc 0 "etcd snapshot of 40 MiB" -- "$STRATA" etcd snapshot "$E"
S=$(ls "$E"/etcd/st-*.snapshot 2>/dev/null | head -1)
size=$(wc -c < "$S"); sha=$(sha256sum "$S" | cut -d' ' -f1)
[ "$size" = $((MIB40 + 32)) ] && ok "40 MiB of pages plus the SHA-256 ($size bytes)" || bad "size $size"
expect_grep "($size bytes, sha256 $sha)" "$T/err" "size and SHA-256 of the file printed"
[ "$(stat -c %a "$S")" = 600 ] && ok "0600" || bad "mode $(stat -c %a "$S")"
[ "$(talos_calls EtcdSnapshot)" = 1 ] && ok "one EtcdSnapshot stream" || bad "EtcdSnapshot calls $(talos_calls EtcdSnapshot)"
labsim_ctl POST knobs '{"etcd_snapshot_bytes": 0}' > /dev/null

# a second snapshot in the same second (an apply killed and run again) gets
# its own name: the names of the next 10 seconds are taken already
# (the first snapshot's own name may be among them: it is left as it is)
now=$(date -u +%s) taken=
for i in 0 1 2 3 4 5 6 7 8 9; do
	f="$E/etcd/st-$(date -u -d "@$((now + i))" +%Y%m%dT%H%M%SZ).snapshot"
	[ -e "$f" ] || { : > "$f"; taken="$taken $f"; }
done
expect_rc 0 "a snapshot whose name is taken" -- "$STRATA" etcd snapshot "$E"
expect_grep "etcd/st-[0-9T]*Z-2.snapshot (" "$T/err" "is written as NAME-2"
rm -f $taken
labsim_ctl POST knobs "{\"etcd_snapshot_bytes\": $MIB40}" > /dev/null
n=$(records)

# a stream that breaks: nothing left
labsim_ctl POST knobs '{"etcd_snapshot_cut_bytes": 5242880}' > /dev/null
expect_rc 1 "a broken stream fails" -- "$STRATA" etcd snapshot "$E" --out "$T/cut.snapshot"
expect_grep "snapshot stream cut after 5242880 bytes" "$T/err" "says what the node said"
[ ! -e "$T/cut.snapshot" ] && ok "no file" || bad "a cut snapshot was written"
[ "$(leftovers "$T")" = 0 ] && ok "no temporary file left" || bad "temporary files: $(ls -a "$T")"
[ "$(records)" = "$n" ] && ok "nothing recorded" || bad "records $(records), was $n"

# a snapshot damaged on the way: refused, nothing left
labsim_ctl POST knobs '{"etcd_snapshot_cut_bytes": 0, "etcd_snapshot_damaged": true}' > /dev/null
expect_rc 1 "a damaged snapshot fails" -- "$STRATA" etcd snapshot "$E"
expect_grep "the etcd snapshot is damaged: its SHA-256 trailer does not match" "$T/err" "the trailer check names it"
[ "$(ls "$E"/etcd/*.snapshot | wc -l)" = 2 ] && ok "no third snapshot file" || bad "files: $(ls "$E/etcd")"
[ "$(leftovers "$E/etcd")" = 0 ] && ok "no temporary file left in ENV/etcd" || bad "temporary files: $(ls -a "$E/etcd")"
[ "$(records)" = "$n" ] && ok "nothing recorded" || bad "records $(records), was $n"
labsim_ctl POST knobs '{"etcd_snapshot_damaged": false, "etcd_snapshot_bytes": 0}' > /dev/null

# restore from the big file
kube_cm "$E" big-after && ok "ConfigMap big-after applied" || bad "could not apply big-after"
expect_rc 0 "destroy every VM" -- "$STRATA" destroy "$E" --yes
expect_rc 0 "restore --etcd from the 40 MiB file" -- "$STRATA" restore "$E" --etcd "$S" --yes --timeout 60s
expect_grep "etcd snapshot ($size bytes) uploaded to st-cp-1" "$T/err" "uploaded whole"
[ "$(labsim_py "s['talos']['kubernetes']['$EP']['objects'].count('v1 configmaps default/big-before')")" = 1 ] \
	&& ok "big-before is back" || bad "big-before missing"
[ "$(labsim_py "s['talos']['kubernetes']['$EP']['objects'].count('v1 configmaps default/big-after')")" = 0 ] \
	&& ok "big-after is not" || bad "big-after came back"

# the bytes strata writes are a real etcd snapshot: a real etcd (Debian's
# etcd-server) on loopback makes one, the simulated node serves it as it
# is, strata writes it, and etcdctl restores strata's file into a new
# data directory that a real etcd serves the key from
if command -v etcd > /dev/null && command -v etcdctl > /dev/null; then
	export ETCDCTL_API=3
	# real_etcd NAME IP DATA-DIR: start it (pid in ETCD_PID), wait until healthy
	real_etcd() {
		etcd --name "$1" --data-dir "$3" --listen-client-urls "http://$2:2379" \
			--advertise-client-urls "http://$2:2379" --listen-peer-urls "http://$2:2380" \
			--initial-advertise-peer-urls "http://$2:2380" --initial-cluster "$1=http://$2:2380" \
			> "$T/etcd-$1.log" 2>&1 &
		ETCD_PID=$!
		i=0
		until etcdctl --endpoints "http://$2:2379" endpoint health > /dev/null 2>&1 || [ $i -gt 100 ]; do
			sleep 0.1; i=$((i + 1)); done
	}
	stop_etcd() { kill "$ETCD_PID" 2>/dev/null; wait "$ETCD_PID" 2>/dev/null; ETCD_PID=; }
	real_etcd r1 127.0.108.50 "$T/etcd-r1"
	etcdctl --endpoints http://127.0.108.50:2379 put /registry/configmaps/default/real t108 > /dev/null \
		&& etcdctl --endpoints http://127.0.108.50:2379 snapshot save "$T/real.db" > /dev/null 2>&1 \
		&& ok "a real etcd made a snapshot ($(wc -c < "$T/real.db") bytes)" || bad "etcdctl snapshot save: $(tail -3 "$T/etcd-r1.log")"
	stop_etcd
	labsim_ctl POST knobs "{\"etcd_snapshot_file\": \"$T/real.db\", \"etcd_snapshot_chunk_bytes\": 4096}" > /dev/null
	expect_rc 0 "strata takes the real etcd's snapshot from the node" -- "$STRATA" etcd snapshot "$E" --out "$T/via-strata.db"
	cmp -s "$T/real.db" "$T/via-strata.db" && ok "strata's file is the real etcd's snapshot byte for byte" || bad "files differ"
	etcdctl snapshot restore "$T/via-strata.db" --name r2 --data-dir "$T/etcd-r2" \
		--initial-cluster r2=http://127.0.108.51:2380 --initial-advertise-peer-urls http://127.0.108.51:2380 \
		> "$T/restore.log" 2>&1 && ok "etcdctl snapshot restore accepts strata's file" || bad "etcdctl restore: $(tail -3 "$T/restore.log")"
	real_etcd r2 127.0.108.51 "$T/etcd-r2"
	[ "$(etcdctl --endpoints http://127.0.108.51:2379 get --print-value-only /registry/configmaps/default/real 2>&1)" = t108 ] \
		&& ok "a real etcd started on it serves the key" || bad "key not served: $(tail -3 "$T/etcd-r2.log")"
	stop_etcd
	labsim_ctl POST knobs '{"etcd_snapshot_file": "", "etcd_snapshot_chunk_bytes": 1024}' > /dev/null
else
	echo "skip: the real-etcd round trip needs Debian's etcd-server and etcd-client (debian-packages.txt)"
fi

labsim_stop
finish
