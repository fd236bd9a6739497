#!/bin/sh
# Cloud-init VMs (vms[]) offline: gen writes each VM's nocloud seed and the
# Ansible inventory, judged by the real peers (cloud-init schema,
# ansible-inventory, pycdlib reading the ISO back); bad input is refused
# before anything is written; strata ansible runs a playbook over SSH
# against a loopback sshd standing in for the VM (127.0.90.10:2290).
# validate takes the example; apply creates the VMs (t092, t093).
. "$(dirname "$0")/lib.sh"

need() { command -v "$1" >/dev/null 2>&1; }
export PVE_TOKEN_SECRET=t090-placeholder-token
export ANSIBLE_HOME="$T/ah" ANSIBLE_LOCAL_TEMP="$T/alt" ANSIBLE_REMOTE_TEMP="$T/art"
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
E="$T/w/ubuntu-vm"
mkdir -p "$E"
chmod 700 "$E"
ssh-keygen -q -t ed25519 -N '' -C t090 -f "$T/client"
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
KEY=$(cat "$T/client.pub")
ME=$(id -un)
sed -e "s|^      - ssh-ed25519 .*|      - $KEY|" \
	-e 's|192\.168\.1\.1$|127.0.90.1|' -e 's|192\.168\.1\.1\]|127.0.90.1]|' \
	-e 's|192\.168\.1\.0/24|127.0.90.0/24|' -e 's|192\.168\.1\.80|127.0.90.10|' \
	-e "s|^    user: ubuntu|    user: $ME|" \
	-e "s|^        app_env: production|        app_env: production\n        ansible_port: 2290\n        ansible_python_interpreter: /usr/bin/python3\n        ansible_ssh_private_key_file: $T/client|" \
	"$TOP/examples/ubuntu-vm/config.yml" > "$E/config.yml"
grep -q "127.0.90.10" "$E/config.yml" && grep -q "ansible_port: 2290" "$E/config.yml" \
	&& ok "test config made from examples/ubuntu-vm" || bad "sed of the example"

# --- validate takes the example (apply imports image: VMs, t093)
expect_rc 0 "validate takes the example's image: VM" -- "$STRATA" validate "$E"

# --- gen: seed files and inventory
expect_rc 0 "gen writes the VM seed and the inventory" -- "$STRATA" gen "$E"
expect_grep "^vms: 5 files written, 0 unchanged" "$T/out" "5 files written"
S="$E/vms/app-1"
for f in user-data network-config meta-data cidata.iso; do
	[ -s "$S/$f" ] && ok "vms/app-1/$f written" || bad "no $S/$f"
done
[ "$(stat -c %a "$E/ansible/inventory.yml")" = 600 ] && ok "inventory is 0600" || bad "inventory mode"
expect_rc 0 "gen again" -- "$STRATA" gen "$E"
expect_grep "^vms: 0 files written, 5 unchanged" "$T/out" "a re-run changes nothing"
expect_rc 0 "gen -o json" -- "$STRATA" gen -o json "$E"
python3 - "$T/out" <<'P' && ok "gen -o json: vms counts and the inventory path" || bad "gen json"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["vms"] == {"files_written": 0, "files_unchanged": 5, "inventory": "ansible/inventory.yml"}, o
P

if need cloud-init; then
	expect_rc 0 "cloud-init schema accepts the user-data" -- cloud-init schema -c "$S/user-data"
else
	echo "skip cloud-init schema (Debian cloud-init not installed)"
fi
# network-config, rendered by cloud-init itself for Ubuntu (netplan) and
# Debian (eni, networkd): the NIC with the config's MAC becomes eth0 with
# the static address and the default route.
if need cloud-init; then
	for k in "ubuntu netplan" "debian eni" "debian networkd"; do
		set -- $k
		rm -rf "$T/nc"
		if cloud-init devel net-convert -p "$S/network-config" -k yaml -d "$T/nc" -D "$1" -O "$2" \
			-m eth0,bc:24:11:5e:00:80 > "$T/nc.log" 2>&1; then
			cat $(find "$T/nc" -type f) > "$T/nc.txt"
			grep -q "127.0.90.10/24" "$T/nc.txt" && grep -q "127.0.90.1" "$T/nc.txt" && grep -q "eth0" "$T/nc.txt" \
				&& ! grep -q nic0 "$T/nc.txt" \
				&& ok "cloud-init renders network-config for $1 ($2): eth0, address, gateway" \
				|| { bad "$1 $2 rendering"; cat "$T/nc.txt"; }
		else
			bad "cloud-init net-convert $1 $2 failed"; tail -3 "$T/nc.log"
		fi
	done
