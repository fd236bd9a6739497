"""Proxmox VE parameter checks: types, named formats and property strings.

Shared by the simulator (labsim.py, against api-schema-subset.json) and the
request replay check (pve_replay.py, against the whole apidata.json). Every
rule cites where it comes from: FACTS.md = ../shared/reference/proxmox/FACTS.md,
"typetext" = the parameter's `typetext` in apidata.json (the schema's own
description of a named property-string format).

check_value(spec, value, from_json, strict) returns None or the reason text
Proxmox puts in `errors: {param: why}`. With strict=True a named format this
module does not model is itself an error (the replay check must never wave
a value through unchecked); the simulator passes strict=False.
"""
import ipaddress
import re
import urllib.parse


class FormatError(ValueError):
    pass


# ------------------------------------------------------------ small checks

def _is_ipv4(s):
    try:
        ipaddress.IPv4Address(s)
        return True
    except ValueError:
        return False


def _is_ipv6(s):
    try:
        ipaddress.IPv6Address(s)
        return True
    except ValueError:
        return False


def _cidr(s, v6, lo, hi):
    addr, sep, plen = s.partition("/")
    if not sep or not re.fullmatch(r"\d{1,3}", plen):
        return False
    if not (_is_ipv6(addr) if v6 else _is_ipv4(addr)):
        return False
    return lo <= int(plen) <= hi


# FACTS.md §5: dns-name is (LABEL\.)*LABEL, LABEL [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
DNS_NAME = r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"
# FACTS.md §7: storage id, case-insensitive, at least 2 characters
STORAGE_ID = r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$"
# FACTS.md §2 (UPID node field) and §1 (node names in paths)
NODE = r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$"
# FACTS.md §6 tags: each tag, case-insensitive
TAG = r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$"
# FACTS.md §6 net table: macaddr must be unicast
MAC_UNICAST = r"(?i)^[a-f0-9][02468ace](:[a-f0-9]{2}){5}$"
# FACTS.md §6 sshkeys: the urlencoded format
URLENCODED = r"^[-%a-zA-Z0-9_.!~*'()]*$"
# FACTS.md §9: pool ids, nesting up to 3 levels
POOLID = r"^[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+){0,2}$"
# FACTS.md §6 disks: a new disk is [STORAGE:]SIZE_GIB
NEW_DISK = r"^(([^/:\s]+):)?(\d+(\.\d+)?)$"
# FACTS.md §4 resize: size pattern, binary units (the disk-size sub-format)
DISK_SIZE = r"^\d+(\.\d+)?[KMGT]?$"
# FACTS.md §6 boot: devices are disks, netN, usbN or hostpciN
BOOT_DEVICE = r"^((ide|sata|scsi|virtio)\d+|net\d+|usb\d+|hostpci\d+)$"
# FACTS.md §5 index ranges of the [n] keys
INDEX_MAX = {"net": 31, "ipconfig": 31, "scsi": 30, "virtio": 15, "sata": 5, "ide": 3,
             "serial": 3, "unused": 255}


def _volume_id(s):
    # FACTS.md §7: <storage>:<volname>
    st, sep, name = s.partition(":")
    return bool(sep and name and re.match(STORAGE_ID, st))


def _list(s):
    # FACTS.md §6 (tags, nameserver): items split on ',', ';' or whitespace
    return [x for x in re.split(r"[,;\s]+", s) if x]


