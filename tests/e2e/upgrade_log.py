"""Check a rolling upgrade from the simulator's logs (used by t110-t112).

usage: upgrade_log.py LABSIM_DIR SINCE VERSION

Reads the state snapshot and prints one line per finding:
  order <vmids in the order they were upgraded>
  cp-overlap <max number of control planes down at once since SINCE>
  down-overlap <max number of nodes down at once>
  gate-between yes|no <why>    every node's Version and every control
                               plane's ServiceList called after the previous
                               node came back and before the next Upgrade
  versions <vmid:version ...>
"""
import json
import ssl
import sys
import urllib.request

d, since, want = sys.argv[1], float(sys.argv[2]), sys.argv[3]
r = json.load(open(d + "/ready"))
ctx = ssl.create_default_context(cafile=r["proxmox"]["ca_cert"])
s = json.load(urllib.request.urlopen(r["control"] + "state", context=ctx))["data"]["talos"]
nodes = [n for n in s["nodes"] if n["vmid"] is not None and n["type"]]
ip_of = {n["vmid"]: n["ip"] for n in nodes}
cps = {n["vmid"] for n in nodes if n["type"] == "controlplane"}
ups = sorted((c for c in s["calls"] if c["method"].endswith("/Upgrade") and c["t"] >= since), key=lambda c: c["t"])
vm_of_ip = {v: k for k, v in ip_of.items()}
print("order", " ".join(str(vm_of_ip.get(c["node"])) for c in ups))
ev = sorted((e for e in s["node_events"] if e["t"] >= since), key=lambda e: e["t"])
down, cpmax, allmax = set(), 0, 0
for e in ev:
    if e["event"] == "down":
        down.add(e["vmid"])
    elif e["event"] == "up":
        down.discard(e["vmid"])
    cpmax = max(cpmax, len(down & cps))
    allmax = max(allmax, len(down))
print("cp-overlap", cpmax)
print("down-overlap", allmax)
ok, why = True, ""
calls = s["calls"]
for a, b in zip(ups, ups[1:]):
    va = vm_of_ip.get(a["node"])
    back = [e["t"] for e in ev if e["vmid"] == va and e["event"] == "up" and e["t"] > a["t"]]
    if not back:
        ok, why = False, "%s never came back before the next upgrade" % va
        break
    lo, hi = back[0], b["t"]
    if hi < lo:
        ok, why = False, "upgrade of %s started before %s was back" % (vm_of_ip.get(b["node"]), va)
        break
    between = [c for c in calls if lo <= c["t"] <= hi]
    for vm, ip in ip_of.items():
        if not any(c["node"] == ip and c["method"].endswith("/Version") for c in between):
            ok, why = False, "no Version on %s between %s back and the next upgrade" % (vm, va)
        if vm in cps and not any(c["node"] == ip and c["method"].endswith("/ServiceList") for c in between):
            ok, why = False, "no ServiceList on control plane %s between %s back and the next upgrade" % (vm, va)
print("gate-between", "yes" if ok else "no", why)
print("versions", " ".join("%s:%s" % (n["vmid"], n["version"]) for n in sorted(nodes, key=lambda n: n["vmid"])))
print("all-at", "yes" if all(n["version"] == want for n in nodes) else "no")
