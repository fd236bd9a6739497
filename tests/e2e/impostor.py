#!/usr/bin/python3
"""A machine posing as a fresh Talos node, for tests/e2e/t023: on ADDR:50000
(loopback only) TLS with a random self-signed certificate and no client
certificate request, every method answering Unimplemented "API is not
implemented in maintenance mode" (what maintenance mode says to Version),
except ApplyConfiguration, which it accepts: a thief.

usage: impostor.py ADDR LOGDIR [PORT [MESSAGE [CLIENT_CA]]]
PORT defaults to 50000 (0: any free port); MESSAGE replaces the
Unimplemented message; with CLIENT_CA (a PEM file) it requires a client
certificate, like an installed node's apid. Writes LOGDIR/calls.jsonl (one {"method", "bytes"} per call) and
LOGDIR/received.bin (every request byte it got); prints READY when
listening ("READY <port>"). Runs until SIGTERM (the test stops it by pid).
With IMPOSTOR_SWAP=1 in the environment it looks like a real node at first
and then swaps machines: after each Version call it answers, the next TLS
handshake presents a new random certificate (a machine taking the address
between strata's probe and its send); LOGDIR/certs.txt gets the SHA-256
of every certificate it served, in order.
"""
import ipaddress
import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import datetime

lock = threading.Lock()


def cert_for(ip):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maintenance-service.talos.dev")])
    now = datetime.datetime.now(datetime.timezone.utc)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(minutes=5))
           .not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
           .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            crt.public_bytes(serialization.Encoding.PEM))


swap = {"pending": False}


def sha256_of(crt_pem):
    return x509.load_pem_x509_certificate(crt_pem).fingerprint(hashes.SHA256()).hex()


class Handler(grpc.GenericRpcHandler):
    def __init__(self, logdir, message):
        self.logdir = logdir
        self.message = message

    def service(self, details):
        method = details.method

        def call(req, ctx):
            with lock:
                with open(os.path.join(self.logdir, "calls.jsonl"), "a") as f:
                    f.write(json.dumps({"method": method, "bytes": len(req)}) + "\n")
                with open(os.path.join(self.logdir, "received.bin"), "ab") as f:
                    f.write(req)
            if method.endswith("/ApplyConfiguration"):
                return b""
            if method.endswith("/Version"):
                swap["pending"] = True
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, self.message)

        return grpc.unary_unary_rpc_method_handler(call)


def main():
    addr, logdir = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    message = sys.argv[4] if len(sys.argv) > 4 else "API is not implemented in maintenance mode"
    client_ca = open(sys.argv[5], "rb").read() if len(sys.argv) > 5 else None
    if not ipaddress.ip_address(addr).is_loopback:
        raise SystemExit("impostor: loopback addresses only")
    open(os.path.join(logdir, "calls.jsonl"), "a").close()
    open(os.path.join(logdir, "received.bin"), "ab").close()
    key, crt = cert_for(addr)
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    srv.add_generic_rpc_handlers([Handler(logdir, message)])
    if os.environ.get("IMPOSTOR_SWAP") == "1":
        def log_cert(c):
            with open(os.path.join(logdir, "certs.txt"), "a") as f:
                f.write(sha256_of(c) + "\n")

        def fetch():
            # called before every handshake: a new machine after a Version
            with lock:
                if not swap["pending"]:
                    return None
                swap["pending"] = False
                k, c = cert_for(addr)
                log_cert(c)
                return grpc.ssl_server_certificate_configuration([(k, c)])

        log_cert(crt)
        creds = grpc.dynamic_ssl_server_credentials(grpc.ssl_server_certificate_configuration([(key, crt)]),
                                                    fetch, require_client_authentication=False)
    else:
        creds = grpc.ssl_server_credentials([(key, crt)], root_certificates=client_ca,
                                            require_client_auth=client_ca is not None)
    port = srv.add_secure_port("%s:%d" % (addr, port), creds)
    if port == 0:
        raise SystemExit("impostor: cannot listen on %s:%s" % (addr, sys.argv[3] if len(sys.argv) > 3 else 50000))
    srv.start()
    print("READY %d" % port, flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (srv.stop(0), os._exit(0)))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
