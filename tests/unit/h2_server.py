#!/usr/bin/python3
"""A raw HTTP/2 server on 127.0.0.1 that breaks the gRPC rules on purpose,
for tests/unit/test_grpc.c (python3-h2; a real gRPC library never sends
these). TLS with ALPN h2.

usage: h2_server.py CERT KEY   -> prints "PORT <n>" once listening.
Paths (any method):
  /bad/GarbageStatus    a message, then trailers with grpc-status "0abc"
  /bad/EmptyStatus      a message, then trailers with grpc-status ""
  /bad/StatusThenReset  headers carrying grpc-status 0 without ending the
                        stream, a message, then RST_STREAM: a truncated
                        stream after a status in the headers
  /bad/OkThenReset      headers with grpc-status 0, then RST_STREAM
  /ok/Echo              a correct unary reply echoing the request
Stops when stdin closes.
"""
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.errors

MSG = b"\x00\x00\x00\x00\x02hi"


def reply(conn, sock, sid, path, body):
    hdrs = [(":status", "200"), ("content-type", "application/grpc")]
    if path == "/bad/GarbageStatus" or path == "/bad/EmptyStatus":
        conn.send_headers(sid, hdrs)
        conn.send_data(sid, MSG)
        conn.send_headers(sid, [("grpc-status", "0abc" if "Garbage" in path else "")],
                          end_stream=True)
    elif path in ("/bad/StatusThenReset", "/bad/OkThenReset"):
        conn.send_headers(sid, hdrs + [("grpc-status", "0")])
        if path == "/bad/StatusThenReset":
            conn.send_data(sid, MSG)
        # let the client take in what came so far, then break the stream
        sock.sendall(conn.data_to_send())
        time.sleep(0.3)
        conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
    else:
        conn.send_headers(sid, hdrs)
        conn.send_data(sid, body)
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)


def serve(sock):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    paths, bodies = {}, {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    paths[ev.stream_id] = dict(ev.headers).get(b":path", b"").decode()
                    bodies[ev.stream_id] = b""
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    reply(conn, sock, ev.stream_id, paths.get(ev.stream_id, ""), bodies.get(ev.stream_id, b""))
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    ctx.set_alpn_protocols(["h2"])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def accept():
        while True:
            s, _ = ls.accept()
            try:
                t = ctx.wrap_socket(s, server_side=True)
            except (OSError, ssl.SSLError):
                s.close()
                continue
            threading.Thread(target=serve, args=(t,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("PORT %d" % ls.getsockname()[1], flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
