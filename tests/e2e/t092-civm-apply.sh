#!/bin/sh
# strata plan/apply/destroy of cloud-init VMs (vms[]) against the
# simulator: 3 VMs cloned in parallel from one template built by strata
# template, each given its seed ISO (ide2), ci parameters, agent and
# serial console, started and waited for until the guest agent reports
# its static address; the inventory written; plan after = nothing to do;
# a re-run sends no write; a changed SSH key uploads a new seed, reboots
# the VM and deletes the old seed; destroy removes VMs, disks and seeds.
# Bad input before any VM is created: a template without a cloud-init
# drive or that does not exist, an IP outside the subnet, a key that is not
# a key, a template inside the env's range.
# Loopback 127.0.92.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

labsim_start --nodes pve1
E="$T/w/civm"
mkdir -p "$E"; chmod 700 "$E"
KEY=$(ssh-keygen -q -t ed25519 -N '' -C ops@laptop -f "$T/k" && cat "$T/k.pub")
KEY2=$(ssh-keygen -q -t ed25519 -N '' -C ops@new -f "$T/k2" && cat "$T/k2.pub")
IMG=https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img
conf() { # $1: key of app-2, $2: template
	cat > "$E/config.yml" <<Y
name: civm
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1]
  vmid: {base: 5000, count: 10}
network:
  cidr: 127.0.92.0/24
  gateway: 127.0.92.1
  nameservers: [127.0.92.1]
vms:
  - name: app-1
    template: $2
    ip: 127.0.92.10
    mac: "BC:24:11:5E:92:10"
    user: ubuntu
    ssh_keys: ["$KEY"]
    ansible: {groups: [web]}
  - name: app-2
    template: $2
    ip: 127.0.92.11
    mac: "BC:24:11:5E:92:11"
    user: ubuntu
    ssh_keys: ["$1"]
    ansible: {groups: [web]}
  - name: app-3
    template: $2
    ip: 127.0.92.12
    clone: linked
    cores: 4
    memory: 4GiB
    disk: 30GiB
    user: ubuntu
    ssh_keys: ["$KEY"]
    ansible: {groups: [db]}
Y
}
conf "$KEY" 9000
writes() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] in ('POST','PUT','DELETE')))"; }
posts() { labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] == 'POST' and r['path'].endswith('$1')))"; }
expect_rc 0 "strata gen" -- "$STRATA" gen "$E"

# --- bad input, before any VM exists
labsim_ctl POST vm '{"vmid": 9100, "node": "pve1", "config": {"name": "nodrive", "template": 1, "scsi0": "local-lvm:base-9100-disk-0,size=3G", "agent": "enabled=1"}}' > /dev/null
conf "$KEY" 9100
expect_rc 2 "apply: a template without a cloud-init drive" -- "$STRATA" apply "$E" --yes
expect_grep "template 9100 cannot be cloned into a cloud-init VM: it has no cloud-init drive" "$T/err" "says why"
expect_rc 2 "plan says the same" -- "$STRATA" plan "$E"
expect_grep "no cloud-init drive" "$T/err" "plan names the drive"
conf "$KEY" 9999
expect_rc 2 "apply: a template that does not exist" -- "$STRATA" apply "$E" --yes
expect_grep "template 9999 does not exist" "$T/err" "says so, and how to build one"
conf "$KEY" 9000
sed -i 's/ip: 127.0.92.12/ip: 127.0.93.12/' "$E/config.yml"
expect_rc 2 "an IP outside the subnet" -- "$STRATA" apply "$E" --yes
expect_grep "vms\[2\].ip" "$T/err" "names the VM's ip"
conf "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBADBADBAD ops@bad" 9000
expect_rc 2 "a key that is not a key" -- "$STRATA" apply "$E" --yes
expect_grep "not an SSH public key" "$T/err" "says so"
conf "$KEY" 5003
expect_rc 2 "a template inside the env's VM id range" -- "$STRATA" validate "$E"
expect_grep "template 5003 is inside this env's VM id range 5000..5009" "$T/err" "says the range is strata's"
conf "$KEY" 9000
[ "$(posts /qemu)" = 0 ] && [ "$(posts /clone)" = 0 ] && ok "no VM created or cloned by bad input" || bad "a VM was created"

