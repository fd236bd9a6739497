#!/usr/bin/python3
"""bench/labsim_bare.py CERT KEY: the transport the lab simulator is built
on and nothing else: the standard library's threaded HTTP/1.1 server over
TLS (ThreadingHTTPServer, BaseHTTPRequestHandler, ssl), on 127.0.0.1, a
port of its choosing (printed on stdout, then it serves until killed).
Every request, any method and path, has its body read and gets one fixed
JSON answer (a UPID, as a create's), in one write with TCP_NODELAY, as
the simulator answers. No Proxmox model: no routing, parameter check,
token check, state or task.

What it is for (bench/labsim.sh): the CPU per request of this server is
the least any simulator on it pays per request, so N requests at once
take at least N times that of one core, whatever the model costs on top.
"""
import http.server
import socket
import ssl
import sys

ANSWER = b'{"data":"UPID:pve1:00001F40:00002710:6710A8C0:qmcreate:3000:root@pam!strata:"}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(ANSWER)))
        self._headers_buffer.append(b"\r\n" + ANSWER)
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_DELETE = answer


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def finish_request(self, request, client_address):
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        pass


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = Server(("127.0.0.1", 0), Handler)
    srv.ctx = ctx
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
