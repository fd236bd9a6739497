#!/bin/sh
# Cloud-init VMs imported from a cloud image (vms[].image), the path of
# examples/ubuntu-vm: a node too old to import through the API (PVE 8.3)
# is refused by plan and apply before anything is sent; on 9.1 the image
# is downloaded once into import storage (.img saved as .qcow2) for two
# VMs, each created with scsi0 import-from, grown to its disk size, given
# its seed and ci parameters, started and waited for until its agent
# reports the address; a re-run sends no write; destroy removes VMs, disks
# and seeds (the downloaded image stays, for the next apply).
# Loopback 127.0.94.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

labsim_start --nodes pve1
E="$T/w/img"
mkdir -p "$E"; chmod 700 "$E"
KEY=$(ssh-keygen -q -t ed25519 -N '' -C ops@laptop -f "$T/k" && cat "$T/k.pub")
IMG=https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
sed -e "s|https://pve.home.arpa:8006|https://127.0.0.1:$PVE_PORT|" \
	-e "s|\"strata@pve!ubuntu-vm\"|\"$PVE_TOKEN_ID\"|; s|strata@pve!ubuntu-vm|\"$PVE_TOKEN_ID\"|" \
	-e "s|fingerprint: \".*\"|fingerprint: \"$PVE_FP\"|" \
	-e "s|192.168.1.80|127.0.94.10|; s|192.168.1|127.0.94|g" \
	-e "s|ssh-ed25519 AAAA.* ops@laptop|$KEY|" \
	"$TOP/examples/ubuntu-vm/config.yml" > "$E/config.yml"
# app-2 gives the image's SHA-256 (the simulator's download of a URL is
# "labsim:" + URL) and a DNS search domain
SUM=$(printf 'labsim:%s' "$IMG" | sha256sum | cut -d' ' -f1)
cat >> "$E/config.yml" <<Y
  - name: app-2
    image: $IMG
    image_sha256: $SUM
    search_domains: [lab.example, home.arpa]
    disk: 12GiB
    ip: 127.0.94.11
    mac: "BC:24:11:5E:94:11"
    user: ubuntu
    ssh_keys: ["$KEY"]
Y
sed -i 's/  nodes: \[pve\]/  nodes: [pve1]/' "$E/config.yml"
posts() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] == 'POST' and r['path'].endswith('$1')))"; }
writes() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] in ('POST','PUT','DELETE')))"; }
expect_rc 0 "the example, on the simulator, validates" -- "$STRATA" validate "$E"

# --- too old to import
labsim_ctl POST knobs '{"pve_version": "8.3.4"}' > /dev/null
expect_rc 1 "plan on PVE 8.3" -- "$STRATA" plan "$E"
expect_grep "runs Proxmox VE 8.3.4, which cannot import a cloud image through the API" "$T/err" "plan says why"
expect_rc 1 "apply on PVE 8.3" -- "$STRATA" apply "$E" --yes
expect_grep "qm importdisk" "$T/err" "and what to do instead"
[ "$(writes)" = 0 ] && ok "nothing sent that writes" || bad "$(writes) writes on an old node"
labsim_ctl POST knobs '{"pve_version": "9.1.2"}' > /dev/null

# --- import
expect_rc 0 "apply imports both VMs" -- "$STRATA" apply "$E" --yes
expect_grep "guest agent reports 127.0.94.10" "$T/err" "app-1's agent reports its address"
expect_grep "guest agent reports 127.0.94.11" "$T/err" "app-2's agent reports its address"
[ "$(posts /download-url)" = 1 ] && ok "one download for both VMs" || bad "downloads: $(posts /download-url)"
$PY - "$(labsim_ctl GET state)" <<'P' && ok "scsi0 imported and grown (32G, 12G), seed on ide2, ci params, agent, tags" || bad "VM configs"
import json, sys
s = json.loads(sys.argv[1])["data"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
by = {v["config"].get("name"): v for v in vms}
for n, size in (("app-1", "32G"), ("app-2", "12G")):
    c = by[n]["config"]
    assert by[n]["status"] == "running", by[n]
    assert c["scsi0"].startswith("local-lvm:vm-") and "size=%s" % size in c["scsi0"], c["scsi0"]
    assert c["ide2"].startswith("local:iso/strata.ubuntu-vm.%s.seed-" % n), c
    assert c["agent"] == "enabled=1" and c["serial0"] == "socket" and "ipconfig0" in c, c
    assert c["tags"] == "cloudinit;strata-ubuntu-vm", c
assert "local:import/noble-server-cloudimg-amd64.qcow2" in json.dumps(s), "no import volume"
P
grep -q "ansible_host: 127.0.94.10" "$E/ansible/inventory.yml" && ok "inventory holds app-1" || bad "inventory"
$PY - "$(labsim_ctl GET requests)" "$SUM" <<'P' && ok "the download carries app-2's SHA-256; app-2's config its search domains" || bad "checksum or searchdomain not sent"
import json, sys
reqs, want = json.loads(sys.argv[1])["data"], sys.argv[2]
dl = [r["params"] for r in reqs if r["method"] == "POST" and r["path"].endswith("/download-url")]
assert dl and dl[0].get("checksum") == want and dl[0].get("checksum-algorithm") == "sha256", dl
# an image VM is created with everything in one POST .../qemu
sd = [r["params"].get("searchdomain") for r in reqs if r["method"] == "POST"
      and (r["path"].endswith("/qemu") or r["path"].endswith("/config")) and r["params"].get("name") == "app-2"]
assert sd == ["lab.example home.arpa"], sd
P
expect_rc 0 "gen writes the seeds" -- "$STRATA" gen "$E"
grep -A8 "nameservers:" "$E/vms/app-2/network-config" | grep -q "lab.example" \
	&& ok "app-2's seed network-config lists the search domains" || bad "no search domains in the seed: $(cat "$E/vms/app-2/network-config")"
w0=$(writes)
expect_rc 0 "a re-run" -- "$STRATA" apply "$E" --yes
[ "$(writes)" = "$w0" ] && ok "the re-run sends no write" || bad "re-run wrote $(( $(writes) - w0 ))"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "2 unchanged" "$T/out" "nothing to do"
expect_rc 0 "destroy" -- "$STRATA" destroy "$E" --yes
$PY - "$(labsim_ctl GET state)" <<'P' && ok "destroy: no VM, disk or seed left; the image stays" || bad "destroy left things"
import json, sys
s = json.loads(sys.argv[1])["data"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
assert not vms, vms
t = json.dumps(s)
assert "vm-50" not in t and "strata.ubuntu-vm." not in t, t[:400]
assert "local:import/noble-server-cloudimg-amd64.qcow2" in t
P
finish
