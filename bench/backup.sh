#!/bin/sh
# bench/backup.sh [MiB]: strata backup --with-etcd / restore against
# `tar | age -e` and `age -d | tar -x` on the same env folder
# (examples/homelab generated, plus MiB of random data standing in for the
# latest etcd snapshot, ENV/etcd/bench.snapshot). Prints seconds, MB/s, the
# ratio (age's time / strata's: >= 1 means strata is as fast) and strata's
# peak resident size for one backup and one restore (streaming keeps it
# flat whatever the snapshot's size). Both sides fsync what they write.
set -eu
mib=${1:-64}
top=$(cd "$(dirname "$0")/.." && pwd)
strata=${STRATA:-$top/build/strata}
command -v age >/dev/null 2>&1 || { echo "backup.sh: skipped: needs Debian's age"; exit 0; }
T=$(mktemp -d /tmp/strata-bench-backup.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
umask 077
mkdir -p "$T/src/env"
cp "$top/examples/homelab/config.yml" "$T/src/env/"
age-keygen -o "$T/key.txt" 2>/dev/null
R=$(age-keygen -y "$T/key.txt")
printf '\nbackup:\n  recipients: [%s]\n' "$R" >> "$T/src/env/config.yml"
PVE_TOKEN_SECRET=unused "$strata" gen "$T/src/env" >/dev/null 2>&1
mkdir -p "$T/src/env/etcd"
head -c $((mib * 1048576)) /dev/urandom > "$T/src/env/etcd/bench.snapshot"
printf '[{"file": "%s", "size": %d, "sha256": "-", "node": "-", "taken": "-", "version": "-"}]\n' \
	"$T/src/env/etcd/bench.snapshot" $((mib * 1048576)) > "$T/src/env/etcd/snapshots.json"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v s="$1" -v m="$mib" 'BEGIN { printf "%.1f", m * 1.048576 / s }'; }
best() { # best of 3 runs of "$@", in seconds
	b=
	for i in 1 2 3; do
		rm -rf "$T/out"; mkdir -p "$T/out"
		s=$(now); "$@"; e=$(now)
		t=$(secs "$s" "$e")
		if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN { exit !(a < b) }'; then b=$t; fi
	done
	echo "$b"
}
sb() { "$strata" backup "$T/src/env" --with-etcd --to "$T/out/s.age" >/dev/null 2>&1; }
# strata fsyncs what it writes (file and folder); so do the baselines.
ab() { (cd "$T/src/env" && tar -cf - --exclude=.lock .) | age -e -r "$R" > "$T/out/a.age"; sync "$T/out/a.age"; }
mkdir -p "$T/out"; sb || { echo "backup.sh: strata backup --with-etcd failed"; exit 1; }
cp "$T/out/s.age" "$T/s.age"
sr() { "$strata" restore "$T/out/r/env" --from "$T/s.age" -i "$T/key.txt" >/dev/null 2>&1; }
ar() { mkdir -p "$T/out/r"; age -d -i "$T/key.txt" "$T/s.age" | tar -x -C "$T/out/r"; find "$T/out/r" -type f -exec sync {} +; }
t_sb=$(best sb); t_ab=$(best ab); t_sr=$(best sr); t_ar=$(best ar)
echo "env folder: homelab generated + $mib MiB snapshot stand-in (best of 3)"
echo "backup:  strata ${t_sb}s ($(mbps "$t_sb") MB/s)  tar|age -e ${t_ab}s ($(mbps "$t_ab") MB/s)  ratio $(awk -v a="$t_ab" -v s="$t_sb" 'BEGIN { printf "%.2f", a / s }')"
echo "restore: strata ${t_sr}s ($(mbps "$t_sr") MB/s)  age -d|tar -x ${t_ar}s ($(mbps "$t_ar") MB/s)  ratio $(awk -v a="$t_ar" -v s="$t_sr" 'BEGIN { printf "%.2f", a / s }')"
# peak RSS (kB) of one strata backup and one restore
rss() { python3 "$top/bench/measure.py" "$@" 2>&1 >/dev/null | sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p'; }
rm -rf "$T/out"; mkdir -p "$T/out"
rss_b=$(rss "$strata" backup "$T/src/env" --with-etcd --to "$T/out/s.age")
rss_r=$(rss "$strata" restore "$T/out/r/env" --from "$T/s.age" -i "$T/key.txt")
echo "peak RSS: backup $((rss_b / 1024)) MiB, restore $((rss_r / 1024)) MiB (archive $(($(wc -c < "$T/s.age") / 1048576)) MiB)"
