"""The Talos ingress firewall of a simulated node (FACTS-metal.md §4).

The rules come from the machine config's NetworkDefaultActionConfig and
NetworkRuleConfig documents, the way Talos turns them into its nftables
chain `inet talos ingress`:

- no NetworkDefaultActionConfig: ingress `accept`;
- always allowed: the loopback interface (here: a connection from one of
  the node's own addresses), and traffic of an established connection (a
  connection accepted before a rule change keeps working);
- `block`: the pod and service subnets are allowed; a packet is accepted
  when some rule lists its port and protocol and its source is in one of
  the rule's `ingress[].subnet` and not in that entry's `except`; anything
  else is dropped;
- `accept`: each rule drops its ports for sources outside its subnets.

Dropped means no answer at all: the client's connect times out. On
loopback a simulated TCP listener cannot drop a SYN, so a refused
connection is accepted by the kernel and then never answered (the client
sees the same: its TLS handshake, its connect phase, times out).
"""
import ipaddress
import socket
import sys
import threading


def _net(s):
    return ipaddress.ip_network(str(s), strict=False)


def _ports(sel):
    out = []
    for p in (sel or {}).get("ports") or []:
        if isinstance(p, int):
            out.append((p, p))
        else:
            lo, _, hi = str(p).partition("-")
            out.append((int(lo), int(hi or lo)))
    return out


def rules_of(docs):
    """(default action, [(ports, protocol, [(subnet, except)])]) of a
    config's documents."""
    action = "accept"
    rules = []
    for d in docs or []:
        if not isinstance(d, dict):
            continue
        if d.get("kind") == "NetworkDefaultActionConfig":
            action = d.get("ingress") or "accept"
        elif d.get("kind") == "NetworkRuleConfig":
            sel = d.get("portSelector") or {}
            ing = [(_net(e["subnet"]), _net(e["except"]) if e.get("except") else None)
                   for e in d.get("ingress") or [] if isinstance(e, dict) and e.get("subnet")]
            rules.append((_ports(sel), sel.get("protocol") or "tcp", ing))
    return action, rules


def _in(ing, src):
    for net, exc in ing:
        if src.version == net.version and src in net and not (exc is not None and src in exc):
            return True
    return False


def admits(docs, src, port, proto="tcp", own=(), cluster_nets=()):
    """Whether a new connection from src to port/proto gets through."""
    src = ipaddress.ip_address(src)
    if any(src == ipaddress.ip_address(a) for a in own):
        return True                      # lo: always allowed
    action, rules = rules_of(docs)
    hit = [(ing) for ports, p, ing in rules if p == proto and any(lo <= port <= hi for lo, hi in ports)]
    if action == "block":
        if any(src.version == n.version and src in n for n in cluster_nets):
            return True
        return any(_in(ing, src) for ing in hit)
    return all(_in(ing, src) for ing in hit)


def cluster_nets(config):
    """The pod and service subnets of a v1alpha1 config (allowed in block mode)."""
    net = ((config or {}).get("cluster") or {}).get("network") or {}
    out = []
    for k in ("podSubnets", "serviceSubnets"):
        for s in net.get(k) or []:
            try:
                out.append(_net(s))
            except ValueError:
                pass
    return out


def hold(conn):
    """A dropped connection: never answered; closed when the client gives up."""
    try:
        conn.settimeout(300)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


class Gate:
    """A TCP listener on addr that lets a connection through to a backend
    (a unix socket path) only when admit(source address) says so."""

    def __init__(self, addr, backend, admit):
        self.backend = backend
        self.admit = admit
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)             # a taken address fails here
        self.sock.listen(1024)
        self.closed = False
        self.conns = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            if self.closed:
                c.close()
                return
            threading.Thread(target=self._one, args=(c, peer), daemon=True).start()

    def _one(self, c, peer):
        try:
            ok = self.admit(peer[0])
        except Exception as e:  # noqa: BLE001 - a bad rule must not pass traffic
            sys.stderr.write("labsim firewall: %s: %r\n" % (self.sock.getsockname(), e))
            ok = False
        if not ok:
            hold(c)
            return
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            b.connect(self.backend)
        except OSError:
            b.close()
            c.close()
            return
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.conns.update((c, b))
        t = threading.Thread(target=self._pipe, args=(b, c), daemon=True)
        t.start()
        self._pipe(c, b)
        t.join()
        with self.lock:
            self.conns.discard(c)
            self.conns.discard(b)
        c.close()
        b.close()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for s in list(self.conns):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
