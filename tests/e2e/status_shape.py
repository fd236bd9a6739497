"""Check the shape of `strata status -o json` (docs/json.md, "status -o
json"): one `machines` array on every platform, each machine with the same
common fields and its provider's details as fields of it (used by t003 for
Proxmox, t073 for vps).

usage: status_shape.py FILE PLATFORM

Exits 1 with the first shape error. Prints one line per machine:
  NAME ROLE PROVIDER DETAILS
DETAILS: vmid=N placement=P state=S on proxmox, server=S disk=D image=I
on vps.
"""
import json
import sys

d = json.load(open(sys.argv[1]))
platform = sys.argv[2]
STR_OR_NULL = (str, type(None))
COMMON = {"name": str, "role": STR_OR_NULL, "provider": str,
          "address": STR_OR_NULL, "talos": STR_OR_NULL, "etcd": STR_OR_NULL,
          "kubernetes": STR_OR_NULL, "config": str}
DETAILS = {
    "proxmox": {"vmid": int, "placement": STR_OR_NULL, "state": str,
                "differs": list, "desired": (dict, type(None)),
                "live": (dict, type(None))},
    "vps": {"server": str, "disk": str, "image": STR_OR_NULL},
}
assert platform in DETAILS, "usage: status_shape.py FILE proxmox|vps"
assert d.get("format_version") == 2, d.get("format_version")
assert d.get("platform") == platform, "platform %r" % d.get("platform")
ms = d.get("machines")
assert isinstance(ms, list) and ms, "no machines array"
want = dict(COMMON, **DETAILS[platform])
other = set(k for p, f in DETAILS.items() if p != platform for k in f) - set(want)
for m in ms:
    assert isinstance(m, dict), m
    for k, t in want.items():
        assert k in m, "machine %s without %r" % (m.get("name"), k)
        assert isinstance(m[k], t), "machine %s: %s is %r" % (m.get("name"), k, m[k])
    assert not other & set(m), "machine %s has another provider's fields %s" % (
        m["name"], sorted(other & set(m)))
    assert m["provider"] == platform, m["provider"]
s = d.get("summary")
assert isinstance(s, dict) and s.get("machines") == len(ms), s
for k in ("talos_nodes", "talos_up", "kubernetes_ready"):
    assert isinstance(s.get(k), int), "summary without %r" % k
if platform == "proxmox":
    # the deprecated alias of format 2 (docs/json.md): the same objects
    assert d.get("vms") == ms, "vms is not the machines array"
    assert s.get("vms") == s["machines"], s
else:
    assert "vms" not in d and "vms" not in s, "a vps status with vms"
for m in ms:
    if platform == "proxmox":
        det = "vmid=%d placement=%s state=%s" % (m["vmid"], m["placement"], m["state"])
    else:
        det = "server=%s disk=%s image=%s" % (m["server"], m["disk"], m["image"])
    print(m["name"], m["role"], m["provider"], det)
