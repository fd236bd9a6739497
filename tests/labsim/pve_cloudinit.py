"""Cloud-init drives, templates and the node version, as the real Proxmox
does them. Every rule names its source under ../shared/reference/proxmox/.

- FACTS.md §6 / FACTS-cloudinit.md §1: `<storage>:cloudinit` allocates
  `vm-<vmid>-cloudinit` (4 MiB; `.qcow2` on file storages) with
  `media=cdrom`; the storage needs `images` content; one per VM.
- FACTS.md §4 / FACTS-cloudinit.md §6: POST .../template refuses a running,
  locked or already-template VM (sync 500, before a UPID); the task sets
  `template: 1` and renames the disks to `base-<vmid>-disk-N`.
- apidata.json `/nodes/{node}/version`: {version, release, repoid}.
"""
import re
import time

FILE_TYPES = ("dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs")


def is_cloudinit(volname):
    return volname == "cloudinit"


def allocate_drive(sim, node, key, storage, st, vmid, rest, allocate, api_error):
    """The value stored for `key: storage:cloudinit[,opts]`."""
    if "images" not in st["content"]:
        raise api_error(500, "storage '%s' does not support vm images" % storage)
    fmt = "qcow2" if st["type"] in FILE_TYPES else "raw"
    name = "vm-%d-cloudinit%s" % (vmid, ".qcow2" if fmt == "qcow2" else "")
    volid = "%s:%s" % (storage, name)
    if allocate:
        st["items"][volid] = {"volid": volid, "content": "images", "format": fmt,
                              "size": 4 << 20, "vmid": vmid, "ctime": int(time.time())}
    opts = [x for x in rest if not x.startswith("media=")]
    return ",".join([volid] + opts + ["media=cdrom"])


_DRIVE_KEY = re.compile(r"(ide|sata|scsi|virtio)\d+")
_CI_VOLUME = re.compile(r"(^|[:-])cloudinit(\.\w+)?$")


def check_one_drive(cfg, new):
    """The key of a second cloud-init drive, with the one already there.
    FACTS.md §6 quotes the message as "... cloud-init drive is already
    attached at 'ide2'" (its start elided)."""
    def drive(k, v):   # a drive key whose volume is STORAGE:cloudinit or vm-N-cloudinit
        return _DRIVE_KEY.fullmatch(k) and _CI_VOLUME.search(str(v).split(",")[0])
    have = [k for k, v in cfg.items() if drive(k, v)]
    for k, v in new.items():
        if drive(k, v) and k not in have:
            if have:
                return k, have[0]
            have.append(k)
    return None


def h_template(sim, p, u, api_error):
    vm = sim.w.vm(p["node"], p["vmid"])
    cfg = vm["config"]
    # FACTS.md §4: sync 500s before a UPID
    if vm["status"] == "running":
        raise api_error(500, "you can't convert a VM to template if VM is running")
    if str(cfg.get("template", "0")) == "1":
        # the reference names the case, not its text; strata never reads it
        raise api_error(500, "VM %d is already a template" % vm["vmid"])
    if cfg.get("lock"):
        raise api_error(500, "VM is locked (%s)" % cfg["lock"])

    def work():
        n = 0
        for k in sorted(cfg):
            if p.get("disk") and k != p["disk"]:
                continue      # FACTS-cloudinit.md §6: disk= converts that disk only
            v = str(cfg[k])
            vol = v.split(",")[0]
            m = re.fullmatch(r"([^:]+):vm-%d-disk-(\d+)(\.\w+)?" % vm["vmid"], vol)
            if not m:
                continue
            st = sim.w.nodes[vm["node"]]["storage"].get(m.group(1))
            base = "%s:base-%d-disk-%s%s" % (m.group(1), vm["vmid"], m.group(2), m.group(3) or "")
            if st and vol in st["items"]:
                item = st["items"].pop(vol)
                item["volid"] = base
                st["items"][base] = item
            cfg[k] = base + v[len(vol):]
            n += 1
        cfg["template"] = 1
    return sim.w.new_task(p["node"], "qmtemplate", vm["vmid"], u, work)


def h_node_version(sim, p, u):
    v = sim.w.knobs.get("pve_version", "8.4.1")
    return {"version": v, "release": ".".join(v.split(".")[:2]), "repoid": "2a5fa54a"}