def _named_simple(name, s):
    """Named formats that are not property strings: None, an error, or
    NotImplemented when unknown."""
    if name == "pve-vmid":                       # FACTS.md §5
        return None if re.match(r"^[1-9][0-9]{2,8}$", s) else "value does not look like a valid VM ID"
    if name == "pve-node":
        return None if re.match(NODE, s) else "value does not look like a valid node name"
    if name == "pve-storage-id":
        return None if re.match(STORAGE_ID, s) else "storage ID '%s' contains illegal characters" % s
    if name == "dns-name":
        return None if re.match(DNS_NAME, s) else "value does not look like a valid DNS name"
    if name == "pve-poolid":
        return None if re.match(POOLID, s) else "pool name '%s' contains illegal characters" % s
    if name == "pve-tag-list":                   # FACTS.md §6 tags
        items = _list(s)
        if not items:
            return "empty tag list"
        for t in items:
            if not re.match(TAG, t):
                return "invalid tag '%s'" % t
        return None
    if name == "mac-addr":                       # FACTS.md §6 net table
        return None if re.match(MAC_UNICAST, s) else \
            "value '%s' does not look like a valid unicast MAC address" % s
    if name == "pve-bridge-id":                  # FACTS.md §6 net table
        return None if re.match(r"^[-_.\w\d]+$", s) else "invalid bridge ID"
    if name == "urlencoded":                     # FACTS.md §6 sshkeys
        return None if re.match(URLENCODED, s) else "value '%s' is not urlencoded" % s
    if name == "address-list":                   # FACTS.md §6 nameserver
        items = _list(s)
        for x in items:
            if not (_is_ipv4(x) or _is_ipv6(x) or re.match(DNS_NAME, x)):
                return "value '%s' does not look like a valid address" % x
        return None if items else "empty address list"
    if name in ("ip", "address"):
        return None if _is_ipv4(s) or _is_ipv6(s) else "value does not look like a valid IP address"
    if name == "ipv4":
        return None if _is_ipv4(s) else "value does not look like a valid IPv4 address"
    if name == "ipv6":
        return None if _is_ipv6(s) else "value does not look like a valid IPv6 address"
    if name == "CIDR":
        return None if _cidr(s, False, 0, 32) or _cidr(s, True, 0, 128) else "value does not look like a valid CIDR network"
    if name == "pve-volume-id":                  # FACTS.md §7
        return None if _volume_id(s) else "unable to parse volume ID '%s'" % s
    if name == "pve-volume-id-or-qm-path":       # FACTS.md §6 disks and CD-ROM
        if s in ("none", "cdrom") or s.startswith("/") or _volume_id(s) or re.match(NEW_DISK, s):
            return None
        return "unable to parse volume ID '%s'" % s
    if name == "pve-volume-id-or-absolute-path":  # FACTS.md §6 import-from
        return None if s.startswith("/") or _volume_id(s) else "unable to parse volume ID '%s'" % s
    if name == "disk-size":
        return None if re.match(DISK_SIZE, s) else "unable to parse size '%s'" % s
    if name == "pve-configid":
        return None if re.match(r"(?i)^[a-z][a-z0-9_-]*$", s) else "invalid configuration ID '%s'" % s
    if name == "pve-configid-list":              # FACTS.md §4 config: delete is a list of keys
        for x in _list(s):
            if not re.match(r"(?i)^[a-z][a-z0-9_-]*$", x):
                return "invalid configuration ID '%s'" % x
        return None
    if name == "pve-hotplug-features":           # typetext/description of `hotplug`
        if s in ("0", "1"):
            return None
        for x in s.split(","):
            if x not in ("network", "disk", "cpu", "memory", "usb", "cloudinit"):
                return "invalid hotplug feature '%s'" % x
        return None
    if name in ("pve-storage-content", "pve-storage-content-list"):
        # FACTS.md §7 content types
        allowed = ("images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import")
        for x in (s.split(",") if name.endswith("list") else [s]):
            if x not in allowed:
                return "invalid content type '%s'" % x
        return None
    if name == "pve-iface":                      # FACTS.md §8
        return None if re.match(r"(?i)^[a-z][a-z0-9_]{1,20}([:.]\d+)?$", s) else "invalid interface name"
    return NotImplemented


