"""POST /nodes/{node}/qemu/{vmid}/clone and what a destroy frees, as the
real Proxmox does them. Sources (each rule cites one):

  [facts4]  FACTS.md §4 Clone and Destroy; [facts3] FACTS.md §3 locks;
  [ci6]     FACTS-cloudinit.md §6 template and clone;
  [schema]  apidata.json clone_vm / destroy_vm parameters;
  [upstream] qemu-server src/PVE/API2/Qemu.pm clone_vm, where FACTS gives
            the rule but not the text: its early checks run before the
            worker forks (sync 500), in this order: pool, target node,
            storage, source config and lock, storage/format for linked
            clones, target with local disks, newid config, per-drive
            clone/copy feature; the worker takes a shared flock on the
            source (exclusive, 1 s timeout, when the source is running)
            and writes `lock: clone` into the new config at once.

The clone (task `qmclone`, id = the SOURCE vmid [facts2 UPID table]):

- full: `full` given, else 0 for a template and 1 for any other VM
  [facts4]. A linked clone (full=0) of a disk that is not a base volume,
  or on a storage without linked clones, is refused: "Linked clone feature
  is not supported for drive 'scsi0'" [upstream]; so a normal VM is always
  cloned full [ci6].
- `storage`/`format` only with a full clone [facts4].
- `target`: only if every disk is on shared storage [facts4].
- newid with a config already: "unable to create VM N: config file already
  exists" [facts4] (labsim: for an id on any node; vmids are cluster-wide).
- The new VM: `lock: clone` from the call on (GET config shows it), new
  MACs on every netN, new smbios1 uuid, new vmgenid when set, no template
  flag, name = `name` or "Copy-of-VM-<source name or vmid>", description,
  no pending changes and no unusedN [facts4, upstream].
- Volumes: a full clone copies every disk to `<storage>:vm-<newid>-disk-N`
  (the source's storage unless `storage`); a linked clone's disk is
  `<storage>:<base volname>/vm-<newid>-disk-N` on the template's storage,
  listed with `parent` = the base volname and tied to it (pve-storage's
  naming of linked clones; [facts7] content items have `parent`). The
  cloud-init drive is always fully copied to `vm-<newid>-cloudinit`
  [facts4], with what the template's drive held [ci6].
- Clones of one stopped template run in parallel (shared lock) [facts3];
  clones of a running VM take its flock exclusively: one that cannot get
  it within 1 s (time-scaled) fails "can't lock file
  '/var/lock/qemu-server/lock-<vmid>.conf' - got timeout" [facts3, upstream].
- A failed clone (knob task_fail qmclone) removes the new config and
  volumes: "clone failed: <why>" [upstream].
"""
import random
import re
import time
import uuid

LINKED_TYPES = ("lvmthin", "zfspool", "rbd", "dir", "nfs", "cifs", "glusterfs", "btrfs")
DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$")


class CloneError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _mac():
    return "BC:24:11:%02X:%02X:%02X" % tuple(random.randrange(256) for _ in range(3))


def new_mac(value):
    """netN with a fresh MAC [facts4] in the canonical model=MAC form."""
    parts = value.split(",")
    k, _, v = parts[0].partition("=")
    if k == "model":
        k = v
    parts[0] = "%s=%s" % (k, _mac())
    return ",".join(parts)


def is_cdrom(value):
    return "media=cdrom" in value.split(",")[1:]


def is_cloudinit_vol(vol):
    return re.search(r":vm-\d+-cloudinit(\.\w+)?$", vol) is not None


def is_base_vol(vol):
    return re.match(r"^[^:]+:base-\d+-disk-\d+(\.\w+)?$", vol) is not None


def storage_of(world, node, vol):
    return world.nodes[node]["storage"].get(vol.partition(":")[0])


