"""Proxmox's own cloud-init: the ci* parameters, the drive's contents, and
the cloudinit endpoints. Sources (each rule cites one):

  [ci1]  FACTS-cloudinit.md §1 (parameters), [ci2] §2 (what Proxmox
         generates, when the drive is regenerated, reading it back);
  [f6]   FACTS.md §6 (sshkeys encoding and validation, ipconfig, cipassword);
  [f3]   FACTS.md §3 (cloudinit PUT refuses a locked VM, sync);
  [schema] apidata.json cloudinit, cloudinit/dump.

Endpoints:
- `GET /nodes/{node}/qemu/{vmid}/cloudinit`: [{key, value?, pending?,
  delete?}] per cloud-init key: `value` is what the drive was last
  generated with, `pending` a config value not yet on the drive, `delete`
  a key on the drive but gone from the config; cipassword `**********`.
- `PUT .../cloudinit`: regenerates the drive now (sync, null), first
  moving a running VM's pending cloud-init keys into the config; refused
  "VM is locked (<lock>)". A VM without a cloud-init drive: nothing to do.
- `GET .../cloudinit/dump?type=user|network|meta`: the text the generator
  would produce from the current config (not from cicustom files);
  the password masked unless the token has VM.Config.Cloudinit.

Rules:
- Changing a cloud-init key needs VM.Config.Cloudinit (403) [ci1].
- sshkeys: after the schema's urlencoded check, every non-empty decoded
  line must pass `ssh-keygen -l`, else sync 500 "SSH public key
  validation error" [f6] (create, PUT and POST config).
- cipassword is stored as a SHA-512 crypt hash unless it already is one
  ($1$, $5$, $6$, $2a$, $2y$ + two more $ parts); GET config and GET
  .../pending show `**********` [ci1].
- The drive is (re)generated at a start (qmstart, a reboot's start, a
  create's start=1) when it never was or the cloud-init keys differ from
  what it holds, and by PUT cloudinit [ci2]; a reset, or a change of a
  snippet file, does not.
- Generated files [ci2]: user-data `#cloud-config` (hostname = name,
  manage_etc_hosts, fqdn with the search domain, user / disable_root for
  root, password, ssh_authorized_keys, chpasswd expire False, users
  [default] unless root, package_upgrade unless ciupgrade=0);
  network-config version 1: per netN with an ipconfigN a physical entry
  eth<N> with the MAC (dhcp4 / static address+netmask+gateway / dhcp6 /
  ipv6_slaac / static6), then a nameserver entry; meta-data only
  `instance-id: sha1(user-data + network-config)`; vendor-data empty.
  With neither nameserver nor searchdomain, the host's values (knob
  host_dns) are used [ci1: copied from the host].
- cicustom: each volid must be a `snippets` volume ("<volid> is not in
  the snippets directory"), and the files must sum to <= 3 MiB ("Cloud-Init
  sum of snippets too big (> 3 MiB)") [ci1, ci2]; checked when the drive
  is generated (a start's task error, PUT's sync 500).
"""
import hashlib
import ipaddress
import os
import re
import subprocess
import tempfile
import urllib.parse
import warnings

from pve_rules import Refusal

CI_KEYS = ("cicustom", "cipassword", "citype", "ciupgrade", "ciuser", "nameserver", "searchdomain", "sshkeys")
MASK = "**********"
CI_MAX = 3 << 20
HASH_RE = re.compile(r"^\$(1|5|6|2a|2y)\$[^$]+\$.+$")


class CiError(Refusal):
    """A refusal (labsim's handle() turns it into the HTTP error)."""


IPCONFIG_RE = re.compile(r"ipconfig\d+")


def is_ci_key(k):
    return k in CI_KEYS or (k.startswith("ipconfig") and IPCONFIG_RE.fullmatch(k) is not None)


def ci_keys(cfg):
    return {k: str(v) for k, v in cfg.items() if is_ci_key(k)}


def drive_key(cfg):
    for k, v in sorted(cfg.items()):
        if re.fullmatch(r"(ide|sata|scsi)\d+", k) and re.search(r":vm-\d+-cloudinit(\.\w+)?(,|$)", str(v)):
            return k
    return None


# ------------------------------------------------------------ parameters

def valid_ssh_key(line):
    """`ssh-keygen -l` on the one key [f6], as the server runs it."""
    with tempfile.NamedTemporaryFile("w", suffix=".pub", delete=False) as f:
        f.write(line + "\n")
        path = f.name
    try:
        r = subprocess.run(["ssh-keygen", "-l", "-f", path], capture_output=True, timeout=10)
        return r.returncode == 0
    finally:
        os.unlink(path)


