#!/bin/sh
# bench/vps.sh [MiB]: throughput of strata's rescue write path (image
# downloaded over loopback HTTP, decompressed, streamed over SSH into dd
# conv=fsync; the read-back is timed apart) against plain
# `ssh host 'cat > file && sync file' < image` on the same raw image (the
# file fsynced as dd's is), both to a file on the same disk through a real
# sshd on 127.0.0.1, both timed from the channel's open over an SSH
# connection made before (strata's connection and probe are printed as
# setup_s; plain ssh reuses a ControlMaster connection). Prints MB/s and
# the ratio (issue 14 target: >= 0.9 on the .zst paths, the ones apply
# takes), per round and the median of ROUNDS
# (default 5). The .zst image is streamed twice: as apply streams it to a
# host with zstd (the compressed bytes cross the channel, the host
# decompresses), and decompressed by strata (a host without zstd). Also,
# for reference only, plain ssh with the cipher strata negotiates
# (aes128-gcm), to show how much of the ratio is the cipher.
# Needs root and openssh-server; run it in a network namespace
# (unshare -n sh -c 'ip link set lo up && sh bench/vps.sh').
set -eu
mib=${1:-256}
rounds=${ROUNDS:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
drv=$top/build/bench/vps_stream
[ -x "$drv" ] || { echo "vps.sh: build it first (make bench)"; exit 1; }
if [ "$(id -u)" -ne 0 ] || [ ! -x /usr/sbin/sshd ]; then
	echo "vps.sh: skipped: needs root and /usr/sbin/sshd"; exit 0
fi
T=$(mktemp -d /tmp/strata-bench-vps.XXXXXX)
sshd_pid= http_pid=
cleanup() {
	for c in "$T/ctl" "$T/ctl-gcm"; do
		[ -S "$c" ] && ssh -o ControlPath="$c" -O exit root@127.0.0.1 2>/dev/null
	done
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
echo "image: $mib MiB raw ($(wc -c < "$T/www/metal-amd64.raw.zst") bytes as .zst); $rounds rounds, each path once per round"
# The machine is shared: each round times every path back to back, in
# the opposite order every other round (a load change or the page cache
# left by the path before skews one round, not one path), and the ratio is
# taken per round; the median of the rounds is printed.
mbps_of() { awk -v a="$1" -v b="$2" -v m="$mib" 'BEGIN { printf "%.1f", m * 1.048576 / (b - a) }'; }
# plain [CIPHER]: prints its MB/s. The connection (one per cipher) is made
# first and kept, as strata's is when its write starts.
plain() {
	ctl=$T/ctl${1:+-gcm}
	[ -S "$ctl" ] || ssh $ssh_opts ${1:+-c "$1"} -o ControlMaster=yes -o ControlPath="$ctl" -o ControlPersist=yes -N -f root@127.0.0.1
	rm -f "$T/plain.img"
	start=$(date +%s.%N)
	ssh $ssh_opts -o ControlMaster=no -o ControlPath="$ctl" root@127.0.0.1 "cat > '$T/plain.img' && sync '$T/plain.img'" < "$T/www/metal-amd64.raw"
	end=$(date +%s.%N)
	mbps_of "$start" "$end"
}
# strata FILE [strata-decompresses]: prints the driver's line
strata() {
	rm -f "$T/disk.img"; truncate -s $((mib * 2))M "$T/disk.img"
	"$drv" "http://127.0.0.1:$hport/$1" "$T/disk.img" 127.0.0.1 "$port" "$T/client" "$fp" ${2:-}
}
: > "$T/ratios"
r=1
while [ $r -le "$rounds" ]; do
	if [ $((r % 2)) -eq 1 ]; then order="plain gcm raw zst zstl"; else order="zstl zst raw gcm plain"; fi
	for p in $order; do
		case $p in
		plain) plain=$(plain) ;;
		gcm) gcm=$(plain aes128-gcm@openssh.com) ;;
		raw) raw=$(strata metal-amd64.raw) ;;
		zst) zst=$(strata metal-amd64.raw.zst) ;;
		zstl) zstl=$(strata metal-amd64.raw.zst strata-decompresses) ;;
		esac
	done
	echo "round $r ($order): ssh 'cat > file && sync file' < image (default cipher; no verify): $plain MB/s; with -c aes128-gcm@openssh.com (reference): $gcm MB/s"
	for f in raw raw.zst raw.zst-by-strata; do
		case $f in raw) line=$raw ;; raw.zst) line=$zst ;; *) line=$zstl ;; esac
		mbps=$(echo "$line" | sed 's/.*MBps=\([0-9.]*\).*/\1/')
		ratio=$(awk -v a="$mbps" -v b="$plain" 'BEGIN { printf "%.2f", a / b }')
		rgcm=$(awk -v a="$mbps" -v b="$gcm" 'BEGIN { printf "%.2f", a / b }')
		echo "round $r: strata stream of metal-amd64.$f (download + decompress + dd conv=fsync; read-back timed apart): $line ratio=$ratio (vs same cipher: $rgcm)"
		echo "$f $ratio $mbps $rgcm" >> "$T/ratios"
	done
	r=$((r + 1))
done
# The target is about the paths apply takes: the factory's metal image is
# .raw.zst (FACTS-metal; src/provider/vps/provider.c), decompressed by the
# host when it has zstd, else by strata. The uncompressed .raw is timed as
# a reference only: the same stream without any decompression.
for f in raw raw.zst raw.zst-by-strata; do
	case $f in raw) t="reference only, not a path apply takes" ;; *) t="target >= 0.9" ;; esac
	awk -v f="$f" '$1 == f { print $2, $3 }' "$T/ratios" | sort -n | awk -v f="$f" -v t="$t" '
		{ r[NR] = $1; m[NR] = $2 }
		END { i = int((NR + 1) / 2); printf "median of %d rounds, metal-amd64.%s: ratio=%s (%s MB/s; %s; lowest round %s)", NR, f, r[i], m[i], t, r[1] }'
	awk -v f="$f" '$1 == f { print $4 }' "$T/ratios" | sort -n | awk '
		{ r[NR] = $1 } END { printf "; vs same cipher: %s\n", r[int((NR + 1) / 2)] }'
done
