#!/usr/bin/python3
"""A node that installs between two looks, for test_trust's probe test
(tests/unit/test_trust.c): on 127.0.0.1 (any port) the first TCP
connection reaches a maintenance-mode server (self-signed certificate, no
client-certificate request, Version Unimplemented), every later one the
installed node's apid (a certificate from DIR/ca.pem for 127.0.0.1, a
client certificate from that CA required, Version answers tag v1.12.11).
That is what strata meets when its mTLS look lands on the maintenance
server a moment before the node reboots into its install: its second look
(without credentials) then meets apid.

usage: probe_race.py DIR [MODE]    (DIR holds ca.pem srv.pem srv.key)
Prints "READY <port>"; DIR/conns.txt gets one line per connection
("maintenance", "apid" or "hangup"). Runs until stdin closes.

MODE hangup-gone: the first connection is our node's apid going away
(the reboot of an upgrade): the TLS handshake completes (its certificate
from DIR/ca.pem, ours required and verified), then it closes without a
word; after it nothing listens. MODE hangup-always: every connection
does that (a server that refuses our certificate by hanging up).
"""
import datetime
import ipaddress
import os
import socket
import ssl
import sys
import threading
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# VersionResponse{messages: [Version{version: VersionInfo{tag: "v1.12.11"}}]}
TAG = b"v1.12.11"
INFO = b"\x0a" + bytes([len(TAG)]) + TAG
VERSION = b"\x12" + bytes([len(INFO)]) + INFO
REPLY = b"\x0a" + bytes([len(VERSION)]) + VERSION


def self_signed():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maintenance-service.talos.dev")])
    now = datetime.datetime.now(datetime.timezone.utc)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(minutes=5))
           .not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
           .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            crt.public_bytes(serialization.Encoding.PEM))


def server(creds, version):
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("machine.MachineService", {
        "Version": grpc.unary_unary_rpc_method_handler(version)})])
    port = s.add_secure_port("127.0.0.1:0", creds)
    s.start()
    return s, port


def unimplemented(req, ctx):
    ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "API is not implemented in maintenance mode")


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def hangup(d, mode):
    """MODE hangup-gone / hangup-always (see the top)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "srv.pem"), os.path.join(d, "srv.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.pem"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    front = socket.socket()
    front.bind(("127.0.0.1", 0))
    front.listen(16)

    def accept():
        while True:
            try:
                c, _ = front.accept()
            except OSError:
                return
            with open(os.path.join(d, "conns.txt"), "a") as f:
                f.write("hangup\n")
            try:
                t = ctx.wrap_socket(c, server_side=True)
                t.close()
            except (OSError, ssl.SSLError):
                c.close()
            if mode == "hangup-gone":
                front.close()
                return
    threading.Thread(target=accept, daemon=True).start()
    print("READY %d" % front.getsockname()[1], flush=True)
    sys.stdin.read()


def main():
    d = sys.argv[1]
    if len(sys.argv) > 2:
        return hangup(d, sys.argv[2])
    read = lambda n: open(os.path.join(d, n), "rb").read()
    maint, mport = server(grpc.ssl_server_credentials([self_signed()]), unimplemented)
    apid, aport = server(grpc.ssl_server_credentials([(read("srv.key"), read("srv.pem"))],
                                                     root_certificates=read("ca.pem"),
                                                     require_client_auth=True),
                         lambda req, ctx: REPLY)
    front = socket.socket()
    front.bind(("127.0.0.1", 0))
    front.listen(16)
    seen = {"n": 0}

    def accept():
        while True:
            c, _ = front.accept()
            first = seen["n"] == 0
            seen["n"] += 1
            with open(os.path.join(d, "conns.txt"), "a") as f:
                f.write(("maintenance" if first else "apid") + "\n")
            b = socket.create_connection(("127.0.0.1", mport if first else aport))
            threading.Thread(target=pipe, args=(c, b), daemon=True).start()
            threading.Thread(target=pipe, args=(b, c), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    print("READY %d" % front.getsockname()[1], flush=True)
    sys.stdin.read()
    maint.stop(0)
    apid.stop(0)


if __name__ == "__main__":
    main()
