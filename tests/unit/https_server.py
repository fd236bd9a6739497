#!/usr/bin/python3
"""Tiny HTTPS server on 127.0.0.1 for tests/unit/test_http.c.

usage: https_server.py CERT KEY   -> prints "PORT <n>" once listening.
Endpoints:
  GET  /ok                 200 {"data":"ok"}
  GET  /auth               200 {"data":"<Authorization header or none>"}
  GET  /flaky/NAME/N       503 for the first N hits of NAME, then 200
  POST /flaky/NAME/N       same, for a non-idempotent call
  *    /fail500/NAME/N     500 for the first N hits of NAME, then 200
  GET  /count/NAME         200 {"data": hits of NAME}
  GET  /connections        200 {"data": TCP connections accepted}
  GET  /requests           200 {"data": requests read, of any path (this one too)}
  POST /echo               200 body = request body, header X-CT = its type
  *    /drop/NAME          counts a hit of NAME, then closes the connection
                           without a reply (did it happen? nobody knows)
  A two-VM Proxmox (pve1: 100, 101) under /api2/json, for test_proxmox.c:
  GET  /api2/json/cluster/resources   the VMs not deleted
  DELETE /api2/json/nodes/pve1/qemu/N the first one deletes N and closes the
                           connection without a reply (a lost reply); later
                           ones: 500 "Configuration file ... does not exist"
                           (the real message, shared/reference FACTS.md)
  GET  /api2/json/version   200 {"version": "8.4.1", ...}
  GET  /api2/json/connections  TLS connections accepted (handshake done)
  POST /api2/json/wide/N   from now on the cluster has N more VMs (vmid
                           1000.., node pve1, tag strata-w), and a GET of
                           one's config answers once N such reads are in
                           the server at once ({"description": ...}), or
                           409 when 10 s pass first (fewer read at once)
  GET  /api2/json/together/N   answers once N of these are in the server
                           at once, 200 {"data": requests its connection
                           carried before it}, or 409 when 10 s pass
                           first (the client had fewer in flight)
Stops on SIGTERM or when stdin closes.
"""
import http.server
import json
import signal
import ssl
import sys
import threading

hits = {}
deleted = set()
together = {}           # N -> threading.Barrier(N)
wide = [0, None]        # [N, the Barrier(N) the config reads of those VMs meet at]
connections = 0
requests = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def parse_request(self):
        global requests
        with lock:
            requests += 1
        # one handler per connection: requests read on this one
        self.served = getattr(self, "served", 0) + 1
        return super().parse_request()

    def reply(self, code, data, extra=None):
        body = json.dumps({"data": data}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def pve(self, rest):
        if self.command == "GET" and rest == ["cluster", "resources"]:
            with lock:
                vms = [{"type": "qemu", "vmid": v, "node": "pve1", "name": "vm%d" % v,
                        "status": "stopped"} for v in (100, 101) if v not in deleted]
                vms += [{"type": "qemu", "vmid": 1000 + i, "node": "pve1", "name": "w-%d" % i,
                         "status": "running", "tags": "strata-w"} for i in range(wide[0])]
            return self.reply(200, vms)
        if self.command == "POST" and rest[:1] == ["wide"] and len(rest) == 2:
            with lock:
                wide[0] = int(rest[1])
                wide[1] = threading.Barrier(wide[0], timeout=10)
            return self.reply(200, None)
        if (self.command == "GET" and rest[:3] == ["nodes", "pve1", "qemu"] and len(rest) == 5
                and rest[4] == "config" and wide[1] is not None and int(rest[3]) >= 1000):
            try:
                wide[1].wait()
            except threading.BrokenBarrierError:
                return self.reply(409, None)
            return self.reply(200, {"name": "w-%d" % (int(rest[3]) - 1000), "cores": 2, "memory": "2048",
                                    "description": "strata node role=worker\nmanaged-by=strata env=w",
                                    "tags": "strata-w"})
        if self.command == "DELETE" and rest[:3] == ["nodes", "pve1", "qemu"]:
            vmid = int(rest[3])
            with lock:
                hits["delete"] = hits.get("delete", 0) + 1
                first = vmid not in deleted
                deleted.add(vmid)
            if first:
                self.close_connection = True   # done, but no reply
                return None
            body = json.dumps({"data": None}).encode()
            self.send_response(500, "Configuration file 'nodes/pve1/qemu-server/%d.conf' "
                               "does not exist" % vmid)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if rest == ["deletes"]:
            return self.reply(200, hits.get("delete", 0))
        if self.command == "GET" and rest == ["version"]:
            return self.reply(200, {"version": "8.4.1", "release": "8.4", "repoid": "test"})
        if self.command == "GET" and rest == ["connections"]:
            return self.reply(200, connections)
        if self.command == "GET" and rest[:1] == ["together"] and len(rest) == 2:
            n = int(rest[1])
            with lock:
                b = together.setdefault(n, threading.Barrier(n, timeout=10))
            try:
                b.wait()
            except threading.BrokenBarrierError:
                return self.reply(409, None)
            return self.reply(200, self.served - 1)
        return self.reply(501, None)

    def route(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api2", "json"]:
            return self.pve(parts[2:])
        parts = self.path.strip("/").split("/")
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if parts[0] == "ok":
            return self.reply(200, "ok")
        if parts[0] == "auth":
            return self.reply(200, self.headers.get("Authorization") or "none")
        if parts[0] in ("flaky", "fail500"):
            name, fails = parts[1], int(parts[2])
            with lock:
                hits[name] = hits.get(name, 0) + 1
                k = hits[name]
            if k <= fails:
                return self.reply(503 if parts[0] == "flaky" else 500, None)
            return self.reply(200, k)
        if parts[0] == "drop":
            with lock:
                hits[parts[1]] = hits.get(parts[1], 0) + 1
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if parts[0] == "count":
            return self.reply(200, hits.get(parts[1], 0))
        if parts[0] == "connections":
            return self.reply(200, connections)
        if parts[0] == "requests":
            return self.reply(200, requests)
        if parts[0] == "echo":
            return self.reply(200, body.decode(), {"X-CT": self.headers.get("Content-Type") or ""})
        self.reply(404, None)

    do_GET = route
    do_POST = route
    do_PUT = route
    do_DELETE = route


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        global connections
        sock, addr = super().get_request()
        with lock:
            connections += 1
        return sock, addr


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    print("PORT %d" % srv.server_address[1], flush=True)
    sys.stdin.read()  # the test closes our stdin (or dies) to stop us


if __name__ == "__main__":
    main()
