#!/bin/sh
# platform: vps, a target disk that is mounted on the rescue system. The
# disk is a real block device (a loop device over a sparse file); sshd runs
# in a private mount namespace where that device is mounted, so the rescue
# probe reads it in /proc/mounts as the kernel reports it. apply refuses
# before a byte is written (no download, no write, no reboot); with the
# disk unmounted the re-run writes the image through the loop device, and
# the server boots it and bootstraps. The config's extensions make a
# schematic the factory does not know: strata POSTs it (after the checks)
# and writes the image of the id the factory answers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

vps_need_sshd
if ! command -v losetup >/dev/null || ! command -v unshare >/dev/null; then
	echo "skip: needs losetup and unshare (util-linux)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
vps_lab 127.0.76 2276
LOOP=$(losetup -f --show "$DISK") || { bad "losetup failed"; finish; exit 1; }
trap 'stop_sshd; losetup -d "$LOOP" 2>/dev/null; cleanup' EXIT INT TERM
zero_sha=$(head -c 8388608 "$DISK" | sha256sum)

cat > "$E/config.yml" <<YAML
name: edge
platform: vps
vps:
  host: $IP
  ssh:
    port: $SSH_PORT
    key_file: $R/client
    host_fingerprint: "$FP"
  disk: $LOOP
  image_factory: $FACTORY
talos:
  version: v1.12.11
  install_disk: /dev/vda
  schematic:
    extensions: [siderolabs/qemu-guest-agent]   # a schematic the factory must be told
network:
  cidr: $NET.0/24
  gateway: $NET.1
firewall:
  admin_cidrs: [127.0.0.0/8]
nodes:
  controlplane:
    count: 1
YAML

# --- mounted: refused before a byte is written ----------------------------
mkdir -p "$R/mnt"
cat > "$R/mounted-ns" <<'EOS'
#!/bin/sh
# mounted-ns DEV DIR CMD...: CMD in this (private) mount namespace, with DEV
# mounted on DIR as /proc/mounts shows it
dev=$1 dir=$2; shift 2
mount -t tmpfs "$dev" "$dir" && exec "$@"
EOS
chmod +x "$R/mounted-ns"
SSHD_WRAP="unshare -m --propagation private $R/mounted-ns $LOOP $R/mnt"
start_sshd hostkey "$R/bin:/usr/bin:/bin"
SSHD_WRAP=
grep -q "^$LOOP " /proc/mounts && bad "the mount leaked into the test's namespace" \
	|| ok "the mount is private to the rescue sshd's namespace"
expect_rc 0 "plan while the disk is mounted" -- "$STRATA" plan "$E"
expect_grep "conflict .*its check on the rescue system fails: '$LOOP' (or one of its partitions) is mounted" "$T/out" \
	"plan reports the mounted disk as a conflict (read-only look over SSH)"
expect_rc 1 "a mounted disk is refused" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "'$LOOP' (or one of its partitions) is mounted" "$T/err" "the error names the mounted disk"
expect_grep "unmount it" "$T/err" "and says what to do"
[ "$(head -c 8388608 "$DISK" | sha256sum)" = "$zero_sha" ] && ok "the disk's first 8 MiB are untouched" \
	|| bad "the mounted disk was written to"
[ "$(stat -c %b "$DISK")" = 0 ] && ok "not one block of the disk file was allocated (nothing written by plan or apply)" \
	|| bad "disk file blocks: $(stat -c %b "$DISK")"
gets=$(labsim_ctl GET metal | $PY -c "import json,sys; print(len(json.load(sys.stdin)['data']['factory_gets']))")
[ "$gets" = 0 ] && ok "no image download" || bad "factory GETs: $gets"
posts=$(labsim_ctl GET metal | $PY -c "import json,sys; print(len(json.load(sys.stdin)['data']['factory_posts']))")
[ "$posts" = 0 ] && ok "no schematic POSTed before the checks pass" || bad "factory POSTs: $posts"
[ ! -s "$R/reboots" ] && ok "no reboot" || bad "rebooted after a refusal"
expect_rc 0 "journal: nothing marked as writing" -- sh -c "! grep -q '\"writing\"' '$E/state.json' 2>/dev/null"
stop_sshd

# --- unmounted: the re-run writes through the loop device -----------------
start_sshd hostkey "$R/bin:/usr/bin:/bin"
expect_rc 0 "with the disk unmounted, apply writes the image and bootstraps" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "written to $LOOP" "$T/err" "written to the block device"
# FACTS.md §f: ID of [siderolabs/qemu-guest-agent]
SID=ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515
expect_grep "schematic ${SID%????????????????????????????????????????????????????}... registered with" "$T/err" \
	"the schematic (extensions) was registered with the factory first"
p=$(labsim_ctl GET metal | $PY -c "import json,sys; d=json.load(sys.stdin)['data']; print([x.get('id') for x in d['factory_posts']], [g['path'].split('/')[2] for g in d['factory_gets']])")
[ "$p" = "['$SID'] ['$SID']" ] && ok "one POST /schematics (the factory's id = strata's), then the image of that id" \
	|| bad "posts/gets: $p"
expect_grep "apply complete" "$T/err" "apply completed"
cmp -s -n "$(stat -c %s "$T/image.raw")" "$T/image.raw" "$DISK" && ok "the disk's first bytes equal the image" \
	|| bad "the disk differs from the image"
stop_sshd
labsim_stop
finish