def check(api, p, src, u):
    """The sync checks of a clone; returns (full, target_node, storage)."""
    w = api.w
    node = p["node"]
    # [upstream] pool first (check_pool_exist: a 403) -- pve_pools.py
    api.check_create_pool(p)
    target = p.get("target")
    if target == node:
        target = None
    if target and target not in w.nodes:
        raise CloneError(500, "no such cluster node '%s'" % target)
    sto = p.get("storage")
    if sto is not None:
        st = w.nodes[node]["storage"].get(sto)
        if st is None:
            raise CloneError(500, "storage '%s' does not exist" % sto)
        if not st.get("enabled", 1):
            raise CloneError(500, "storage '%s' is disabled" % sto)
        if target and not st["shared"]:
            raise CloneError(500, "can't clone to non-shared storage '%s'" % sto)
    cfg = src["config"]
    if cfg.get("lock"):
        # [facts3] clone (source locked) is a sync 500
        raise CloneError(500, "VM is locked (%s)" % cfg["lock"])
    if p.get("snapname"):
        # labsim models no snapshots, so none exists [upstream]
        raise CloneError(500, "snapshot '%s' does not exist" % p["snapname"])
    template = str(cfg.get("template", "0")) == "1"
    full = (str(p["full"]) in ("1", "True", "true")) if "full" in p else not template
    for k in ("storage", "format"):
        if k in p and not full:
            raise CloneError(500, "parameter '%s' not allowed for linked clones" % k)
    disks = {k: v for k, v in cfg.items() if DISK_KEY.match(k)
             and (not is_cdrom(str(v)) or is_cloudinit_vol(str(v).split(",")[0]))}
    if target:
        for k, v in disks.items():
            st = storage_of(w, node, v.split(",")[0])
            if st is None or not st["shared"]:
                raise CloneError(500, "can't clone VM to node '%s' (VM uses local storage)" % target)
    newid = int(p["newid"])
    if newid in w.vms:
        raise CloneError(500, "unable to create VM %d: config file already exists" % newid)
    for k in sorted(disks):
        vol = disks[k].split(",")[0]
        if is_cloudinit_vol(vol) or full:
            continue      # always copied; every modelled storage can copy
        st = storage_of(w, node, vol)
        if not is_base_vol(vol) or st is None or st["type"] not in LINKED_TYPES:
            raise CloneError(500, "Linked clone feature is not supported for drive '%s'" % k)
    dest = sto
    if dest is not None and "Datastore.AllocateSpace" not in api.privs_at(u, "/storage/" + dest):
        # [ci6] cloning to another storage also needs Datastore.AllocateSpace there
        raise CloneError(403, "Permission check failed (/storage/%s, Datastore.AllocateSpace)" % dest)
    if dest is not None and "images" not in w.nodes[node]["storage"][dest]["content"]:
        raise CloneError(500, "storage '%s' does not support vm images" % dest)
    return full, target, dest


def _next_disk(st, sid, newid):
    n = 0
    while any(re.search(r"(^|[:/])vm-%d-disk-%d(\.\w+)?$" % (newid, n), v) for v in st["items"]):
        n += 1
    return n


