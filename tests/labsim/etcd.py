"""etcd behind the simulated control planes: one Etcd per cluster (its
controlPlane.endpoint), with the membership rules the Talos API shows
(../shared/reference/talos/FACTS-day2.md sections 2, 3, 4c, 4d).

A faithful model rather than a real etcd per node (Debian's etcd-server is
not installed here and a real etcd per simulated node is too heavy for the
shared test machine). The rules:

- Bootstrap makes a one-member cluster on that node; it leads.
- Another control plane that comes up running in a bootstrapped cluster
  joins as a learner with an empty name (not started), gets its name when
  it starts, and is promoted to a voter once it caught up. It joins only
  while the cluster has quorum.
- Quorum: started voters >= voters // 2 + 1. A member is started while its
  node runs. Without quorum there is no leader; with quorum a leader that
  went away is replaced by a started voter (a new term).
- MemberList (not query_local) needs a leader ("etcdserver: no leader").
- Removing a member (EtcdRemoveMemberByID, EtcdLeaveCluster, the leave in
  a graceful Reset) needs a leader, refuses an unknown id ("etcdserver:
  member not found", NotFound) and refuses when the started voters left
  would be fewer than the quorum of the smaller cluster ("etcdserver:
  re-configuration failed due to not enough started members"); removing
  the last member is refused that way too. A member that leaves stops its
  etcd and its data directory is removed; a member removed from elsewhere
  while it runs stops too.
- ForfeitLeadership answers "" on a non-leader, hands leadership to a
  started voter otherwise, and is an error with only one member.
- Snapshot: the cluster's data (the Kubernetes objects, from dump()) in
  whole 512-byte pages plus a SHA-256 of them, as etcd's snapshots end.
- Recover: the uploaded file is kept on that node; Bootstrap with
  recover_etcd restores the data it holds into a new one-member cluster.
  A missing or damaged snapshot makes the etcd service fail (Bootstrap
  itself answers, as Talos starts etcd only afterwards), unless
  recover_skip_hash_check is set (for a damaged trailer only).
- The data lives on the members' disks: when no member holds it any more
  (every member's disk destroyed or wiped) the cluster is gone and may be
  bootstrapped anew.

Errors are EtcdError(code, msg); talos.py turns them into gRPC statuses.
"""
import hashlib
import json
import random
import threading

PROTOCOL_VERSION = "3.6.4"
STORAGE_VERSION = "3.6.0"
SNAP_MAGIC = b"LABSIM-ETCD-SNAPSHOT v2\n"

NO_LEADER = "etcdserver: no leader"
NOT_FOUND = "etcdserver: member not found"
NOT_ENOUGH = "etcdserver: re-configuration failed due to not enough started members"
NOT_EMPTY = "etcd data directory is not empty"


class EtcdError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code      # a grpc.StatusCode name, e.g. "NOT_FOUND"
        self.msg = msg


class Member:
    def __init__(self, mid, node, learner):
        self.id = mid
        self.node = node        # the Node object (its disk holds the data)
        self.name = ""          # set when it started
        self.learner = learner
        self.ip = node.ip

    def started(self):
        return bool(self.name) and self.node.state == "running" and \
            getattr(self.node, "etcd_member", None) == self.id


def _snapshot_body(data):
    head = "".join("%s: %s\n" % (k, data.get(k, "")) for k in ("cluster", "endpoint"))
    return SNAP_MAGIC + head.encode() + json.dumps(data, sort_keys=True).encode() + b"\n"


def snapshot_size(data, pad=0):
    """len(encode_snapshot(data, pad)) without building it."""
    n = max(len(_snapshot_body(data)), int(pad or 0))
    return n + (-n % 512) + 32


def encode_snapshot(data, pad=0):
    """data (JSON-able) -> pages + SHA-256 trailer (size % 512 == 32).
    pad: at least this many bytes of pages (free pages of a large
    database: zeros), for tests and benchmarks of big snapshots."""
    body = _snapshot_body(data)
    n = max(len(body), int(pad or 0))
    body += b"\0" * (n + (-n % 512) - len(body))
    return body + hashlib.sha256(body).digest()


def decode_snapshot(blob, skip_hash_check=False):
    """The data of a snapshot, or EtcdError saying why not."""
    if not skip_hash_check:
        if len(blob) < 32 or len(blob) % 512 != 32:
            raise EtcdError("FAILED_PRECONDITION", "sha256 checksum not found")
        if hashlib.sha256(blob[:-32]).digest() != blob[-32:]:
            raise EtcdError("FAILED_PRECONDITION", "expected sha256 %s, got %s" % (
                blob[-32:].hex(), hashlib.sha256(blob[:-32]).hexdigest()))
        blob = blob[:-32]
    elif len(blob) % 512 == 32:
        blob = blob[:-32]
    if not blob.startswith(SNAP_MAGIC):
        raise EtcdError("FAILED_PRECONDITION", "snapshot file is not an etcd database")
    try:
        text = blob[len(SNAP_MAGIC):].rstrip(b"\0").decode()
        return json.loads(text.split("\n", 2)[2])
    except ValueError:
        raise EtcdError("FAILED_PRECONDITION", "snapshot file is not an etcd database")


