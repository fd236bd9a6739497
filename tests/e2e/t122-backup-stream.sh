#!/bin/sh
# The env backup streams (issue 15 item 6): a 64 MiB etcd snapshot taken
# from the simulated cluster goes into `strata backup --with-etcd` and
# comes back out of `strata restore --from` byte for byte, both in well
# under the snapshot's size of memory (peak RSS measured; the in-memory
# archive held it twice); Debian's `age -d | tar -x` opens the streamed
# file too. A restore killed with -9 half way leaves no ENV folder (only
# its temporary sibling), and a re-run restores it whole and removes that
# sibling; a backup killed half way leaves no backup file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
command -v age >/dev/null 2>&1 || { echo "skipped: needs Debian's age"; exit 0; }
labsim_start
E="$T/envs/bs"
write_env "$E" bs 1220 1 0 127.0.122
MIB64=$((64 * 1048576))
age-keygen -o "$T/key.txt" 2>/dev/null
R=$(age-keygen -y "$T/key.txt")
printf '\nbackup:\n  recipients: [%s]\n' "$R" >> "$E/config.yml"
# peak RSS in MiB of a command (bench/measure.py)
rss_mib() { python3 "$(dirname "$0")/../../bench/measure.py" "$@" 2>&1 >/dev/null | sed -n 's/.*maxrss_kb=\([0-9]*\) rc=0.*/\1/p' | awk '{ print int($1 / 1024) }'; }

expect_rc 0 "apply 1+0" -- "$STRATA" apply "$E" --yes --timeout 60s
labsim_ctl POST knobs "{\"etcd_snapshot_bytes\": $MIB64, \"etcd_snapshot_chunk_bytes\": 1048576}" > /dev/null
expect_rc 0 "etcd snapshot of 64 MiB" -- "$STRATA" etcd snapshot "$E"
labsim_ctl POST knobs '{"etcd_snapshot_bytes": 0}' > /dev/null
S=$(ls "$E"/etcd/bs-*.snapshot | head -1)
[ "$(wc -c < "$S")" = $((MIB64 + 32)) ] && ok "snapshot on disk ($(wc -c < "$S") bytes)" || bad "size $(wc -c < "$S")"

mkdir -p "$T/b"
rss=$(rss_mib "$STRATA" backup "$E" --with-etcd --to "$T/b/bs.age")
[ -s "$T/b/bs.age" ] && ok "backup --with-etcd written" || bad "no backup file"
[ -n "$rss" ] && [ "$rss" -lt 64 ] && ok "backup peak RSS ${rss} MiB < the 64 MiB snapshot" || bad "backup peak RSS '${rss}' MiB"
[ "$(ls -a "$T/b" | grep -c '\.tmp$')" = 0 ] && ok "no temporary file beside the backup" || bad "temp files: $(ls -a "$T/b")"
mkdir "$T/x"
age -d -i "$T/key.txt" "$T/b/bs.age" | tar -x -C "$T/x" && ok "age -d | tar -x opens it" || bad "age -d | tar -x failed"
cmp -s "$T/x/etcd/$(basename "$S")" "$S" && ok "the snapshot inside, byte for byte" || bad "snapshot differs"

rss=$(rss_mib "$STRATA" restore "$T/r/bs" --from "$T/b/bs.age" -i "$T/key.txt")
[ -n "$rss" ] && [ "$rss" -lt 64 ] && ok "restore peak RSS ${rss} MiB < the 64 MiB snapshot" || bad "restore peak RSS '${rss}' MiB"
cmp -s "$T/r/bs/etcd/$(basename "$S")" "$S" && ok "restored snapshot byte for byte" || bad "restored snapshot differs"
cmp -s "$T/r/bs/secrets.yaml" "$E/secrets.yaml" && ok "restored secrets.yaml" || bad "secrets.yaml differs"
[ "$(stat -c %a "$T/r/bs")" = 700 ] && ok "restored folder 0700" || bad "mode $(stat -c %a "$T/r/bs")"

# kill -9 in the middle of a restore: the target never exists half-made
"$STRATA" restore "$T/k/bs" --from "$T/b/bs.age" -i "$T/key.txt" > /dev/null 2>&1 &
pid=$!
for i in $(seq 1 500); do
	[ -n "$(ls -a "$T/k" 2>/dev/null | grep '\.tmp$')" ] && break
	sleep 0.01
done
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; st=$?
[ "$st" = 137 ] && ok "restore killed half way (the temporary folder was there)" || bad "restore was not killed half way (status $st)"
[ ! -e "$T/k/bs" ] && ok "killed restore: no ENV folder" || bad "a half-restored $T/k/bs exists"
expect_rc 0 "restore again" -- "$STRATA" restore "$T/k/bs" --from "$T/b/bs.age" -i "$T/key.txt"
cmp -s "$T/k/bs/etcd/$(basename "$S")" "$S" && ok "re-run restored it whole" || bad "re-run snapshot differs"
[ "$(ls -a "$T/k" | grep -c '\.tmp$')" = 0 ] && ok "and removed the killed run's temporary folder" || bad "left: $(ls -a "$T/k")"

# kill -9 in the middle of a backup: no backup file
mkdir -p "$T/kb"
"$STRATA" backup "$E" --with-etcd --to "$T/kb/bs.age" > /dev/null 2>&1 &
pid=$!
for i in $(seq 1 500); do
	[ -n "$(ls -a "$T/kb" | grep '\.tmp$')" ] && break
	sleep 0.01
done
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; st=$?
[ "$st" = 137 ] && ok "backup killed half way (its temporary file was there)" || bad "backup was not killed half way (status $st)"
[ ! -e "$T/kb/bs.age" ] && ok "killed backup: no backup file" || bad "a backup file exists after kill -9"
labsim_stop
finish