fi
/usr/bin/python3 - "$S" "$KEY" <<'P' && ok "pycdlib: label cidata, the three files as gen wrote them, the key inside" || bad "seed ISO read back"
import io, sys, pycdlib, yaml
d, key = sys.argv[1], sys.argv[2]
iso = pycdlib.PyCdlib()
iso.open(d + "/cidata.iso")
assert iso.pvd.volume_identifier.decode().rstrip() == "cidata"
names = sorted(c.rock_ridge.name().decode() for c in iso.list_children(rr_path="/")
               if not (c.is_dot() or c.is_dotdot()))
assert names == ["meta-data", "network-config", "user-data"], names
for n in names:
    b = io.BytesIO()
    iso.get_file_from_iso_fp(b, rr_path="/" + n)
    assert b.getvalue() == open(d + "/" + n, "rb").read(), n
ud = yaml.safe_load(open(d + "/user-data"))
assert open(d + "/user-data").readline() == "#cloud-config\n"
assert ud["users"][0]["ssh_authorized_keys"] == [key], ud
assert "qemu-guest-agent" in ud["packages"] and "python3" in ud["packages"], ud
nc = yaml.safe_load(open(d + "/network-config"))
assert nc["version"] == 2 and nc["ethernets"]["eth0"]["addresses"] == ["127.0.90.10/24"], nc
P

if need ansible-inventory; then
	ANSIBLE_INVENTORY_UNPARSED_FAILED=1 ansible-inventory -i "$E/ansible/inventory.yml" --list > "$T/inv.json" 2> "$T/inv.err" \
		&& ok "ansible-inventory --list reads the inventory" || { bad "ansible-inventory"; cat "$T/inv.err"; }
	python3 - "$T/inv.json" <<'P' && ok "groups web and ubuntu, host vars typed" || bad "inventory contents"
import json, sys
d = json.load(open(sys.argv[1]))
h = d["_meta"]["hostvars"]["app-1"]
assert h["ansible_host"] == "127.0.90.10" and h["http_port"] == 8080 and h["ansible_port"] == 2290, h
assert d["web"]["hosts"] == ["app-1"] and d["ubuntu"]["hosts"] == ["app-1"], d
P
fi

# --- a changed key: a new seed, a new instance-id
cp "$S/meta-data" "$T/meta.before"
ssh-keygen -q -t ed25519 -N '' -f "$T/other"
sed "s|^      - ssh-ed25519 .*|      - $(cat "$T/other.pub")|" "$E/config.yml" > "$T/c2" && cp "$T/c2" "$E/config.yml"
expect_rc 0 "gen after an SSH key change" -- "$STRATA" gen "$E"
expect_grep "^vms: 3 files written, 2 unchanged" "$T/out" "user-data, meta-data and ISO rewritten"
cmp -s "$T/meta.before" "$S/meta-data" && bad "instance-id unchanged" || ok "instance-id changed (cloud-init runs again)"
cp "$T/c2" "$T/good"
sed "s|^      - ssh-ed25519 .*|      - $KEY|" "$T/good" > "$E/config.yml"
expect_rc 0 "gen back to the first key" -- "$STRATA" gen "$E"

# --- bad input, refused before anything is written
bad_case() {  # DESC SED-EXPR MESSAGE
	B="$T/bad/$(echo "$1" | tr -c 'a-z0-9\n' '-')"
	mkdir -p "$B"; chmod 700 "$B"
	sed "$2" "$E/config.yml" > "$B/config.yml"
	expect_rc 2 "gen refuses $1" -- "$STRATA" gen "$B"
	expect_grep "$3" "$T/err" "  message: $3"
	[ ! -e "$B/vms" ] && [ ! -e "$B/ansible" ] && ok "  nothing written for $1" || bad "files written for $1"
}
bad_case "an SSH key that is not a key" \
	's|^      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA|      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5BBBB|' \
	"ssh_keys\[0\]: not an SSH public key"
bad_case "an ip outside the network" 's|ip: 127.0.90.10|ip: 10.1.2.3|' \
	"vms\[0\].ip: '10.1.2.3' is outside network '127.0.90.0/24'"