# Named formats that are property strings, written as format dicts from the
# schema's typetext for the parameter using them (and FACTS.md §6).
PROP_FORMATS = {
    # ipconfig[n] typetext: [gw=<GatewayIPv4>] [,gw6=<GatewayIPv6>] [,ip=<IPv4Format/CIDR>] [,ip6=<IPv6Format/CIDR>]
    # FACTS.md §6 ipconfig0: ip dhcp|manual|IPv4 CIDR /8-32; ip6 dhcp|auto|manual|IPv6 CIDR; gw needs ip, gw6 needs ip6
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "optional": 1, "format": "!ipconfig-ip"},
        "gw": {"type": "string", "optional": 1, "format": "ipv4", "requires": "ip"},
        "ip6": {"type": "string", "optional": 1, "format": "!ipconfig-ip6"},
        "gw6": {"type": "string", "optional": 1, "format": "ipv6", "requires": "ip6"},
    },
    # startup typetext: [[order=]\d+] [,up=\d+] [,down=\d+]
    "pve-startup-order": {
        "order": {"type": "integer", "minimum": 0, "optional": 1, "default_key": 1},
        "up": {"type": "integer", "minimum": 0, "optional": 1},
        "down": {"type": "integer", "minimum": 0, "optional": 1},
    },
    # boot typetext: [[legacy=]<[acdn]{1,4}>] [,order=<device[;device...]>]; FACTS.md §6 boot
    "pve-qm-boot": {
        "legacy": {"type": "string", "optional": 1, "default_key": 1, "pattern": "[acdn]{1,4}"},
        "order": {"type": "string", "optional": 1, "format": "!boot-order"},
    },
    # cpu typetext; FACTS.md §6 cpu
    "pve-vm-cpu-conf": {
        "cputype": {"type": "string", "optional": 1, "default_key": 1, "pattern": r"[A-Za-z0-9_.\-]+"},
        "flags": {"type": "string", "optional": 1, "pattern": r"[+-][a-zA-Z0-9\-_.]+(;[+-][a-zA-Z0-9\-_.]+)*"},
        "guest-phys-bits": {"type": "integer", "optional": 1, "minimum": 32, "maximum": 64},
        "hidden": {"type": "boolean", "optional": 1},
        "hv-vendor-id": {"type": "string", "optional": 1, "pattern": r"[a-zA-Z0-9]{1,12}"},
        "phys-bits": {"type": "string", "optional": 1, "pattern": r"(host|[1-9]\d?)"},
        "reported-model": {"type": "string", "optional": 1},
    },
    # cicustom typetext: [meta=<volume>] [,network=<volume>] [,user=<volume>] [,vendor=<volume>]
    "pve-qm-cicustom": {k: {"type": "string", "optional": 1, "format": "pve-volume-id"}
                        for k in ("meta", "network", "user", "vendor")},
    # smbios1 typetext
    "pve-qm-smbios1": dict(
        {k: {"type": "string", "optional": 1} for k in
         ("family", "manufacturer", "product", "serial", "sku", "version")},
        base64={"type": "boolean", "optional": 1},
        uuid={"type": "string", "optional": 1,
              "pattern": r"[a-fA-F0-9]{8}(-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"}),
}


def _internal(name, s):
    if name == "!ipconfig-ip":
        return None if s in ("dhcp", "manual") or _cidr(s, False, 8, 32) else \
            "invalid IPv4 address '%s' (dhcp, manual or address/8-32)" % s
    if name == "!ipconfig-ip6":
        return None if s in ("dhcp", "auto", "manual") or _cidr(s, True, 0, 128) else \
            "invalid IPv6 address '%s'" % s
    if name == "!boot-order":
        for dev in s.split(";"):
            if not re.match(BOOT_DEVICE, dev):
                return "invalid boot device '%s'" % dev
        return None
    return NotImplemented


def fix_pattern(p):
    # Perl's (?^:...) is Python's (?:...)
    return p.replace("(?^:", "(?:")


def type_name(v):
    if isinstance(v, list):
        return "ARRAY"
    if isinstance(v, dict):
        return "HASH"
    return str(v)


_MEMO = {}
_MEMO_MAX = 50000


def check_value(spec, value, from_json=False, strict=False):
    """None, or why Proxmox refuses value for this parameter spec.

    The answer depends on the spec and the value only, so a string value
    checked before against the same spec gets the same answer from a
    memo (200 VMs' creates repeat most of their parameters: the check
    was half of the simulator's CPU per create, bench/scale.sh). An
    entry holds its spec, so the spec's id cannot be reused meanwhile."""
    if not isinstance(value, str):
        return _check_value(spec, value, from_json, strict)
    key = (id(spec), value, from_json, strict)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    why = _check_value(spec, value, from_json, strict)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = (spec, why)
    return why


