"""The guest OS of a cloud-init VM (not a Talos VM) as far as Proxmox can
see it: through the QEMU guest agent. Sources:

  [f4]  FACTS.md §4 Guest agent: network-get-interfaces' answer shape and
        its three sync 500s, in order ("No QEMU guest agent configured",
        "VM N is not running", "QEMU guest agent is not running");
  [ci7] FACTS-cloudinit.md §7: the agent needs `agent: 1` in the config
        AND a guest running qemu-guest-agent; before it is up the call
        gives the third error, so poll;
  [ci4] FACTS-cloudinit.md §4: a nocloud seed ISO (label `cidata`)
        uploaded and attached as a cdrom instead of a cloud-init drive;
  [ci2] FACTS-cloudinit.md §2: the drive Proxmox generates (pve_ci.py);
  [issue] issue 18: an image VM whose disk holds no OS boots nothing; the
        guest agent and python3 are packages the user-data must install.

At each power-on the guest boots from its boot disk:
- no OS on it (a blank `STORAGE:SIZE` disk; an OS comes only from
  `import-from` of an image, or a clone of such a disk) -> nothing runs,
  the agent never answers;
- the cloud-init datasource is the VM's Proxmox cloud-init drive (what it
  was last generated with), else a cdrom volume that is an uploaded ISO
  labelled `cidata` (read with pycdlib: Rock Ridge, else Joliet names);
- the addresses come from its network-config (version 1: physical
  entries with static subnets; version 2: ethernets with `addresses`),
  given to the NIC whose MAC matches, else the one named ethN, else net0;
  DHCP gives an address only when one was seeded (`/_labsim/vm` "ip"): the
  lab has no DHCP server;
- the agent runs when the image ships it (knob `image_agent`: regexes on
  the image's URL/volid; default none) `agent_delay` s after power-on, or
  when the user-data is `#cloud-config` whose `packages` holds
  `qemu-guest-agent`, `agent_delay + package_seconds` s after power-on;
  otherwise never ("QEMU guest agent is not running").
- A reset re-reads the drive (so a PUT cloudinit then a reset is seen);
  the addresses are fixed at power-on.
`guest` in the VM's state says what was found (`why`).
"""
import fnmatch
import ipaddress
import re
import time

import yaml

DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio)\d+$")


def boot_item(world, vm):
    cfg = vm["config"]
    order = re.sub(r"^order=", "", str(cfg.get("boot", ""))).split(";")
    for dev in [d for d in order if d] + sorted(k for k in cfg if DISK_KEY.match(k)):
        val = str(cfg.get(dev, ""))
        if not DISK_KEY.match(dev) or not val or "media=cdrom" in val:
            continue
        volid = val.split(",")[0]
        st = world.nodes[vm["node"]]["storage"].get(volid.partition(":")[0])
        return st["items"].get(volid) if st else None
    return None


