#!/usr/bin/python3
"""gRPC test server on 127.0.0.1 for tests/unit/test_grpc.c (python3-grpcio).

usage: grpc_server.py DIR   (DIR holds ca.pem srv.pem srv.key)
Prints "PORTS <tls-only port> <mtls port> <plain-h1 port>" when listening.
Raw-bytes methods (no protos needed):
  /test.T/Echo       unary: returns the request bytes
  /test.T/Stream     server stream: request is a decimal count N; sends N
                     messages "msg-0".."msg-N-1"
  /test.T/Fail       aborts with ALREADY_EXISTS "50% done: exists\\n"
  /test.T/Slow       sleeps 3 s (for deadlines)
  /test.T/Node       returns the "node" metadata value
Stops when stdin closes.
"""
import sys
import threading
import time
from concurrent import futures

import grpc


def echo(req, ctx):
    return req


def stream(req, ctx):
    for i in range(int(req.decode() or "0")):
        yield ("msg-%d" % i).encode()


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.ALREADY_EXISTS, "50% done: exists\n")


def slow(req, ctx):
    time.sleep(3)
    return b"late"


def node(req, ctx):
    md = dict(ctx.invocation_metadata())
    return (md.get("node") or "none").encode()


def handlers():
    return grpc.method_handlers_generic_handler("test.T", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Node": grpc.unary_unary_rpc_method_handler(node),
    })


def main():
    d = sys.argv[1]
    read = lambda n: open("%s/%s" % (d, n), "rb").read()
    key, cert, ca = read("srv.key"), read("srv.pem"), read("ca.pem")
    servers, ports = [], []
    for mtls in (False, True):
        s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        s.add_generic_rpc_handlers((handlers(),))
        creds = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca if mtls else None,
            require_client_auth=mtls)
        ports.append(s.add_secure_port("127.0.0.1:0", creds))
        s.start()
        servers.append(s)
    # A TLS server that only speaks HTTP/1.1, to check ALPN h2 is required.
    import http.server
    import ssl
    h1 = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("%s/srv.pem" % d, "%s/srv.key" % d)
    ctx.set_alpn_protocols(["http/1.1"])
    h1.socket = ctx.wrap_socket(h1.socket, server_side=True)
    threading.Thread(target=h1.serve_forever, daemon=True).start()
    ports.append(h1.server_address[1])
    print("PORTS %d %d %d" % tuple(ports), flush=True)
    sys.stdin.read()
    for s in servers:
        s.stop(0)


if __name__ == "__main__":
    main()
