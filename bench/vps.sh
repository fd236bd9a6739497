#!/bin/sh
# bench/vps.sh [MiB]: throughput of strata's rescue write path (image
# downloaded over loopback HTTP, decompressed, streamed over SSH into dd
# conv=fsync, read back and hashed) against plain
# `ssh host 'cat > file' < image` on the same raw image, both to a file on
# the same disk through a real sshd on 127.0.0.1. Prints MB/s and the
# ratio (issue 14 target: >= 0.9), per round and the median of ROUNDS
# (default 3). Needs root and openssh-server; run it in a network namespace
# (unshare -n sh -c 'ip link set lo up && sh bench/vps.sh').
set -eu
mib=${1:-256}
rounds=${ROUNDS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
drv=$top/build/bench/vps_stream
[ -x "$drv" ] || { echo "vps.sh: build it first (make bench)"; exit 1; }
if [ "$(id -u)" -ne 0 ] || [ ! -x /usr/sbin/sshd ]; then
	echo "vps.sh: skipped: needs root and /usr/sbin/sshd"; exit 0
fi
T=$(mktemp -d /tmp/strata-bench-vps.XXXXXX)
sshd_pid= http_pid=
cleanup() {
	[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null
	[ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
mkdir -p /run/sshd "$T/www"
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/client"
cp "$T/client.pub" "$T/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/sshd_config" <<CFG
ListenAddress 127.0.0.1
HostKey $T/hostkey
PidFile none
AuthorizedKeysFile $T/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
CFG
/usr/sbin/sshd -D -e -f "$T/sshd_config" -p "$port" 2>"$T/sshd.log" &
sshd_pid=$!
# A disk-like image: half random, half zeros (as a fresh Talos image is).
head -c $((mib / 2 * 1048576)) /dev/urandom > "$T/www/metal-amd64.raw"
head -c $((mib / 2 * 1048576)) /dev/zero >> "$T/www/metal-amd64.raw"
zstd -q -3 -T2 -o "$T/www/metal-amd64.raw.zst" "$T/www/metal-amd64.raw"
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$hport" >/dev/null 2>&1 &
http_pid=$!
sleep 1
fp=$(ssh-keygen -lf "$T/hostkey.pub" | awk '{print $2}')
ssh_opts="-p $port -i $T/client -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=error"
: > "$T/disk.img"
echo "image: $mib MiB raw ($(wc -c < "$T/www/metal-amd64.raw.zst") bytes as .zst); $rounds rounds, each path once per round"
# The machine is shared: each round times the plain copy and both strata
# paths back to back, and the ratio is taken per round, so a load change
# between measurements skews one round, not the figure; the median is printed.
mbps_of() { awk -v a="$1" -v b="$2" -v m="$mib" 'BEGIN { printf "%.1f", m * 1.048576 / (b - a) }'; }
: > "$T/ratios"
r=1
while [ $r -le "$rounds" ]; do
	rm -f "$T/plain.img"
	start=$(date +%s.%N)
	ssh $ssh_opts root@127.0.0.1 "cat > '$T/plain.img' && sync" < "$T/www/metal-amd64.raw"
	end=$(date +%s.%N)
	plain=$(mbps_of "$start" "$end")
	echo "round $r: ssh 'cat > file' < image (no fsync per block, no verify): $plain MB/s"
	for f in metal-amd64.raw metal-amd64.raw.zst; do
		rm -f "$T/disk.img"; truncate -s $((mib * 2))M "$T/disk.img"
		line=$("$drv" "http://127.0.0.1:$hport/$f" "$T/disk.img" 127.0.0.1 "$port" "$T/client" "$fp")
		mbps=$(echo "$line" | sed 's/.*MBps=//')
		ratio=$(awk -v a="$mbps" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')
		echo "round $r: strata stream of $f (download + decompress + dd conv=fsync; read-back timed apart): $line ratio=$ratio"
		echo "$f $ratio $mbps" >> "$T/ratios"
	done
	r=$((r + 1))
done
for f in metal-amd64.raw metal-amd64.raw.zst; do
	awk -v f="$f" '$1 == f { print $2, $3 }' "$T/ratios" | sort -n | awk -v f="$f" -v t=0.9 '
		{ r[NR] = $1; m[NR] = $2 }
		END { i = int((NR + 1) / 2); printf "median of %d rounds, %s: ratio=%s (%s MB/s; target >= %s)\n", NR, f, r[i], m[i], t }'
done