def nics(cfg):
    """[(N, mac lower)] of the netN keys."""
    out = []
    for k in sorted((k for k in cfg if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
        first = str(cfg[k]).split(",")[0]
        out.append((int(k[3:]), first.partition("=")[2].lower()))
    return out


def datasource(world, vm, read_cidata, drive_key):
    """(files {name: text}, where) of the guest's cloud-init source, or (None, why)."""
    cfg = vm["config"]
    if drive_key(cfg):
        if "ci_files" not in vm:
            return None, "the cloud-init drive was never generated"
        return vm["ci_files"], "cloud-init drive %s" % drive_key(cfg)
    for k in sorted(cfg):
        v = str(cfg[k])
        if not DISK_KEY.match(k) or "media=cdrom" not in v:
            continue
        vol = v.split(",")[0]
        st = world.nodes[vm["node"]]["storage"].get(vol.partition(":")[0])
        item = st["items"].get(vol) if st else None
        if item is None or "_data" not in item:
            continue
        ci = read_cidata(item["_data"])
        if ci is not None and ci["label"] == "cidata":
            return {n: b.decode("utf-8", "replace") for n, b in ci["files"].items()}, "cidata ISO %s" % vol
    return None, "no cloud-init datasource"


def _addr(a, netmask=None):
    try:
        if "/" in str(a):
            return ipaddress.ip_interface(str(a))
        if netmask:
            return ipaddress.ip_interface("%s/%s" % (a, netmask))
        return ipaddress.ip_interface(str(a))
    except ValueError:
        return None


def addresses(netcfg, vmnics):
    """{N: [ip_interface]} from a network-config text (v1 or v2)."""
    try:
        doc = yaml.safe_load(netcfg) or {}
    except yaml.YAMLError:
        return {}
    if isinstance(doc, dict) and isinstance(doc.get("network"), dict):
        doc = doc["network"]
    if not isinstance(doc, dict):
        return {}
    out = {}
    by_mac = {mac: n for n, mac in vmnics}

    def nic_for(mac, name):
        if mac and mac.lower() in by_mac:
            return by_mac[mac.lower()]
        if name:
            for n, _ in vmnics:
                if fnmatch.fnmatch("eth%d" % n, name):
                    return n
        return None

    if doc.get("version") == 1:
        for e in doc.get("config") or []:
            if not isinstance(e, dict) or e.get("type") != "physical":
                continue
            n = nic_for(e.get("mac_address"), e.get("name"))
            for s in e.get("subnets") or []:
                if isinstance(s, dict) and s.get("type") in ("static", "static6") and n is not None:
                    a = _addr(s.get("address"), s.get("netmask"))
                    if a is not None:
                        out.setdefault(n, []).append(a)
    elif doc.get("version") == 2:
        for name, e in (doc.get("ethernets") or {}).items():
            if not isinstance(e, dict):
                continue
            m = e.get("match") or {}
            n = nic_for(m.get("macaddress"), m.get("name") or (None if m else name))
            for a in e.get("addresses") or []:
                a = _addr(a)
                if a is not None and n is not None:
                    out.setdefault(n, []).append(a)
    return out


def installs_agent(user_data):
    if not user_data or not user_data.startswith("#cloud-config"):
        return False
    try:
        doc = yaml.safe_load(user_data) or {}
    except yaml.YAMLError:
        return False     # cloud-init cannot read it: no packages
    for p in (doc.get("packages") or []) if isinstance(doc, dict) else []:
        name = p[0] if isinstance(p, list) and p else p
        if name == "qemu-guest-agent":
            return True
    return False


def boot(world, vm, read_cidata, drive_key):
    """The guest's state at a power-on (vm["guest"])."""
    now = time.time()
    k = world.knobs
    g = {"os": None, "agent_at": None, "addresses": {}, "why": ""}
    item = boot_item(world, vm)
    os_ = item.get("os") if item else None
    if not os_:
        g["why"] = "the boot disk holds no OS image"
        return g
    g["os"] = os_
    files, where = datasource(world, vm, read_cidata, drive_key)
    vmnics = nics(vm["config"])
    if files:
        g["addresses"] = {str(n): [str(a) for a in v]
                          for n, v in addresses(files.get("network-config", ""), vmnics).items()}
    delay, agent = None, "not installed (the image lacks it, the user-data does not install it)"
    if any(re.search(rx, os_) for rx in k.get("image_agent", [])):
        delay, agent = k["agent_delay"], "from the image"
    elif files and installs_agent(files.get("user-data")):
        delay, agent = k["agent_delay"] + k.get("package_seconds", 30.0), "installed by user-data"
    if delay is not None:
        g["agent_at"] = now + delay * world.scale
    g["why"] = "%s; agent %s" % (where, agent)
    return g


def agent_running(vm):
    g = vm.get("guest")
    return bool(g and g.get("agent_at") is not None and time.time() >= g["agent_at"])


def interfaces(vm):
    """[f4] network-get-interfaces' result for a cloud-init guest."""
    g = vm.get("guest") or {}
    res = [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                             {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]}]
    for n, mac in nics(vm["config"]):
        ips = []
        for a in (g.get("addresses") or {}).get(str(n), []):
            a = ipaddress.ip_interface(a)
            ips.append({"ip-address": str(a.ip), "ip-address-type": "ipv%d" % a.version,
                        "prefix": a.network.prefixlen})
        if not ips and n == 0 and vm.get("ip"):
            ips.append({"ip-address": vm["ip"], "ip-address-type": "ipv4", "prefix": 24})   # a seeded lease
        if mac:
            b = bytes.fromhex(mac.replace(":", ""))
            eui = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:]
            ll = ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui)
            ips.append({"ip-address": str(ll), "ip-address-type": "ipv6", "prefix": 64})
        res.append({"name": "eth%d" % n, "hardware-address": mac, "ip-addresses": ips,
                    "statistics": {"rx-bytes": 0, "rx-packets": 0, "tx-bytes": 0, "tx-packets": 0,
                                   "rx-errs": 0, "rx-dropped": 0, "tx-errs": 0, "tx-dropped": 0}})
    return res
