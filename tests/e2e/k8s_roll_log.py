"""Check a rolling Kubernetes upgrade from the simulator's logs (t113-t115).

usage: k8s_roll_log.py LABSIM_DIR SINCE VERSION

Prints one line per finding:
  order <vmid:component ...>   the containers that moved to VERSION since
                               SINCE, in the order the nodes' kubelets ran
                               them (the node log's "k8s" events)
  one-at-a-time yes|no <why>   no two node steps overlapped: every step's
                               change happened before the next
                               ApplyConfiguration of the roll was sent
  gate-between yes|no <why>    every node's Version and every control
                               plane's ServiceList called between a step's
                               change and the next step's ApplyConfiguration
  no-reboot yes|no             no node went down since SINCE
  kubelets <vmid:version ...>  what each node's kubelet reports (state)
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
vm_of_ip = {v: k for k, v in ip_of.items()}
cps = {n["vmid"] for n in nodes if n["type"] == "controlplane"}
ev = sorted((e for e in s["node_events"] if e["t"] >= since), key=lambda e: e["t"])
moves = [e for e in ev if e["event"].startswith("k8s ") and e["event"].endswith(":v" + want)]
print("order", " ".join("%s:%s" % (e["vmid"], e["event"].split()[1]) for e in moves))
applies = sorted((c for c in s["calls"] if c["method"].endswith("/ApplyConfiguration") and c["t"] >= since
                  and not c["maintenance"]), key=lambda c: c["t"])
ok, why = True, ""
gate, gwhy = True, ""
for m in moves:
    later = [a for a in applies if a["t"] > m["t"]]
    before = [a for a in applies if a["t"] <= m["t"]]
    if not before:
        ok, why = False, "%s changed with no ApplyConfiguration before it" % m["event"]
        break
    # the apply that caused it: the last one to that node before it
    mine = [a for a in before if a["node"] == m["ip"]]
    if not mine:
        ok, why = False, "%s on %s changed before its node got a config" % (m["event"], m["vmid"])
        break
    others = [a for a in before if a["t"] > mine[-1]["t"] and a["node"] != m["ip"]]
    if others:
        ok, why = False, "an apply to %s went out before %s on %s had changed" % (
            vm_of_ip.get(others[0]["node"]), m["event"].split()[1], m["vmid"])
        break
    if later:
        between = [c for c in s["calls"] if m["t"] <= c["t"] <= later[0]["t"]]
        for vm, ip in ip_of.items():
            if not any(c["node"] == ip and c["method"].endswith("/Version") for c in between):
                gate, gwhy = False, "no Version on %s after %s on %s" % (vm, m["event"].split()[1], m["vmid"])
            if vm in cps and not any(c["node"] == ip and c["method"].endswith("/ServiceList") for c in between):
                gate, gwhy = False, "no ServiceList on %s after %s on %s" % (vm, m["event"].split()[1], m["vmid"])
print("one-at-a-time", "yes" if ok else "no", why)
print("gate-between", "yes" if gate else "no", gwhy)
print("no-reboot", "no" if any(e["event"] == "down" for e in ev) else "yes")
print("kubelets", " ".join("%s:%s" % (n["vmid"], (n.get("k8s") or {}).get("kubelet", "?").rsplit(":", 1)[-1])
                           for n in sorted(nodes, key=lambda n: n["vmid"])))