class Etcd:
    """One cluster's etcd. later(seconds, fn) schedules (time-scaled);
    dump() -> the data to snapshot; on_lost() runs when no member holds the
    data any more."""

    JOIN_SECONDS = 1.0      # learner added -> started (name known)
    PROMOTE_SECONDS = 1.0   # started -> promoted to voter

    def __init__(self, later, dump=lambda: {}, on_lost=lambda: None, pad=lambda: 0):
        self.lock = threading.RLock()
        self.later = later
        self.dump = dump
        self.pad = pad          # -> bytes a snapshot is padded to (knob etcd_snapshot_bytes)
        self.on_lost = on_lost
        self.members = {}       # id -> Member, in join order
        self.leader = 0
        self.term = 0
        self.index = 0
        self.log = []           # (event, details) for tests and the state dump

    # --- helpers
    def _new_id(self):
        while True:
            mid = random.getrandbits(64)
            if mid and mid not in self.members:
                return mid

    def _voters(self):
        return [m for m in self.members.values() if not m.learner]

    def quorum(self):
        return len(self._voters()) // 2 + 1

    def has_quorum(self):
        v = self._voters()
        return bool(v) and sum(1 for m in v if m.started()) >= len(v) // 2 + 1

    def settle(self):
        """Elect a leader if the current one is gone (needs quorum)."""
        with self.lock:
            cur = self.members.get(self.leader)
            if cur is not None and cur.started() and not cur.learner and self.has_quorum():
                return
            old = self.leader
            self.leader = 0
            if self.has_quorum():
                for m in self._voters():
                    if m.started():
                        self.leader = m.id
                        self.term += 1
                        break
            if self.leader != old:
                self.log.append(("leader", "%016x" % self.leader))

    def member_of(self, node):
        mid = getattr(node, "etcd_member", None)
        return self.members.get(mid) if mid else None

    def _running_member(self, node):
        """The node's own member, running; else the error Talos's etcd client gives."""
        m = self.member_of(node)
        if m is None or not m.started():
            raise EtcdError("FAILED_PRECONDITION", "etcd is not running on this node")
        return m

    def bootstrapped(self):
        return bool(self.members)

    # --- lifecycle
    def bootstrap(self, node, data=None):
        """A one-member cluster on node (data: restored from a snapshot)."""
        with self.lock:
            if self.members or getattr(node, "etcd_member", None):
                raise EtcdError("ALREADY_EXISTS", NOT_EMPTY)
            m = Member(self._new_id(), node, learner=False)
            m.name = node.hostname()
            self.members[m.id] = m
            node.etcd_member = m.id
            self.leader = m.id
            self.term += 1
            self.index += 1
            self.log.append(("bootstrap", m.name))
            return m

    def node_up(self, node):
        """A control plane of this cluster runs: a member again, or a join."""
        with self.lock:
            if not self.members:
                return
            m = self.member_of(node)
            if m is not None:
                self.settle()
                return
            if getattr(node, "etcd_member", None):
                # removed from the cluster while away: its etcd cannot start
                return
            if getattr(node, "etcd_joining", False):
                return
            node.etcd_joining = True
        self._try_join(node)

    def _try_join(self, node):
        with self.lock:
            if node.state != "running" or not self.members or self.member_of(node) is not None:
                node.etcd_joining = False
                return
            self.settle()
            if not self.leader:
                self.later(1.0, lambda: self._try_join(node))
                return
            m = Member(self._new_id(), node, learner=True)
            self.members[m.id] = m
            node.etcd_member = m.id
            node.etcd_joining = False
            self.index += 1
            self.log.append(("add-learner", node.hostname()))

        def started():
            with self.lock:
                if self.members.get(m.id) is m and node.state == "running":
                    m.name = node.hostname()
                    self.log.append(("started", m.name))
                    self.later(self.PROMOTE_SECONDS, promote)

        def promote():
            with self.lock:
                if self.members.get(m.id) is m and m.started() and self.leader:
                    m.learner = False
                    self.index += 1
                    self.log.append(("promote", m.name))
                elif self.members.get(m.id) is m:
                    self.later(1.0, promote)
        self.later(self.JOIN_SECONDS, started)

    def node_wiped(self, node):
        """The node's EPHEMERAL (and with it /var/lib/etcd) is gone. Its
        member, if any, stays in the list until removed."""
        with self.lock:
            m = self.member_of(node)
            node.etcd_member = None
            node.etcd_joining = False
            if m is not None:
                # the member's data went with the disk
                m.node = _Gone(m.ip)
                self.log.append(("wiped", m.name))
            self._check_lost()

    def _check_lost(self):
        if self.members and not any(not isinstance(m.node, _Gone) for m in self.members.values()):
            self.members.clear()
            self.leader = 0
            self.log.append(("lost", ""))
            self.on_lost()

    # --- API
    def member_list(self, node, query_local=False):
        with self.lock:
            self._running_member(node)
            self.settle()
            if not query_local and not self.leader:
                raise EtcdError("UNAVAILABLE", NO_LEADER)
            return list(self.members.values())

    def _remove(self, mid):
        with self.lock:
            self.settle()
            if not self.leader:
                raise EtcdError("UNAVAILABLE", NO_LEADER)
            m = self.members.get(mid)
            if m is None:
                raise EtcdError("NOT_FOUND", NOT_FOUND)
            if not m.learner:
                voters = [v for v in self._voters() if v.id != mid]
                left = sum(1 for v in voters if v.started())
                if not voters or left < len(voters) // 2 + 1:
                    raise EtcdError("FAILED_PRECONDITION", NOT_ENOUGH)
            del self.members[mid]
            self.index += 1
            self.log.append(("remove", m.name or "%016x" % mid))
            # the removed member's etcd stops (permanently removed); its node
            # keeps etcd_member set so it does not simply join again
            self.settle()
            return m

    def remove_member(self, node, mid):
        with self.lock:
            self._running_member(node)
            self._remove(mid)

    def leave(self, node):
        """The node's own member leaves; its etcd stops and its data goes.
        Not a member: nothing to do."""
        with self.lock:
            m = self.member_of(node)
            if m is None:
                node.etcd_member = None
                return
            if not m.started():
                raise EtcdError("FAILED_PRECONDITION", "etcd is not running on this node")
            try:
                self._remove(m.id)
            except EtcdError as e:
                if e.code != "NOT_FOUND":
                    raise
            node.etcd_member = None

    def forfeit(self, node):
        """'' when node does not lead; else the new leader's id (%016x)."""
        with self.lock:
            m = self._running_member(node)
            self.settle()
            if len(self.members) == 1:
                raise EtcdError("FAILED_PRECONDITION",
                                "labsim: cannot forfeit leadership: this is the only etcd member")
            if self.leader != m.id:
                return ""
            for o in self._voters():
                if o.id != m.id and o.started():
                    self.leader = o.id
                    self.term += 1
                    self.log.append(("leader", "%016x" % o.id))
                    return "%016x" % o.id
            raise EtcdError("UNAVAILABLE", "etcdserver: unhealthy cluster")

    def status(self, node):
        with self.lock:
            m = self._running_member(node)
            self.settle()
            size = snapshot_size(self.dump(), self.pad())
            return {"member_id": m.id, "leader": self.leader, "is_learner": m.learner,
                    "raft_index": self.index, "raft_term": self.term, "raft_applied_index": self.index,
                    "db_size": size, "db_size_in_use": size, "protocol_version": PROTOCOL_VERSION,
                    "storage_version": STORAGE_VERSION}

    def snapshot(self, node):
        with self.lock:
            self._running_member(node)
            return encode_snapshot(self.dump(), self.pad())

    def describe(self):
        with self.lock:
            self.settle()
            return {"leader": "%016x" % self.leader if self.leader else "", "term": self.term,
                    "quorum": self.quorum() if self.members else 0, "has_quorum": self.has_quorum(),
                    "members": [{"id": "%016x" % m.id, "name": m.name, "ip": m.ip, "learner": m.learner,
                                 "started": m.started(), "gone": isinstance(m.node, _Gone)}
                                for m in self.members.values()],
                    "log": [list(e) for e in self.log]}