def _check_value(spec, value, from_json=False, strict=False):
    t = spec.get("type", "string")
    if isinstance(value, (list, dict)) and t not in ("array", "object"):
        # FACTS.md §1: a repeated form key becomes an array, which no
        # scalar type check accepts
        return "type check ('%s') failed - got %s" % (t, type_name(value))
    if t == "boolean":
        # FACTS.md §1 Booleans
        if from_json and isinstance(value, bool):
            return None
        if not isinstance(value, bool) and str(value) in ("0", "1"):
            return None
        return "type check ('boolean') failed - got '%s'" % value
    if t in ("integer", "number"):
        # FACTS.md §1: integers may arrive as digit strings
        if isinstance(value, bool):
            return "type check ('%s') failed - got '%s'" % (t, value)
        s = str(value)
        rx = r"[+-]?\d+" if t == "integer" else r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
        if not re.fullmatch(rx, s):
            return "type check ('%s') failed - got '%s'" % (t, s)
        n = float(s)
        if "minimum" in spec and n < spec["minimum"]:
            return "value must have a minimum value of %s" % spec["minimum"]
        if "maximum" in spec and n > spec["maximum"]:
            return "value must have a maximum value of %s" % spec["maximum"]
        return None
    if t in ("array", "object"):
        return None
    if from_json and not isinstance(value, str):
        # JSON numbers for string parameters are stringified by the server
        if isinstance(value, bool):
            return "type check ('string') failed - got '%s'" % value
        value = str(value)
    s = value
    if spec.get("enum") and s not in spec["enum"]:
        return "value '%s' does not have a value in the enumeration '%s'" % (s, ", ".join(spec["enum"]))
    if "maxLength" in spec and len(s) > spec["maxLength"]:
        return "value may only be %d characters long" % spec["maxLength"]
    if "minLength" in spec and len(s) < spec["minLength"]:
        return "value must be at least %d characters long" % spec["minLength"]
    if "pattern" in spec and not re.fullmatch(fix_pattern(spec["pattern"]), s):
        return "value does not match the regex pattern"
    fmt = spec.get("format")
    try:
        if isinstance(fmt, dict):
            parse_propstring(fmt, s, strict)
        elif isinstance(fmt, str):
            if fmt in PROP_FORMATS:
                parse_propstring(PROP_FORMATS[fmt], s, strict)
            else:
                why = _internal(fmt, s) if fmt.startswith("!") else _named_simple(fmt, s)
                if why is NotImplemented:
                    if strict:
                        return "format '%s' is not modelled by tests/labsim/pve_formats.py" % fmt
                elif why:
                    return "invalid format - %s" % why
    except FormatError as e:
        return "invalid format - %s" % e
    return None


def parse_propstring(fmt, s, strict=False):
    """Parse 'k=v,k=v' against a format dict (FACTS.md §6 general rules:
    ',' separated, one default key may be left out, duplicate and unknown
    keys are errors; alias keys such as net's `virtio=MAC` set their
    keyAlias (model) to their own name). Returns the dict of values."""
    out = {}
    default_key = None
    for k, v in fmt.items():
        if isinstance(v, dict) and v.get("default_key"):
            default_key = k
    for part in s.split(","):
        if part == "":
            continue
        if "=" in part:
            k, v = part.split("=", 1)
        else:
            if default_key is None or default_key in out:
                raise FormatError("value without key, but schema does not define a default key")
            k, v = default_key, part
        spec = fmt.get(k)
        if not isinstance(spec, dict):
            raise FormatError("property '%s' not allowed" % k)
        if "alias" in spec:
            if spec.get("keyAlias"):
                if spec["keyAlias"] in out:
                    raise FormatError("duplicate key in comma-separated list property: %s" % spec["keyAlias"])
                out[spec["keyAlias"]] = k
            k = spec["alias"]
            spec = fmt.get(k, {})
        if k in out:
            raise FormatError("duplicate key in comma-separated list property: %s" % k)
        err = check_value(spec, v, False, strict)
        if err:
            raise FormatError("%s: %s" % (k, err))
        out[k] = v
    for k, spec in fmt.items():
        if not isinstance(spec, dict) or "alias" in spec:
            continue
        if not spec.get("optional") and "default" not in spec and k not in out:
            raise FormatError("property '%s' is missing" % k)
        if k in out and spec.get("requires") and spec["requires"] not in out:
            raise FormatError("%s: missing property required by '%s'" % (k, spec["requires"]))
    return out


