"""Simulated Talos nodes for labsim: maintenance mode (server-only TLS), then,
after ApplyConfiguration and a time-scaled "install", mTLS against the
config's OS CA. Messages come from proto/*.proto compiled at runtime."""
import base64
import copy
import datetime
import importlib
import io
import ipaddress
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from concurrent import futures

import grpc
import yaml

import etcd
import firewall

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
MAINT_MSG = "API is not implemented in maintenance mode"
# The ports the firewall rules name for apid and the Kubernetes API, whatever
# port the simulator listens on for them (tests use free ports).
APID_PORT = 50000
KUBE_API_PORT = 6443

# Roles allowed per method (FACTS e); everything else needs os:admin.
READERS = {"os:admin", "os:operator", "os:reader"}
METHOD_ROLES = {
    "/machine.MachineService/Version": READERS,
    "/machine.MachineService/ServiceList": READERS,
    "/machine.MachineService/EtcdSnapshot": {"os:admin", "os:operator", "os:etcd:backup"},
    # FACTS-day2.md section 2
    "/machine.MachineService/EtcdMemberList": READERS | {"os:etcd:backup"},
    "/machine.MachineService/EtcdStatus": READERS | {"os:etcd:backup"},
    # FACTS-day2.md section 2: ImagePull is admin and operator, on any node
    "/machine.MachineService/ImagePull": {"os:admin", "os:operator"},
    # COSI reads (talosctl get): apid's authorizer lets readers list
    "/cosi.resource.State/List": READERS,
}
# The COSI resources this simulator serves: (namespace, type) -> what lists
# them on a node (talosctl get manifests: Manifests.kubernetes.talos.dev in
# controlplane, rendered on control planes only).
COSI_MANIFESTS = ("controlplane", "Manifests.kubernetes.talos.dev")

# What FACTS-day2.md section 2 calls each etcd method on a worker:
# Unimplemented "<api> is only available on control plane nodes".
ETCD_API = {"EtcdMemberList": "member list", "EtcdRemoveMemberByID": "etcd remove member",
            "EtcdLeaveCluster": "etcd leave", "EtcdForfeitLeadership": "etcd forfeit leadership",
            "EtcdSnapshot": "etcd snapshot", "EtcdRecover": "etcd recover", "EtcdStatus": "etcd status"}

# registry[:port]/path[/more]:tag; the registry part must look like a host
# (contain a dot or a port, or be localhost).
IMAGE_RE = re.compile(r"^(?P<reg>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?)"
                      r"/(?P<path>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
                      r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def image_ref_ok(image):
    m = IMAGE_RE.match(image or "")
    return bool(m) and ("." in m.group("reg") or ":" in m.group("reg") or m.group("reg") == "localhost")


def image_tag(image):
    """The tag of an image reference (None without one)."""
    if not image:
        return None
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


class Fail(Exception):
    """A gRPC error from a method; the router turns it into a status or a
    one-to-many error message."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


class NeedTrustd(Exception):
    pass


def go_code_name(code):
    """grpc.StatusCode.FAILED_PRECONDITION -> FailedPrecondition (as Go prints it)."""
    return "OK" if code == grpc.StatusCode.OK else "".join(p.capitalize() for p in code.name.split("_"))


def load_protos(build_dir):
    out = os.path.join(build_dir, "pb")
    os.makedirs(out, exist_ok=True)
    files = sorted(f for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
    subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", out] + files, check=True)
    if out not in sys.path:
        sys.path.insert(0, out)
    return {n: importlib.import_module(n + "_pb2") for n in ("common", "machine", "storage", "cosi")}


# ---------------------------------------------------------------- crypto

def _x509():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, ec, rsa
    from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
    return x509, hashes, serialization, ed25519, ec, rsa, NameOID, ExtendedKeyUsageOID


def _sign_alg(key):
    x509, hashes, serialization, ed25519, ec, rsa, NameOID, Eku = _x509()
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue(ca_cert, ca_key, cn, orgs=(), ips=(), dns=(), server=True, days=1):
    """Ed25519 leaf signed by ca; returns (cert_pem, key_pem)."""
    x509, hashes, serialization, ed25519, ec, rsa, NameOID, Eku = _x509()
    key = ed25519.Ed25519PrivateKey.generate()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    b = (x509.CertificateBuilder().subject_name(x509.Name(attrs))
         .issuer_name(ca_cert.subject if ca_cert is not None else x509.Name(attrs))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.ExtendedKeyUsage([Eku.SERVER_AUTH if server else Eku.CLIENT_AUTH]), critical=False))
    sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ca_cert is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        cert = b.sign(key, None)
    else:
        cert = b.sign(ca_key, _sign_alg(ca_key))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def issue_ec_server(ca_cert, ca_key, cn, ips=(), dns=()):
    """ECDSA P-256 server leaf (for the Kubernetes API)."""
    x509, hashes, serialization, ed25519, ec, rsa, NameOID, Eku = _x509()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([Eku.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, _sign_alg(ca_key)))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def load_ca(b64crt, b64key):
    x509, hashes, serialization, *_ = _x509()
    crt_pem = base64.b64decode(b64crt)
    # Talos labels its PKCS#8 Ed25519 keys "ED25519 PRIVATE KEY"; OpenSSL wants "PRIVATE KEY"
    key_pem = base64.b64decode(b64key).replace(b"ED25519 PRIVATE KEY", b"PRIVATE KEY")
    return crt_pem, x509.load_pem_x509_certificate(crt_pem), \
        serialization.load_pem_private_key(key_pem, password=None)


def make_ca(kind="os"):
    """A fresh self-signed CA like `talosctl gen secrets` makes: Ed25519 O=talos
    for the OS CA, ECDSA P-256 O=kubernetes for the Kubernetes CA. Returns
    (crt_pem, key_pem) with the key as PKCS#8 PEM."""
    x509, hashes, serialization, ed25519, ec, rsa, NameOID, Eku = _x509()
    if kind == "os":
        key, org, alg = ed25519.Ed25519PrivateKey.generate(), "talos", None
    else:
        key, org, alg = ec.generate_private_key(ec.SECP256R1()), "kubernetes", hashes.SHA256()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([Eku.SERVER_AUTH, Eku.CLIENT_AUTH]), critical=False)
            .sign(key, alg))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# ---------------------------------------------------------------- config checks

RELAXED = [("persist",), ("machine", "install", "extraKernelArgs"), ("machine", "network", "interfaces"),
           ("machine", "network", "nameservers"), ("machine", "network", "hostname"),
           ("machine", "features", "rbac"), ("machine", "features", "stableHostname"),
           ("machine", "features", "apidCheckExtKeyUsage")]


class ConfigError(Exception):
    pass


class Validator:
    def __init__(self, schema_path):
        import json
        import jsonschema
        with open(schema_path) as f:
            self.schema = json.load(f)
        self.cls = jsonschema.validators.validator_for(self.schema)
        self.v = self.cls(self.schema)

    def check(self, data):
        try:
            docs = [d for d in yaml.safe_load_all(data) if d is not None]
        except yaml.YAMLError as e:
            raise ConfigError("failed to parse config: %s" % e)
        main = [d for d in docs if isinstance(d, dict) and d.get("version") == "v1alpha1"]
        if not main:
            raise ConfigError("config doesn't contain v1alpha1 config")
        for d in docs:
            d = copy.deepcopy(d)
            if d.get("version") == "v1alpha1":
                # keys talosctl emits / Talos 1.12 accepts that the 1.12 schema rejects
                for path in RELAXED:
                    cur = d
                    for k in path[:-1]:
                        cur = cur.get(k) if isinstance(cur, dict) else None
                    if isinstance(cur, dict):
                        cur.pop(path[-1], None)
            errs = sorted(self.v.iter_errors(d), key=lambda e: list(e.absolute_path))
            if errs:
                e = errs[0]
                where = ".".join(str(p) for p in e.absolute_path) or "(document)"
                raise ConfigError("1 error occurred:\n\t* %s: %s" % (where, e.message[:300]))
        return docs, main[0]


def needs_reboot(old, new):
    """Whether moving an installed node from config old to new needs a
    reboot: its install, its type or its cluster identity change."""
    if old is None:
        return True
    om, nm = old.get("machine") or {}, new.get("machine") or {}
    if om.get("install") != nm.get("install") or om.get("type") != nm.get("type"):
        return True
    oc, nc = old.get("cluster") or {}, new.get("cluster") or {}
    return any(oc.get(k) != nc.get(k) for k in ("id", "secret", "ca", "controlPlane"))


def static_address(docs, main):
    for itf in ((main.get("machine") or {}).get("network") or {}).get("interfaces") or []:
        for a in itf.get("addresses") or []:
            return a.split("/")[0]
    for d in docs:
        if d.get("kind") == "LinkConfig":
            for a in d.get("addresses") or []:
                addr = a.get("address") if isinstance(a, dict) else a
                if addr:
                    return addr.split("/")[0]
    return None


