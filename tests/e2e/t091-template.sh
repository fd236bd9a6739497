#!/bin/sh
# strata template against the simulator: a cloud image downloaded into
# import storage (.img saved as .qcow2), a VM imported from it with a
# cloud-init drive and the agent, converted to a template; a re-run is a
# no-op; a run stopped before the conversion is finished by the next;
# --check refuses templates without a cloud-init drive or agent; a node
# too old to import, a bad image URL, an id in the env's range or taken by
# another VM are refused before anything is created. Loopback 127.0.91.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

labsim_start --nodes pve1,pve2
E="$T/w/tpl"
mkdir -p "$E"; chmod 700 "$E"
KEY=$(ssh-keygen -q -t ed25519 -N '' -f "$T/k" && cat "$T/k.pub")
IMG=https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
cat > "$E/config.yml" <<Y
name: tpl
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1, pve2]
  vmid: {base: 5000, count: 10}
network:
  cidr: 127.0.91.0/24
  gateway: 127.0.91.1
vms:
  - name: app-1
    image: $IMG
    ip: 127.0.91.10
    user: ubuntu
    ssh_keys: ["$KEY"]
Y
posts() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] == 'POST' and r['path'].endswith('$1')))"; }

# --- a node too old to import through the API: refused, nothing sent
labsim_ctl POST knobs '{"pve_version": "8.3.4"}' > /dev/null
expect_rc 1 "PVE 8.3 is refused" -- "$STRATA" template "$E" --vmid 9000
expect_grep "runs Proxmox VE 8.3.4, which cannot import a cloud image through the API" "$T/err" "says why and which version"
expect_grep "qm importdisk" "$T/err" "and what to run instead"
[ "$(posts /download-url)" = 0 ] && [ "$(posts /qemu)" = 0 ] && ok "no download, no VM" || bad "requests sent on an old node"
labsim_ctl POST knobs '{"pve_version": "9.1.2"}' > /dev/null

# --- usage and image checks, before anything is created
expect_rc 2 "an id inside the env's range" -- "$STRATA" template "$E" --vmid 5003
expect_grep "inside this env's VM id range 5000..5009" "$T/err" "names the range"
expect_rc 2 "a compressed image" -- "$STRATA" template "$E" --vmid 9000 --image https://x.example/disk.raw.xz
expect_grep "does not decompress .xz" "$T/err" "says to use the uncompressed image"
expect_rc 2 "an image that is not http(s)" -- "$STRATA" template "$E" --vmid 9000 --image ftp://x/disk.img
expect_rc 2 "missing --vmid" -- "$STRATA" template "$E"
[ "$(posts /qemu)" = 0 ] && ok "still no VM created" || bad "a VM was created"

# --- build
expect_rc 0 "template --vmid 9000 builds it" -- "$STRATA" template "$E" --vmid 9000
expect_grep "^template 9000 on pve1: built from $IMG" "$T/out" "reports the template"
$PY - "$(labsim_ctl GET state)" <<'P' && ok "import volume .qcow2, scsi0 a base disk, cloud-init drive, agent, serial, template" || bad "template state"
import json, sys
s = json.loads(sys.argv[1])["data"]
vm = [v for v in s["vms"] if v["vmid"] == 9000][0] if isinstance(s["vms"], list) else s["vms"]["9000"]
c = vm["config"]
assert str(c["template"]) == "1", c
assert c["scsi0"].startswith("local-lvm:base-9000-disk-0,"), c
assert c["ide2"] == "local-lvm:vm-9000-cloudinit,media=cdrom", c
assert c["agent"] == "enabled=1" and c["serial0"] == "socket" and c["tags"] == "strata-template", c
vols = json.dumps(s)
assert "local:import/noble-server-cloudimg-amd64.qcow2" in vols, "no import volume"
P
n_dl=$(posts /download-url); n_create=$(posts /qemu)
expect_rc 0 "a re-run" -- "$STRATA" template "$E" --vmid 9000
expect_grep "already built from .*; nothing to do" "$T/out" "says nothing to do"
[ "$(posts /download-url)" = "$n_dl" ] && [ "$(posts /qemu)" = "$n_create" ] && [ "$(posts /template)" = 1 ] \
	&& ok "no download, create or conversion on the re-run" || bad "the re-run sent work"
