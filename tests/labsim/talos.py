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
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from concurrent import futures

import grpc
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
MAINT_MSG = "API is not implemented in maintenance mode"


def load_protos(build_dir):
    out = os.path.join(build_dir, "pb")
    os.makedirs(out, exist_ok=True)
    files = sorted(f for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
    subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", out] + files, check=True)
    if out not in sys.path:
        sys.path.insert(0, out)
    return {n: importlib.import_module(n + "_pb2") for n in ("common", "machine", "storage")}


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


# ---------------------------------------------------------------- node

class Node:
    """One simulated Talos machine."""

    def __init__(self, mgr, vmid, ip):
        self.mgr = mgr
        self.vmid = vmid
        self.ip = ip
        self.state = "booting"
        self.server = None
        self.config = None
        self.bootstrapped = False
        self.lock = threading.Lock()
        self.applying = False
        self.log = []
        self.maint_ca = None

    def describe(self):
        return {"vmid": self.vmid, "ip": self.ip, "state": self.state, "bootstrapped": self.bootstrapped,
                "port": self.mgr.port, "maintenance_ca": self.maint_ca,
                "cluster_endpoint": ((self.config or {}).get("cluster") or {}).get("controlPlane", {}).get("endpoint")}

    def stop_server(self):
        if self.server is not None:
            self.server.stop(0)
            self.server = None

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
        ca_pem, ca, ca_key = load_ca(m["ca"]["crt"], m["ca"]["key"])
        sans = [self.ip] + [s for s in (m.get("certSANs") or []) if _is_ip(s)]
        dns = [s for s in (m.get("certSANs") or []) if not _is_ip(s)]
        crt, key = issue(ca, ca_key, "talos-%d" % self.vmid, ips=sans, dns=dns)
        creds = grpc.ssl_server_credentials([(key, crt)], root_certificates=ca_pem, require_client_auth=True)
        self._serve(creds, maintenance=False)
        self.state = "running"
        self.since = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _serve(self, creds, maintenance):
        self.stop_server()
        srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        srv.add_generic_rpc_handlers([Handler(self, maintenance)])
        port = srv.add_secure_port("%s:%d" % (self.ip, self.mgr.port), creds)
        if port == 0:
            raise RuntimeError("cannot listen on %s:%d" % (self.ip, self.mgr.port))
        srv.start()
        self.server = srv


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
        self.node.mgr.calls.append({"t": time.time(), "node": self.node.ip, "method": method,
                                    "maintenance": self.maint})
        m, c = self.pb["machine"], self.pb["common"]
        table = {
            "/machine.MachineService/ApplyConfiguration": (False, m.ApplyConfigurationRequest, self.apply),
            "/machine.MachineService/Version": (False, c.NoArgs, self.version),
            "/machine.MachineService/Bootstrap": (False, m.BootstrapRequest, self.bootstrap),
            "/machine.MachineService/Kubeconfig": (True, c.NoArgs, self.kubeconfig),
            "/machine.MachineService/Reset": (False, m.ResetRequest, self.reset),
        }
        if method not in table or (self.maint and method != "/machine.MachineService/ApplyConfiguration"):
            return grpc.unary_unary_rpc_method_handler(self.unimplemented,
                                                       request_deserializer=lambda b: b,
                                                       response_serializer=lambda b: b)
        stream, req, fn = table[method]
        mk = grpc.unary_stream_rpc_method_handler if stream else grpc.unary_unary_rpc_method_handler
        return mk(self.wrap(fn), request_deserializer=req.FromString,
                  response_serializer=lambda msg: msg.SerializeToString())

    def unimplemented(self, req, ctx):
        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, MAINT_MSG if self.maint else "unknown method")

    def wrap(self, fn):
        def call(req, ctx):
            md = ctx.invocation_metadata()
            nodes = [v for k, v in md if k == "node"]
            if len(nodes) > 1:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "node metadata must be single-valued")
            if not self.maint:
                self.check_client(ctx)
            target = self.node
            if nodes and not self.maint:
                target = self.node.mgr.by_ip.get(nodes[0])
                if target is None or target.state != "running":
                    ctx.abort(grpc.StatusCode.UNAVAILABLE, "connection error: desc = \"transport: Error while dialing: dial tcp %s:%d: connect: connection refused\"" % (nodes[0], self.node.mgr.port))
            return fn(target, req, ctx)
        return call

    def check_client(self, ctx):
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
        if "os:admin" not in orgs:
            ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not authorized")

    def meta(self, node):
        return self.pb["common"].Metadata(hostname=node.ip) if False else None

    # --- methods
    def apply(self, node, req, ctx):
        m = self.pb["machine"]
        Mode = m.ApplyConfigurationRequest
        if req.mode in (Mode.NO_REBOOT, Mode.STAGED) and self.maint:
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "apply configuration mode is not supported in maintenance mode")
        with node.lock:
            if node.applying:
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "another apply configuration is already in progress")
            if node.state == "installing":
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "configuration was already applied and node is rebooting")
            node.applying = True
        try:
            try:
                docs, main = node.mgr.validator.check(req.data)
            except ConfigError as e:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            if req.dry_run:
                return m.ApplyConfigurationResponse(messages=[m.ApplyConfiguration(mode_details="dry run")])
            node.config = main
            node.docs = docs
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
            version=m.VersionInfo(tag=node.mgr.talos_version, sha="labsim", os="Talos", arch="amd64",
                                  go_version="go1.24"),
            platform=m.PlatformInfo(name="metal", mode="metal"),
            features=m.FeaturesInfo(rbac=True))])

    def bootstrap(self, node, req, ctx):
        m = self.pb["machine"]
        if (node.config.get("machine") or {}).get("type") not in ("controlplane", "init"):
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "bootstrap can only be performed on a control plane node")
        with node.lock:
            cluster = node.mgr.cluster_of(node)
            if cluster.get("bootstrapped"):
                ctx.abort(grpc.StatusCode.ALREADY_EXISTS, "etcd data directory is not empty")
            cluster["bootstrapped"] = True
            node.bootstrapped = True
        node.mgr.on_bootstrap(node)
        return m.BootstrapResponse(messages=[m.Bootstrap()])

    def kubeconfig(self, node, req, ctx):
        c = self.pb["common"]
        if (node.config.get("machine") or {}).get("type") not in ("controlplane", "init"):
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "kubeconfig is only available on control plane nodes")
        data = make_kubeconfig_tgz(node.config)
        for i in range(0, len(data), 1024):
            yield c.Data(bytes=data[i:i + 1024])

    def reset(self, node, req, ctx):
        m = self.pb["machine"]
        node.mgr.schedule_reset(node)
        return m.ResetResponse(messages=[m.Reset(actor_id=str(uuid.uuid4()))])


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

    def __init__(self, build_dir, schema_path, port, net, scale, boot_seconds=20.0, install_seconds=30.0,
                 talos_version="v1.12.11"):
        self.pb = load_protos(build_dir)
        self.validator = Validator(schema_path)
        self.port = port
        self.net = ipaddress.ip_network(net)
        self.scale = scale
        self.boot_seconds = boot_seconds
        self.install_seconds = install_seconds
        self.talos_version = talos_version
        self.nodes = {}       # vmid -> Node
        self.by_ip = {}
        self.calls = []
        self.clusters = {}    # endpoint -> {"bootstrapped": bool}
        self.timers = []
        self.next_host = 10
        self.lock = threading.RLock()
        self.bootstrap_hooks = []
        self.build_dir = build_dir
        self.k8s_port = 6443
        self.k8s_calls = []
        self.kube = {}       # endpoint -> kube.Cluster

    def _later(self, seconds, fn):
        t = threading.Timer(seconds * self.scale, fn)
        t.daemon = True
        self.timers.append(t)
        t.start()

    def alloc_ip(self):
        with self.lock:
            ip = str(self.net.network_address + self.next_host)
            self.next_host += 1
            return ip

    def vm_started(self, vm):
        """Called (under the world lock) when a VM powers on."""
        with self.lock:
            node = self.nodes.get(vm["vmid"])
            if node is None:
                node = Node(self, vm["vmid"], vm.get("ip") or self.alloc_ip())
                self.nodes[vm["vmid"]] = node
            vm["ip"] = node.ip
            self.by_ip[node.ip] = node
            node.state = "booting"

        def up():
            with self.lock:
                if node.state != "booting":
                    return
                try:
                    if node.config is not None:
                        node.start_installed()
                    else:
                        node.start_maintenance()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        self._later(self.boot_seconds, up)

    def vm_stopped(self, vm):
        with self.lock:
            node = self.nodes.get(vm["vmid"])
            if node:
                node.stop_server()
                node.state = "off"

    def schedule_install(self, node, addr):
        node.state = "installing"

        def stop_now():
            with self.lock:
                node.stop_server()

        def up():
            with self.lock:
                if node.state != "installing":
                    return
                if addr and addr != node.ip:
                    self.by_ip.pop(node.ip, None)
                    node.ip = addr
                    self.by_ip[addr] = node
                    if self.on_ip_change:
                        self.on_ip_change(node)
                try:
                    node.start_installed()
                except Exception as e:  # noqa: BLE001
                    node.state = "error: %s" % e
        # reply first, then go away, then come back installed
        threading.Timer(0.05, stop_now).start()
        self._later(self.install_seconds, up)

    on_ip_change = None

    def schedule_reset(self, node):
        node.state = "resetting"

        def go():
            with self.lock:
                node.stop_server()
                node.config = None
                node.bootstrapped = False
                node.state = "booting"
                node.start_maintenance()
        self._later(self.boot_seconds, go)

    def cluster_of(self, node):
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        return self.clusters.setdefault(ep, {"bootstrapped": False})

    def on_bootstrap(self, node):
        """Start the Kubernetes API for node's cluster (VIP from controlPlane.endpoint)."""
        import kube
        import urllib.parse
        ep = node.config["cluster"]["controlPlane"]["endpoint"]
        host = urllib.parse.urlsplit(ep).hostname
        listen = host if _is_ip(host) and ipaddress.ip_address(host).is_loopback else node.ip
        cl = kube.Cluster(ep, listen, self.k8s_port, node.config, self.k8s_calls)
        ca_pem, ca, ca_key = load_ca(node.config["cluster"]["ca"]["crt"], node.config["cluster"]["ca"]["key"])
        ips = {listen, node.ip, "127.0.0.1"} | ({host} if _is_ip(host) else set())
        dns = ["kubernetes", "kubernetes.default", "localhost"] + ([] if _is_ip(host) else [host])
        crt, key = issue_ec_server(ca, ca_key, "kube-apiserver", ips=sorted(ips), dns=dns)

        def members():
            out = []
            for n in list(self.nodes.values()):
                if n.state == "running" and n.config and \
                        n.config["cluster"]["controlPlane"]["endpoint"] == ep:
                    out.append({"hostname": "talos-%d" % n.vmid, "ip": n.ip, "since": n.since,
                                "controlplane": n.config["machine"].get("type") in ("controlplane", "init")})
            return out
        cl.nodes_fn = members
        kube.start_cluster(cl, crt, key, ca_pem, self.build_dir)
        self.kube[ep] = cl
        for h in self.bootstrap_hooks:
            h(node)

    def snapshot(self):
        with self.lock:
            return {"nodes": [n.describe() for n in self.nodes.values()], "calls": list(self.calls),
                    "clusters": dict(self.clusters),
                    "kubernetes": {ep: {"host": c.host, "port": c.port, "cni_ready": c.cni_ready(),
                                        "objects": ["%s %s %s/%s" % k for k in sorted(c.objects, key=str)],
                                        "calls": list(c.log)} for ep, c in self.kube.items()}}

    def shutdown(self):
        for t in self.timers:
            t.cancel()
        with self.lock:
            for n in self.nodes.values():
                n.stop_server()
            for c in self.kube.values():
                if c.server:
                    c.server.shutdown()
                    c.server.server_close()
