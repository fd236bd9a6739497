# Sourced by the vps firewall tests (t075, t079), after lib.sh and
# labsim.sh, with NET set (127.0.NNN): the simulator with a factory
# serving a small raw image, one server at $NET.10 whose disk already holds
# it (so it boots Talos in maintenance mode, no SSH needed), and write_fw.
IP=$NET.10
ADMIN=$NET.200
OTHER=$NET.201

head -c 3145728 /dev/urandom > "$T/image.raw"
labsim_start --talos-net $NET.0/24 --factory-addr $NET.1:0 --factory-image "$T/image.raw"
FACTORY=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['factory']['url'])" "$LABSIM_DIR/ready")

# The server, its disk written before: it boots Talos in maintenance mode.
DISK="$T/disk.img"
cp "$T/image.raw" "$DISK"
truncate -s 1300M "$DISK"
labsim_ctl POST metal/boot "{\"ip\": \"$IP\", \"disk\": \"$DISK\"}" > /dev/null
up=$(labsim_wait_for "any(n['ip'] == '$IP' and n['state'] == 'maintenance' for n in s['talos']['nodes'])")
[ "$up" = yes ] && ok "the server is in maintenance mode at $IP" || bad "no maintenance mode at $IP"

# write_fw ADMIN-CIDRS [EXTRA-FIREWALL-LINE]: env $E (named after its
# folder) for that server, one control plane, that firewall
write_fw() {
	mkdir -p "$E"
	cat > "$E/config.yml" <<YAML
name: $(basename "$E")
platform: vps
vps:
  host: $IP
  ssh:
    key_file: $T/no-key
    host_fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
  disk: /dev/vda
  image_factory: $FACTORY
talos:
  version: v1.12.11
  install_disk: /dev/vda
network:
  cidr: $NET.0/24
  gateway: $NET.1
firewall:
  admin_cidrs: [$1]
  try_timeout: 10s
${2:+  $2}
nodes:
  controlplane:
    count: 1
YAML
}
