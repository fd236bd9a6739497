"""Proxmox VE rules the simulator applies beyond the parameter schema.

Each function is a hook called from labsim.py and cites its source:
FACTS.md / FACTS-cloudinit.md under ../shared/reference/proxmox/, the
schema's `returns`, or the upstream code line whose message we reproduce
(named where FACTS gives the rule but not the text).
"""
import re
import time


class Refusal(Exception):
    """status, message, errors: turned into labsim's ApiError by the caller."""

    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_refusal(key, why):
    return Refusal(400, "Parameter verification failed.", {key: why})


# ------------------------------------------------------------ tags

def normalize_tags(s):
    """FACTS.md §6 tags: split on ';', ',' or whitespace, stored lower-cased,
    deduplicated, sorted and joined with ';'."""
    return ";".join(sorted({t.lower() for t in re.split(r"[;,\s]+", s) if t}))


# ------------------------------------------------------------ root-only options

def check_root_only(params, user):
    """qemu-server API2/Qemu.pm (config, start, stop, shutdown, destroy):
    raise_param_exc({ skiplock => "Only root may use this option." }) unless
    the user is exactly root@pam. FACTS.md §1: a token (root@pam!x) is not
    root for this check. A 400 parameter error, not a 403."""
    for k in ("skiplock", "keepActive"):   # FACTS.md §4 Stop: keepActive is root only too
        if k in params and str(params[k]) not in ("0", "False", "false") and user != "root@pam":
            raise param_refusal(k, "Only root may use this option.")


# ------------------------------------------------------------ drives

def check_drive(key, vol, opts, storage_of, volume_of):
    """Rules for one disk/cdrom drive string before allocation.

    vol: the file part; opts: the other key=value options; storage_of(id)
    -> storage dict or None; volume_of(volid) -> item dict or None.
    """
    if vol in ("none", "cdrom"):
        return
    st_id, _, volname = vol.partition(":")
    st = storage_of(st_id)
    item = volume_of(vol) if st is not None else None
    # FACTS.md §6 CD-ROM: an ISO volume needs media=cdrom, else 400
    if item is not None and item.get("content") == "iso" and opts.get("media") != "cdrom":
        raise param_refusal(key, "explicit 'media=cdrom' is required for iso images")
    if opts.get("media") == "cdrom" and st is not None and item is not None \
            and item.get("content") != "iso":
        # FACTS.md §7 content types: a cdrom holds an ISO volume
        raise Refusal(500, "volume '%s' has wrong content type '%s' for a cdrom" % (vol, item.get("content")))
    src = opts.get("import-from")
    if src is not None:
        # FACTS.md §6 Import / FACTS-cloudinit.md §5: size exactly 0
        m = re.fullmatch(r"(\d+(\.\d+)?)", volname)
        if not m or float(volname) != 0:
            raise param_refusal(key, "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>")
        if src.startswith("/"):
            # FACTS-cloudinit.md §5: an absolute path is root@pam only
            raise param_refusal(key, "Only root can pass arbitrary filesystem paths.")
        s_item = volume_of(src)
        if s_item is None:
            raise Refusal(500, "volume '%s' does not exist" % src)
        if s_item.get("content") not in ("images", "import"):
            # FACTS-cloudinit.md §5 "An ISO volume is refused"; the text is
            # qemu-server's check of the source volume's type
            raise param_refusal(key, "%s has wrong type '%s' - needs to be 'images' or 'import'"
                                % (src, s_item.get("content")))


# ------------------------------------------------------------ start

def check_start(vm, node):
    """Task errors of qmstart (FACTS.md §4 Start, §5 CPU)."""
    cfg = vm["config"]
    vcpus = int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1))
    if vcpus > node["maxcpu"]:
        raise Refusal(500, "MAX %d vcpus allowed per VM on this node" % node["maxcpu"])
    for k in sorted(cfg):
        if re.fullmatch(r"net\d+", k):
            m = re.search(r"(?:^|,)bridge=([^,]+)", cfg[k])
            # qemu-server PVE/Network.pm read_bridge_mtu:
            # die "bridge '$bridge' does not exist\n"
            if m and m.group(1) not in node["bridges"]:
                raise Refusal(500, "bridge '%s' does not exist" % m.group(1))


# ------------------------------------------------------------ responses

def typed_config(cfg, returns_props, lookup_prop):
    """GET config as the schema's `returns` types it: integers and booleans
    as JSON numbers (FACTS.md §5 Memory: `memory` stays a string, `cores`
    and similar are numbers)."""
    out = {}
    for k, v in cfg.items():
        spec = lookup_prop(returns_props, k) or {}
        t = spec.get("type")
        if t in ("integer", "boolean") and isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v):
            out[k] = int(v)
        elif t == "number" and isinstance(v, str):
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
        else:
            out[k] = v
    return out


def resources_lagging(vm, lag_seconds, scale):
    """FACTS.md §4 /cluster/resources lag: status and name come from RRD data
    pushed every 10 s, so right after a create the entry has status unknown
    and no name."""
    created = vm.get("created_at")
    return created is not None and time.time() - created < lag_seconds * scale
