"""Bare-metal / VPS side of the simulator (FACTS-metal.md §1-3).

- Factory: a small Image Factory over plain HTTP on loopback serving a test
  image as /image/<schematic>/<version>/metal-amd64.raw[.zst|.xz]. Like the
  real one it serves only schematics it knows: the vanilla id, or one
  POSTed to /schematics (FACTS-metal.md §1: "The factory must know the
  schematic (POST it once) before it serves a non-vanilla ID"); others 404.
- Metal: a server whose disk is a file. boot(ip, disk) is what the rescue
  host's `reboot` script asks for: the machine boots that disk. Only a disk
  that starts with the metal image's bytes boots Talos (a partial or other
  image boots nothing); a disk that was installed (config applied) boots
  its installed system; a fresh one comes up in maintenance mode at ip
  (FACTS-metal.md §3: STATE empty means maintenance mode).
"""
import os
import hashlib
import http.server
import json
import re
import subprocess
import threading
import urllib.parse

from talos import Node

VANILLA = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
IMAGE_RE = re.compile(r"^/image/([0-9a-f]{64})/(v\d+\.\d+\.\d+)/metal-amd64\.raw(\.zst|\.xz)?$")
# boot ISOs (FACTS.md section f: .../metal-amd64.iso, .../nocloud-amd64.iso)
ISO_RE = re.compile(r"^/image/([0-9a-f]{64})/(v\d+\.\d+\.\d+)/(metal|nocloud)-amd64\.iso$")


# The schematic as image-factory's pkg/schematic decodes it (go-yaml v3 with
# KnownFields: an unknown key is an error naming it, its line and the Go
# type). Fields per FACTS.md §f, in canonical order. Only those marked True
# are re-encoded here; the others are real but not simulated.
SCHEMATIC_FIELDS = {
    "schematic.Schematic": [("owner", None), ("overlay", None), ("customization", "schematic.Customization")],
    "schematic.Customization": [("embeddedMachineConfiguration", None), ("extraKernelArgs", True),
                                ("meta", None), ("systemExtensions", "schematic.SystemExtensions"),
                                ("bootloader", None), ("secureboot", None), ("diskImage", None)],
    "schematic.SystemExtensions": [("officialExtensions", True)],
}
PLAIN_RE = re.compile(r"^[A-Za-z0-9_./=,+][A-Za-z0-9_./=,+:@-]*$")


class SchematicError(Exception):
    pass


def _check_known(node, typ, errs):
    """go-yaml's "field X not found in type T" for every unknown key."""
    import yaml
    if not isinstance(node, yaml.MappingNode):
        return
    names = dict(SCHEMATIC_FIELDS.get(typ, []))
    for k, v in node.value:
        if k.value not in names:
            errs.append("  line %d: field %s not found in type %s" % (k.start_mark.line + 1, k.value, typ))
        elif isinstance(names[k.value], str):
            _check_known(v, names[k.value], errs)


def _plain(s):
    if not isinstance(s, str) or not PLAIN_RE.match(s) or s in ("true", "false", "null", "~") or \
            re.fullmatch(r"[0-9.+-eE]+", s):
        raise SchematicError("labsim: value %r would need YAML quoting; not simulated" % (s,))
    return s


def canonical_schematic(body):
    """The canonical YAML of a POSTed schematic (YAML or JSON), as the
    factory re-encodes it (FACTS.md §f); SchematicError when the factory
    would refuse it (its message) or labsim cannot encode it."""
    import yaml
    try:
        node = yaml.compose(body)
        data = yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise SchematicError("yaml: %s" % e)
    errs = []
    _check_known(node, "schematic.Schematic", errs)
    if errs:
        raise SchematicError("yaml: unmarshal errors:\n" + "\n".join(errs))
    data = data or {}
    if not isinstance(data, dict):
        raise SchematicError("yaml: unmarshal errors:\n  line 1: cannot unmarshal into schematic.Schematic")
    cust = data.get("customization") or {}
    for k in list(data) + list(cust):
        if k in ("owner", "overlay", "embeddedMachineConfiguration", "meta", "bootloader", "secureboot",
                 "diskImage") and (data.get(k) or cust.get(k)):
            raise SchematicError("labsim: schematic field %s is not simulated" % k)
    out = []
    args = cust.get("extraKernelArgs") or []
    exts = (cust.get("systemExtensions") or {}).get("officialExtensions") or []
    if args:
        out.append("    extraKernelArgs:\n" + "".join("        - %s\n" % _plain(a) for a in args))
    if exts:
        out.append("    systemExtensions:\n        officialExtensions:\n" +
                   "".join("            - %s\n" % _plain(e) for e in exts))
    return ("customization:\n" + "".join(out)) if out else "customization: {}\n"