bad_case "an image URL that is not http(s)" \
	's|image: https://|image: ssh://|' "vms\[0\].image: .* is not an http(s) URL"
bad_case "an Ansible group name with a dash" 's|groups: \[web, ubuntu\]|groups: [web-1, ubuntu]|' \
	"'web-1' is not an Ansible group name"
bad_case "a secret reference in ansible vars" 's|app_env: production|app_env: ${APP_PW}|' \
	"looks like a secret reference"

# --- without a mac: a warning, and a config only netplan applies
B="$T/nomac/env"; mkdir -p "$B"; chmod 700 "$B"
grep -v '^    mac: ' "$E/config.yml" > "$B/config.yml"
expect_rc 0 "gen without a mac" -- "$STRATA" gen "$B"
expect_grep "no mac: the cloud-init network config matches the NIC by name, which only netplan" "$T/err" "warns that only netplan applies it"
expect_grep "name: e\*" "$B/vms/app-1/network-config" "matches the NIC by name glob"

# --- strata ansible against a loopback sshd standing in for the VM
if [ "$(id -u)" -eq 0 ] && [ -x /usr/sbin/sshd ] && need ansible-playbook; then
	mkdir -p /run/sshd
	cp "$T/client.pub" "$T/authorized_keys"
	cat > "$T/sshd_config" <<C
ListenAddress 127.0.90.10:2290
HostKey $T/hostkey
PidFile none
AuthorizedKeysFile $T/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
C
	/usr/sbin/sshd -D -e -f "$T/sshd_config" 2> "$T/sshd.log" &
	SSHD=$!
	i=0; while [ $i -lt 100 ] && ! (echo > /dev/tcp/127.0.90.10/2290) 2>/dev/null; do
		python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(("127.0.90.10",2290)))' && break
		sleep 0.1; i=$((i + 1)); done
	printf '[127.0.90.10]:2290 %s\n' "$(cut -d' ' -f1,2 "$T/hostkey.pub")" > "$T/known_hosts"
	export ANSIBLE_SSH_ARGS="-o UserKnownHostsFile=$T/known_hosts -o StrictHostKeyChecking=yes -o ControlMaster=no"
	cat > "$T/site.yml" <<Y
- hosts: web
  gather_facts: false
  tasks:
    - name: prove the login
      ansible.builtin.copy:
        dest: "$T/proof-{{ inventory_hostname }}"
        content: "{{ app_env }} {{ http_port }} {{ ansible_host }}\n"
Y
	expect_rc 0 "strata ansible runs the playbook over SSH" -- "$STRATA" ansible "$E" -- "$T/site.yml"
	[ "$(cat "$T/proof-app-1" 2>/dev/null)" = "production 8080 127.0.90.10" ] \
		&& ok "the playbook ran on the host with the inventory's vars" || { bad "no proof"; cat "$T/out" | tail -20; }
	expect_grep "ok=1 .*changed=1" "$T/out" "ansible-playbook's recap: one change"
	expect_rc 0 "strata ansible without '--', extra args passed on" -- "$STRATA" ansible "$E" "$T/site.yml" --limit app-1
	expect_grep "ok=1 .*changed=0" "$T/out" "second run: nothing changed"
	printf -- '- hosts: web\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail: {msg: no}\n' > "$T/fail.yml"
	expect_rc 2 "a failing playbook: ansible-playbook's exit status" -- "$STRATA" ansible "$E" "$T/fail.yml"
	kill "$SSHD"; wait "$SSHD" 2>/dev/null
else
	echo "skip strata ansible over SSH (needs root, /usr/sbin/sshd and ansible-playbook)"
fi
if need ansible-playbook; then
	expect_rc 0 "examples/ubuntu-vm/site.yml passes --syntax-check with the inventory" -- \
		"$STRATA" ansible "$E" -- "$TOP/examples/ubuntu-vm/site.yml" --syntax-check
fi
expect_rc 2 "strata ansible without a playbook" -- "$STRATA" ansible "$E"
expect_grep "missing PLAYBOOK" "$T/err" "usage error names PLAYBOOK"
mkdir -p "$T/emptypath"
expect_rc 1 "strata ansible without ansible-playbook on PATH" -- env PATH="$T/emptypath" "$STRATA" ansible "$E" -- site.yml
expect_grep "ansible-playbook not found on PATH: install Ansible" "$T/err" "says what to install"
finish