# The Kubernetes containers a node runs from its machine config (FACTS-day2
# section 4b): on a control plane the static pods of cluster.apiServer.image,
# cluster.controllerManager.image and cluster.scheduler.image; on every node
# the kubelet of machine.kubelet.image. Images are <name>:v<version>.
K8S_STATIC = (("kube-apiserver", "apiServer"), ("kube-controller-manager", "controllerManager"),
              ("kube-scheduler", "scheduler"))


def k8s_images(config, controlplane):
    out = {}
    c = (config or {}).get("cluster") or {}
    if controlplane:
        for comp, key in K8S_STATIC:
            img = (c.get(key) or {}).get("image")
            if img:
                out[comp] = img
    img = (((config or {}).get("machine") or {}).get("kubelet") or {}).get("image")
    if img:
        out["kubelet"] = img
    return out


# ---------------------------------------------------------------- node

def _now_str():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


class Node:
    """One simulated Talos machine (or a foreign one, with vmid None)."""

    def __init__(self, mgr, vmid, ip):
        self.mgr = mgr
        self.vmid = vmid
        self.ip = ip
        self.state = "booting"
        self.server = None
        self.config = None
        self.docs = []
        self.bootstrapped = False
        self.lock = threading.Lock()
        self.applying = False
        self.log = []
        self.maint_ca = None
        self.vm = None              # the world's VM dict (per-VM knobs such as talos_stuck)
        self.foreign = False
        self.upgraded_tag = None    # set by a finished Upgrade
        self.installed_tag = None   # the version installed (a later config change keeps it)
        self.staged = None          # (docs, main): an ApplyConfiguration STAGED for the next boot
        self.boot_id = str(uuid.uuid4())
        self.unhealthy_until = 0.0  # talos_upgrade_unhealthy: etcd/kubelet unhealthy until then
        self.upgrades = []          # [{image, actor_id, t}]
        self.stuck_applies = 0      # ApplyConfiguration calls accepted while talos_stuck
        self.snapshots = 0          # EtcdSnapshot streams served
        self.etcd_member = None     # this node's etcd member id (its data dir holds it)
        self.etcd_joining = False
        self.etcd_recover = None    # bytes uploaded with EtcdRecover (/var/lib/etcd.snapshot)
        self.etcd_failed = None     # why the etcd service failed (a bad recovery)
        self.since = None
        self.since_ts = time.time()
        self.note = None            # why the node is not up yet (e.g. waiting for trustd)
        # what its kubelet and static pods run: {component: {"image", "t", "cfgver"}};
        # only a config the node got changes it (k8s_boot, k8s_config_applied)
        self.k8s_run = {}
        self.cfgver = 0             # the MachineConfig resource version (talos.dev/config-version)
        self.pulls = []             # ImagePull calls served: [{t, namespace, ref}]

    def is_controlplane(self):
        return ((self.config or {}).get("machine") or {}).get("type") in ("controlplane", "init")

    def stuck(self):
        return bool(self.vm and self.vm.get("talos_stuck"))

    def hostname(self):
        """HostnameConfig.hostname, else machine.network.hostname, else talos-<vmid>."""
        for d in self.docs or []:
            if isinstance(d, dict) and d.get("kind") == "HostnameConfig" and d.get("hostname"):
                return str(d["hostname"])
        net = ((self.config or {}).get("machine") or {}).get("network") or {}
        if isinstance(net, dict) and net.get("hostname"):
            return str(net["hostname"])
        if self.vmid is None:
            return "foreign-" + self.ip.replace(".", "-")
        return "talos-%d" % self.vmid

    def version_tag(self):
        """The running Talos version: the last upgrade's tag, else the tag of
        machine.install.image, else the manager default."""
        if self.upgraded_tag:
            return self.upgraded_tag
        if self.installed_tag:
            return self.installed_tag
        img = (((self.config or {}).get("machine") or {}).get("install") or {}).get("image")
        return image_tag(img) or self.mgr.talos_version

    def unhealthy(self):
        return time.time() < self.unhealthy_until

    def k8s_boot(self):
        """At boot the kubelet and the static pods start from the config."""
        now = time.time()
        self.cfgver += 1
        self.k8s_run = {comp: {"image": img, "t": now, "cfgver": self.cfgver}
                        for comp, img in k8s_images(self.config, self.is_controlplane()).items()}

    def k8s_config_applied(self):
        """A config applied without a reboot: Talos renders the static pod
        manifests again and the kubelet restarts the changed pods (after
        k8s_static_pod_seconds); a new machine.kubelet.image restarts the
        kubelet service (after k8s_kubelet_restart_seconds), which then
        reports its version in the Node. Until then the old ones run."""
        self.cfgver += 1
        gen = self.cfgver
        for comp, img in k8s_images(self.config, self.is_controlplane()).items():
            run = self.k8s_run.get(comp)
            if run and run["image"] == img:
                run["cfgver"] = gen
                continue

            def swap(comp=comp):
                with self.mgr.lock:
                    if self.state != "running":
                        return
                    now_img = k8s_images(self.config, self.is_controlplane()).get(comp)
                    cur = self.k8s_run.get(comp)
                    if now_img and (not cur or cur["image"] != now_img):
                        self.k8s_run[comp] = {"image": now_img, "t": time.time(), "cfgver": self.cfgver}
                        self.mgr.event(self, "k8s %s %s" % (comp, now_img))
            knob = "k8s_kubelet_restart_seconds" if comp == "kubelet" else "k8s_static_pod_seconds"
            self.mgr._later(float(self.mgr.knobs.get(knob) or 0.0), swap)

    def kubelet_version(self):
        run = self.k8s_run.get("kubelet")
        return image_tag(run["image"]) if run else None

    def static_pods(self):
        """The mirror pods this control plane's kubelet posts to the API:
        Running and Ready k8s_static_pod_ready_seconds after the container
        started; not Ready while the node is down, or by the knobs
        k8s_static_pod_unready / k8s_static_pod_fail_update."""
        if not self.is_controlplane() or self.state not in ("running", "upgrading", "installing"):
            return []
        knobs = self.mgr.knobs
        unready = str((knobs.get("k8s_static_pod_unready") or {}).get(str(self.vmid), ""))
        failupd = str((knobs.get("k8s_static_pod_fail_update") or {}).get(str(self.vmid), ""))
        out = []
        now = time.time()
        for comp, _ in K8S_STATIC:
            run = self.k8s_run.get(comp)
            if not run:
                continue
            ready, why = True, None
            if self.state != "running":
                ready, why = False, "NodeNotReady"
            elif comp in unready.split(","):
                ready, why = False, "ContainersNotReady"
            elif comp in failupd.split(",") and getattr(self, "k8s_first_img", {}).get(comp, run["image"]) != run["image"]:
                ready, why = False, "CrashLoopBackOff"
            elif now - run["t"] < float(knobs.get("k8s_static_pod_ready_seconds") or 0.0) * self.mgr.scale:
                ready, why = False, "ContainersNotReady"
            out.append({"component": comp, "node": self.hostname(), "ip": self.ip, "image": run["image"],
                        "cfgver": run["cfgver"], "ready": ready, "why": why,
                        "started": datetime.datetime.utcfromtimestamp(run["t"]).strftime("%Y-%m-%dT%H:%M:%SZ")})
        return out

    def os_ca_pem(self):
        return base64.b64decode(self.config["machine"]["ca"]["crt"]) if self.config else None

    def describe(self):
        d = {"vmid": self.vmid, "ip": self.ip, "state": self.state, "bootstrapped": self.bootstrapped,
             "port": self.mgr.port, "maintenance_ca": self.maint_ca,
             "cluster_endpoint": ((self.config or {}).get("cluster") or {}).get("controlPlane", {}).get("endpoint"),
             "hostname": self.hostname() if self.config else None,
             "type": ((self.config or {}).get("machine") or {}).get("type"),
             "version": self.version_tag() if self.config else None,
             "install_image": (((self.config or {}).get("machine") or {}).get("install") or {}).get("image"),
             # cluster.proxy.image of its config (FACTS-day2 4b step 4)
             "proxy_image": (((self.config or {}).get("cluster") or {}).get("proxy") or {}).get("image"),
             "boot_id": self.boot_id, "unhealthy": self.unhealthy(),
             "upgrades": list(self.upgrades), "stuck": self.stuck(), "stuck_applies": self.stuck_applies,
             "snapshots": self.snapshots, "foreign": self.foreign, "note": self.note,
             "resets": getattr(self, "resets", 0),
             "reverts": getattr(self, "reverts", 0), "tries": getattr(self, "tries", 0),
             "trying": getattr(self, "trying", False),
             "doc_kinds": [d.get("kind") or "v1alpha1" for d in self.docs or [] if isinstance(d, dict)],
             "etcd_member": "%016x" % self.etcd_member if self.etcd_member else None,
             "etcd_recover_bytes": len(self.etcd_recover) if self.etcd_recover is not None else None,
             "etcd_failed": self.etcd_failed,
             "k8s": {c: r["image"] for c, r in self.k8s_run.items()}, "config_version": self.cfgver,
             "k8s_first": getattr(self, "k8s_first_img", None),   # what its first boot ran
             "pulls": list(self.pulls),
             "platform": getattr(self, "platform", None), "first_boot": getattr(self, "first_boot", None)}
        if self.foreign:
            d["os_ca"] = self.os_ca_pem().decode()
        return d

    def stop_server(self):
        if self.server is not None:
            self.server.stop(0)
            self.server = None
        if getattr(self, "gate", None) is not None:
            self.gate.close()
            self.gate = None

    def admits(self, src, port, proto="tcp"):
        """Whether the node's firewall (its config's documents) lets a new
        connection from src to port through (firewall.py)."""
        return firewall.admits(self.docs if self.config is not None else [], src, port, proto,
                               own=(self.ip,), cluster_nets=firewall.cluster_nets(self.config))

    def start_maintenance(self):
        x509, *_ = _x509()
        ca_pem, ca_key = issue(None, None, "maintenance-ca")
        from cryptography.hazmat.primitives import serialization
        ca = x509.load_pem_x509_certificate(ca_pem)
        self.maint_ca = ca_pem.decode()
        k = serialization.load_pem_private_key(ca_key, None)
        crt, key = issue(ca, k, "maintenance-service.talos.dev", ips=[self.ip])
        creds = grpc.ssl_server_credentials([(key, crt)])
        self._serve(creds, maintenance=True)
        self.state = "maintenance"

    def start_installed(self):
        m = self.config["machine"]
        key_b64 = m["ca"].get("key") or self.mgr.ca_keys.get(m["ca"]["crt"])
        if not key_b64:
            # a worker's config has the OS CA without its key: its apid
            # certificate comes from a control plane's trustd
            raise NeedTrustd("for trustd: no control plane with this OS CA is known to issue the apid certificate")
        ca_pem, ca, ca_key = load_ca(m["ca"]["crt"], key_b64)
        sans = [self.ip] + [s for s in (m.get("certSANs") or []) if _is_ip(s)]
        dns = [self.hostname()] + [s for s in (m.get("certSANs") or []) if not _is_ip(s)]
        crt, key = issue(ca, ca_key, self.hostname(), ips=sans, dns=dns)
        creds = grpc.ssl_server_credentials([(key, crt)], root_certificates=ca_pem, require_client_auth=True)
        self._serve(creds, maintenance=False)
        self.boot_id = str(uuid.uuid4())
        self.state = "running"
        self.mgr.event(self, "up")
        self.since = _now_str()
        self.since_ts = time.time()
        self.k8s_boot()
        if not hasattr(self, "k8s_first_img"):
            self.k8s_first_img = {c: r["image"] for c, r in self.k8s_run.items()}

    def _serve(self, creds, maintenance):
        self.stop_server()
        # no SO_REUSEPORT: a second server on a taken IP:port must fail, not share it
        srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
        srv.add_generic_rpc_handlers([Handler(self, maintenance)])
        # apid listens behind the node's firewall: a gate on ip:port admits
        # each new connection by its source address (firewall.py), then
        # relays it to the gRPC server on an abstract unix socket.
        backend = "labsim-apid-%d-%s" % (os.getpid(), uuid.uuid4().hex)
        try:
            gate = firewall.Gate((self.ip, self.mgr.port), "\0" + backend,
                                 lambda src: self.admits(src, APID_PORT))
        except OSError:
            raise RuntimeError("cannot listen on %s:%d" % (self.ip, self.mgr.port))
        try:
            port = srv.add_secure_port("unix-abstract:" + backend, creds)
        except RuntimeError:
            port = 0
        if port == 0:
            gate.close()
            raise RuntimeError("cannot listen on %s:%d" % (self.ip, self.mgr.port))
        srv.start()
        self.server = srv
        self.gate = gate


