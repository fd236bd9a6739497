# Start and stop tests/labsim for an e2e script, and talk to its control
# endpoint. Source after lib.sh. Sets LABSIM_DIR, PVE_PORT, PVE_FP,
# PVE_TOKEN_ID, PVE_TOKEN_SECRET. Loopback only.
PY=/usr/bin/python3
REF=${STRATA_REFERENCE:-$TOP/../shared/reference}

labsim_start() {
	if [ ! -f "$REF/proxmox/api-schema-subset.json" ]; then
		echo "skip: reference data absent at $REF"
		echo "0 passed, 0 failed, 1 skipped"
		exit 0
	fi
	LABSIM_DIR="$T/labsim"
	mkdir -p "$LABSIM_DIR"
	# An Image Factory always (Proxmox downloads the Talos ISO from it;
	# write_env points proxmox.image_factory at it), unless the caller
	# places one itself (vps_lab).
	_fac="--factory-addr 127.0.0.1:0"
	case " $* " in *" --factory-addr "*) _fac= ;; esac
	$PY "$TOP/tests/labsim/labsim.py" --state "$LABSIM_DIR" --proxmox-addr 127.0.0.1:0 \
		--time-scale "${LABSIM_SCALE:-0.01}" --reference "$REF" $_fac "$@" \
		> "$LABSIM_DIR/log" 2>&1 &
	LABSIM_PID=$!
	i=0
	while [ ! -f "$LABSIM_DIR/ready" ]; do
		i=$((i + 1))
		if [ $i -gt 400 ] || ! kill -0 $LABSIM_PID 2>/dev/null; then
			echo "labsim did not start:"; cat "$LABSIM_DIR/log"
			exit 1
		fi
		sleep 0.05
	done
	eval "$($PY - "$LABSIM_DIR/ready" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("PVE_PORT=%d" % r["proxmox"]["port"])
print("PVE_FP='%s'" % r["proxmox"]["fingerprint"])
print("PVE_TOKEN_ID='%s'" % r["token"]["id"])
print("PVE_TOKEN_SECRET='%s'" % r["token"]["secret"])
print("FACTORY_URL='%s'" % (r.get("factory") or {}).get("url", ""))
PYEOF
)"
	export PVE_TOKEN_SECRET
}

# labsim_stop: stop the simulator, then replay every Proxmox request it
# received against apidata.json (tests/labsim/pve_replay.py); a request real
# Proxmox would refuse fails the test (counted by finish, exit 1 otherwise).
labsim_stop() {
	if [ -n "${LABSIM_PID:-}" ]; then
		kill "$LABSIM_PID" 2>/dev/null
		wait "$LABSIM_PID" 2>/dev/null
		LABSIM_PID=
		if $PY "$TOP/tests/labsim/pve_replay.py" --apidata "$REF/proxmox/apidata.json" \
			"$LABSIM_DIR/requests.jsonl" > "$LABSIM_DIR/replay" 2>&1; then
			ok "request replay: $(tail -1 "$LABSIM_DIR/replay")"
		else
			bad "request replay: Proxmox would refuse these requests:"
			sed 's/^/     | /' "$LABSIM_DIR/replay" | head -40
			return 1
		fi
	fi
}

# labsim_ctl METHOD WHAT [JSON]: the control endpoint (no auth, loopback)
labsim_ctl() {
	curl -sk -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} \
		"https://127.0.0.1:$PVE_PORT/_labsim/$2"
}

# labsim_py 'expression over s (the state snapshot)': print its value
labsim_py() {
	labsim_ctl GET state | $PY -c "import json,sys; s=json.load(sys.stdin)['data']; print($1)"
}

# write_env DIR NAME VMID_BASE CP_COUNT WORKER_COUNT [NET]: a proxmox env for
# labsim; NET (default 127.0.20) is the /24 of its nodes: the simulator's
# Talos nodes listen on their static loopback addresses once installed.
# FIRST_BOOT (default maintenance, which these tests were written for; the
# config's default, cidata, has its own test t027) is proxmox.first_boot.
write_env() {
	mkdir -p "$1"
	_net=${6:-127.0.20}
	cat > "$1/config.yml" <<YAML
name: $2
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls:
    fingerprint: "$PVE_FP"
  nodes: [pve1, pve2]
  vmid: {base: $3, count: 50}
  first_boot: ${FIRST_BOOT:-maintenance}
  image_factory: $FACTORY_URL
network:
  cidr: $_net.0/24
  gateway: $_net.1
kubernetes:
  vip: $_net.10
nodes:
  controlplane: {count: $4, ip_start: $_net.11, memory: 2GiB, disk: 10GiB}
  workers: {count: $5, ip_start: $_net.21, memory: 2GiB, disk: 20GiB}
YAML
}