def crypt_sha512(pw):
    """A SHA-512 crypt hash ($6$): Python's crypt (gone in 3.13), else
    `openssl passwd -6`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
            return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512))
        except ImportError:
            pass
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=pw + "\n", capture_output=True,
                       text=True, check=True, timeout=10)
    return r.stdout.strip()


def check_option(k, v):
    """The value stored for ci option k (sync checks of create/config)."""
    if k == "sshkeys":
        for line in urllib.parse.unquote(v).split("\n"):
            if line.strip() and not valid_ssh_key(line.strip()):
                raise CiError(500, "SSH public key validation error")
    if k == "cipassword" and not HASH_RE.match(v):
        return crypt_sha512(v)
    return v


def check_priv(api, p, u):
    """[ci1] Permissions: changing a ci*/ipconfig*/sshkeys/nameserver/
    searchdomain key needs VM.Config.Cloudinit on /vms/{vmid} (a code
    check: the schema's config check is any one VM.Config.*); the 403 in
    FACTS.md §1's form."""
    if not any(is_ci_key(k) for k in p):
        return
    path = "/vms/%s" % p.get("vmid")
    if "VM.Config.Cloudinit" not in api.privs_at(u, path):
        raise CiError(403, "Permission check failed (%s, VM.Config.Cloudinit)" % path)


def masked(cfg):
    out = dict(cfg)
    if "cipassword" in out:
        out["cipassword"] = MASK
    return out


# ------------------------------------------------------------ generation

def _mac(net):
    first = net.split(",")[0]
    k, _, v = first.partition("=")
    return v if v else None


def _props(s):
    return dict(x.split("=", 1) for x in s.split(",") if "=" in x)


def dns_conf(cfg, host):
    """[ci1] nameserver/searchdomain, or the host's when neither is set."""
    if "nameserver" not in cfg and "searchdomain" not in cfg:
        return list(host.get("nameserver", [])), list(host.get("search", []))
    ns = [x for x in re.split(r"[,;\s]+", str(cfg.get("nameserver", ""))) if x]
    sd = [x for x in re.split(r"[,;\s]+", str(cfg.get("searchdomain", ""))) if x]
    return ns, sd


def user_data(cfg, vmid, host, mask_password):
    name = str(cfg.get("name") or "VM%d" % vmid)
    _, sd = dns_conf(cfg, host)
    out = ["#cloud-config", "hostname: %s" % name, "manage_etc_hosts: true"]
    if "." not in name and sd:
        out.append("fqdn: %s.%s" % (name, sd[0]))
    user = cfg.get("ciuser")
    if user is not None:
        out.append("user: %s" % user)
        if user == "root":
            out.append("disable_root: False")
    if "cipassword" in cfg:
        out.append("password: %s" % (MASK if mask_password else cfg["cipassword"]))
    if "sshkeys" in cfg:
        keys = [x.strip() for x in urllib.parse.unquote(str(cfg["sshkeys"])).split("\n") if x.strip()]
        out.append("ssh_authorized_keys:")
        out += ["  - %s" % k for k in keys]
    out += ["chpasswd:", "  expire: False"]
    if user != "root":
        out += ["users:", "  - default"]
    if str(cfg.get("ciupgrade", "1")) not in ("0", "False", "false"):
        out.append("package_upgrade: true")
    return "\n".join(out) + "\n"


def network_config(cfg, host):
    i = "    "
    out = ["version: 1", "config:"]
    for k in sorted((k for k in cfg if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
        n = k[3:]
        ipc = cfg.get("ipconfig" + n)
        if ipc is None:
            continue        # [ci2] a NIC without ipconfig is left out
        mac = _mac(str(cfg[k]))
        if not mac:
            raise CiError(500, "network interface '%s' has no mac address" % k)
        out += [i + "- type: physical", i + "  name: eth" + n, i + "  mac_address: '%s'" % mac.lower(),
                i + "  subnets:"]
        p = _props(str(ipc))
        ip, ip6 = p.get("ip"), p.get("ip6")
        j = i + "  "
        if ip == "dhcp":
            out.append(j + "- type: dhcp4")
        elif ip and ip != "manual":
            net = ipaddress.IPv4Interface(ip)
            out += [j + "- type: static", j + "  address: '%s'" % net.ip, j + "  netmask: '%s'" % net.netmask]
            if p.get("gw"):
                out.append(j + "  gateway: '%s'" % p["gw"])
        if ip6 == "dhcp":
            out.append(j + "- type: dhcp6")
        elif ip6 == "auto":
            out.append(j + "- type: ipv6_slaac")
        elif ip6 and ip6 != "manual":
            out += [j + "- type: static6", j + "  address: '%s'" % ip6]
            if p.get("gw6"):
                out.append(j + "  gateway: '%s'" % p["gw6"])
    ns, sd = dns_conf(cfg, host)
    if ns or sd:
        out.append(i + "- type: nameserver")
        if ns:
            out.append(i + "  address:")
            out += [i + "  - '%s'" % x for x in ns]
        if sd:
            out.append(i + "  search:")
            out += [i + "  - '%s'" % x for x in sd]
    return "\n".join(out) + "\n"


def meta_data(ud, nc):
    # [ci2] only the instance-id: sha1 of user-data and network-config
    return "instance-id: %s\n" % hashlib.sha1((ud + nc).encode()).hexdigest()


def generated(cfg, vmid, host, mask_password=False):
    ud = user_data(cfg, vmid, host, False)
    nc = network_config(cfg, host)
    return {"user-data": user_data(cfg, vmid, host, True) if mask_password else ud,
            "network-config": nc, "meta-data": meta_data(ud, nc), "vendor-data": ""}


def snippet(world, node, volid):
    st = world.nodes[node]["storage"].get(volid.partition(":")[0])
    item = st["items"].get(volid) if st else None
    if item is None:
        raise CiError(500, "volume '%s' does not exist" % volid)
    if item.get("content") != "snippets" or not volid.partition(":")[2].startswith("snippets/"):
        raise CiError(500, "%s is not in the snippets directory" % volid)
    data = item.get("_data", b"")
    return data.decode() if isinstance(data, bytes) else str(data)


def drive_files(world, vm):
    """What the drive holds once generated now: the generated files with
    the cicustom ones in their place [ci1]; CiError as the server dies."""
    cfg = vm["config"]
    files = generated(cfg, vm["vmid"], world.knobs.get("host_dns", {}))
    if cfg.get("cicustom"):
        c = _props(str(cfg["cicustom"]))
        for k, name in (("user", "user-data"), ("network", "network-config"), ("meta", "meta-data"),
                        ("vendor", "vendor-data")):
            if k in c:
                files[name] = snippet(world, vm["node"], c[k])
    if sum(len(v.encode()) for v in files.values()) > CI_MAX:
        raise CiError(500, "Cloud-Init sum of snippets too big (> 3 MiB)")
    return files


def apply_pending_ci(vm):
    """[upstream qemu-server apply_cloudinit_config, called by PUT
    cloudinit] pending cloud-init keys (of a running VM) move into the
    config before the drive is written; the other pending keys stay."""
    pend, pdel = vm.get("pending") or {}, vm.get("pending_delete") or []
    for k in [k for k in pend if is_ci_key(k)]:
        vm["config"][k] = pend.pop(k)
    for k in [k for k in pdel if is_ci_key(k)]:
        vm["config"].pop(k, None)
        pdel.remove(k)


def regenerate(world, vm):
    """Write the drive now (PUT cloudinit, or a start with changes)."""
    if drive_key(vm["config"]) is None:
        return False
    apply_pending_ci(vm)
    vm["ci_files"] = drive_files(world, vm)
    vm["ci_active"] = ci_keys(vm["config"])
    return True


def needs_regen(vm):
    return drive_key(vm["config"]) is not None and \
        ("ci_files" not in vm or ci_keys(vm["config"]) != vm.get("ci_active", {}))


def at_start(world, vm):
    """[ci2] at a start the drive is regenerated when the cloud-init keys
    changed since it was written (or it never was)."""
    if needs_regen(vm):
        regenerate(world, vm)


# ------------------------------------------------------------ endpoints

def h_get(api, p, u):
    vm = api.w.vm(p["node"], p["vmid"])
    import pve_pending
    cur = ci_keys(pve_pending.merged(vm))
    act = vm.get("ci_active") if "ci_files" in vm else {}
    out = []
    for k in sorted(set(cur) | set(act)):
        e = {"key": k}
        if k in act:
            e["value"] = MASK if k == "cipassword" else act[k]
        if k in cur and cur[k] != act.get(k):
            e["pending"] = MASK if k == "cipassword" else cur[k]
        if k in act and k not in cur:
            e["delete"] = 1
        out.append(e)
    return {"__data": out, "__extra": {}}


def h_put(api, p, u):
    vm = api.w.vm(p["node"], p["vmid"])
    if vm["config"].get("lock"):
        raise CiError(500, "VM is locked (%s)" % vm["config"]["lock"])   # [f3] sync
    regenerate(api.w, vm)
    return None


def h_dump(api, p, u):
    vm = api.w.vm(p["node"], p["vmid"])
    privs = api.privs_of(u)
    mask = not ("*" in privs or "VM.Config.Cloudinit" in privs)
    files = generated(vm["config"], vm["vmid"], api.w.knobs.get("host_dns", {}), mask_password=mask)
    return files[{"user": "user-data", "network": "network-config", "meta": "meta-data"}[p["type"]]]