def _is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


class Handler(grpc.GenericRpcHandler):
    def __init__(self, node, maintenance):
        self.node = node
        self.maint = maintenance
        self.pb = node.mgr.pb

    def service(self, details):
        method = details.method
        md = list(details.invocation_metadata or ())
        call = {"t": time.time(), "node": self.node.ip, "method": method, "maintenance": self.maint}
        for k in ("node", "nodes"):
            vals = [v for mk, v in md if mk == k]
            if vals:
                call[k] = vals
        self.node.mgr.calls.append(call)
        m, c = self.pb["machine"], self.pb["common"]
        table = {  # method -> (server stream, request, response (unary), fn)
            "/machine.MachineService/ApplyConfiguration": (False, m.ApplyConfigurationRequest,
                                                           m.ApplyConfigurationResponse, self.apply),
            "/machine.MachineService/Version": (False, c.NoArgs, m.VersionResponse, self.version),
            "/machine.MachineService/Bootstrap": (False, m.BootstrapRequest, m.BootstrapResponse, self.bootstrap),
            "/machine.MachineService/Kubeconfig": (True, c.NoArgs, None, self.kubeconfig),
            "/machine.MachineService/Reset": (False, m.ResetRequest, m.ResetResponse, self.reset),
            "/machine.MachineService/Upgrade": (False, m.UpgradeRequest, m.UpgradeResponse, self.upgrade),
            "/machine.MachineService/ServiceList": (False, c.NoArgs, m.ServiceListResponse, self.service_list),
            "/machine.MachineService/EtcdSnapshot": (True, m.EtcdSnapshotRequest, None, self.etcd_snapshot),
            "/machine.MachineService/Read": (True, m.ReadRequest, None, self.read),
            "/machine.MachineService/EtcdMemberList": (False, m.EtcdMemberListRequest, m.EtcdMemberListResponse,
                                                       self.etcd_member_list),
            "/machine.MachineService/EtcdRemoveMemberByID": (False, m.EtcdRemoveMemberByIDRequest,
                                                             m.EtcdRemoveMemberByIDResponse, self.etcd_remove),
            "/machine.MachineService/EtcdLeaveCluster": (False, m.EtcdLeaveClusterRequest,
                                                         m.EtcdLeaveClusterResponse, self.etcd_leave),
            "/machine.MachineService/EtcdForfeitLeadership": (False, m.EtcdForfeitLeadershipRequest,
                                                              m.EtcdForfeitLeadershipResponse, self.etcd_forfeit),
            "/machine.MachineService/EtcdStatus": (False, c.NoArgs, m.EtcdStatusResponse, self.etcd_status),
            "/machine.MachineService/EtcdRecover": ("client", c.Data, m.EtcdRecoverResponse, self.etcd_recover),
            "/machine.MachineService/ImagePull": (False, m.ImagePullRequest, m.ImagePullResponse, self.image_pull),
        }
        if method == "/cosi.resource.State/List" and not self.maint:
            return grpc.unary_stream_rpc_method_handler(
                self.cosi_list, request_deserializer=self.pb["cosi"].ListRequest.FromString,
                response_serializer=lambda msg: msg.SerializeToString())
        if method not in table or (self.maint and method != "/machine.MachineService/ApplyConfiguration"):
            return grpc.unary_unary_rpc_method_handler(self.unimplemented,
                                                       request_deserializer=lambda b: b,
                                                       response_serializer=lambda b: b)
        stream, req, resp, fn = table[method]
        roles = METHOD_ROLES.get(method, {"os:admin"})
        if stream == "client":
            return grpc.stream_unary_rpc_method_handler(
                self.wrap_client_stream(fn, roles), request_deserializer=req.FromString,
                response_serializer=lambda msg: msg.SerializeToString())
        if stream:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(fn, roles), request_deserializer=req.FromString,
                response_serializer=lambda msg: msg.SerializeToString())
        deser = req.FromString
        if method == "/machine.MachineService/ApplyConfiguration":
            def deser(b, call=call, parse=req.FromString):
                # the mode asked, kept in the call log (an observation
                # for the tests, no rule)
                msg = parse(b)
                call["mode"] = int(msg.mode)
                return msg
        return grpc.unary_unary_rpc_method_handler(
            self.wrap_unary(fn, resp, roles), request_deserializer=deser,
            response_serializer=lambda msg: msg.SerializeToString())

    def unimplemented(self, req, ctx):
        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, MAINT_MSG if self.maint else "unknown method")

    # --- routing (apid): none / node (one-to-one) / nodes (one-to-many)
    def route(self, ctx, roles):
        """Returns ("one", Node) or ("many", [ip, ...]); aborts on a bad request."""
        md = ctx.invocation_metadata()
        node = [v for k, v in md if k == "node"]
        nodes = [v for k, v in md if k == "nodes"]
        if len(node) > 1:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "node metadata must be single-valued")
        if self.maint:
            return "one", self.node
        if node and nodes:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "node and nodes metadata are mutually exclusive")
        self.check_client(ctx, roles)
        if nodes:
            return "many", nodes
        if node:
            try:
                return "one", self.resolve(node[0])
            except Fail as e:
                ctx.abort(e.code, e.msg)
        return "one", self.node

    def resolve(self, ip):
        """The node apid would reach at ip, or Fail(UNAVAILABLE) as the proxy would see it."""
        port = self.node.mgr.port
        target = self.node.mgr.by_ip.get(ip)
        if target is self.node:
            return target
        if target is None or target.state != "running" or target.server is None:
            raise Fail(grpc.StatusCode.UNAVAILABLE,
                       "connection error: desc = \"transport: Error while dialing: dial tcp %s:%d: "
                       "connect: connection refused\"" % (ip, port))
        if target.os_ca_pem() != self.node.os_ca_pem():
            raise Fail(grpc.StatusCode.UNAVAILABLE,
                       "connection error: desc = \"transport: authentication handshake failed: "
                       "tls: failed to verify certificate: x509: certificate signed by unknown authority\"")
        return target

    def error_meta(self, md, ip, e):
        md.hostname = ip
        md.error = "rpc error: code = %s desc = %s" % (go_code_name(e.code), e.msg)
        md.status.code = e.code.value[0]
        md.status.message = e.msg

    def wrap_unary(self, fn, resp_cls, roles):
        def call(req, ctx):
            how, target = self.route(ctx, roles)
            if how == "one":
                try:
                    return fn(target, req, ctx)
                except Fail as e:
                    ctx.abort(e.code, e.msg)
            out = resp_cls()
            for ip in target:
                try:
                    r = fn(self.resolve(ip), req, ctx)
                    for item in r.messages:
                        item.metadata.hostname = ip
                        out.messages.add().CopyFrom(item)
                except Fail as e:
                    self.error_meta(out.messages.add().metadata, ip, e)
            return out
        return call

    def wrap_stream(self, fn, roles):
        c = self.pb["common"]

        def call(req, ctx):
            how, target = self.route(ctx, roles)
            if how == "one":
                try:
                    yield from fn(target, req, ctx)
                except Fail as e:
                    ctx.abort(e.code, e.msg)
                return
            for ip in target:
                try:
                    for d in fn(self.resolve(ip), req, ctx):
                        d.metadata.hostname = ip
                        yield d
                except Fail as e:
                    d = c.Data()
                    self.error_meta(d.metadata, ip, e)
                    yield d
        return call

    def wrap_client_stream(self, fn, roles):
        def call(reqs, ctx):
            how, target = self.route(ctx, roles)
            if how != "one":
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "labsim: client streams go to one node only")
            try:
                return fn(target, reqs, ctx)
            except Fail as e:
                ctx.abort(e.code, e.msg)
        return call

    def check_client(self, ctx, roles):
        from cryptography import x509
        from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
        pems = ctx.auth_context().get("x509_pem_cert") or []
        if not pems:
            ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        cert = x509.load_pem_x509_certificate(pems[0])
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        try:
            eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            eku = []
        if eku != [ExtendedKeyUsageOID.CLIENT_AUTH]:
            ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "client certificate must have exactly clientAuth EKU")
        if not roles.intersection(orgs):
            ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not authorized")

    # --- methods: (node, request, ctx) -> response; errors raise Fail
    def apply(self, node, req, ctx):
        m = self.pb["machine"]
        Mode = m.ApplyConfigurationRequest
        if req.mode in (Mode.NO_REBOOT, Mode.STAGED) and self.maint:
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "apply configuration mode is not supported in maintenance mode")
        with node.lock:
            if node.applying:
                raise Fail(grpc.StatusCode.FAILED_PRECONDITION, "another apply configuration is already in progress")
            if node.state == "installing":
                raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                           "configuration was already applied and node is rebooting")
            node.applying = True
        try:
            try:
                docs, main = node.mgr.validator.check(req.data)
            except ConfigError as e:
                raise Fail(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            if req.dry_run:
                return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(mode_details="dry run")])
            if self.maint and node.stuck():
                # talos_stuck: accepted, but the install never starts
                node.stuck_applies += 1
                return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration()])
            if not self.maint:
                # a config change never changes the Talos that runs: only
                # an install or an Upgrade does
                node.installed_tag = node.version_tag()
            if not self.maint and req.mode == Mode.TRY:
                # TRY (FACTS.md field 6, FACTS-metal.md §4): applied live
                # (the firewall of the new documents at once, for new
                # connections), reverted after try_mode_timeout (default 1
                # min) unless a later apply in another mode replaces it. A change that
                # needs a reboot cannot be tried live (as NO_REBOOT).
                if needs_reboot(node.config, main):
                    raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                               "apply configuration: this change requires a reboot")
                secs = req.try_mode_timeout.seconds if req.HasField("try_mode_timeout") else 60
                old = (node.config, node.docs)
                node.config, node.docs = main, docs
                node.tries = getattr(node, "tries", 0) + 1
                gen = node.tries

                def revert():
                    with node.mgr.lock:
                        if getattr(node, "tries", 0) == gen and getattr(node, "trying", False):
                            node.config, node.docs = old
                            node.trying = False
                            node.reverts = getattr(node, "reverts", 0) + 1
                node.trying = True
                # Not time-scaled: the client chose this timeout and times
                # its own check against it in real seconds (a scaled revert
                # would come before the client's check ends, and the check
                # would then see the old config and confirm the new one).
                node.mgr._later(secs, revert, scaled=False)
                return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(
                    metadata=self.pb["common"].Metadata(hostname=node.ip), mode=Mode.TRY)])
            if not self.maint:
                node.trying = False         # a later apply confirms (or replaces) a try
            if not self.maint and req.mode == Mode.STAGED:
                # written to STATE, applied at the next boot
                node.staged = (docs, main)
                return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(
                    metadata=self.pb["common"].Metadata(hostname=node.ip),
                    mode=Mode.STAGED, mode_details="Staged configuration to be applied after a reboot")])
            if not self.maint and req.mode in (Mode.AUTO, Mode.NO_REBOOT):
                # Installed node, mode AUTO / NO_REBOOT: the same config is
                # a no-op; a change outside install/type/cluster secrets
                # applies live; the rest needs a reboot.
                if not needs_reboot(node.config, main):
                    node.config = main
                    node.docs = docs
                    node.k8s_config_applied()
                    return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(
                        metadata=self.pb["common"].Metadata(hostname=node.ip),
                        mode=Mode.NO_REBOOT, mode_details="Applied configuration without a reboot")])
                if req.mode == Mode.NO_REBOOT:
                    raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                               "apply configuration: this change requires a reboot")
            node.config = main
            node.docs = docs
            node.mgr.learn_ca(main)
            node.mgr.schedule_install(node, static_address(docs, main))
            return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(
                mode=0 if self.maint else Mode.REBOOT,
                mode_details="Applied configuration with a reboot")])
        finally:
            node.applying = False

    def version(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        return m.VersionResponse(messages=[m.Version(
            metadata=c.Metadata(hostname=node.ip),
            version=m.VersionInfo(tag=node.version_tag(), sha="labsim", os="Talos", arch="amd64",
                                  go_version="go1.24"),
            platform=m.PlatformInfo(name=getattr(node, "platform", None) or "metal", mode="metal"),
            features=m.FeaturesInfo(rbac=True))])

    def bootstrap(self, node, req, ctx):
        m = self.pb["machine"]
        if not node.is_controlplane():
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION, "bootstrap can only be performed on a control plane node")
        with node.mgr.lock:
            q = node.mgr.knobs["talos_bootstrap_transient"]
            transient = q.pop(0) if q else None
        if transient:
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION, transient)
        with node.lock:
            cluster = node.mgr.cluster_of(node)
            if cluster.get("bootstrapped") or node.etcd_member:
                raise Fail(grpc.StatusCode.ALREADY_EXISTS, "etcd data directory is not empty")
            data = None
            if req.recover_etcd:
                # the etcd service restores /var/lib/etcd.snapshot when it
                # starts, after Bootstrap answered: a missing or bad file
                # fails the service, not this call
                try:
                    if node.etcd_recover is None:
                        raise etcd.EtcdError("FAILED_PRECONDITION", "open /var/lib/etcd.snapshot: "
                                             "no such file or directory")
                    data = etcd.decode_snapshot(node.etcd_recover, req.recover_skip_hash_check)
                except etcd.EtcdError as e:
                    node.etcd_failed = "failed to recover from the snapshot: %s" % e.msg
                    return m.BootstrapResponse(messages=[m.Bootstrap()])
                node.etcd_recover = None
            node.etcd_failed = None
            try:
                node.mgr.etcd_of(node).bootstrap(node)
            except etcd.EtcdError as e:
                raise Fail(getattr(grpc.StatusCode, e.code), e.msg)
            cluster["bootstrapped"] = True
            node.bootstrapped = True
        node.mgr.on_bootstrap(node, data)
        node.mgr.etcd_join_waiting(node)
        return m.BootstrapResponse(messages=[m.Bootstrap()])

    def cosi_list(self, req, ctx):
        """/cosi.resource.State/List: one node only (apid does not proxy COSI
        one-to-many); the bootstrap manifests its machine config renders
        now, each with its spec as YAML (a list of objects)."""
        how, node = self.route(ctx, METHOD_ROLES["/cosi.resource.State/List"])
        if how != "one":
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "one-2-many proxying is not supported")
        if (req.namespace, req.type) != COSI_MANIFESTS:
            ctx.abort(grpc.StatusCode.NOT_FOUND, 'resource type "%s" is not registered' % req.type)
        if node.state != "running":
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "connection refused")
        import kube
        cs = self.pb["cosi"]
        if not node.config or not node.is_controlplane():
            return
        for rid, objs in kube.rendered_manifests(node.config):
            yield cs.ListResponse(resource=cs.Resource(
                metadata=cs.Metadata(namespace=req.namespace, type=req.type, id=rid, version="1"),
                spec=cs.Spec(yaml_spec=yaml.safe_dump(objs, sort_keys=False))))

    def kubeconfig(self, node, req, ctx):
        c = self.pb["common"]
        if not node.is_controlplane():
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "kubeconfig is only available on control plane nodes")
        data = make_kubeconfig_tgz(node.config)
        for i in range(0, len(data), 1024):
            yield c.Data(bytes=data[i:i + 1024])

    def reset(self, node, req, ctx):
        m = self.pb["machine"]
        # FACTS-day2.md "Reset validation": synchronous, plain errors (Unknown)
        if req.mode == m.ResetRequest.SYSTEM_DISK and req.user_disks_to_wipe:
            raise Fail(grpc.StatusCode.UNKNOWN, "wipe mode SYSTEM_DISK doesn't support UserDisksToWipe parameter")
        # Only entries with wipe=true count; none listed (mode != USER_DISKS)
        # wipes the whole system disk. The config lives on STATE: kept when
        # only other labels are wiped (the node comes back installed).
        labels = {p.label for p in req.system_partitions_to_wipe if p.wipe}
        if req.mode == m.ResetRequest.USER_DISKS:
            keep_config = True
        elif not labels:
            keep_config = False
        else:
            keep_config = "STATE" not in labels
        # reboot=false powers the machine off (FACTS-day2.md §ResetRequest)
        node.mgr.schedule_reset(node, reboot=req.reboot, keep_config=keep_config,
                                graceful=req.graceful, wipe_etcd=self.reset_wipes_etcd(req, labels))
        return m.ResetResponse(messages=[m.Reset(actor_id=str(uuid.uuid4()))])

    def reset_wipes_etcd(self, req, labels):
        """/var/lib/etcd lives on EPHEMERAL: wiping it (alone, with STATE, or
        the whole system disk) leaves etcd empty, waiting in Preparing
        (FACTS-day2 4d step 3, the recovery's Reset of EPHEMERAL)."""
        m = self.pb["machine"]
        return req.mode != m.ResetRequest.USER_DISKS and (not labels or "EPHEMERAL" in labels)

    def read(self, node, req, ctx):
        c = self.pb["common"]
        if req.path != "/proc/sys/kernel/random/boot_id":
            # labsim keeps no file system; never pretend to
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "labsim: Read serves only /proc/sys/kernel/random/boot_id")
        yield c.Data(bytes=(node.boot_id + "\n").encode())

    def upgrade(self, node, req, ctx):
        m = self.pb["machine"]
        image = req.image
        if not image_ref_ok(image):
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                       "error validating installer image %r: failed to parse image reference "
                       "(want registry/path:tag)" % image)
        for pat, why in (node.mgr.knobs.get("talos_upgrade_fail") or {}).items():
            if re.search(pat, image):
                raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                           "error validating installer image %r: %s" % (image, why))
        if node.foreign:
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION, "labsim: foreign nodes do not upgrade")
        why = (node.mgr.knobs.get("talos_upgrade_fail_vmid") or {}).get(str(node.vmid))
        if why:
            raise Fail(grpc.StatusCode.FAILED_PRECONDITION,
                       "error validating installer image %r: %s" % (image, why))
        if node.is_controlplane() and not req.force and not req.preserve:
            # FACTS-day2 §4a ValidateForUpgrade, under the etcd upgrade mutex
            # (the members of the etcd model, tests/labsim/etcd.py)
            members = list(node.mgr.etcd_of(node).members.values())
            if len(members) == 2:
                raise Fail(grpc.StatusCode.UNKNOWN, "etcd member count(2) is insufficient to maintain "
                                                    "quorum if upgrade commences")
            for o in members:
                if not o.name:
                    raise Fail(grpc.StatusCode.UNKNOWN, "etcd member %016x is not started, all members "
                                                        "must be running to perform an upgrade" % o.id)
                if not o.started() or o.node.unhealthy():
                    raise Fail(grpc.StatusCode.UNKNOWN,
                               "etcd member %016x is not healthy; all members must be healthy to perform "
                               "an upgrade: context deadline exceeded" % o.id)
        actor = str(uuid.uuid4())
        node.mgr.schedule_upgrade(node, image, actor)
        return m.UpgradeResponse(messages=[m.Upgrade(ack="Upgrade request received", actor_id=actor)])

    def service_list(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        ts = c.Timestamp(seconds=int(node.since_ts))
        member = node.mgr.etcd_of(node).member_of(node) if node.config else None
        etcd_up = member is not None and member.started()

        def svc(sid, state, healthy=True, unknown=False, events=()):
            ev = [m.ServiceEvent(msg=msg, state=st, ts=ts) for st, msg in events]
            return m.ServiceInfo(id=sid, state=state, events=m.ServiceEvents(events=ev),
                                 health=m.ServiceHealth(unknown=unknown, healthy=healthy and not unknown,
                                                        last_change=ts))
        started = [("Preparing", "Running pre state"), ("Running", "Service started as goroutine")]
        running = [("Preparing", "Running pre state"), ("Preparing", "Creating service runner"),
                   ("Running", "Started task %s (PID 1234) for container %s")]
        out = [svc("apid", "Running", events=running),
               svc("containerd", "Running", events=running),
               svc("kubelet", "Running", healthy=not node.unhealthy(), events=running),
               svc("machined", "Running", events=started)]
        if node.is_controlplane():
            if etcd_up and self.etcd_without_quorum(node):
                out.append(self.etcd_service_no_quorum(svc, running))
            elif etcd_up and node.unhealthy():
                out.append(svc("etcd", "Running", healthy=False,
                               events=running + [("Running", "Health check failed: context deadline exceeded")]))
            elif etcd_up:
                out.append(svc("etcd", "Running", events=running + [("Running", "Health check successful")]))
            elif node.etcd_failed:
                out.append(svc("etcd", "Failed", healthy=False,
                               events=[("Preparing", "Running pre state"), ("Failed", node.etcd_failed)]))
            elif member is not None or node.etcd_member:
                # joined, not started yet; or removed from the cluster
                out.append(svc("etcd", "Running", healthy=False,
                               events=running + [("Running", "Health check failed: context deadline exceeded")]))
            else:
                out.append(svc("etcd", "Preparing", healthy=False, unknown=True,
                               events=[("Waiting", "Waiting for service \"cri\" to be \"up\""),
                                       ("Preparing", "Running pre state")]))
            out.append(svc("trustd", "Running", events=running))
        out.sort(key=lambda s: s.id)
        for s in out:
            for e in s.events.events:
                if "%s" in e.msg:
                    e.msg = e.msg % (s.id, s.id)
        return m.ServiceListResponse(messages=[m.ServiceList(metadata=c.Metadata(hostname=node.ip),
                                                             services=out)])

    def etcd_without_quorum(self, node):
        """The node's member runs but its cluster has no quorum."""
        e = node.mgr.etcd_of(node)
        with e.lock:
            return bool(e.members) and not e.has_quorum()

    @staticmethod
    def etcd_service_no_quorum(svc, running):
        """FACTS-day2 4e: the etcd service is "Running" (its process is) but
        not healthy: Talos's health check is a quorum read through the local
        member, which times out without a majority."""
        return svc("etcd", "Running", healthy=False,
                   events=running + [("Running", "Health check failed: context deadline exceeded")])

    # --- ImagePull (FACTS-day2 sections 2, 3, 4b step 2): the image pulled
    # into that containerd namespace of the node; recorded in node.pulls
    # (the state's "pulls") so tests see what was pre-pulled where. Knob
    # talos_image_pull_fail {image-regex: why} makes the pull fail.
    def image_pull(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        if str(node.vmid) in [str(v) for v in node.mgr.knobs.get("talos_image_pull_unimplemented") or []]:
            # a Talos without the method (it is deprecated in 1.13, to go in 1.18)
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "unknown method ImagePull for service machine.MachineService")
        for pat, why in (node.mgr.knobs.get("talos_image_pull_fail") or {}).items():
            if re.search(pat, req.reference):
                raise Fail(grpc.StatusCode.UNKNOWN, "labsim: pulling %s failed (knob "
                           "talos_image_pull_fail): %s" % (req.reference, why))
        ns = c.ContainerdNamespace.Name(req.namespace) if req.namespace in c.ContainerdNamespace.values() \
            else str(req.namespace)
        with node.mgr.lock:
            node.pulls.append({"t": time.time(), "namespace": ns, "ref": req.reference})
        return m.ImagePullResponse(messages=[m.ImagePull(metadata=c.Metadata(hostname=node.ip))])

    # --- etcd (etcd.py holds the rules)
    def _etcd(self, node, method, fn):
        if not node.is_controlplane():
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "%s is only available on control plane nodes" % ETCD_API[method])
        try:
            return fn(node.mgr.etcd_of(node))
        except etcd.EtcdError as e:
            raise Fail(getattr(grpc.StatusCode, e.code), e.msg)

    def etcd_snapshot(self, node, req, ctx):
        c = self.pb["common"]
        blob = self._etcd(node, "EtcdSnapshot", lambda e: e.snapshot(node))
        node.snapshots += 1
        step = max(1, min(int(node.mgr.knobs["etcd_snapshot_chunk_bytes"]), 4 << 20))
        if node.mgr.knobs["etcd_snapshot_file"]:
            # a snapshot a real etcd made, served as it is (the model's
            # checks above still ran: a control plane whose member runs)
            with open(node.mgr.knobs["etcd_snapshot_file"], "rb") as f:
                blob = f.read()
        cut = node.mgr.knobs["etcd_snapshot_cut_bytes"]
        if node.mgr.knobs["etcd_snapshot_damaged"]:
            blob = blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]
        for i in range(0, len(blob), step):
            if cut and i >= cut:
                raise Fail(grpc.StatusCode.UNAVAILABLE, "labsim: snapshot stream cut after %d bytes "
                           "(knob etcd_snapshot_cut_bytes)" % i)
            yield c.Data(bytes=blob[i:i + step])

    def etcd_member_list(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        members = self._etcd(node, "EtcdMemberList", lambda e: e.member_list(node, req.query_local))
        return m.EtcdMemberListResponse(messages=[m.EtcdMembers(
            metadata=c.Metadata(hostname=node.ip), legacy_members=[x.name for x in members],
            members=[m.EtcdMember(id=x.id, hostname=x.name, peer_urls=["https://%s:2380" % x.ip],
                                  client_urls=["https://%s:2379" % x.ip] if x.name else [],
                                  is_learner=x.learner) for x in members])])

    def etcd_remove(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        self._etcd(node, "EtcdRemoveMemberByID", lambda e: e.remove_member(node, req.member_id))
        return m.EtcdRemoveMemberByIDResponse(messages=[m.EtcdRemoveMemberByID(metadata=c.Metadata(hostname=node.ip))])

    def etcd_leave(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        self._etcd(node, "EtcdLeaveCluster", lambda e: e.leave(node))
        return m.EtcdLeaveClusterResponse(messages=[m.EtcdLeaveCluster(metadata=c.Metadata(hostname=node.ip))])

    def etcd_forfeit(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        new = self._etcd(node, "EtcdForfeitLeadership", lambda e: e.forfeit(node))
        return m.EtcdForfeitLeadershipResponse(messages=[m.EtcdForfeitLeadership(
            metadata=c.Metadata(hostname=node.ip), member=new)])

    def etcd_status(self, node, req, ctx):
        m, c = self.pb["machine"], self.pb["common"]
        st = self._etcd(node, "EtcdStatus", lambda e: e.status(node))
        return m.EtcdStatusResponse(messages=[m.EtcdStatus(metadata=c.Metadata(hostname=node.ip),
                                                           member_status=m.EtcdMemberStatus(**st))])

    def etcd_recover(self, node, reqs, ctx):
        """The upload lands in /var/lib/etcd.snapshot; a broken stream leaves nothing."""
        m, c = self.pb["machine"], self.pb["common"]
        if not node.is_controlplane():
            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "etcd recover is only available on control plane nodes")
        node.etcd_recover = None
        buf = bytearray()
        for d in reqs:
            buf += d.bytes
        node.etcd_recover = bytes(buf)
        return m.EtcdRecoverResponse(messages=[m.EtcdRecover(metadata=c.Metadata(hostname=node.ip))])


def make_kubeconfig_tgz(config):
    """A kubeconfig with an admin client cert (O=system:masters) signed by cluster.ca."""
    cl = config["cluster"]
    ca_pem, ca, ca_key = load_ca(cl["ca"]["crt"], cl["ca"]["key"])
    x509, hashes, serialization, ed25519, ec, rsa, NameOID, Eku = _x509()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([Eku.CLIENT_AUTH]), critical=False)
            .sign(ca_key, _sign_alg(ca_key)))
    name = cl.get("clusterName", "talos")
    endpoint = cl["controlPlane"]["endpoint"]
    b64 = lambda b: base64.b64encode(b).decode()
    kc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "admin@" + name, "user": {
            "client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
            "client-key-data": b64(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                                     serialization.NoEncryption()))}}],
        "contexts": [{"name": "admin@" + name, "context": {"cluster": name, "namespace": "default",
                                                          "user": "admin@" + name}}],
        "current-context": "admin@" + name,
    }
    raw = yaml.safe_dump(kc, sort_keys=False).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("kubeconfig")
        ti.size = len(raw)
        ti.mode = 0o600
        ti.mtime = int(time.time())
        tf.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


