"""What a cloud-init guest configured at boot, as its guest agent reports it
(civmapply, for strata's cloud-init VM e2e tests t092/t093). Sources:

- FACTS-cloudinit.md §2/§4: nocloud reads a cdrom labelled `cidata`
  (user-data, network-config; a v2 ethernet matched by MAC applies only to
  the NIC with that MAC); Proxmox's own cloud-init drive carries the
  `ipconfig0` address.
- FACTS-cloudinit.md §2 "When the drive is (re)generated": the guest reads
  its seed at boot, so what counts is the config at the last start
  (vm["boot_config"], kept by World.power_on), not a seed swapped since.
"""
import re

import yaml


def booted_address(world, vm, read_cidata, volume):
    """The IPv4 the guest configured at its last boot: from a cdrom labelled
    cidata (network-config v1/v2, matched by MAC when it says so), else
    from a Proxmox cloud-init drive's ipconfig0; None without either."""
    cfg = vm.get("boot_config") or {}
    mac = None
    m = re.match(r"\w+=([0-9A-Fa-f:]{17})", cfg.get("net0", ""))
    if m:
        mac = m.group(1).lower()
    for k, v in sorted(cfg.items()):
        if "media=cdrom" not in str(v):
            continue
        vol = str(v).split(",")[0]
        if "cloudinit" in vol.split(":")[-1]:
            ipc = cfg.get("ipconfig0", "")
            mm = re.search(r"(?:^|,)ip=([0-9.]+)/", ipc)
            return mm.group(1) if mm else None
        item = volume(vm["node"], vol)
        if not item or "_data" not in item:
            continue
        ci = read_cidata(item["_data"])
        if not ci or ci["label"] != "cidata" or "network-config" not in ci["files"]:
            continue
        net = yaml.safe_load(ci["files"]["network-config"]) or {}
        net = net.get("network", net)
        for eth in (net.get("ethernets") or {}).values():
            want = (eth.get("match") or {}).get("macaddress")
            if want and mac and want.lower() != mac:
                continue
            for a in eth.get("addresses") or []:
                if ":" not in a:
                    return a.split("/")[0]
        return None
    return None
