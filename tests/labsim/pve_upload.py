"""labsim: POST /nodes/{node}/storage/{storage}/upload (a file sent as
multipart/form-data, kept as a volume in the storage) and what a Talos VM
booting the nocloud ISO reads from a `cidata` ISO attached as a cdrom.

Sources (the rules below cite them):
  [schema]  apidata.json / api-schema-subset.json: the upload endpoint's
            parameters (content enum iso|vztmpl|import, filename maxLength
            255, checksum <-> checksum-algorithm), its permission check
            (Datastore.AllocateTemplate on /storage/{storage}), returns a string.
  [facts]   proxmox/FACTS.md: multipart only for .../upload (§1), the upload
            returns a UPID and runs a worker (§3), file name normalisation and
            extension rules (download-url section, the same code path),
            Datastore.AllocateTemplate for uploads (§9).
  [cloudinit] proxmox/FACTS-cloudinit.md §3 (what Talos reads from cidata)
            and §4 (build the ISO yourself, upload content=iso, attach as cdrom).
  [metal]   talos/FACTS-metal.md §1 "Platform choice": metal gets its config
            from maintenance mode or talos.config=; nocloud reads cidata.
  [upstream] proxmox/pve-storage src/PVE/API2/Storage/Status.pm (upload: the
            storage needs a path, content must be enabled, task type
            'imgcopy', checksum checked in the task, an existing file is
            overwritten) and pve-http-server's multipart reader (the file part
            must be the form field 'filename' and its Content-Disposition
            filename becomes the filename parameter; other fields are
            parameters; a body without a file part fails "upload failed").
"""
import hashlib
import io
import os
import re
import sys
import time

UPLOAD_RE = re.compile(r"^/api2/json/nodes/[^/]+/storage/[^/]+/upload$")
CIDATA_MAX = 3 << 20        # [cloudinit] §3: the drive must fit 3 MiB


class UploadError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def is_upload(method, path):
    return method == "POST" and bool(UPLOAD_RE.match(path))


def _disposition(value):
    disp, name, filename = None, None, None
    for i, part in enumerate(re.split(r"\s*;\s*", value.strip())):
        if i == 0:
            disp = part.lower()
            continue
        k, _, v = part.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        if k.strip().lower() == "name":
            name = v
        elif k.strip().lower() == "filename":
            filename = v
    return disp, name, filename


def parse_multipart(content_type, body):
    """(params, file bytes) from a multipart/form-data body, as pveproxy
    reads it [upstream]; raises UploadError."""
    ct, _, rest = (content_type or "").partition(";")
    m = re.search(r"boundary\s*=\s*\"?([^\";]+)\"?", rest)
    if ct.strip().lower() != "multipart/form-data" or not m:
        # [upstream] an upload must be multipart/form-data with a boundary
        raise UploadError(501, "upload 'Content-Type '%s' not implemented" % content_type)
    sep = b"--" + m.group(1).encode()
    params, data, found = {}, None, False
    chunks = body.split(sep)
    # chunks[0] is the preamble; the last is "--" (the closing delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep2, value = chunk.partition(b"\r\n\r\n")
        if not sep2:
            raise UploadError(501, "upload failed")
        if value.endswith(b"\r\n"):
            value = value[:-2]
        disp = name = filename = None
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-disposition":
                disp, name, filename = _disposition(v)
        if disp != "form-data" or not name:
            # [upstream] "wrong content disposition in multipart - abort upload"
            raise UploadError(501, "upload failed")
        if filename is not None:
            if name != "filename":
                # [upstream] "wrong field name for file upload - abort upload"
                raise UploadError(501, "upload failed")
            data, found = value, True
            params["filename"] = filename
        else:
            params[name] = value.decode()
    if not found:
        raise UploadError(501, "upload failed")   # [upstream] no file part
    return params, data


