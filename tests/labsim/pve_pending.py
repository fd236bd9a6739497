"""Pending changes of running VMs (FACTS.md §4 Config, Reboot and reset).

"On a stopped VM the changes apply at once. On a running VM, hotpluggable
changes apply now and the rest stay pending." GET config shows pending
values merged in (current=1: the running config); GET .../pending lists
each key with value / pending / delete. A start, and a reboot (a shutdown
followed by a start), apply the pending changes; a reset does not.

What is hot-pluggable depends on the VM's `hotplug` option (apidata.json:
a list of network, disk, cpu, memory, usb, cloudinit; default
network,disk,usb; 1 = the default, 0 = none):

- cores and sockets: never (a CPU hotplug adds vcpus, not cores);
- memory: only with `memory` in hotplug;
- netN: with `network`; disks and cdrom media: with `disk`;
- options that only describe the VM apply at once (qemu-server's "fast
  plug" options): name, tags, description, onboot, protection, startup,
  lock;
- everything else (cpu type, boot order, agent, vga, serial ...) is
  pending until the next start.
"""
import re

DEFAULT_HOTPLUG = "network,disk,usb"
FAST_PLUG = ("name", "tags", "description", "onboot", "protection", "startup", "lock")
DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$")


def hotplug_features(cfg):
    v = str(cfg.get("hotplug", DEFAULT_HOTPLUG))
    if v == "1":
        v = DEFAULT_HOTPLUG
    if v == "0":
        return set()
    return set(x for x in v.split(",") if x)


def is_live(key, cfg):
    """Does a change of key on a running VM with config cfg apply now?"""
    hp = hotplug_features(cfg)
    if key in FAST_PLUG:
        return True
    if key in ("cores", "sockets"):
        return False
    if key == "vcpus":
        return "cpu" in hp
    if key == "memory":
        return "memory" in hp
    if re.fullmatch(r"net\d+", key):
        return "network" in hp
    if DISK_KEY.match(key):
        return "disk" in hp
    return False


def update(vm, new, dels):
    """Apply a config change: set new {key: value}, delete dels. Running VMs
    keep what is not hot-pluggable pending."""
    cfg = vm["config"]
    pend = vm.setdefault("pending", {})
    pdel = vm.setdefault("pending_delete", [])
    running = vm["status"] == "running"
    for k in dels:
        if running and not is_live(k, cfg):
            pend.pop(k, None)
            if k in cfg and k not in pdel:
                pdel.append(k)
        else:
            cfg.pop(k, None)
            pend.pop(k, None)
    for k, v in new.items():
        if k in pdel:
            pdel.remove(k)
        if running and not is_live(k, cfg):
            if cfg.get(k) == v:
                pend.pop(k, None)          # back to the running value: nothing pending
            else:
                pend[k] = v
        else:
            cfg[k] = v
            pend.pop(k, None)


def merged(vm):
    """The config with pending values merged in (GET config)."""
    out = dict(vm["config"])
    out.update(vm.get("pending") or {})
    for k in vm.get("pending_delete") or []:
        out.pop(k, None)
    return out


def listing(vm):
    """GET .../pending: [{key, value?, pending?, delete?}] (apidata returns)."""
    cfg, pend, pdel = vm["config"], vm.get("pending") or {}, vm.get("pending_delete") or []
    out = []
    for k in sorted(set(cfg) | set(pend)):
        e = {"key": k}
        if k in cfg:
            e["value"] = cfg[k]
        if k in pend:
            e["pending"] = pend[k]
        if k in pdel:
            e["delete"] = 1
        out.append(e)
    return out


def apply_pending(vm):
    """At start (and in a reboot's start): pending becomes the config."""
    for k in vm.get("pending_delete") or []:
        vm["config"].pop(k, None)
    vm["config"].update(vm.get("pending") or {})
    vm["pending"] = {}
    vm["pending_delete"] = []