# --- the template, then 3 clones in parallel
expect_rc 0 "strata template builds 9000" -- "$STRATA" template "$E" --vmid 9000 --image "$IMG"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "Plan: 3 to create" "$T/out" "3 to create"
before=$(writes)
expect_rc 0 "apply creates the 3 VMs" -- "$STRATA" apply "$E" --yes
sed 's/^/     | /' "$T/err" | grep -i "cloud-init VMs\|app-" | head -12
expect_grep "guest agent reports 127.0.92.10" "$T/err" "app-1: the agent reports its address"
expect_grep "guest agent reports 127.0.92.12" "$T/err" "app-3: the agent reports its address"
expect_grep "apply complete: 3 VMs created, 0 changed" "$T/err" "the summary counts the 3 VMs"
[ "$(posts /clone)" = 3 ] && ok "3 clones" || bad "clones: $(posts /clone)"
$PY - "$(labsim_ctl GET state)" "$KEY" <<'P' && ok "each VM: seed on ide2, ci params, agent, serial, tags, size; no cloud-init drive left attached" || bad "VM configs"
import json, sys, urllib.parse
s = json.loads(sys.argv[1])["data"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
by = {v["config"].get("name"): v for v in vms}
for n, ip in (("app-1", "127.0.92.10"), ("app-2", "127.0.92.11"), ("app-3", "127.0.92.12")):
    c = by[n]["config"]
    assert by[n]["status"] == "running", (n, by[n]["status"])
    assert c["ide2"].startswith("local:iso/strata.civm.%s.seed-" % n) and c["ide2"].endswith(".iso,media=cdrom"), c
    assert c["ipconfig0"] == "ip=%s/24,gw=127.0.92.1" % ip, c
    assert c["ciuser"] == "ubuntu" and c["nameserver"] == "127.0.92.1", c
    assert urllib.parse.unquote(c["sshkeys"]).strip() == sys.argv[2], c["sshkeys"]
    assert c["agent"] == "enabled=1" and c["serial0"] == "socket", c
    assert c["tags"] == "cloudinit;strata-civm", c
    assert "managed-by=strata env=civm" in c["description"], c
    assert "cloudinit" not in json.dumps({k: v for k, v in c.items() if k != "tags"}), c
assert "size=30G" in by["app-3"]["config"]["scsi0"] and by["app-3"]["config"]["cores"] in ("4", 4), by["app-3"]["config"]
assert "bc:24:11:5e:92:10" in by["app-1"]["config"]["net0"].lower()
P
$PY - "$(labsim_ctl GET requests)" "$(labsim_ctl GET state)" <<'P' && ok "app-3 is a linked clone (full=0, no storage; its disk on the template's base), app-1 and app-2 full copies" || bad "clone modes"
import json, sys
reqs, s = json.loads(sys.argv[1])["data"], json.loads(sys.argv[2])["data"]
cl = {r["params"]["name"]: r["params"] for r in reqs if r["method"] == "POST" and r["path"].endswith("/clone")}
assert cl["app-3"].get("full") == "0" and "storage" not in cl["app-3"], cl["app-3"]
assert cl["app-1"].get("full") == "1" and cl["app-1"].get("storage") == "local-lvm", cl["app-1"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
by = {v["config"].get("name"): v["config"] for v in vms}
assert "base-9000-disk" in by["app-3"]["scsi0"], by["app-3"]["scsi0"]
assert "base-9000-disk" not in by["app-1"]["scsi0"], by["app-1"]["scsi0"]
P
[ -f "$E/ansible/inventory.yml" ] && grep -q "ansible_host: 127.0.92.11" "$E/ansible/inventory.yml" \
	&& ok "inventory.yml holds the addresses" || bad "inventory"
expect_rc 0 "plan after apply" -- "$STRATA" plan "$E"
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged" "$T/out" "nothing to do"
w0=$(writes)
expect_rc 0 "a re-run of apply" -- "$STRATA" apply "$E" --yes
[ "$(writes)" = "$w0" ] && ok "the re-run sends no write (0 POST/PUT/DELETE)" || bad "re-run wrote $(( $(writes) - w0 )) times"

# --- a changed SSH key on app-2: new seed, reboot, old seed gone
conf "$KEY2" 9000
expect_rc 0 "plan with app-2's new key" -- "$STRATA" plan "$E"
expect_grep "ssh_keys" "$T/out" "plan names the ssh_keys change"
expect_grep "ops@laptop -> 1 key: ops@new" "$T/out" "from the old key to the new"
expect_grep "cloud-init" "$T/out" "and the new seed"
expect_grep "Plan: 0 to create, 1 to update" "$T/out" "1 to update"
old=$(labsim_ctl GET state | $PY -c "import json,sys; s=json.load(sys.stdin)['data']; v=s['vms'] if isinstance(s['vms'], list) else list(s['vms'].values()); print([x for x in v if x['config'].get('name')=='app-2'][0]['config']['ide2'].split(',')[0])")
expect_rc 0 "apply the new key" -- "$STRATA" apply "$E" --yes
expect_grep "0 VMs created, 1 changed" "$T/err" "the summary counts app-2 as changed"
$PY - "$(labsim_ctl GET state)" "$KEY2" "$old" <<'P' && ok "app-2: new seed on ide2 and sshkeys, the old seed deleted, rebooted" || bad "key change"
import json, sys, urllib.parse
s = json.loads(sys.argv[1])["data"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
c = [v for v in vms if v["config"].get("name") == "app-2"][0]["config"]
assert urllib.parse.unquote(c["sshkeys"]).strip() == sys.argv[2], c["sshkeys"]
assert not c["ide2"].startswith(sys.argv[3] + ","), (c["ide2"], sys.argv[3])
assert sys.argv[3] not in json.dumps(s["nodes"] if "nodes" in s else s), "old seed still stored"
P
[ "$(posts /status/reboot)" = 1 ] && ok "one reboot (app-2 only)" || bad "reboots: $(posts /status/reboot)"
expect_rc 0 "plan after the key change" -- "$STRATA" plan "$E"
expect_grep "3 unchanged" "$T/out" "nothing to do again"

# --- destroy
expect_rc 0 "destroy" -- "$STRATA" destroy "$E" --yes
expect_grep "3 deleted" "$T/err" "destroy's summary counts 3 deleted"
$PY - "$(labsim_ctl GET state)" <<'P' && ok "destroy: no VM, disk, cloud-init volume or seed of the env left (the template stays)" || bad "destroy left things"
import json, sys
s = json.loads(sys.argv[1])["data"]
vms = s["vms"] if isinstance(s["vms"], list) else list(s["vms"].values())
assert sorted(v["vmid"] for v in vms) == [9000, 9100], [v["vmid"] for v in vms]
t = json.dumps(s)
for bad in ("vm-500", "strata.civm.app-"):
    assert bad not in t, bad
P
finish