class Manager:
    """All Talos nodes; driven by the world's VM start/stop events."""

    # knobs settable through POST /_labsim/knobs (see docs/labsim.md)
    KNOB_DEFAULTS = {
        "talos_upgrade_fail": {},   # {image-regex: why}: Upgrade fails validating such images
        "talos_upgrade_fail_vmid": {},  # {vmid: why}: Upgrade on that VM's node fails validating the image
        "talos_image_pull_fail": {},  # {image-regex: why}: ImagePull of such images fails
        "talos_image_pull_unimplemented": [],  # [vmid]: that node has no ImagePull (Unimplemented)
        # {vmid: seconds}: after an upgrade that node's etcd and kubelet report
        # unhealthy (its Node NotReady) this long (time-scaled)
        "talos_upgrade_unhealthy": {},
        "k8s_job_seconds": 5.0,     # a Job completes this long after it is applied (time-scaled)
        "k8s_job_fail": {},         # {job-name-regex: message}: such Jobs end Failed instead
        # messages the next Bootstrap calls fail with, one per call, as
        # FailedPrecondition (talos FACTS.md "Methods a bootstrapper needs":
        # "bootstrap is not available yet" / "time is not in sync yet" -> retry)
        "talos_bootstrap_transient": [],
        # {vmid: seconds}: that VM's node answers this much later (time-scaled)
        # after every boot and install/reboot: a node slow to come back
        "talos_slow": {},
        "k8s_image_pull_fail": {},  # {image-regex: message}: pods of such images never pull (kube.py)
        # {path-regex: message}: a DELETE of a matching API path answers 500
        # InternalError with that message and deletes nothing (kube.py)
        "k8s_delete_fail": {},
        "k8s_crd_seconds": 1.0,     # a CRD is Established this long after it is applied
        "k8s_rollout_seconds": 2.0, # Deployments/DaemonSets become available this long after a change
        # a config applied live with a new static pod image: the kubelet runs the
        # new pod this long after (time-scaled); it is Ready this long after it started
        "k8s_static_pod_seconds": 1.0,
        "k8s_static_pod_ready_seconds": 0.5,
        # a new machine.kubelet.image: the kubelet service restarts with it this long after
        "k8s_kubelet_restart_seconds": 1.0,
        # {vmid: "kube-scheduler[,...]"}: that control plane's static pod is Running, not Ready
        "k8s_static_pod_unready": {},
        # {vmid: "component"}: on that control plane the component's pod crash loops
        # (CrashLoopBackOff, never Ready) once it runs another image than at its first boot
        "k8s_static_pod_fail_update": {},
        # an EtcdSnapshot is at least this many bytes (zero pages: a large
        # database's free pages), and is streamed in messages of this size
        "etcd_snapshot_bytes": 0,
        "etcd_snapshot_chunk_bytes": 1024,
        # faults: the stream breaks once this many bytes were sent (0: never);
        # one byte of the snapshot changed on the way (its trailer no longer matches)
        "etcd_snapshot_cut_bytes": 0,
        "etcd_snapshot_damaged": False,
        # a file (made by a real etcd: etcdctl snapshot save) served as the
        # snapshot's bytes instead of the model's; "": the model's
        "etcd_snapshot_file": "",
        # a Kubernetes API request whose etcd lacks quorum fails after this long
        "k8s_etcd_timeout_seconds": 5.0,
    }

    def __init__(self, build_dir, schema_path, port, net, scale, boot_seconds=20.0, install_seconds=30.0,
                 talos_version="v1.12.11"):
        self.pb = load_protos(build_dir)
        self.validator = Validator(schema_path)
        self.validator_path = schema_path
        self.port = port
        self.net = ipaddress.ip_network(net)
        self.scale = scale
        self.boot_seconds = boot_seconds
        self.install_seconds = install_seconds
        self.talos_version = talos_version
        self.nodes = {}       # vmid -> Node
        self.foreign = {}     # ip -> Node (foreign machines, another cluster's OS CA)
        self.by_ip = {}
        self.calls = []
        self.node_events = []
        self.clusters = {}    # endpoint -> {"bootstrapped": bool}
        self.timers = []
        self.next_host = 10
        self.lock = threading.RLock()
        self.bootstrap_hooks = []
        self.build_dir = build_dir
        self.k8s_port = 6443
        self.k8s_calls = []
        self.kube = {}       # endpoint -> kube.Cluster
        self.knobs = copy.deepcopy(self.KNOB_DEFAULTS)
        self.ca_keys = {}    # OS CA crt (base64) -> key (base64), from control-plane configs seen
        self.etcds = {}      # endpoint -> etcd.Etcd

    def learn_ca(self, main):
        ca = (main.get("machine") or {}).get("ca") or {}
        if ca.get("crt") and ca.get("key"):
            self.ca_keys[ca["crt"]] = ca["key"]

    def bring_up(self, node, state):
        """node.start_installed(); a worker without a known CA key waits for
        one (re-checked every second, time-scaled) in its current state."""
        try:
            node.start_installed()
            node.note = None
            if node.is_controlplane() and not node.foreign:
                self.etcd_of(node).node_up(node)
        except NeedTrustd as e:
            node.note = "waiting: %s" % e

            def again():
                with self.lock:
                    if node.state == state:
                        self.bring_up(node, state)
            self._later(1.0, again)
        except Exception as e:  # noqa: BLE001
            node.state = "error: %s" % e

    def set_knob(self, k, v):
        """True if k is a Talos/Kubernetes knob (and sets it)."""
        if k in ("talos_boot_seconds", "talos_install_seconds"):
            setattr(self, k[len("talos_"):], float(v))
            return True
        if k in self.knobs:
            if isinstance(self.KNOB_DEFAULTS[k], dict) and not isinstance(v, dict):
                raise ValueError("knob %s wants an object" % k)
            self.knobs[k] = float(v) if isinstance(self.KNOB_DEFAULTS[k], float) else v
            return True
        return False

    def knob_values(self):
        return dict(self.knobs, talos_boot_seconds=self.boot_seconds, talos_install_seconds=self.install_seconds)

    def _later(self, seconds, fn, scaled=True):
        t = threading.Timer(seconds * self.scale if scaled else seconds, fn)
        t.daemon = True
        self.timers.append(t)
        t.start()

    def alloc_ip(self):
        with self.lock:
            while True:
                ip = str(self.net.network_address + self.next_host)
                self.next_host += 1
                if ip not in self.by_ip:
                    return ip

    @staticmethod
    def disk_key(vm):
        """Talos state is kept per boot disk (the volume's uid), so a VM
        replaced with a new blank disk is a fresh machine; VMs without a
        simulated disk (seeded ones) fall back to their vmid."""
        return vm.get("disk_uid") or vm["vmid"]

    def slow_seconds(self, vm):
        return float(self.knobs["talos_slow"].get(str((vm or {}).get("vmid")), 0))

    def has_disk(self, uid):
        """Does this disk hold an installed Talos?"""
        with self.lock:
            n = self.nodes.get(uid) if uid else None
            return n is not None and n.config is not None

    def forget_disk(self, uid):
        """The volume was freed (VM destroyed): its machine is gone."""
        with self.lock:
            node = self.nodes.pop(uid, None)
            if node is not None:
                node.stop_server()
                node.state = "off"
                if node.config and node.is_controlplane():
                    self.etcd_of(node).node_wiped(node)
                if self.by_ip.get(node.ip) is node:
                    del self.by_ip[node.ip]

    def vm_started(self, vm):
        """Called (under the world lock) when a VM powers on."""
        with self.lock:
            node = self.nodes.get(self.disk_key(vm))
            if node is None:
                node = Node(self, vm["vmid"], vm.get("ip") or self.alloc_ip())
                self.nodes[self.disk_key(vm)] = node
            node.vm = vm
            vm["ip"] = node.ip
            if self.by_ip.get(node.ip) in (None, node):
                self.by_ip[node.ip] = node
            node.state = "booting"
            slow = self.slow_seconds(vm)

        def up():
            with self.lock:
                if node.state != "booting":
                    return
                if self.by_ip.get(node.ip) is not node:
                    node.state = "error: address %s is already in use by another machine" % node.ip
                    return
                if node.config is not None:
                    self.bring_up(node, "booting")
                    return
                # nocloud: a machine config on a cidata drive (pve_upload.py)
                if self.first_boot is not None and self.first_boot(node):
                    return
                try:
                    node.start_maintenance()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        # talos_slow (per VM): seconds more before it answers after a boot
        self._later(self.boot_seconds + slow, up)

    def vm_stopped(self, vm):
        with self.lock:
            node = self.nodes.get(self.disk_key(vm))
            if node:
                node.stop_server()
                node.state = "off"
                self.event(node, "down", "off")

    def _away_then(self, node, state, seconds, come_back):
        """Reply first, then the node's server goes away (state), then after
        seconds (time-scaled) come_back() runs if the state is unchanged."""
        node.state = state

        def away():
            with self.lock:
                if node.state != state:
                    return
                node.stop_server()
                self.event(node, "down", state)
            self._later(seconds, back)

        def back():
            with self.lock:
                if node.state != state:
                    return
                try:
                    come_back()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        # Real nodes reboot seconds after replying; give the reply time to
        # leave even when many applies arrive at once.
        t = threading.Timer(0.25, away)
        t.daemon = True
        t.start()

    def schedule_install(self, node, addr):
        def up():
            if addr and addr != node.ip:
                other = self.by_ip.get(addr)
                if other is not None and other is not node and other.server is not None:
                    # two machines on one address: this one never answers there
                    if self.by_ip.get(node.ip) is node:
                        del self.by_ip[node.ip]
                    node.ip = addr
                    node.state = "error: address %s is already in use by another machine" % addr
                    return
                if self.by_ip.get(node.ip) is node:
                    self.by_ip.pop(node.ip, None)
                node.ip = addr
                self.by_ip[addr] = node
                if self.on_ip_change:
                    self.on_ip_change(node)
            self.bring_up(node, "installing")
        slow = self.slow_seconds(node.vm)
        self._away_then(node, "installing", self.install_seconds + slow, up)

    on_ip_change = None
    first_boot = None    # fn(node) -> True if the node got a config at boot

    def schedule_upgrade(self, node, image, actor_id):
        node.upgrades.append({"image": image, "actor_id": actor_id, "t": time.time()})

        def up():
            node.upgraded_tag = image_tag(image)
            if node.staged:
                node.docs, node.config = node.staged
                node.staged = None
            bad = float((self.knobs.get("talos_upgrade_unhealthy") or {}).get(str(node.vmid), 0))
            if bad:
                node.unhealthy_until = time.time() + bad * self.scale
            self.bring_up(node, "upgrading")
        slow = self.slow_seconds(node.vm)
        self._away_then(node, "upgrading", self.install_seconds + slow, up)

    def schedule_reset(self, node, reboot=True, keep_config=False, graceful=False, wipe_etcd=None):
        if graceful and node.config and node.is_controlplane() and not node.foreign:
            # the sequence's "leave etcd" step (FACTS-day2.md 4c), after the
            # reply; refused (no quorum): the reset stops there, node up
            try:
                self.etcd_of(node).leave(node)
            except etcd.EtcdError as e:
                node.note = "reset failed: leave etcd: %s" % e.msg
                return
        node.state = "resetting"
        node.resets = getattr(node, "resets", 0) + 1

        def go():
            with self.lock:
                if node.state != "resetting":
                    return
                node.stop_server()
                if keep_config and wipe_etcd:
                    self.reset_wipe_etcd(node)
                if not keep_config:
                    if node.config and node.is_controlplane():
                        self.etcd_of(node).node_wiped(node)
                    node.config = None
                    node.docs = []
                    node.upgraded_tag = None
                node.bootstrapped = False
                if not reboot:
                    node.state = "off"
                    return
                node.state = "booting"
                try:
                    if node.config is not None:
                        self.bring_up(node, "booting")
                    else:
                        node.start_maintenance()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        self._later(self.boot_seconds, go)

    def reset_wipe_etcd(self, node):
        """EPHEMERAL wiped, STATE kept: the node comes back installed with
        an empty etcd (its member's data, and an uploaded recovery file in
        /var/lib, are gone)."""
        if node.config and node.is_controlplane():
            self.etcd_of(node).node_wiped(node)
            node.etcd_recover = None
            node.etcd_failed = None

    def add_foreign(self, ip):
        """An installed Talos machine at ip that belongs to another cluster
        (fresh random OS CA). Returns its CA and an admin client cert."""
        if not ipaddress.ip_address(ip).is_loopback:
            raise ValueError("foreign node address must be on 127.0.0.0/8")
        with self.lock:
            cur = self.by_ip.get(ip)
            if cur is not None and cur.server is not None:
                raise ValueError("address %s is already in use" % ip)
            ca_pem, ca_key = make_ca("os")
            kca_pem, kca_key = make_ca("k8s")
            b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
            ep = "https://%s:6443" % ip
            node = Node(self, None, ip)
            node.foreign = True
            node.config = {"machine": {"type": "controlplane", "ca": {"crt": b64(ca_pem), "key": b64(ca_key)},
                                       "certSANs": [], "install": {"image": "ghcr.io/siderolabs/installer:%s"
                                                                   % self.talos_version}},
                           "cluster": {"clusterName": "foreign-" + ip.replace(".", "-"),
                                       "controlPlane": {"endpoint": ep},
                                       "ca": {"crt": b64(kca_pem), "key": b64(kca_key)}}}
            node.docs = [node.config]
            self.learn_ca(node.config)
            # another cluster at an address ours used: its entry goes
            # with it (remove_foreign), ours comes back as it was
            node.shadowed_cluster = self.clusters.get(ep)
            self.clusters[ep] = {"bootstrapped": True, "foreign": True}
            node.bootstrapped = True
            node.start_installed()
            self.foreign[ip] = node
            self.by_ip[ip] = node
            _, ca, key = load_ca(b64(ca_pem), b64(ca_key))
            crt, k = issue(ca, key, "admin", orgs=["os:admin"], server=False)
            return {"ip": ip, "port": self.port, "ca": ca_pem.decode(), "admin_crt": crt.decode(),
                    "admin_key": k.decode()}

    def remove_foreign(self, ip):
        with self.lock:
            node = self.foreign.pop(ip, None)
            if node is None:
                raise KeyError(ip)
            node.stop_server()
            node.state = "off"
            if self.by_ip.get(ip) is node:
                del self.by_ip[ip]
            ep = "https://%s:6443" % ip
            if node.shadowed_cluster is None:
                self.clusters.pop(ep, None)
            else:
                self.clusters[ep] = node.shadowed_cluster

    def event(self, node, what, why=None):
        """The node log: when each machine went down and came back (with
        its boot id and version), for tests to check a roll's order."""
        self.node_events.append({"t": time.time(), "vmid": node.vmid, "ip": node.ip,
                                 "host": node.hostname() if node.config else None,
                                 "controlplane": node.is_controlplane(), "event": what, "why": why,
                                 "boot_id": node.boot_id,
                                 "version": node.version_tag() if node.config else None})

    def cluster_of(self, node):
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        return self.clusters.setdefault(ep, {"bootstrapped": False})

    def etcd_of(self, node):
        """The etcd of node's cluster; it holds that cluster's Kubernetes objects."""
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        with self.lock:
            e = self.etcds.get(ep)
            if e is None:
                cl = node.config["cluster"]

                def dump():
                    d = etcd.kube_dump(self.kube.get(ep))
                    d.update(cluster=cl.get("clusterName", ""), endpoint=ep)
                    return d

                def lost():
                    # no member holds the data any more: the cluster is gone
                    self.clusters.setdefault(ep, {})["bootstrapped"] = False
                    k = self.kube.pop(ep, None)
                    if k is not None:
                        k.closed = True
                        if k.server:
                            k.server.shutdown()
                            k.server.server_close()
                e = self.etcds[ep] = etcd.Etcd(self._later, dump, lost,
                                               lambda: int(self.knobs["etcd_snapshot_bytes"]))
            return e

    def etcd_join_waiting(self, node):
        """The other control planes of node's cluster, waiting in Preparing, join."""
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        with self.lock:
            for n in list(self.nodes.values()):
                if n is not node and n.state == "running" and n.config and n.is_controlplane() and \
                        n.config["cluster"]["controlPlane"]["endpoint"] == ep:
                    self.etcd_of(n).node_up(n)

    def on_bootstrap(self, node, data=None):
        """Start the Kubernetes API for node's cluster (VIP from controlPlane.endpoint);
        data: the objects of a recovered etcd snapshot."""
        import kube
        import urllib.parse
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        host = urllib.parse.urlsplit(ep).hostname
        listen = host if _is_ip(host) and ipaddress.ip_address(host).is_loopback else node.ip
        cl = kube.Cluster(ep, listen, self.k8s_port, node.config, self.k8s_calls,
                          ref=os.path.join(os.path.dirname(os.path.dirname(self.validator_path)), "kubernetes"))
        cl.scale = self.scale
        cl.knobs = self.knobs
        ca_pem, ca, ca_key = load_ca(node.config["cluster"]["ca"]["crt"], node.config["cluster"]["ca"]["key"])
        ips = {listen, node.ip, "127.0.0.1"} | ({host} if _is_ip(host) else set())
        dns = ["kubernetes", "kubernetes.default", "localhost"] + ([] if _is_ip(host) else [host])
        crt, key = issue_ec_server(ca, ca_key, "kube-apiserver", ips=sorted(ips), dns=dns)

        def members():
            out = []
            for n in list(self.nodes.values()):
                if n.state == "running" and n.config and \
                        n.config["cluster"]["controlPlane"]["endpoint"] == ep:
                    out.append({"hostname": n.hostname(), "ip": n.ip, "since": n.since,
                                "version": n.kubelet_version(), "talos": n.version_tag(),
                                "controlplane": n.is_controlplane(),
                                "unhealthy": n.unhealthy(),
                                "schedulable": bool(n.config["cluster"].get("allowSchedulingOnControlPlanes"))})
            return out
        cl.nodes_fn = members

        def static_pods():
            out = []
            for n in list(self.nodes.values()):
                if n.config and n.config["cluster"]["controlPlane"]["endpoint"] == ep:
                    out.extend(n.static_pods())
            return out
        cl.static_pods_fn = static_pods
        cl.etcd_quorum = lambda: self.etcd_of(node).has_quorum()
        if data is not None:
            etcd.kube_load(cl, data)
        else:
            # the bootstrap manifests Talos applies (FACTS-day2 4b step 6): CoreDNS,
            # and kube-proxy unless cluster.proxy.disabled (a CNI replaces it)
            kube.bootstrap_manifests(cl, node.config)

        def admit(src, local):
            # the firewall of the node holding the listening address (for a
            # VIP: the first running control plane of the cluster)
            with self.lock:
                n = self.by_ip.get(local)
                if n is None or n.config is None:
                    n = next((x for x in self.nodes.values() if x.state == "running" and x.config and
                              x.is_controlplane() and x.config["cluster"]["controlPlane"]["endpoint"] == ep), None)
            return n is None or n.admits(src, KUBE_API_PORT)
        kube.start_cluster(cl, crt, key, ca_pem, self.build_dir, admit=admit)
        self.kube[ep] = cl
        for h in self.bootstrap_hooks:
            h(node)

    def snapshot(self):
        with self.lock:
            return {"nodes": [n.describe() for n in list(self.nodes.values()) + list(self.foreign.values())],
                    "calls": list(self.calls),
                    "node_events": list(self.node_events),
                    "clusters": copy.deepcopy(self.clusters),
                    "etcd": {ep: e.describe() for ep, e in self.etcds.items()},
                    "knobs": self.knob_values(),
                    "kubernetes": {ep: {"host": c.host, "port": c.port, "cni_ready": c.cni_ready(),
                                        "objects": ["%s %s %s/%s" % k for k in sorted(c.objects, key=str)],
                                        "jobs": c.job_summary(),
                                        "calls": list(c.log)} for ep, c in self.kube.items()}}

    def shutdown(self):
        for t in self.timers:
            t.cancel()
        with self.lock:
            for n in list(self.nodes.values()) + list(self.foreign.values()):
                n.stop_server()
            for c in self.kube.values():
                c.closed = True
                if c.server:
                    c.server.shutdown()
                    c.server.server_close()