class _Gone:
    """Stands for a member's node whose disk (and data) is gone."""
    state = "off"
    etcd_member = None

    def __init__(self, ip):
        self.ip = ip


# --- the Kubernetes objects as etcd holds them (kube.Cluster <-> snapshot data)
def kube_dump(cl):
    """What a kube.Cluster keeps in etcd: its objects and field managers,
    and the cilium release its DaemonSet runs."""
    import time as _t
    if cl is None:
        return {"objects": [], "applied": []}
    with cl.lock:
        c = dict(cl.cilium) if cl.cilium else None
        if c is not None:
            c.pop("ready_at", None)
            c.pop("t", None)
        return {"objects": [[list(k), o] for k, o in cl.objects.items()],
                "applied": [[list(k), {m: list(v) for m, v in mv.items()}] for k, mv in cl.applied.items()],
                "cilium": c, "taken": _t.time()}


def kube_load(cl, data):
    """Replace cl's objects with a snapshot's; CRDs are served again and the
    cilium agents of a restored DaemonSet start again."""
    import time as _t
    with cl.lock:
        cl.objects = {tuple(k): o for k, o in data.get("objects", [])}
        cl.applied = {tuple(k): {m: tuple(v) for m, v in mv.items()} for k, mv in data.get("applied", [])}
        cl.crd_types = {}
        for (gv, res, ns, name), o in list(cl.objects.items()):
            if res == "customresourcedefinitions":
                conds = {c["type"] for c in (o.get("status") or {}).get("conditions", [])}
                if "Established" in conds:
                    cl._crd_established(o)
        c = data.get("cilium")
        if c:
            c = dict(c)
            now = _t.time()
            c["t"] = now
            c["ready_at"] = now + cl.secs("k8s_rollout_seconds", 2.0)
            cl.cilium = c
