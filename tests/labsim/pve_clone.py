"""Clone of a VM or template, and what a cloud-init guest's agent reports
(written minimally by civmapply for strata's cloud-init VM e2e test; the
civmsim branch teaches the full set). Sources:

- FACTS.md §3: a clone sets `lock: clone` on the new VM only (the source
  gets a shared flock: clones of one template run in parallel).
- FACTS.md §4 Clone: `full` defaults to linked for a template, full for a
  VM; `storage`/`format` only with a full clone (sync 500 "parameter
  'storage' not allowed for linked clones"); the new VM gets fresh MACs,
  no template flag, `name` given or `Copy-of-VM-<srcname>`; cloud-init
  drives are always fully copied; `target` only when every disk is on
  shared storage; newid with a config already: sync 500 "unable to create
  VM <newid>: config file already exists".
- FACTS-cloudinit.md §2/§4: a guest reads a cdrom labelled `cidata`
  (user-data, network-config); Proxmox's own drive carries ipconfig0.
"""
import re
import time

import yaml


def h_clone(sim, p, u, api_error, param_error, gen_mac, disk_re):
    src = sim.w.vm(p["node"], p["vmid"])
    newid = int(p["newid"])
    scfg = src["config"]
    is_tpl = str(scfg.get("template", "0")) == "1"
    full = str(p.get("full", "0" if is_tpl else "1")) in ("1", "true")
    if not full and (p.get("storage") or p.get("format")):
        raise api_error(500, "parameter '%s' not allowed for linked clones"
                        % ("storage" if p.get("storage") else "format"))
    if newid in sim.w.vms:
        raise api_error(500, "unable to create VM %d: config file already exists" % newid)
    if scfg.get("lock"):
        raise api_error(500, "VM is locked (%s)" % scfg["lock"])
    target = p.get("target") or src["node"]
    if target not in sim.w.nodes:
        raise param_error({"target": "no such cluster node '%s'" % target})
    sim.check_create_pool(p)
    vm = {"vmid": newid, "node": target, "status": "stopped", "config": {"lock": "clone"},
          "acpi_ignored": False, "agent_ok": True, "started": None, "shutdown_at": None,
          "created_at": time.time()}
    sim.w.vms[newid] = vm

    def work():
        new = {}
        n = 0
        for k in sorted(scfg):
            v = str(scfg[k])
            if k in ("template", "lock", "digest"):
                continue
            if disk_re.match(k) and "media=cdrom" not in v or "cloudinit" in v.split(",")[0]:
                vol = v.split(",")[0]
                storage, name = vol.split(":", 1)
                sst = sim.w.nodes[src["node"]]["storage"][storage]
                item = sst["items"].get(vol, {"size": 4 << 20, "format": "raw"})
                if "cloudinit" in name:
                    dst_name = storage
                    newvol = "%s:vm-%d-cloudinit%s" % (storage, newid,
                                                       ".qcow2" if name.endswith(".qcow2") else "")
                else:
                    dst_name = p.get("storage") if full and p.get("storage") else storage
                    newvol = "%s:vm-%d-disk-%d" % (dst_name, newid, n)
                    n += 1
                dst = sim.w.nodes[target]["storage"][dst_name]
                if "images" not in dst["content"]:
                    del sim.w.vms[newid]
                    raise api_error(500, "storage '%s' does not support vm images" % dst_name)
                dst["items"][newvol] = {"volid": newvol, "content": "images",
                                        "format": item.get("format", "raw"), "size": item["size"],
                                        "vmid": newid, "ctime": int(time.time())}
                v = newvol + v[len(vol):]
            elif re.fullmatch(r"net\d+", k):
                parts = v.split(",")
                parts[0] = parts[0].split("=")[0] + "=" + gen_mac()
                v = ",".join(parts)
            new[k] = v
        new["name"] = p.get("name") or "Copy-of-VM-%s" % scfg.get("name", src["vmid"])
        if p.get("description") is not None:
            new["description"] = p["description"]
        vm["config"] = new
        sim.pool_add(p.get("pool"), newid)
    return sim.w.new_task(src["node"], "qmclone", src["vmid"], u, work)


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