def read_request(handler, world):
    """Read an upload request's body (no 512 KiB cap: pveproxy streams the
    file to a temp file) and return its params, with tmpfilename set to the
    staged file as the REST handler does [schema: tmpfilename]."""
    n = handler.headers.get("Content-Length")
    if not n:
        raise UploadError(501, "upload without content length header not supported")
    body = handler.rfile.read(int(n))
    params, data = parse_multipart(handler.headers.get("Content-Type"), body)
    tmp = "/var/tmp/pveupload-" + os.urandom(16).hex()
    with world.lock:
        world.upload_tmp = getattr(world, "upload_tmp", {})
        world.upload_tmp[tmp] = data
    # The REST handler sets tmpfilename; a client cannot choose it [schema].
    params["tmpfilename"] = tmp
    return params


def _version(v):
    return tuple(int(x) for x in re.findall(r"\d+", str(v))[:3])


def import_by_version(content, fname, version, param_error):
    """FACTS-cloudinit.md §5 version history: the `import` content type is
    new in pve-storage 8.1.1 (PVE 8.2): before it the schema's content enum
    has no `import`; until pve-storage 8.3.6 (PVE 8.4) only an OVA could go
    into import storage through the API."""
    if content != "import":
        return
    v = _version(version)
    if v < (8, 2):
        raise param_error({"content": "value 'import' does not have a value in the enumeration 'iso, vztmpl'"})
    if v < (8, 4) and not fname.endswith(".ova"):
        raise param_error({"filename": "invalid filename or wrong extension"})


def content_filename(content, filename, param_error, version=None):
    """The stored file name, or param_error: [facts] normalisation (the
    directory part dropped, chars outside [A-Za-z0-9_.-] -> '_') and the
    extension rules per content type; download-url and upload share them
    ([upstream] the same code in both)."""
    fname = re.sub(r"[^A-Za-z0-9_.\-]", "_", filename.split("/")[-1])
    if content == "iso" and not re.search(r"(?i)\.(iso|img)$", fname):
        raise param_error({"filename": "wrong file extension"})
    if content == "import" and not re.fullmatch(r"[A-Za-z0-9\-.+=_]+\.(qcow2|raw|vmdk|ova)", fname):
        raise param_error({"filename": "invalid filename or wrong extension"})
    if content == "vztmpl" and not re.search(r"\.tar(\.(gz|xz|zst|bz2))?$", fname):
        raise param_error({"filename": "wrong file extension"})
    if version is not None:
        import_by_version(content, fname, version, param_error)
    return fname


def h_upload(api, p, u):
    """POST /nodes/{node}/storage/{storage}/upload (schema checks and the
    Datastore.AllocateTemplate permission were done by Api.handle)."""
    mod = sys.modules[type(api).__module__]   # labsim, run as __main__
    api_error, param_err = mod.ApiError, mod.param_error
    data = getattr(api.w, "upload_tmp", {}).pop(p.get("tmpfilename"), None)
    if data is None:
        raise api_error(500, "temporary file '%s' does not exist" % p.get("tmpfilename"))
    st = api.storage(p)
    if st["type"] not in ("dir", "nfs", "cifs"):
        # [upstream] the storage must have a path (file based)
        raise api_error(500, "can't upload to storage type '%s'" % st["type"])
    content = p["content"]
    fname = content_filename(content, p["filename"], param_err, api.w.knobs.get("pve_version"))
    if content not in st["content"]:
        # [upstream] a content type the storage does not enable (the knob
        # `storage` can take one away), before the worker
        raise api_error(500, "storage '%s' does not support '%s' content" % (p["storage"], content))
    volid = "%s:%s/%s" % (p["storage"], content, fname)

    def work():
        algo = p.get("checksum-algorithm")
        if algo:
            # [upstream] checked in the task, before the file is stored
            got = hashlib.new(algo, data).hexdigest()
            if got.lower() != p["checksum"].lower():
                raise api_error(500, "checksum mismatch: got '%s' != expect '%s'" % (got, p["checksum"]))
        # [upstream] "we simply overwrite the destination file if it already exists"
        st["items"][volid] = {"volid": volid, "content": content, "format": fname.rsplit(".", 1)[-1].lower(),
                              "size": len(data), "ctime": int(time.time()), "_data": data}
        return "finished file import successfully"
    # [facts] §3 the call returns a UPID; [upstream] task type imgcopy, no id
    return api.w.new_task(p["node"], "imgcopy", "", u, work)


# ---------------------------------------------------------------- Talos side

def _volume(world, node, volid):
    st = world.nodes.get(node, {}).get("storage", {}).get(volid.split(":", 1)[0])
    return None if st is None else st["items"].get(volid)