class Routes:
    """Endpoint lookup: a list of {path, info} tree nodes (the format of
    api-schema-subset.json's endpoints and of apidata.json's tree)."""

    def __init__(self, endpoints):
        self.routes = []
        self.memo = {}
        for ep in endpoints:
            p = ep["path"]
            rx = "^"
            for seg in p.strip("/").split("/"):
                m = re.fullmatch(r"\{(\w+)\}", seg)
                if m and m.group(1) == "volume":
                    # FACTS.md §7: this subtree matches the rest of the URL
                    rx += "/(?P<volume>.+)"
                elif m:
                    rx += "/(?P<%s>[^/]+)" % m.group(1)
                else:
                    rx += "/" + re.escape(seg)
            self.routes.append((re.compile(rx + "$"), p, ep["info"]))

    def match(self, path):
        """(template, info, path parameters) of the first route path
        matches. The answer for a path never changes (the routes are
        fixed), so it is kept: a scan of every route's regex was a tenth
        of the simulator's CPU for a create (bench/labsim.sh), and 200
        VMs' creates share 3 paths. The caller gets its own dict."""
        hit = self.memo.get(path)
        if hit is None:
            hit = (None, None, None)
            for rx, tmpl, info in self.routes:
                m = rx.match(path)
                if m:
                    hit = (tmpl, info, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()})
                    break
            if len(self.memo) >= 20000:
                self.memo.clear()
            self.memo[path] = hit
        return hit[0], hit[1], (dict(hit[2]) if hit[2] is not None else None)


def lookup_prop(props, key):
    """The spec of parameter `key` (net0 -> net[n], within FACTS.md §5's
    index ranges), or None."""
    if key in props:
        return props[key]
    m = _INDEXED.fullmatch(key)
    if m and (m.group(1) + "[n]") in props:
        hi = INDEX_MAX.get(m.group(1))
        if hi is not None and int(m.group(2)) > hi:
            return None
        return props[m.group(1) + "[n]"]
    return None


_INDEXED = re.compile(r"([a-z]+)(\d+)")
_REQUIRED = {}


def _required(props):
    """The parameters props cannot do without, and those that require
    another ([(name, required)]), computed once per method: the create's
    schema has some 150 properties, walked on every request before."""
    hit = _REQUIRED.get(id(props))
    if hit is not None and hit[0] is props:
        return hit[1], hit[2]
    must = [k for k, spec in props.items() if "[n]" not in k and not spec.get("optional")]
    needs = {k: spec["requires"] for k, spec in props.items() if spec.get("requires")}
    _REQUIRED[id(props)] = (props, must, needs)   # holds props: its id stays its own
    return must, needs


def check_params(info, params, from_json=False, strict=False):
    """Errors {param: why} of a method's parameters (path parameters
    included), as the schema validator reports them (FACTS.md §1)."""
    schema = info.get("parameters", {})
    props = schema.get("properties", {})
    must, needs = _required(props)
    errors = {}
    for k, v in params.items():
        spec = lookup_prop(props, k)
        if spec is None:
            errors[k] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        err = check_value(spec, v, from_json, strict)
        if err:
            errors[k] = err
    for k in must:
        if k not in params:
            errors[k] = "property is missing and it is not optional"
    for k in params:
        if k in needs:
            req = needs[k]
        else:
            spec = None if k in props else lookup_prop(props, k)
            req = spec.get("requires") if spec else None
        if req and req not in params:
            errors[k] = "missing property required by '%s'" % req
    return errors
