#!/usr/bin/python3
"""The labsim Kubernetes API (tests/labsim/kube.py) alone, for test_kube.c.

usage: kube_server.py DIR  -> writes DIR/kubeconfig (admin client cert),
prints "PORT <n>" once listening on 127.0.0.1. Two nodes, no CNI, time
scale 0.01, served as Kubernetes 1.31. ConfigMaps default/owned and default/theirs are pre-applied by manager
"helm".
Stops on SIGTERM or when stdin closes.
"""
import base64
import datetime
import os
import signal
import socket
import sys
import threading

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "labsim"))
import kube  # noqa: E402


def cert(cn, issuer=None, ca=False, org=None, ip=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] +
                     ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []))
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        import ipaddress
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    c = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    return c, key


def pem(c, k):
    return (c.public_bytes(serialization.Encoding.PEM),
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()))


def main():
    d = sys.argv[1]
    ca = cert("kubernetes", ca=True)
    srv = cert("kube-apiserver", issuer=ca, ip="127.0.0.1")
    cli = cert("admin", issuer=ca, org="system:masters")
    ca_pem, _ = pem(*ca)
    srv_pem, srv_key = pem(*srv)
    cli_pem, cli_key = pem(*cli)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    with open(os.path.join(d, "kubeconfig"), "w") as f:
        yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:%d" % port,
                                                               "certificate-authority-data": b64(ca_pem)}}],
                        "users": [{"name": "u", "user": {"client-certificate-data": b64(cli_pem),
                                                         "client-key-data": b64(cli_key)}}],
                        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}]}, f)
    # an API server of Kubernetes 1.31 (it still serves flowcontrol v1beta3)
    cl = kube.Cluster("https://127.0.0.1:%d" % port, "127.0.0.1", port,
                      {"cluster": {"apiServer": {"image": "registry.k8s.io/kube-apiserver:v1.31.4"}}}, [])
    cl.scale = 0.01
    nodes = [{"hostname": "n-%d" % i, "ip": "127.0.0.%d" % (100 + i), "since": kube._now(), "version": "v1.34.1",
              "controlplane": i == 1} for i in (1, 2)]
    cl.nodes_fn = lambda: nodes
    cl.apply("v1", "configmaps", "default", "owned", {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "owned"}, "data": {"x": "1"}}, "helm")
    cl.apply("v1", "configmaps", "default", "theirs", {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "theirs"}, "data": {"x": "1"}}, "helm")
    kube.start_cluster(cl, srv_pem, srv_key, ca_pem, d)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("PORT %d" % port, flush=True)
    stop.wait()
    cl.closed = True
    cl.server.shutdown()


if __name__ == "__main__":
    main()