def copy_volumes(api, src, newid, full, dest, newvols):
    """The new VM's drive values; the allocated volids are appended to
    newvols (freed again if the clone fails)."""
    w = api.w
    node = src["node"]
    out = {}
    for k in sorted(src["config"]):
        v = str(src["config"][k])
        if not DISK_KEY.match(k) or is_cdrom(v) and not is_cloudinit_vol(v.split(",")[0]):
            continue
        vol, _, rest = v.partition(",")
        sid = vol.partition(":")[0]
        st = w.nodes[node]["storage"].get(sid)
        item = st["items"].get(vol) if st else None
        if is_cloudinit_vol(vol):
            tsid = dest or sid
            tst = w.nodes[node]["storage"][tsid]
            fmt = "qcow2" if tst["type"] in ("dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs") else "raw"
            nvol = "%s:vm-%d-cloudinit%s" % (tsid, newid, ".qcow2" if fmt == "qcow2" else "")
            tst["items"][nvol] = {"volid": nvol, "content": "images", "format": fmt, "size": 4 << 20,
                                  "vmid": newid, "ctime": int(time.time())}
        elif full:
            tsid = dest or sid
            tst = w.nodes[node]["storage"][tsid]
            nvol = "%s:vm-%d-disk-%d" % (tsid, newid, _next_disk(tst, tsid, newid))
            tst["items"][nvol] = dict(item or {"content": "images", "format": "raw", "size": 0},
                                      volid=nvol, vmid=newid, ctime=int(time.time()), uid=str(uuid.uuid4()))
            tst["items"][nvol].pop("parent", None)
        else:
            basename = vol.partition(":")[2]
            nvol = "%s:%s/vm-%d-disk-%d" % (sid, basename, newid, _next_disk(st, sid, newid))
            st["items"][nvol] = dict(item or {"content": "images", "format": "raw", "size": 0},
                                     volid=nvol, vmid=newid, ctime=int(time.time()),
                                     uid=str(uuid.uuid4()), parent=basename, base=vol)
            tst = st
        newvols.append((tst, nvol))
        out[k] = nvol + ("," + rest if rest else "")
    return out


