#!/bin/sh
# bench/etcd.sh [MiB]: `strata etcd snapshot` and `strata restore --etcd`
# of a large snapshot (default 200 MiB: the simulator's knob
# etcd_snapshot_bytes pads it with a database's free pages; it streams in
# 1 MiB messages, knob etcd_snapshot_chunk_bytes). Prints seconds, MB/s
# and strata's peak RSS for each: snapshots are streamed to disk and
# uploaded from disk, so the RSS must not grow with the snapshot.
# STRATA_BEFORE=PATH measures another binary the same way (for example
# one built from a commit before the streaming) and prints both.
# Talos nodes listen on loopback addresses (127.0.108.0/24): run it in a
# private network namespace, as the e2e tests run:
#   unshare -n sh -c 'ip link set lo up && sh bench/etcd.sh 200'
set -eu
. "$(dirname "$0")/lib.sh"
command -v ok > /dev/null || ok() { :; }
command -v bad > /dev/null || bad() { echo "$*" >&2; }
mib=${1:-200}
labsim_start
mbps() { awk -v s="$1" -v b="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
rss() { sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' "$1" | awk '{ printf "%.1f", $1 / 1024 }'; }

# one_binary LABEL BINARY ENV-NUMBER
one_binary() {
	E="$T/envs/b$3"
	write_env "$E" "bench$3" $((3800 + $3 * 100)) 1 0 127.0.108
	"$2" apply "$E" --yes --timeout 60s > "$T/apply.log" 2>&1 ||
		{ echo "apply failed:"; tail -5 "$T/apply.log"; exit 1; }
	labsim_ctl POST knobs "{\"etcd_snapshot_bytes\": $((mib * 1048576)), \"etcd_snapshot_chunk_bytes\": 1048576}" > /dev/null
	s=$(now)
	$PY "$TOP/bench/procstat.py" "$T/snap.stat" "$2" etcd snapshot "$E" --out "$T/$3.snapshot" \
		> "$T/snap.log" 2>&1 || { echo "snapshot failed:"; tail -5 "$T/snap.log"; exit 1; }
	t_snap=$(elapsed "$s")
	bytes=$(wc -c < "$T/$3.snapshot")
	"$2" destroy "$E" --yes > /dev/null 2>&1
	s=$(now)
	$PY "$TOP/bench/procstat.py" "$T/rest.stat" "$2" restore "$E" --etcd "$T/$3.snapshot" --yes --timeout 120s \
		> "$T/rest.log" 2>&1 || { echo "restore failed:"; tail -5 "$T/rest.log"; exit 1; }
	t_rest=$(elapsed "$s")
	echo "$1: snapshot of $bytes bytes: ${t_snap}s ($(mbps "$t_snap" "$bytes") MB/s), peak RSS $(rss "$T/snap.stat") MiB"
	echo "$1: restore --etcd (VM, install, upload, recovery, nodes Ready): ${t_rest}s, peak RSS $(rss "$T/rest.stat") MiB"
	"$2" destroy "$E" --yes > /dev/null 2>&1
	labsim_ctl POST knobs '{"etcd_snapshot_bytes": 0}' > /dev/null
	rm -f "$T/$3.snapshot"
}

echo "etcd snapshot of ${mib} MiB through the lab simulator (1 control plane)"
one_binary "strata" "$STRATA" 1
if [ -n "${STRATA_BEFORE:-}" ]; then
	one_binary "before ($STRATA_BEFORE)" "$STRATA_BEFORE" 2
fi