def cdrom_volumes(vm, drive_re):
    out = []
    for k, v in sorted(vm["config"].items()):
        if drive_re.match(k) and "media=cdrom" in v:
            vol = v.split(",", 1)[0]
            if vol not in ("none", "cdrom", ""):
                out.append(vol)
    return out


def read_cidata(data):
    """{'label':..., 'files': {name: bytes}} of an ISO image as the Linux
    kernel would show it: Rock Ridge names, else Joliet; plain ISO9660
    names (USER_DAT.;1) do not match 'user-data'. None if unreadable."""
    import pycdlib
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - not an ISO image
        return None
    try:
        label = iso.pvd.volume_identifier.decode("latin-1").rstrip(" \x00")
        files = {}
        for kind in (("rr_path", lambda c: c.rock_ridge.name().decode()) if iso.has_rock_ridge() else None,
                     ("joliet_path", lambda c: c.file_identifier().decode("utf-16_be")) if iso.has_joliet() else None):
            if kind is None:
                continue
            key, namefn = kind
            for child in iso.list_children(**{key: "/"}):
                if child.is_dot() or child.is_dotdot() or child.is_dir():
                    continue
                name = namefn(child)
                if name in files:
                    continue
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, **{key: "/" + name})
                files[name] = out.getvalue()
            break   # the kernel uses Rock Ridge when present, else Joliet
        return {"label": label, "files": files}
    finally:
        iso.close()


def platform_of(world, node, volid):
    """'nocloud' for the Image Factory's nocloud ISO, else 'metal' (an image
    we know nothing about is not given the kinder platform)."""
    item = _volume(world, node, volid) or {}
    name = (item.get("url") or volid).rsplit("/", 1)[-1]
    return "nocloud" if re.search(r"(^|-)nocloud-amd64\.iso$", name) else "metal"


def first_boot_config(world, talos_node, drive_re):
    """What a Talos VM reads at first boot besides maintenance mode:
    (platform, user-data bytes or None, why). Only the nocloud platform reads
    a cidata ISO [metal]; user-data starting with #cloud-config is not a
    machine config [cloudinit §3]; the drive must fit 3 MiB."""
    vm = talos_node.vm
    if vm is None:
        return "metal", None, "no VM"
    if world.knobs.get("cidata_unread"):
        return "nocloud", None, "cidata_unread knob: drive not found"
    vols = cdrom_volumes(vm, drive_re)
    cidata, boot = None, []
    for vol in vols:
        item = _volume(world, vm["node"], vol)
        if item is not None and "_data" in item:
            ci = read_cidata(item["_data"])
            if ci is not None and ci["label"] == "cidata":
                cidata = (vol, item, ci)
                continue
        boot.append(vol)
    platform = "nocloud" if any(platform_of(world, vm["node"], v) == "nocloud" for v in boot) else "metal"
    if cidata is None:
        return platform, None, "no cidata drive"
    if platform != "nocloud":
        return platform, None, "the metal platform does not read cidata"
    vol, item, ci = cidata
    if item["size"] > CIDATA_MAX:
        return platform, None, "cidata drive larger than 3 MiB"
    ud = ci["files"].get("user-data")
    if ud is None:
        return platform, None, "no user-data on the cidata drive"
    if ud.startswith(b"#cloud-config"):
        return platform, None, "user-data is #cloud-config, not a machine config"
    return platform, ud, "machine config from %s" % vol


def nocloud_boot(mgr, node, world, drive_re):
    """Hook for talos.Manager.first_boot: a node with a machine config on
    its cidata drive installs with it directly (no maintenance server ever
    listens) and comes up over mTLS. Returns True when it took over."""
    import talos
    platform, ud, why = first_boot_config(world, node, drive_re)
    node.platform = platform
    node.first_boot = why
    if ud is None:
        return False
    try:
        docs, main = mgr.validator.check(ud)
    except talos.ConfigError as e:
        node.state = "error: the machine config on the cidata drive is invalid: %s" % e
        return True
    node.config, node.docs = main, docs
    mgr.learn_ca(main)
    mgr.schedule_install(node, talos.static_address(docs, main))
    return True
