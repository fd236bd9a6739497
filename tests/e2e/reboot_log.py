"""The reboots the simulator saw since a time (used by t078 and t124).

usage: reboot_log.py LABSIM_DIR SINCE BOOT_IDS [VERSION]

BOOT_IDS is a Python dict {vmid: boot id} taken before. Prints:
  reboots <vmids in the order they went down>
  down-together <most nodes down at once>
  new-boot-ids True|False       every node of BOOT_IDS has another boot id
  gate-between yes|no N         between a node up again and the next AUTO
                                apply (N of them), every control plane was
                                asked for its services (the health gate)
  images-after-reboot yes|no    (with VERSION) each node's Kubernetes
                                images moved to VERSION only after it was up
"""
import ast
import json
import ssl
import sys
import urllib.request

d, since, boots0 = sys.argv[1], float(sys.argv[2]), ast.literal_eval(sys.argv[3])
ver = sys.argv[4] if len(sys.argv) > 4 else None
r = json.load(open(d + "/ready"))
ctx = ssl.create_default_context(cafile=r["proxmox"]["ca_cert"])
s = json.load(urllib.request.urlopen(r["control"] + "state", context=ctx))["data"]["talos"]
ev = sorted((e for e in s["node_events"] if e["t"] >= since), key=lambda e: e["t"])
down, most, order = set(), 0, []
for e in ev:
    if e["event"] == "down":
        down.add(e["vmid"])
        order.append(e["vmid"])
    elif e["event"] == "up":
        down.discard(e["vmid"])
    most = max(most, len(down))
print("reboots", " ".join(str(v) for v in order))
print("down-together", most)
nodes = [n for n in s["nodes"] if n["vmid"] in boots0]
print("new-boot-ids", all(n["boot_id"] != boots0[n["vmid"]] for n in nodes))
cps = [n["ip"] for n in nodes if n["type"] == "controlplane"]
calls = sorted((c for c in s["calls"] if c["t"] >= since), key=lambda c: c["t"])
autos = [c for c in calls if c["method"].endswith("/ApplyConfiguration") and c.get("mode") == 1]
gate = "yes"
for u in (e for e in ev if e["event"] == "up"):
    nxt = [a for a in autos if a["t"] > u["t"]]
    if not nxt:
        continue
    seen = {c["node"] for c in calls
            if u["t"] < c["t"] < nxt[0]["t"] and c["method"].endswith("/ServiceList")}
    if not set(cps) <= seen:
        gate = "no: between %s up and the next apply" % u["vmid"]
        break
print("gate-between", gate, len(autos))
if ver:
    first_up = {}
    for e in ev:
        if e["event"] == "up":
            first_up.setdefault(e["vmid"], e["t"])
    late = [e for e in ev if e["event"].startswith("k8s ") and e["event"].endswith(":v" + ver)
            and not (e["vmid"] in first_up and e["t"] > first_up[e["vmid"]])]
    print("images-after-reboot", "yes" if not late else "no %s" % late[0])