# talos_calls METHOD: how many calls of /machine.MachineService/METHOD the
# simulated Talos nodes received (optionally only on node address $2)
talos_calls() {
	labsim_py "sum(1 for c in s['talos']['calls'] if c['method'].endswith('/$1') and ('${2:-}' == '' or c['node'] == '${2:-}'))"
}

# labsim_wait_for 'condition over s': poll the state snapshot every 20 ms
# until the Python expression holds (60 s at most); prints "yes" if it did.
labsim_wait_for() {
	$PY - "$PVE_PORT" "$1" <<'PYEOF'
import http.client, json, ssl, sys, time
port, cond = int(sys.argv[1]), sys.argv[2]
ctx = ssl._create_unverified_context()
deadline = time.time() + 60
while time.time() < deadline:
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    c.request("GET", "/_labsim/state")
    s = json.loads(c.getresponse().read())["data"]
    c.close()
    if eval(cond):
        print("yes")
        break
    time.sleep(0.02)
PYEOF
}

# kube_get ENV API-PATH: GET from the env's Kubernetes API with
# ENV/kubeconfig (mTLS, as kubectl would; kubectl need not be installed);
# prints the JSON body, exits non-zero on an HTTP error. kube_req METHOD
# ENV API-PATH likewise (DELETE).
kube_get() { kube_req GET "$@"; }
# kube_req METHOD ENV PATH [BODY]: a BODY goes as a server-side apply
# (application/apply-patch+yaml, fieldManager kube_req).
kube_req() {
	$PY - "$2/kubeconfig" "$3" "$1" "${4:-}" <<'PYEOF'
import base64, http.client, os, ssl, sys, tempfile, urllib.parse, yaml
kc = yaml.safe_load(open(sys.argv[1]))
c, u = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
d = tempfile.mkdtemp()
files = {}
for k, v in (("ca", c["certificate-authority-data"]), ("crt", u["client-certificate-data"]),
             ("key", u["client-key-data"])):
    files[k] = os.path.join(d, k)
    with open(files[k], "wb") as f:
        f.write(base64.b64decode(v))
ctx = ssl.create_default_context(cafile=files["ca"])
ctx.load_cert_chain(files["crt"], files["key"])
url = urllib.parse.urlsplit(c["server"])
conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
if sys.argv[4]:
    conn.request(sys.argv[3], sys.argv[2] + "?fieldManager=kube_req", body=sys.argv[4].encode(),
                 headers={"Content-Type": "application/apply-patch+yaml"})
else:
    conn.request(sys.argv[3], sys.argv[2])
r = conn.getresponse()
sys.stdout.write(r.read().decode())
for f in files.values():
    os.unlink(f)
os.rmdir(d)
sys.exit(0 if r.status in (200, 201) else 1)
PYEOF
}

# --- platform vps: a real OpenSSH server on loopback plays the rescue system
# (throwaway host keys, high port); the install disk is a sparse file; the
# simulator serves the Image Factory and, when the rescue host's `reboot`
# script calls it, boots the server from that file (Talos maintenance mode
# at $IP only if the disk starts with the image). Used by t071-t074.
#
# vps_need_sshd: skip the test unless root and Debian's openssh-server.
vps_need_sshd() {
	if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
		echo "skip: needs root, /usr/sbin/sshd and ssh-keygen (Debian openssh-server)"
		echo "0 passed, 0 failed, 1 skipped"
		exit 0
	fi
}

