# The rescue system of a VPS for e2e tests (POSIX sh, after lib.sh and
# labsim.sh): a real OpenSSH server on a loopback address and high port with
# throwaway host keys, the client key strata uses, a `reboot` that tells the
# simulator to boot the server from its disk file, and a bare PATH (only
# what dd needs: no curl, zstd or xz).
#
#   rescue_init IP SSH_PORT DISK-FILE   sets R (the directory), FP (the host
#                                       key's SHA256 fingerprint)
#   start_sshd HOSTKEY PATH             hostkey or hostkey2 (another key);
#                                       $SSHD_WRAP, when set, is run before
#                                       sshd (e.g. a mount namespace)
#   stop_sshd
rescue_have() {
	[ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null
}

rescue_init() {
	RESCUE_IP=$1 SSH_PORT=$2
	R="$T/rescue"
	mkdir -p "$R/bin" "$R/bare" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$R/hostkey" -C rescue
	ssh-keygen -q -t ed25519 -N '' -f "$R/hostkey2" -C other
	ssh-keygen -q -t ed25519 -N '' -f "$R/client" -C strata
	cp "$R/client.pub" "$R/authorized_keys"
	# reboot: the server leaves rescue mode and boots its disk (the simulator)
	cat > "$R/bin/reboot" <<EOS
#!/bin/sh
/usr/bin/curl -sk -X POST -H 'Content-Type: application/json' \
	--data '{"ip": "$RESCUE_IP", "disk": "$3"}' https://127.0.0.1:$PVE_PORT/_labsim/metal/boot >> "$R/reboots" 2>&1
echo >> "$R/reboots"
EOS
	chmod +x "$R/bin/reboot"
	for t in sh dd head sha256sum cat tee stat readlink lsblk findmnt grep sed awk wc test mount ls; do
		p=$(command -v $t 2>/dev/null) && ln -sf "$p" "$R/bare/$t"
	done
	ln -sf "$R/bin/reboot" "$R/bare/reboot"
	FP=$(ssh-keygen -lf "$R/hostkey.pub" | awk '{print $2}')
}

SSHD_PID=
start_sshd() {   # start_sshd HOSTKEY PATH
	cat > "$R/sshd_config" <<EOS
ListenAddress $RESCUE_IP
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
	$SSHD_WRAP /usr/sbin/sshd -D -e -f "$R/sshd_config" -p $SSH_PORT >> "$R/sshd.log" 2>&1 &
	SSHD_PID=$!
	i=0
	while [ $i -lt 100 ]; do
		$PY -c "import socket; socket.create_connection(('$RESCUE_IP', $SSH_PORT), 0.2)" 2>/dev/null && break
		i=$((i + 1)); sleep 0.05
	done
}
stop_sshd() { [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null; SSHD_PID=; }