def h_clone(api, p, u, api_error):
    w = api.w
    node = p["node"]
    src = w.vm(node, p["vmid"])
    try:
        full, target, dest = check(api, p, src, u)
    except CloneError as e:
        raise api_error(e.status, e.message)
    newid = int(p["newid"])
    vmid = src["vmid"]
    # [upstream] the worker writes "lock: clone" into the new config at once
    new = {"vmid": newid, "node": node, "status": "stopped", "config": {"lock": "clone"},
           "acpi_ignored": False, "agent_ok": True, "started": None, "shutdown_at": None,
           "created_at": time.time()}
    w.vms[newid] = new
    secs = w.knobs["task_seconds_by_type"].get("qmclone", w.knobs["task_seconds"])
    if full and w.knobs.get("clone_full_seconds") is not None:
        secs = w.knobs["clone_full_seconds"]     # a full copy of the disks takes longer (bench/vms.sh)
    now = time.time()
    fail = w.knobs["task_fail"].get("qmclone")
    delay = 0.0
    if src["status"] == "running":
        # [facts3] a clone of a running VM takes the source's flock
        # exclusively; [upstream] lock_config_full(vmid, 1): 1 s timeout
        held = src.get("flock_until") or 0
        if held > now:
            if held - now > 1.0 * w.scale:
                fail = fail or ("can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % vmid)
                secs = 1.0
            else:
                delay = held - now
        if not fail:
            src["flock_until"] = now + delay + secs * w.scale

    def work():
        newvols = []
        try:
            cfg = {}
            for k, v in src["config"].items():
                if k in ("lock", "template", "digest", "snapshots", "parent", "snaptime", "vmstate") \
                        or re.fullmatch(r"unused\d+", k):
                    continue
                if re.fullmatch(r"net\d+", k):
                    v = new_mac(str(v))
                cfg[k] = v
            cfg.update(copy_volumes(api, src, newid, full, dest, newvols))
            sm = [x for x in str(cfg.get("smbios1", "")).split(",") if x and not x.startswith("uuid=")]
            cfg["smbios1"] = ",".join(["uuid=" + str(uuid.uuid4())] + sm)
            if cfg.get("vmgenid"):
                cfg["vmgenid"] = str(uuid.uuid4())
            cfg["name"] = p.get("name") or "Copy-of-VM-%s" % src["config"].get("name", vmid)
            if p.get("description"):
                cfg["description"] = p["description"]
            new["config"] = cfg
            new["node"] = target or node
            # [ci6] the cloud-init drive is copied: it holds what the source's held
            if "ci_files" in src:
                new["ci_files"] = dict(src["ci_files"])
                new["ci_active"] = dict(src.get("ci_active", {}))
            api.pool_add(p.get("pool"), newid)
        except Exception as e:  # noqa: BLE001 - becomes the task's error
            undo(newvols)
            raise api_error(500, "clone failed: %s" % getattr(e, "message", e))

    def undo(newvols):
        for st, vol in newvols:
            st["items"].pop(vol, None)
        w.vms.pop(newid, None)

    if fail:
        def failing():
            undo([])
            raise api_error(500, "clone failed: %s" % fail)
        upid = w.new_task(node, "qmclone", vmid, u, failing, seconds=secs + delay / w.scale)
        w.tasks[upid]["fail"] = None      # the failure is the work's: it must run
        return upid
    return w.new_task(node, "qmclone", vmid, u, work, seconds=secs + delay / w.scale)


# ---------------------------------------------------------------- destroy

def referenced(cfg, pending):
    """The volumes a VM's config names: drives (not cdrom media other than
    its cloud-init drive), unusedN, and pending drive values [facts4]."""
    out = set()
    for src in (cfg, pending or {}):
        for k, v in src.items():
            v = str(v)
            vol = v.split(",")[0]
            if DISK_KEY.match(k) and (not is_cdrom(v) or is_cloudinit_vol(vol)) or re.fullmatch(r"unused\d+", k):
                if ":" in vol:
                    out.add(vol)
    return out


def base_in_use(world, vm):
    """[facts4] the volid of a base disk of vm that backs a linked clone,
    or None ([upstream] destroy_vm checks this before anything is freed)."""
    for st in world.nodes[vm["node"]]["storage"].values():
        for it in st["items"].values():
            base = it.get("base")
            if base and it.get("vmid") != vm["vmid"] and base in st["items"] \
                    and st["items"][base].get("vmid") == vm["vmid"]:
                return base
    return None


def destroy_volumes(world, vm, unreferenced):
    """The (storage dict, volid) pairs a destroy frees: what the config
    references, plus with destroy-unreferenced-disks=1 every volume of
    this vmid on an enabled storage [schema, facts4]."""
    refs = referenced(vm["config"], vm.get("pending"))
    out = []
    for st in world.nodes[vm["node"]]["storage"].values():
        for volid, it in st["items"].items():
            if volid in refs or unreferenced and it.get("vmid") == vm["vmid"] and st.get("enabled", 1):
                out.append((st, volid))
    return out


def register_unused(world, vm, key):
    """A drive deleted from the config [upstream qemu-server
    vmconfig_register_unused_drive]: a cloud-init drive's volume is freed,
    another disk's volume of this VM stays as the next free `unusedN`
    (so a destroy still frees it), a cdrom is only detached."""
    v = str(vm["config"].get(key, ""))
    if not DISK_KEY.match(key) or ":" not in v.split(",")[0]:
        return
    vol = v.split(",")[0]
    st = storage_of(world, vm["node"], vol)
    if is_cloudinit_vol(vol):
        if st is not None:
            st["items"].pop(vol, None)
        return
    if is_cdrom(v):
        return
    item = st["items"].get(vol) if st is not None else None
    if item is None or item.get("vmid") != vm["vmid"]:
        return
    n = 0
    while "unused%d" % n in vm["config"]:
        n += 1
    vm["config"]["unused%d" % n] = vol


def check_import_from_vm(api, p, u):
    """FACTS.md §6 Import: importing from another VM's disk needs VM.Clone
    on that VM (403 in FACTS.md §1's form); create and config."""
    for k, v in p.items():
        if not DISK_KEY.match(k) or not isinstance(v, str) or "import-from=" not in v:
            continue
        src = _props_of(v).get("import-from", "")
        st = api.w.nodes[p["node"]]["storage"].get(src.partition(":")[0]) if ":" in src else None
        item = st["items"].get(src) if st else None
        owner = item.get("vmid") if item else None
        if owner is not None and str(owner) != str(p.get("vmid")):
            path = "/vms/%s" % owner
            if "VM.Clone" not in api.privs_at(u, path):
                raise CloneError(403, "Permission check failed (%s, VM.Clone)" % path)


def _props_of(v):
    return dict(x.split("=", 1) for x in v.split(",")[1:] if "=" in x)