# vps_lab NET SSH_PORT: the simulator (Talos nodes in NET.0/24, factory at
# NET.1) with a 3 MiB test image ($T/image.raw), and the rescue system in
# $R: host keys hostkey (pinned as $FP) and hostkey2, client key, the disk
# $DISK (1300 MiB sparse), bin/reboot, and bare/ (no curl, zstd, xz). Sets
# IP=NET.10, SSH_PORT, FACTORY; E=$T/envs/edge. Stops sshd on exit.
vps_lab() {
	NET=$1
	IP=$NET.10
	SSH_PORT=$2
	head -c 3145728 /dev/urandom > "$T/image.raw"
	labsim_start --talos-net $NET.0/24 --factory-addr $NET.1:0 --factory-image "$T/image.raw"
	FACTORY=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['factory']['url'])" "$LABSIM_DIR/ready")
	R="$T/rescue"
	mkdir -p "$R/bin" "$R/bare" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$R/hostkey" -C rescue
	ssh-keygen -q -t ed25519 -N '' -f "$R/hostkey2" -C other
	ssh-keygen -q -t ed25519 -N '' -f "$R/client" -C strata
	cp "$R/client.pub" "$R/authorized_keys"
	DISK="$R/disk.img"
	truncate -s 1300M "$DISK"
	# reboot: the server leaves rescue mode and boots its disk (the simulator)
	cat > "$R/bin/reboot" <<EOS
#!/bin/sh
/usr/bin/curl -sk -X POST -H 'Content-Type: application/json' \
	--data '{"ip": "$IP", "disk": "$DISK"}' https://127.0.0.1:$PVE_PORT/_labsim/metal/boot >> "$R/reboots" 2>&1
echo >> "$R/reboots"
EOS
	chmod +x "$R/bin/reboot"
	# a rescue host without zstd (and without curl): only what dd needs
	for _t in sh dd head sha256sum cat tee stat readlink lsblk findmnt grep sed awk wc test mount ls; do
		_p=$(command -v $_t 2>/dev/null) && ln -sf "$_p" "$R/bare/$_t"
	done
	ln -sf "$R/bin/reboot" "$R/bare/reboot"
	FP=$(ssh-keygen -lf "$R/hostkey.pub" | awk '{print $2}')
	E="$T/envs/edge"
	mkdir -p "$E"
	SSHD_PID=
	trap 'stop_sshd; cleanup' EXIT INT TERM
}

# start_sshd HOSTKEY PATH: sshd on $IP:$SSH_PORT with that host key, its
# sessions' PATH set to PATH. $SSHD_WRAP, when set, runs first and execs
# sshd (t076: a private mount namespace).
start_sshd() {
	cat > "$R/sshd_config" <<EOS
ListenAddress $IP
HostKey $R/$1
PidFile none
AuthorizedKeysFile $R/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
SetEnv PATH=$2
EOS
	${SSHD_WRAP:-} /usr/sbin/sshd -D -e -f "$R/sshd_config" -p $SSH_PORT >> "$R/sshd.log" 2>&1 &
	SSHD_PID=$!
	_i=0
	while [ $_i -lt 100 ]; do
		$PY -c "import socket; socket.create_connection(('$IP', $SSH_PORT), 0.2)" 2>/dev/null && break
		_i=$((_i + 1)); sleep 0.05
	done
}
stop_sshd() { [ -n "${SSHD_PID:-}" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null; SSHD_PID=; }

# write_vps DISK-PATH: $E/config.yml, a single-node vps env named edge for
# the rescue system above; VPS_EXTRA (optional) is appended (YAML).
write_vps() {
	cat > "$E/config.yml" <<YAML
name: edge
platform: vps
vps:
  host: $IP
  ssh:
    port: $SSH_PORT
    key_file: $R/client
    host_fingerprint: "$FP"
  disk: $1
  image_factory: $FACTORY
talos:
  version: v1.12.11
  install_disk: /dev/vda    # what Talos calls the disk; vps.disk is a file here
network:
  cidr: $NET.0/24
  gateway: $NET.1
firewall:
  admin_cidrs: [127.0.0.0/8]
nodes:
  controlplane:
    count: 1
YAML
	[ -n "${VPS_EXTRA:-}" ] && printf '%s\n' "$VPS_EXTRA" >> "$E/config.yml"
	return 0
}

# fw_answers IP PORT SRC: "yes" when IP:PORT answers a TLS ClientHello sent
# from source address SRC within 2 s (an alert is an answer), "no" when the
# connection is dropped (the simulated Talos firewall, tests/labsim/firewall.py)
fw_answers() {
	$PY - "$1" "$2" "$3" <<'PYEOF'
import socket, ssl, sys
ip, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    s = socket.create_connection((ip, port), 2, source_address=(src, 0))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.wrap_socket(s).close()
    print("yes")
except socket.timeout:
    print("no")
except (ssl.SSLError, ConnectionError):
    print("yes")
except OSError:
    print("no")
PYEOF
}