class Factory:
    def __init__(self, image_path, versions=None):
        # image_path None: boot ISOs only (a Proxmox lab), no raw image
        self.raw = b""
        if image_path:
            with open(image_path, "rb") as f:
                self.raw = f.read()
        self.sha = hashlib.sha256(self.raw).hexdigest()
        self.known = {VANILLA}
        self.versions = versions          # None: any vX.Y.Z
        self.blobs = {"": self.raw}       # compressed on first request (quick start)
        self.gets = []                    # paths served or refused, in order
        self.posts = []                   # POST /schematics: {"status", "id" | "error"}
        self.cut_next = 0                 # serve only this many bytes of the next image (then close)
        self.lock = threading.Lock()

    def lookup(self, path):
        """(status, body) for a GET of path."""
        m = IMAGE_RE.match(path) if self.raw else None
        iso = ISO_RE.match(path)
        if not m and not iso:
            return 404, b"404 page not found\n"
        sid, ver = (m or iso).group(1), (m or iso).group(2)
        if sid not in self.known:
            return 404, b"schematic not found\n"
        if self.versions is not None and ver not in self.versions:
            return 404, b"version not found\n"
        if iso:
            # not a bootable ISO: nothing in the lab boots it (Proxmox
            # VMs boot the simulated Talos), only its name matters
            return 200, ("labsim ISO %s %s %s\n" % (sid, ver, iso.group(3))).encode()
        comp = m.group(3) or ""
        with self.lock:
            if comp not in self.blobs:
                tool = {".zst": ["zstd", "-q", "-c"], ".xz": ["xz", "-q", "-0", "-c"]}[comp]
                self.blobs[comp] = subprocess.run(tool, input=self.raw, check=True,
                                                  stdout=subprocess.PIPE).stdout
            return 200, self.blobs[comp]

    def fetch(self, url):
        """A GET of url by another simulated host (Proxmox's download-url
        fetching a boot ISO): (status, body), or None when url is not this
        factory's."""
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or (u.hostname, u.port) != getattr(self, "addr", None):
            return None
        status, body = self.lookup(u.path)
        with self.lock:
            self.gets.append({"path": u.path, "status": status, "by": "proxmox"})
        return status, body

    def serve(self, addr):
        fac = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                status, body = fac.lookup(self.path)
                with fac.lock:
                    fac.gets.append({"path": self.path, "status": status})
                    cut, fac.cut_next = (fac.cut_next, 0) if status == 200 else (0, fac.cut_next)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain")
                self.end_headers()
                if cut:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if self.path != "/schematics":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    canon = canonical_schematic(body)
                except SchematicError as e:
                    # image-factory: http.Error(err.Error(), 400)
                    out = (str(e) + "\n").encode()
                    with fac.lock:
                        fac.posts.append({"status": 400, "error": str(e)})
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(out)))
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.end_headers()
                    self.wfile.write(out)
                    return
                # the id is the SHA-256 of the canonical YAML (FACTS.md §f)
                sid = hashlib.sha256(canon.encode()).hexdigest()
                with fac.lock:
                    fac.known.add(sid)
                    fac.posts.append({"status": 201, "id": sid})
                out = json.dumps({"id": sid, "schematic": canon}).encode()
                self.send_response(201)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(out)

        host, port = addr
        self.httpd = http.server.ThreadingHTTPServer((host, port), H)
        self.addr = (host, self.httpd.server_address[1])
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.httpd.server_address[1]

    def shutdown(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Metal:
    """Servers booting a disk file, on the Talos manager mgr."""

    def __init__(self, mgr, factory):
        self.mgr = mgr
        self.factory = factory
        self.by_disk = {}     # disk path -> Node
        self.boots = []       # {"ip", "disk", "result"}

    def boot(self, ip, disk):
        """The server at ip reboots into its disk (a file). Returns what it
        booted: "maintenance", "installed" or "no-talos"."""
        try:
            with open(disk, "rb") as f:
                head = f.read(len(self.factory.raw))
                st = os.fstat(f.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError as e:
            head = b""
            stamp = None
            why = str(e)
        else:
            why = None
        mgr = self.mgr
        with mgr.lock:
            node = self.by_disk.get(disk)
            if node is not None and (head != self.factory.raw or getattr(node, "disk_stamp", stamp) != stamp):
                # written from outside since it last booted (the rescue
                # system): STATE and EPHEMERAL, etcd's data with them, are
                # gone, so a control plane's etcd member no longer holds any
                self._wiped(node)
            if head != self.factory.raw:
                # not (all of) the metal image: nothing boots
                if node is not None:
                    node.stop_server()
                    node.state = "off"
                    if mgr.by_ip.get(node.ip) is node:
                        del mgr.by_ip[node.ip]
                    self.by_disk.pop(disk, None)
                    mgr.nodes.pop(("metal", disk), None)
                self.boots.append({"ip": ip, "disk": disk, "result": "no-talos", "why": why})
                return "no-talos"
            if node is None:
                node = Node(mgr, None, ip)
                node.platform = "metal"
                self.by_disk[disk] = node
                mgr.nodes[("metal", disk)] = node
            node.stop_server()
            cur = mgr.by_ip.get(ip)
            if cur is not None and cur is not node and cur.server is not None:
                node.state = "error: address %s is already in use by another machine" % ip
                self.boots.append({"ip": ip, "disk": disk, "result": node.state})
                return node.state
            node.ip = ip
            mgr.by_ip[ip] = node
            node.disk_stamp = stamp
            node.state = "booting"
            result = "installed" if node.config is not None else "maintenance"
            self.boots.append({"ip": ip, "disk": disk, "result": result})

        def up():
            with mgr.lock:
                if node.state != "booting":
                    return
                if node.config is not None:
                    mgr.bring_up(node, "booting")
                    return
                try:
                    node.start_maintenance()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        mgr._later(mgr.boot_seconds, up)
        return result

    def _wiped(self, node):
        if node.config and node.is_controlplane() and not node.foreign:
            self.mgr.etcd_of(node).node_wiped(node)
        node.config = None
        node.docs = []
        node.upgraded_tag = None
        node.bootstrapped = False

    def snapshot(self):
        return {"boots": list(self.boots), "factory_gets": list(self.factory.gets),
                "factory_posts": list(self.factory.posts),
                "disks": {d: n.state for d, n in self.by_disk.items()}}
