#!/bin/sh
# bench/plan.sh: `strata plan` against a simulator holding 1,000 VMs on 5
# Proxmox nodes (200 of them this environment's). Prints wall time and the
# API calls by kind. Targets (issue 5): under 1 s; one list call however
# many VMs exist (configs are read only for VMs in the env's range/tag).
. "$(dirname "$0")/lib.sh"
labsim_start --nodes pve1,pve2,pve3,pve4,pve5
E="$T/envs/big"
mkdir -p "$E"
cat > "$E/config.yml" <<YAML
name: big
platform: proxmox
proxmox:
  endpoint: https://127.0.0.1:$PVE_PORT
  token_id: "$PVE_TOKEN_ID"
  token_secret: \${PVE_TOKEN_SECRET}
  tls: {fingerprint: "$PVE_FP"}
  nodes: [pve1, pve2, pve3, pve4, pve5]
  vmid: {base: 10000, count: 1000}
network: {cidr: 10.50.0.0/16, gateway: 10.50.0.1}
kubernetes: {vip: 10.50.0.10}
nodes:
  controlplane: {count: 3, ip_start: 10.50.1.1}
  workers: {count: 197, ip_start: 10.50.2.1}
YAML
# Seed: this env's 200 VMs (tag + marker + range), 800 of other envs.
$PY - "$PVE_PORT" <<'PYEOF'
import http.client, json, ssl, sys
port = int(sys.argv[1])
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
def post(body):
    c.request("POST", "/_labsim/vm", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
nodes = ["pve%d" % i for i in range(1, 6)]
for i in range(200):
    role = "controlplane" if i < 3 else "worker"
    name = "big-cp-%d" % (i + 1) if i < 3 else "big-w-%d" % (i - 2)
    # placement as strata computes it: round-robin within each pool
    post({"vmid": 10000 + i, "node": nodes[(i if i < 3 else i - 3) % 5], "status": "running",
          "config": {"name": name, "tags": "%s;strata-big;talos" % role,
                     "description": "strata node role=%s\nmanaged-by=strata env=big" % role,
                     "cores": 2, "memory": "4096",
                     "scsi0": "local-lvm:vm-%d-disk-0,size=%dG" % (10000 + i, 32 if i < 3 else 64),
                     "net0": "virtio=BC:24:11:00:%02X:%02X,bridge=vmbr0" % (i >> 8, i & 255)}})
for i in range(800):
    post({"vmid": 20000 + i, "node": nodes[i % 5], "status": "running",
          "config": {"name": "other-%d" % i, "tags": "strata-other", "memory": "2048"}})
PYEOF
labsim_ctl POST reset-requests > /dev/null
t0=$(now)
"$STRATA" plan "$E" > "$T/plan.out" 2>&1 || { cat "$T/plan.out"; exit 1; }
wall=$(elapsed "$t0")
lists=$(requests_where "r['path'].startswith('/api2/json/cluster/resources')")
configs=$(requests_where "r['path'].endswith('/config')")
total=$(requests_where "True")
echo "plan over 1000 VMs on 5 nodes: ${wall}s wall (target < 1 s)"
echo "  API calls: $total total, $lists list call(s), $configs config reads (one per VM in range/tagged)"
tail -1 "$T/plan.out" | sed 's/^/  /'