expect_rc 0 "--check 9000" -- "$STRATA" template "$E" --vmid 9000 --check
expect_grep "cloud-init drive and guest agent present" "$T/out" "fit to clone"

# --- a second template on pve2 from the same storage name: the image is downloaded there
expect_rc 0 "template on pve2" -- "$STRATA" template "$E" --vmid 9001 --node pve2
[ "$(posts /download-url)" = $((n_dl + 1)) ] && ok "downloaded once more, for pve2's own storage" || bad "download count"

# --- stopped before the conversion: the next run finishes it
labsim_ctl POST knobs '{"task_fail": {"qmtemplate": "interrupted by signal"}}' > /dev/null
expect_rc 1 "conversion fails" -- "$STRATA" template "$E" --vmid 9002
expect_grep "convert VM 9002 to a template" "$T/err" "names the step"
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null
n_create=$(posts /qemu)
expect_rc 0 "the re-run finishes it" -- "$STRATA" template "$E" --vmid 9002
[ "$(posts /qemu)" = "$n_create" ] && ok "without creating the VM again" || bad "created again"

# --- a wrong checksum: Proxmox's check refuses the download
expect_rc 1 "a wrong --sha256" -- "$STRATA" template "$E" --vmid 9003 --image https://x.example/other.qcow2 \
	--sha256 0000000000000000000000000000000000000000000000000000000000000000
expect_grep "checksum mismatch" "$T/err" "Proxmox's checksum message"

# --- --check on templates made by hand
labsim_ctl POST vm '{"vmid": 9100, "node": "pve1", "config": {"name": "bare", "template": 1, "scsi0": "local-lvm:base-9100-disk-0,size=3G", "agent": "1"}}' > /dev/null
labsim_ctl POST vm '{"vmid": 9101, "node": "pve1", "config": {"name": "noagent", "template": 1, "scsi0": "local-lvm:base-9101-disk-0,size=3G", "ide2": "local-lvm:vm-9101-cloudinit,media=cdrom", "agent": "enabled=0"}}' > /dev/null
labsim_ctl POST vm '{"vmid": 9102, "node": "pve1", "config": {"name": "plain", "scsi0": "local-lvm:vm-9102-disk-0,size=3G", "ide2": "local-lvm:vm-9102-cloudinit,media=cdrom", "agent": "1"}}' > /dev/null
expect_rc 1 "--check: a template without a cloud-init drive" -- "$STRATA" template "$E" --vmid 9100 --check
expect_grep "no cloud-init drive" "$T/err" "says the drive is missing"
expect_rc 1 "--check: a template without the agent" -- "$STRATA" template "$E" --vmid 9101 --check
expect_grep "guest agent is not enabled" "$T/err" "says the agent is off"
expect_rc 1 "--check: a VM that is not a template" -- "$STRATA" template "$E" --vmid 9102 --check
expect_grep "not a template" "$T/err" "says it is not a template"
# --- --check without --vmid: the templates vms[] clone from
cp "$E/config.yml" "$T/c.keep"
cat >> "$E/config.yml" <<Y
  - name: app-2
    template: 9000
    ip: 127.0.91.11
    mac: "BC:24:11:5E:00:81"
    ssh_keys: ["$KEY"]
  - name: app-3
    template: 9100
    ip: 127.0.91.12
    mac: "BC:24:11:5E:00:82"
    ssh_keys: ["$KEY"]
Y
expect_rc 1 "--check: vms[]'s templates, one without a drive" -- "$STRATA" template "$E" --check
expect_grep "^template 9000 on pve1: cloud-init drive and guest agent present" "$T/out" "9000 is fit"
expect_grep "VM 9100 cannot be cloned into a cloud-init VM: it has no cloud-init drive" "$T/err" "9100 is not"
cp "$T/c.keep" "$E/config.yml"
expect_rc 2 "--check with no template in vms[]" -- "$STRATA" template "$E" --check
expect_rc 1 "an id taken by another VM" -- "$STRATA" template "$E" --vmid 9100
expect_grep "VM id 9100 is taken" "$T/err" "refuses to touch it"
finish
