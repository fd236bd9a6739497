#!/bin/sh
# strata hypervisor ENV [-o json]: Layer 0 as strata sees it. The JSON
# parses and matches what the simulator's API answers for the same token
# (nodes, bridges with VLAN awareness, storages with space, privileges per
# path); a token without Sys.Audit sees no node status; read-only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
RO_SECRET=7e2b9d10-2222-4000-8000-00000000d00d
cat > "$T/tokens.json" <<JSON
[{"id": "root@pam!strata", "secret": "$(cat /proc/sys/kernel/random/uuid)", "privs": ["*"]},
 {"id": "strata@pve!ro", "secret": "$RO_SECRET", "acl": {
   "/vms": {"privs": ["VM.Audit"], "propagate": 1},
   "/storage/local-lvm": {"privs": ["Datastore.Audit"], "propagate": 1}}}]
JSON
labsim_start --tokens "$T/tokens.json" --no-talos
E="$T/envs/hv"
write_env "$E" hv 6200 1 1 127.0.62
labsim_ctl POST knobs '{"bridges": {"pve2": ["vmbr0", "vmbr5"]}, "bridge_vlan_aware": {"pve2": ["vmbr5"]},
  "node_resources": {"pve3": {"maxcpu": 8, "maxmem": 17179869184}},
  "storage": {"pve3": {"local": {"total": 10737418240, "used": 4294967296}}}}' > /dev/null
labsim_ctl POST vm '{"vmid": 150, "node": "pve3", "config": {"name": "other", "memory": "3072", "cores": "1"}}' > /dev/null

# what the API answers, read with the same token as strata
api_dump() {
	$PY - "$PVE_PORT" "$1" "$2" > "$T/api.json" <<'PYEOF'
import http.client, json, ssl, sys, urllib.parse
port, tok, paths = int(sys.argv[1]), sys.argv[2], None
ctx = ssl._create_unverified_context()
def get(path, **q):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    c.request("GET", "/api2/json" + path + ("?" + urllib.parse.urlencode(q) if q else ""),
              headers={"Authorization": "PVEAPIToken=" + tok})
    r = c.getresponse()
    body = json.loads(r.read() or b"null")
    c.close()
    return body["data"] if r.status == 200 else None
out = {"nodes": {}, "perms": {}}
for n in get("/nodes"):
    name = n["node"]
    out["nodes"][name] = {"node": n, "net": get("/nodes/%s/network" % name, type="any_bridge"),
                          "storage": get("/nodes/%s/storage" % name)}
out["vms"] = get("/cluster/resources", type="vm")
json.dump(out, sys.stdout)
PYEOF
}
api_dump "$PVE_TOKEN_ID=$PVE_TOKEN_SECRET"
expect_rc 0 "hypervisor -o json" -- "$STRATA" hypervisor "$E" -o json
if $PY - "$T/out" "$T/api.json" <<'PYEOF'
import json, sys
h = json.load(open(sys.argv[1]))
api = json.load(open(sys.argv[2]))
assert h["version"] == "8.4.1", h["version"]
assert [n["name"] for n in h["nodes"]] == sorted(api["nodes"]), h["nodes"]
for n in h["nodes"]:
    a = api["nodes"][n["name"]]
    assert (n["cpus"], n["memory"], n["status"]) == (a["node"]["maxcpu"], a["node"]["maxmem"], a["node"]["status"]), n
    assert n["read"] is True
    assert [(b["iface"], b["vlan_aware"]) for b in n["bridges"]] == \
        [(b["iface"], bool(b.get("bridge_vlan_aware"))) for b in a["net"]], (n["bridges"], a["net"])
    assert sorted((s["storage"], s["type"], s["content"], s["total"], s["avail"], s["shared"]) for s in n["storages"]) == \
        sorted((s["storage"], s["type"], s["content"], s["total"], s["avail"], bool(s["shared"])) for s in a["storage"]), n
    assert n["pveversion"].startswith("pve-manager/"), n
    assert n["memory_committed"] == sum(v["maxmem"] for v in api["vms"] if v["node"] == n["name"]), n
by = {n["name"]: n for n in h["nodes"]}
assert (by["pve3"]["cpus"], by["pve3"]["memory"]) == (8, 16 << 30)
assert by["pve3"]["memory_committed"] == 3072 << 20 and by["pve3"]["vms"] == 1
assert [b["vlan_aware"] for b in by["pve2"]["bridges"]] == [False, True]
local = [s for s in by["pve3"]["storages"] if s["storage"] == "local"][0]
assert local["total"] == 10 << 30 and local["avail"] == (6 << 30) - (100 << 20), local   # minus the seeded ISO
thin = [s for s in by["pve1"]["storages"] if s["storage"] == "local-lvm"][0]
assert thin["thin"] is True and thin["type"] == "lvmthin"
assert h["token"] == "root@pam!strata"
assert "VM.Allocate" in h["privileges"]["/vms"], h["privileges"]
PYEOF
then ok "json matches the simulator (nodes, bridges, storages, committed memory, privileges)"; else bad "json: $(head -c 400 "$T/out")"; fi
expect_rc 0 "hypervisor (human)" -- "$STRATA" hypervisor "$E"
expect_grep "^Proxmox VE 8.4.1" "$T/out" "version line"
expect_grep "pve2  *vmbr5  *bridge .*vlan-aware yes" "$T/out" "a VLAN-aware bridge"
expect_grep "pve1  *local-lvm  *lvmthin (thin)" "$T/out" "a thin pool"
expect_grep "pve3  *local  *dir .* 5.9 of 10.0 GiB free" "$T/out" "free space"
expect_grep "pve1  *online  *16 .*pve-manager/8.4.1, load 0.12" "$T/out" "node line with version and load"

# a narrow token: privileges per path as /access/permissions gives them,
# only the storages it may see, no node status without Sys.Audit
sed "s/token_id: \"$PVE_TOKEN_ID\"/token_id: \"strata@pve!ro\"/" "$E/config.yml" > "$T/c" && cp "$T/c" "$E/config.yml"
export PVE_TOKEN_SECRET=$RO_SECRET
labsim_ctl POST reset-requests > /dev/null
expect_rc 0 "hypervisor -o json with a read-only token" -- "$STRATA" hypervisor "$E" -o json
if $PY - "$T/out" <<'PYEOF'
import json, sys
h = json.load(open(sys.argv[1]))
assert h["token"] == "strata@pve!ro"
assert h["privileges"]["/vms"] == ["VM.Audit"], h["privileges"]
assert h["privileges"]["/storage/local-lvm"] == ["Datastore.Audit"], h["privileges"]
assert h["privileges"]["/storage/local"] == [], h["privileges"]
for n in h["nodes"]:
    assert [s["storage"] for s in n["storages"]] == ["local-lvm"], n["storages"]
    assert "pveversion" not in n and "Sys.Audit" in n["status_error"], n
PYEOF
then ok "json: per-path privileges, visible storages, status refused without Sys.Audit"; else bad "json: $(head -c 600 "$T/out")"; fi
methods=$(labsim_ctl GET requests | $PY -c "import json,sys; print(' '.join(sorted({x['method'] for x in json.load(sys.stdin)['data']})))")
[ "$methods" = GET ] && ok "hypervisor sent only GETs" || bad "methods: $methods"
finish
