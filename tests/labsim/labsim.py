#!/usr/bin/python3
"""strata lab simulator: a Proxmox VE API (and, later, Talos and Kubernetes)
on loopback, for tests. Run: /usr/bin/python3 tests/labsim/labsim.py --state DIR

Parameters are checked against the Proxmox schema subset
(api-schema-subset.json) read from the reference directory at start.
"""
import argparse
import datetime
import functools
import gzip
import http.client
import hashlib
import heapq
import ipaddress
import json
import os
import queue
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pve_upload  # noqa: E402
import pve_cloudinit  # noqa: E402
import pve_clone  # noqa: E402
import pve_ci  # noqa: E402
import pve_guest  # noqa: E402
DEFAULT_REF = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "reference"))


# ---------------------------------------------------------------- TLS cert

def make_self_signed(state_dir, name):
    """RSA-2048 self-signed CA plus a server cert for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, str(uuid.uuid4())),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=700))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName(name),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    ca_path = os.path.join(state_dir, "pve-root-ca.pem")
    cert_path = os.path.join(state_dir, "pve-ssl.pem")
    key_path = os.path.join(state_dir, "pve-ssl.key")
    with open(ca_path, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    fp = ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))
    return ca_path, cert_path, key_path, fp


# ---------------------------------------------------------------- errors

class ApiError(Exception):
    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors):
    return ApiError(400, "Parameter verification failed.", errors)


# ---------------------------------------------------------------- schema

from pve_formats import Routes, check_params, lookup_prop, parse_propstring  # noqa: E402,F401
import pve_rules  # noqa: E402
from pve_pools import PoolsMixin
from pve_layer0 import Layer0Mixin, all_privileges, apply_node_resources, apply_storage  # noqa: E402
import pve_pending  # noqa: E402


def Schema(path):
    """The endpoints of api-schema-subset.json, routed (pve_formats.Routes)."""
    with open(path) as f:
        return Routes(json.load(f)["endpoints"])


def validate(info, params, from_json):
    """Schema check of one call's parameters (pve_formats.py holds the rules)."""
    errors = check_params(info, params, from_json, strict=False)
    if errors:
        raise param_error(errors)


# privilege checks the handlers do in code (the schema only describes them)
CODE_CHECKS = {
    ("POST", "/nodes/{node}/qemu"): ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"): ["perm", "/storage/{storage}", ["Datastore.Allocate"]],
}


def as_bool(v):
    return v is True or str(v) == "1"


# ---------------------------------------------------------------- world

class World:
    def __init__(self, nodes, scale):
        self.lock = threading.RLock()
        self.scale = scale
        self.nodes = {}
        for i, n in enumerate(nodes):
            self.nodes[n] = {
                "name": n, "maxcpu": 16, "maxmem": 64 << 30, "bridges": ["vmbr0"],
                "storage": {
                    "local": {"type": "dir", "shared": 0,
                              "content": ["iso", "vztmpl", "import", "snippets", "backup"],
                              "total": 100 << 30, "items": {}},
                    "local-lvm": {"type": "lvmthin", "shared": 0, "content": ["images", "rootdir"],
                                  "total": 500 << 30, "items": {}},
                },
            }
        self.vms = {}
        self.pools = {}            # poolid -> {"comment", "vms": set} (pve_pools.py)
        self.tasks = {}
        self.due = []       # heap of (end, upid) of running tasks: tick() looks only at those due
        self.requests = []
        self.pid = 0x3A000
        self.next_ip = 10
        self.knobs = {
            "latency": 0.0,            # seconds added to every API call, or {path regex: seconds}
            "error_rate": {},          # path regex -> probability of a sync 500
            "drop_rate": {},           # path regex -> probability of a dropped connection
            "lose_reply": {},          # "METHOD path-regex" -> count: handle the call, then drop the connection
            "task_fail": {},           # task type -> error text (every such task fails)
            "task_seconds": 2.0,       # nominal task duration (time-scaled)
            "task_seconds_by_type": {},  # task type -> duration, overriding task_seconds
            "agent_delay": 5.0,        # seconds after start before the guest agent answers
            "resources_lag": 10.0,     # seconds after a create /cluster/resources shows status unknown, no name
            "bridges": {},             # node -> list of bridges (default ["vmbr0"])
            "shared_iso_storage": None,  # name of a shared (nfs) storage on every node, one copy for all
            "cidata_unread": False,    # fault: nocloud nodes do not find their cidata drive
            "pve_version": "8.4.1",    # GET /nodes/{node}/version (pve_cloudinit.py)
            "host_dns": {"nameserver": ["192.0.2.53"], "search": ["lab.example"]},  # the node's resolv.conf (pve_ci.py)
            "image_agent": [],         # regexes of image URLs/volids that ship qemu-guest-agent (pve_guest.py)
            "clone_full_seconds": None,  # a full clone's task duration (None: as any qmclone) (pve_clone.py)
            "package_seconds": 30.0,   # a cloud-init guest's package install before its agent runs (pve_guest.py)
            "bridge_vlan_aware": {},   # node -> bridges with bridge_vlan_aware=1 (pve_layer0.py)
            "node_resources": {},      # node -> {maxcpu, maxmem, status} (pve_layer0.py)
            "storage": {},             # node -> {storage: {type, content, total, used, enabled, shared}}
            # test kill points (nothing a real Proxmox does on its own: a
            # test holds the world still at a known point, kills strata,
            # then lets go): tasks of these types do not end while listed
            "task_hold": [],
            # ["METHOD path-regex", ...]: matching API calls wait unanswered
            # while listed, then are dropped, never carried out (state: held)
            "hold": [],
        }
        self.held = []
        self.events = []
        self.talos = None
        self.factory = None   # metal.py, with --factory-addr
        self.metal = None

    def add_shared_storage(self, name):
        """One storage (nfs, shared=1) seen by every node: the same items
        for all of them, so one download serves every node (FACTS.md §7
        storage list `shared`; §4 clone: shared storage)."""
        items = {}
        for nv in self.nodes.values():
            old = nv["storage"].get(name)
            if old:
                items.update(old["items"])
        for nv in self.nodes.values():
            nv["storage"][name] = {"type": "nfs", "shared": 1, "content": ["iso", "import", "vztmpl"],
                                   "total": 1 << 40, "items": items}

    def set_knob(self, k, v):
        self.knobs[k] = v
        if k == "shared_iso_storage" and v:
            self.add_shared_storage(v)
        if k == "node_resources":
            apply_node_resources(self, v)
        if k == "storage":
            apply_storage(self, v)
        if k == "bridges":
            for n, nv in self.nodes.items():
                nv["bridges"] = list(v.get(n, ["vmbr0"]))

    # --- tasks
    def new_task(self, node, ttype, tid, user, work, fail=None, seconds=None):
        """work(): called at the end; returns None or raises ApiError/str for failure."""
        with self.lock:
            self.pid += 1
            now = int(time.time())
            upid = "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (node, self.pid, (self.pid * 37) & 0xFFFFFFFF,
                                                         now, ttype, tid, user)
            secs = self.knobs["task_seconds_by_type"].get(ttype, self.knobs["task_seconds"]) \
                if seconds is None else seconds
            self.tasks[upid] = {
                "upid": upid, "node": node, "pid": self.pid, "pstart": (self.pid * 37) & 0xFFFFFFFF,
                "starttime": now, "type": ttype, "id": tid, "user": user,
                "status": "running", "exitstatus": None, "log": [],
                "end": time.time() + secs * self.scale, "work": work,
                "fail": fail or self.knobs["task_fail"].get(ttype),
            }
            heapq.heappush(self.due, (self.tasks[upid]["end"], upid))
            return upid

    def tick(self):
        with self.lock:
            now = time.time()
            # Only the tasks due (a scan of every task ever made, 200
            # times a second, cost the simulator CPU that grew with the
            # VM count: bench/scale.sh at 200 VMs); a held type waits
            hold = self.knobs["task_hold"]
            later = []
            while self.due and self.due[0][0] <= now:
                item = heapq.heappop(self.due)
                t = self.tasks.get(item[1])
                if t is not None and t["status"] == "running" and t["type"] in hold:
                    later.append((now + 0.05,) + tuple(item[1:]))
                    continue
                if t is not None and t["status"] == "running":
                    self.finish_task(t)
            for item in later:
                heapq.heappush(self.due, item)
            for vm in self.vms.values():
                if vm.get("shutdown_at") and now >= vm["shutdown_at"]:
                    vm["shutdown_at"] = None
                    self.power_off(vm)

    def finish_task(self, t):
        err = t["fail"]
        if not err:
            try:
                res = t["work"]() if t["work"] else None
                if isinstance(res, str):
                    t["log"].append(res)
            except ApiError as e:
                err = e.message
            except Exception as e:  # noqa: BLE001 - task errors are data here
                err = str(e)
        t["status"] = "stopped"
        if err:
            err = err.strip().replace("\n", " ")
            t["exitstatus"] = err
            t["log"].append("TASK ERROR: " + err)
        else:
            t["exitstatus"] = "OK"
            t["log"].append("TASK OK")

    # --- VMs
    def vm(self, node, vmid):
        v = self.vms.get(int(vmid))
        if v is None or v["node"] != node:
            raise ApiError(500, "Configuration file 'nodes/%s/qemu-server/%s.conf' does not exist" % (node, vmid))
        return v

    def power_on(self, vm):
        vm["status"] = "running"
        vm["started"] = time.time()
        self.events.append({"t": time.time(), "event": "vm-start", "vmid": vm["vmid"]})
        cd = " ".join(v for k, v in vm["config"].items() if DISK_RE.match(k) and "media=cdrom" in v)
        # A VM's Talos state lives on its boot disk: an installed disk boots
        # Talos from disk, a blank one boots the ISO (if attached) into
        # maintenance mode (talos.py Manager.vm_started).
        vm["disk_uid"] = self.boot_disk_uid(vm)
        talos_vm = "talos" in cd.lower() or (self.talos is not None and self.talos.has_disk(vm["disk_uid"]))
        if self.talos is not None and talos_vm:
            self.talos.vm_started(vm)
        # any other VM boots what its disk holds, with cloud-init (pve_guest.py)
        vm["guest"] = None if talos_vm else pve_guest.boot(self, vm, pve_upload.read_cidata, pve_ci.drive_key)

    def boot_disk_uid(self, vm):
        """The uid of the volume the VM boots from (first disk of the boot
        order that is not a cdrom), or None."""
        cfg = vm["config"]
        order = re.sub(r"^order=", "", cfg.get("boot", "")).split(";")
        for dev in [d for d in order if d] + sorted(k for k in cfg if DISK_RE.match(k)):
            val = cfg.get(dev, "")
            if not DISK_RE.match(dev) or not val or "media=cdrom" in val:
                continue
            volid = val.split(",")[0]
            st = self.nodes[vm["node"]]["storage"].get(volid.partition(":")[0])
            item = st["items"].get(volid) if st else None
            return item.get("uid") if item else None
        return None

    def power_off(self, vm):
        vm["status"] = "stopped"
        vm["started"] = None
        vm["guest"] = None
        self.events.append({"t": time.time(), "event": "vm-stop", "vmid": vm["vmid"]})
        if self.talos is not None:
            self.talos.vm_stopped(vm)

    def snapshot(self):
        with self.lock:
            return {
                "nodes": {n: {"storage": {s: {"type": st["type"], "items": sorted(st["items"])}
                                          for s, st in v["storage"].items()}}
                          for n, v in self.nodes.items()},
                "vms": {str(k): {kk: vv for kk, vv in v.items() if kk != "digest"}
                        for k, v in self.vms.items()},
                "tasks": [{k: v for k, v in t.items() if k != "work"} for t in self.tasks.values()],
                "knobs": self.knobs,
                "pools": {k: {"comment": v["comment"], "vms": sorted(v["vms"])} for k, v in self.pools.items()},
                "events": self.events,
                "held": list(self.held),
                "talos": self.talos.snapshot() if self.talos else None,
            }


def gen_mac():
    return "BC:24:11:%02X:%02X:%02X" % tuple(random.randrange(256) for _ in range(3))


DISK_RE = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$")
NET_RE = re.compile(r"net\d+")


def config_digest(cfg):
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- API handlers

@functools.lru_cache(maxsize=None)
def handler_name(method, tmpl):
    """h_POST_nodes_node_qemu for POST /nodes/{node}/qemu (computed once
    per method and template)."""
    return "h_" + method + "_" + re.sub(r"[^a-z0-9]+", "_", tmpl.lower()).strip("_")


class Api(PoolsMixin, Layer0Mixin):
    def __init__(self, world, schema, tokens):
        self.w = world
        self.schema = schema
        self.tokens = tokens

    def privs_of(self, user):
        t = self.tokens.get(user)
        if t and "acl" in t:
            return self.acl_union(user)   # per-path ACLs (pve_layer0.py)
        return set(t.get("privs", ["*"])) if t else set()

    def perm_failure(self, check, privs, params):
        """'(/pool/lab, Pool.Allocate)': the first perm a check misses, in
        the form of FACTS.md §1's 403 message."""
        if not check or "*" in privs:
            return None
        op = check[0]
        if op in ("and", "or"):
            fails = [self.perm_failure(c, privs, params) for c in check[1:]]
            bad = [f for f in fails if f]
            if op == "and":
                return bad[0] if bad else None
            return bad[0] if len(bad) == len(fails) else None
        if op == "perm" and not self.check_perm(check, privs):
            path = re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), check[1])
            missing = [x for x in check[2] if x not in privs]
            return "(%s, %s)" % (path, ", ".join(missing) if len(check) > 4 and check[3] == "any" else missing[0])
        return None

    # permissions: a token's privileges are a set of names ('*' = all); paths ignored.
    def check_perm(self, check, privs):
        if not check or "*" in privs:
            return True
        op = check[0]
        if op == "and":
            return all(self.check_perm(c, privs) for c in check[1:])
        if op == "or":
            return any(self.check_perm(c, privs) for c in check[1:])
        if op == "perm":
            need = check[2]
            anyof = len(check) > 4 and check[3] == "any" and check[4]
            return any(p in privs for p in need) if anyof else all(p in privs for p in need)
        return True

    def handle(self, method, path, params, user, privs, from_json):
        tmpl, info, pathp = self.schema.match(path)
        if tmpl is None or method not in info:
            raise ApiError(501, "Method '%s %s' not implemented" % (method, path))
        minfo = info[method]
        for k, v in pathp.items():
            if k in params and str(params[k]) != v:
                raise ApiError(400, "duplicate parameter (already defined in URI) with conflicting values!")
            params[k] = v
        validate(minfo, params, from_json)
        perms = minfo.get("permissions", {})
        check = perms.get("check") or CODE_CHECKS.get((method, tmpl))
        if not self.check_perm(check, privs):
            why = self.perm_failure(check, privs, params)
            raise ApiError(403, "Permission check failed" + (" " + why if why else ""))
        why = self.acl_failure(check, user, params)
        if why:
            raise ApiError(403, "Permission check failed " + why)
        if "node" in params and params["node"] not in self.w.nodes:
            raise ApiError(500, "no such cluster node '%s'" % params["node"])
        fn = getattr(self, handler_name(method, tmpl), None)
        if fn is None:
            raise ApiError(501, "Method '%s %s' not implemented in labsim" % (method, tmpl))
        try:
            pve_rules.check_root_only(params, user)
            with self.w.lock:
                res = fn(params, user)
        except pve_rules.Refusal as e:
            raise ApiError(e.status, e.message, e.errors)
        if method == "GET" and isinstance(res, dict) and "__data" not in res:
            # responses typed as the schema's `returns` says
            res = pve_rules.typed_config(res, minfo.get("returns", {}).get("properties", {}), lookup_prop)
        return res

    # --- misc
    def h_GET_version(self, p, u):
        # the cluster's version is its nodes' (knob pve_version, as
        # GET /nodes/{node}/version answers it)
        v = self.w.knobs.get("pve_version", "8.4.1")
        return {"version": v, "release": ".".join(v.split(".")[:2]).split("-")[0], "repoid": "2a5fa54a"}

    def h_GET_nodes(self, p, u):
        return [{"node": n, "status": v.get("status", "online"), "type": "node", "id": "node/" + n,
                 "maxcpu": v["maxcpu"], "maxmem": v["maxmem"], "cpu": 0.01, "mem": 1 << 30,
                 "uptime": 1000, "level": "", "ssl_fingerprint": self.fingerprint}
                for n, v in self.w.nodes.items()]

    def h_GET_nodes_node_status(self, p, u):
        n = self.w.nodes[p["node"]]
        return {"cpuinfo": {"cpus": n["maxcpu"]}, "memory": {"total": n["maxmem"], "used": 1 << 30},
                "uptime": 1000, "pveversion": "pve-manager/8.4.1",
                "loadavg": ["0.12", "0.08", "0.05"]}

    def h_GET_cluster_nextid(self, p, u):
        if "vmid" in p:
            if int(p["vmid"]) in self.w.vms:
                raise param_error({"vmid": "VM %s already exists" % p["vmid"]})
            return str(p["vmid"])
        i = 100
        while i in self.w.vms:
            i += 1
        return str(i)

    def h_GET_cluster_resources(self, p, u):
        out = []
        t = p.get("type")
        if t in (None, "vm"):
            for vm in self.w.vms.values():
                cfg = vm["config"]
                e = {"id": "qemu/%d" % vm["vmid"], "type": "qemu", "vmid": vm["vmid"], "node": vm["node"],
                     "status": vm["status"], "name": cfg.get("name", "VM %d" % vm["vmid"]),
                     "template": 1 if as_bool(cfg.get("template", 0)) else 0,
                     "maxcpu": int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)),
                     "maxmem": int(str(cfg.get("memory", "512")).split("=")[-1]) << 20,
                     "cpu": 0, "mem": 0, "maxdisk": 0, "disk": 0, "uptime": 0}
                for k in ("tags", "lock"):
                    if cfg.get(k):
                        e[k] = cfg[k]
                if self.pool_of(vm["vmid"]):
                    e["pool"] = self.pool_of(vm["vmid"])
                if pve_rules.resources_lagging(vm, self.w.knobs["resources_lag"], self.w.scale):
                    e["status"] = "unknown"
                    e.pop("name", None)
                out.append(e)
        if t is None:
            # FACTS.md §5: without a type filter, pool entries appear too
            for pid in sorted(self.w.pools):
                out.append({"id": "/pool/" + pid, "type": "pool", "pool": pid})
        if t in (None, "node"):
            for n in self.w.nodes:
                out.append({"id": "node/" + n, "type": "node", "node": n, "status": "online"})
        if t in (None, "storage"):
            for n, nv in self.w.nodes.items():
                for s, st in nv["storage"].items():
                    out.append({"id": "storage/%s/%s" % (n, s), "type": "storage", "node": n,
                                "storage": s, "status": "available", "plugintype": st["type"],
                                "content": ",".join(st["content"]), "shared": st["shared"]})
        return out

    # --- tasks
    def task(self, p):
        t = self.w.tasks.get(p["upid"])
        if t is None:
            if not re.match(r"^UPID:[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?:[0-9A-Fa-f]{8}:", p["upid"]):
                raise param_error({"upid": "unable to parse worker upid"})
            raise param_error({"upid": "no such task"})
        return t

    def h_GET_nodes_node_tasks_upid_status(self, p, u):
        t = self.task(p)
        user, _, tokenid = t["user"].partition("!")
        out = {k: t[k] for k in ("upid", "node", "pid", "pstart", "starttime", "type", "id", "status")}
        out["user"] = user
        if tokenid:
            out["tokenid"] = tokenid
        if t["status"] == "stopped":
            out["exitstatus"] = t["exitstatus"]
        return out

    def h_GET_nodes_node_tasks_upid_log(self, p, u):
        t = self.task(p)
        lines = t["log"] or ["no content"]
        start = int(p.get("start", 0))
        limit = int(p.get("limit", 50))
        sel = lines[start:] if limit == 0 else lines[start:start + limit]
        return {"__data": [{"n": start + i + 1, "t": s} for i, s in enumerate(sel)],
                "__extra": {"total": len(lines)}}

    def h_DELETE_nodes_node_tasks_upid(self, p, u):
        t = self.task(p)
        if t["status"] == "running":
            t["fail"] = "interrupted by signal"
            self.w.finish_task(t)
        return None

    def h_GET_nodes_node_tasks(self, p, u):
        # apidata.json: source archive (the default: finished tasks),
        # active (running) or all; newest first; start, and limit
        # (default 50).
        source = p.get("source", "archive")
        ts = [t for t in self.w.tasks.values() if t["node"] == p["node"] and
              (source == "all" or (t["status"] == "running") == (source == "active"))]
        # apidata.json: since, "only list tasks since this UNIX epoch"
        # (the task's start time, the UPID's fifth field)
        if "since" in p:
            ts = [t for t in ts if t["starttime"] >= int(p["since"])]
        ts.sort(key=lambda t: -t["pid"])
        start, limit = int(p.get("start", 0)), int(p.get("limit", 50))
        out = []
        for t in ts[start:start + limit]:
            e = {k: t[k] for k in ("upid", "node", "type", "id", "user", "starttime", "pid", "pstart")}
            if t["status"] != "running":
                # an ended task's entry carries its exit status
                e["status"] = t["exitstatus"]
                e["endtime"] = int(t["end"])
            out.append(e)
        return out

    # --- VMs
    def h_GET_nodes_node_qemu(self, p, u):
        return [{"vmid": v["vmid"], "name": v["config"].get("name"), "status": v["status"],
                 "tags": v["config"].get("tags", ""), **({"lock": v["config"]["lock"]} if v["config"].get("lock") else {})}
                for v in self.w.vms.values() if v["node"] == p["node"]]

    def parse_drive(self, node, key, val, vmid, allocate):
        """Check a disk/cdrom property string; allocate 'STORAGE:SIZE' volumes."""
        first = val.split(",")[0]
        if "=" in first and not first.startswith("file="):
            raise param_error({key: "invalid format - missing drive file"})
        vol = first[5:] if first.startswith("file=") else first
        opts = dict(x.split("=", 1) for x in val.split(",")[1:] if "=" in x)
        if vol in ("none", "cdrom"):
            return val
        if ":" not in vol:
            raise param_error({key: "invalid format - unable to parse volume ID '%s'" % vol})
        storage, volname = vol.split(":", 1)
        st = self.w.nodes[node]["storage"].get(storage)
        if st is None:
            raise ApiError(500, "storage '%s' does not exist" % storage)
        if pve_cloudinit.is_cloudinit(volname):
            return pve_cloudinit.allocate_drive(self, node, key, storage, st, vmid, val.split(",")[1:],
                                                allocate, ApiError)
        pve_rules.check_drive(key, vol, opts, self.w.nodes[node]["storage"].get,
                              lambda v: self.volume_item(node, v))
        if opts.get("media") == "cdrom":
            if vol not in st["items"]:
                raise ApiError(500, "volume '%s' does not exist" % vol)
            return val
        m = re.fullmatch(r"(\d+(\.\d+)?)", volname)
        if m:
            if "images" not in st["content"]:
                raise ApiError(500, "storage '%s' does not support vm images" % storage)
            if not allocate:
                return val
            n = 0
            while "%s:vm-%d-disk-%d" % (storage, vmid, n) in st["items"]:
                n += 1
            newvol = "%s:vm-%d-disk-%d" % (storage, vmid, n)
            size = int(float(volname) * (1 << 30))
            src = self.volume_item(node, opts["import-from"]) if "import-from" in opts else None
            if src is not None:
                size = src["size"]   # an imported disk has the source's size
            # what the disk holds: an imported image's OS (pve_guest.py), else nothing
            os_ = (src.get("os") or (src.get("url") or src["volid"] if src.get("content") == "import" else None)) \
                if src is not None else None
            st["items"][newvol] = {"volid": newvol, "content": "images", "format": "raw",
                                   "size": size, "vmid": vmid, "ctime": int(time.time()),
                                   "uid": str(uuid.uuid4())}   # a new blank disk (Talos state key)
            if os_:
                st["items"][newvol]["os"] = os_
            rest = [x for x in val.split(",")[1:] if not x.startswith("import-from=")]
            stxt = "size=%dG" % (size >> 30) if size % (1 << 30) == 0 else "size=%dM" % max(1, size >> 20)
            return ",".join([newvol] + rest + [stxt])
        if vol not in st["items"]:
            raise ApiError(500, "volume '%s' does not exist" % vol)
        return val

    def volume_item(self, node, volid):
        st = self.w.nodes[node]["storage"].get(volid.partition(":")[0])
        return st["items"].get(volid) if st else None

    def check_options(self, node, vmid, p, allocate):
        cfg = {}
        for k, v in p.items():
            if k in ("node", "vmid", "start", "digest", "delete", "skiplock", "force", "revert",
                     "background_delay", "storage", "unique", "pool", "archive"):
                continue
            v = v if isinstance(v, str) else str(int(v)) if isinstance(v, bool) else str(v)
            if k == "cdrom":
                k, v = "ide2", v + ",media=cdrom"
            if DISK_RE.match(k):
                v = self.parse_drive(node, k, v, vmid, allocate)
            elif k == "tags":
                v = pve_rules.normalize_tags(v)
            elif pve_ci.is_ci_key(k):
                v = pve_ci.check_option(k, v)      # sshkeys, cipassword (pve_ci.py)
            elif NET_RE.fullmatch(k):
                parts = v.split(",")
                model = parts[0].split("=")
                if model[0] in ("virtio", "e1000", "rtl8139", "vmxnet3", "e1000e") and len(model) == 1:
                    parts[0] = model[0] + "=" + gen_mac()
                elif len(model) == 2 and model[0] == "model":
                    parts[0] = parts[0].replace("model=", "") + "=" + gen_mac()
                v = ",".join(parts)
            cfg[k] = v
        have = self.w.vms[vmid]["config"] if vmid in self.w.vms else {}
        two = pve_cloudinit.check_one_drive(have, cfg)
        if two:
            raise ApiError(500, "cloud-init drive is already attached at '%s'" % two[1])
        return cfg

    def h_POST_nodes_node_qemu(self, p, u):
        node, vmid = p["node"], int(p["vmid"])
        self.check_create_pool(p)
        pve_ci.check_priv(self, p, u)
        try:
            pve_clone.check_import_from_vm(self, p, u)
        except pve_clone.CloneError as e:
            raise ApiError(e.status, e.message)
        if vmid in self.w.vms:
            raise ApiError(500, "unable to create VM %d - VM %d already exists on node '%s'"
                           % (vmid, vmid, self.w.vms[vmid]["node"]))
        cfg = self.check_options(node, vmid, p, False)
        vm = {"vmid": vmid, "node": node, "status": "stopped", "config": {"lock": "create"},
              "acpi_ignored": False, "agent_ok": True, "started": None, "shutdown_at": None,
              "created_at": time.time()}
        self.w.vms[vmid] = vm

        def work():
            try:
                full = self.check_options(node, vmid, p, True)
            except ApiError as e:
                del self.w.vms[vmid]
                raise ApiError(500, "unable to create VM %d - %s" % (vmid, e.message))
            full.setdefault("smbios1", "uuid=" + str(uuid.uuid4()))
            full.setdefault("vmgenid", str(uuid.uuid4()))
            full.setdefault("meta", "creation-qemu=9.2.0,ctime=%d" % time.time())
            if "boot" not in full:
                disks = sorted(k for k in full if DISK_RE.match(k) and "media=cdrom" not in full[k])
                if disks:
                    full["boot"] = "order=" + disks[0]
            vm["config"] = full
            self.pool_add(p.get("pool"), vmid)
            if as_bool(p.get("start", 0)):
                # FACTS.md §4: start=1 starts the VM at the end of the
                # task; a failed autostart is only a warning (task OK).
                try:
                    pve_rules.check_start(vm, self.w.nodes[node])
                    pve_ci.at_start(self.w, vm)
                except pve_rules.Refusal as e:
                    return "start failed: %s" % e.message
                self.w.power_on(vm)
            return None
        fail = self.w.knobs["task_fail"].get("qmcreate")
        if fail:
            # As upstream: a failed create removes the VM's config. The
            # failure is raised by the work itself, so it must run.
            def failing():
                self.w.vms.pop(vmid, None)
                raise ApiError(500, fail)
            upid = self.w.new_task(node, "qmcreate", vmid, u, failing)
            self.w.tasks[upid]["fail"] = None
            return upid
        return self.w.new_task(node, "qmcreate", vmid, u, work)

    def h_GET_nodes_node_qemu_vmid(self, p, u):
        self.w.vm(p["node"], p["vmid"])
        return [{"subdir": s} for s in ("config", "pending", "status", "agent")]

    def h_GET_nodes_node_qemu_vmid_config(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        # FACTS.md §4: pending values merged in; current=1 the running config
        cfg = dict(vm["config"]) if as_bool(p.get("current", 0)) else pve_pending.merged(vm)
        cfg["digest"] = config_digest(vm["config"])
        return pve_ci.masked(cfg)

    def h_GET_nodes_node_qemu_vmid_pending(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        return {"__data": [dict(e, **{k: pve_ci.MASK for k in ("value", "pending") if k in e})
                           if e["key"] == "cipassword" else e for e in pve_pending.listing(vm)], "__extra": {}}

    def h_GET_nodes_node_qemu_vmid_cloudinit(self, p, u):
        return pve_ci.h_get(self, p, u)

    def h_PUT_nodes_node_qemu_vmid_cloudinit(self, p, u):
        return pve_ci.h_put(self, p, u)

    def h_GET_nodes_node_qemu_vmid_cloudinit_dump(self, p, u):
        return pve_ci.h_dump(self, p, u)

    def apply_config(self, vm, p, allocate):
        if p.get("digest") and p["digest"] != config_digest(vm["config"]):
            raise ApiError(500, "checksum mismatch (file change by other user?)")
        dels = [d for d in re.split(r"[,;\s]+", p.get("delete", "")) if d]
        dels = ["ide2" if d == "cdrom" else d for d in dels]
        new = self.check_options(vm["node"], vm["vmid"], p, allocate)
        both = set(dels) & set(new)
        if both:
            raise param_error({k: "conflicting set and delete" for k in both})
        for k in dels:
            if k in vm["config"] and (vm["status"] != "running" or pve_pending.is_live(k, vm["config"])):
                pve_clone.register_unused(self.w, vm, k)
        # running VMs keep what is not hot-pluggable pending (pve_pending.py)
        pve_pending.update(vm, new, dels)

    def h_PUT_nodes_node_qemu_vmid_config(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        pve_ci.check_priv(self, p, u)
        try:
            pve_clone.check_import_from_vm(self, p, u)
        except pve_clone.CloneError as e:
            raise ApiError(e.status, e.message)
        if vm["config"].get("lock"):
            raise ApiError(500, "VM is locked (%s)" % vm["config"]["lock"])
        self.apply_config(vm, p, True)
        return None

    def h_POST_nodes_node_qemu_vmid_config(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        pve_ci.check_priv(self, p, u)
        try:
            pve_clone.check_import_from_vm(self, p, u)
        except pve_clone.CloneError as e:
            raise ApiError(e.status, e.message)
        if vm["config"].get("lock"):
            raise ApiError(500, "VM is locked (%s)" % vm["config"]["lock"])
        self.check_options(vm["node"], vm["vmid"], p, False)

        def work():
            if vm["config"].get("lock"):
                raise ApiError(500, "VM is locked (%s)" % vm["config"]["lock"])
            self.apply_config(vm, p, True)
        return self.w.new_task(p["node"], "qmconfig", vm["vmid"], u, work)

    def h_GET_nodes_node_qemu_vmid_status_current(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        cfg = vm["config"]
        out = {"vmid": vm["vmid"], "status": vm["status"], "qmpstatus": vm["status"],
               "name": cfg.get("name", "VM %d" % vm["vmid"]),
               "cpus": int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)),
               "maxmem": int(str(cfg.get("memory", "512")).split("=")[-1]) << 20, "mem": 0,
               "maxdisk": 0, "uptime": int(time.time() - vm["started"]) if vm["started"] else 0,
               "ha": {"managed": 0}, "tags": cfg.get("tags", "")}
        if vm["status"] == "running":
            out["pid"] = 10000 + vm["vmid"]
        if cfg.get("lock"):
            out["lock"] = cfg["lock"]
        if cfg.get("agent") and cfg["agent"].split(",")[0] in ("1", "enabled=1"):
            out["agent"] = 1
        if as_bool(cfg.get("template", 0)):
            out["template"] = 1
        return out

    def h_GET_nodes_node_qemu(self, p, u):
        # apidata.json: "Virtual machine index (per node)"; "Only list VMs
        # where you have VM.Audit permissions on /vms/<vmid>"; status is
        # the "QEMU process status" (now: not the RRD data that makes
        # /cluster/resources lag, FACTS.md §4), pid "if the VM is running"
        out = []
        for vm in sorted(self.w.vms.values(), key=lambda v: v["vmid"]):
            if vm["node"] != p["node"] or "VM.Audit" not in self.privs_at(u, "/vms/%d" % vm["vmid"]):
                continue
            cfg = vm["config"]
            e = {"vmid": vm["vmid"], "status": vm["status"], "name": cfg.get("name", "VM %d" % vm["vmid"]),
                 "cpus": int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)),
                 "maxmem": int(str(cfg.get("memory", "512")).split("=")[-1]) << 20, "mem": 0,
                 "maxdisk": 0, "uptime": int(time.time() - vm["started"]) if vm["started"] else 0}
            if vm["status"] == "running":
                e["pid"] = 10000 + vm["vmid"]
            for k in ("tags", "lock"):
                if cfg.get(k):
                    e[k] = cfg[k]
            if as_bool(cfg.get("template", 0)):
                e["template"] = 1
            if as_bool(p.get("full", 0)):
                e["qmpstatus"] = vm["status"]
            out.append(e)
        return out

    def h_GET_nodes_node_qemu_vmid_status(self, p, u):
        self.w.vm(p["node"], p["vmid"])
        return [{"subdir": s} for s in ("current", "start", "stop", "shutdown", "reboot", "reset")]

    def power_task(self, p, u, ttype, fn):
        vm = self.w.vm(p["node"], p["vmid"])

        def work():
            lock = vm["config"].get("lock")
            if lock and not (ttype == "qmstart" and lock == "suspended"):
                raise ApiError(500, "VM is locked (%s)" % lock)
            return fn(vm)
        return self.w.new_task(p["node"], ttype, vm["vmid"], u, work)

    def h_POST_nodes_node_qemu_vmid_status_start(self, p, u):
        def fn(vm):
            if vm["status"] == "running":
                raise ApiError(500, "VM %d already running" % vm["vmid"])
            if as_bool(vm["config"].get("template", 0)):
                raise ApiError(500, "you can't start a vm if it's a template")
            pve_pending.apply_pending(vm)      # a start applies pending changes
            pve_rules.check_start(vm, self.w.nodes[vm["node"]])
            pve_ci.at_start(self.w, vm)        # a changed cloud-init drive is regenerated
            self.w.power_on(vm)
        return self.power_task(p, u, "qmstart", fn)

    def h_POST_nodes_node_qemu_vmid_status_stop(self, p, u):
        def fn(vm):
            if vm["status"] == "running":
                self.w.power_off(vm)
        return self.power_task(p, u, "qmstop", fn)

    def h_POST_nodes_node_qemu_vmid_status_shutdown(self, p, u):
        timeout = int(p.get("timeout", 60))
        force = as_bool(p.get("forceStop", 0))

        def fn(vm):
            if vm["status"] != "running":
                return None
            if vm["acpi_ignored"]:
                if force:
                    self.w.power_off(vm)
                    return "VM still running - terminating now with SIGTERM"
                raise ApiError(500, "VM quit/powerdown failed - got timeout")
            self.w.power_off(vm)
        vm = self.w.vm(p["node"], p["vmid"])
        secs = self.w.knobs["task_seconds"]
        if vm["acpi_ignored"]:
            secs = timeout
        return self.w.new_task(p["node"], "qmshutdown", vm["vmid"], u,
                               lambda: self._locked_call(vm, fn), seconds=secs)

    def _locked_call(self, vm, fn):
        if vm["config"].get("lock"):
            raise ApiError(500, "VM is locked (%s)" % vm["config"]["lock"])
        return fn(vm)

    def h_POST_nodes_node_qemu_vmid_status_reboot(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        if vm["status"] != "running":
            raise ApiError(500, "VM %d not running" % vm["vmid"])

        def fn(vm):
            # FACTS.md §4: a shutdown followed by a start that applies pending changes
            self.w.power_off(vm)
            pve_pending.apply_pending(vm)
            pve_rules.check_start(vm, self.w.nodes[vm["node"]])
            pve_ci.at_start(self.w, vm)
            self.w.power_on(vm)
        return self.power_task(p, u, "qmreboot", fn)

    def h_POST_nodes_node_qemu_vmid_status_reset(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        if vm["status"] != "running":
            raise ApiError(500, "VM %d not running" % vm["vmid"])

        def fn(vm):
            self.w.power_off(vm)
            self.w.power_on(vm)
        return self.power_task(p, u, "qmreset", fn)

    def h_DELETE_nodes_node_qemu_vmid(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        if as_bool(vm["config"].get("protection", 0)):
            raise ApiError(500, "can't remove VM %d - protection mode enabled" % vm["vmid"])
        if vm["status"] == "running":
            raise ApiError(500, "VM %d is running - destroy failed" % vm["vmid"])

        # The task checks the lock first, then replaces the config's lock
        # with "destroyed" while it frees the disks (FACTS.md §3).
        lock = vm["config"].get("lock")
        if lock and lock != "suspended":
            return self.w.new_task(p["node"], "qmdestroy", vm["vmid"], u, None,
                                   fail="VM is locked (%s)" % lock, seconds=0.1)
        if not self.w.knobs["task_fail"].get("qmdestroy"):
            # (a destroy that fails, fails in its checks, before that)
            vm["config"]["lock"] = "destroyed"

        def work():
            # FACTS.md §4: a template's base disk backing a linked clone
            # stops the destroy; it frees what the config references, and
            # with destroy-unreferenced-disks=1 every vm-<vmid>-* volume too
            base = pve_clone.base_in_use(self.w, vm)
            if base:
                vm["config"].pop("lock", None)
                raise ApiError(500, "base volume '%s' is still in use by linked cloned" % base)
            for st, volid in pve_clone.destroy_volumes(self.w, vm, as_bool(p.get("destroy-unreferenced-disks", 0))):
                item = st["items"].pop(volid)
                if self.w.talos is not None and item.get("uid"):
                    self.w.talos.forget_disk(item["uid"])
            self.w.vms.pop(vm["vmid"], None)
            self.pool_forget(vm["vmid"])
        return self.w.new_task(p["node"], "qmdestroy", vm["vmid"], u, work)

    def h_POST_nodes_node_qemu_vmid_clone(self, p, u):
        return pve_clone.h_clone(self, p, u, ApiError)

    def h_POST_nodes_node_qemu_vmid_template(self, p, u):
        return pve_cloudinit.h_template(self, p, u, ApiError)

    def h_GET_nodes_node_version(self, p, u):
        return pve_cloudinit.h_node_version(self, p, u)

    def h_PUT_nodes_node_qemu_vmid_resize(self, p, u):
        vm = self.w.vm(p["node"], p["vmid"])
        disk, size = p["disk"], p["size"]

        def work():
            if vm["config"].get("lock"):
                raise ApiError(500, "VM is locked (%s)" % vm["config"]["lock"])
            val = vm["config"].get(disk)
            if val is None:
                raise ApiError(500, "disk '%s' does not exist" % disk)
            if "media=cdrom" in val:
                raise ApiError(500, "you can't resize a cdrom")
            units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
            m = re.fullmatch(r"(\+?)(\d+(?:\.\d+)?)([KMGT]?)", size)
            cur_m = re.search(r"size=(\d+(?:\.\d+)?)([KMGT]?)", val)
            cur = int(float(cur_m.group(1)) * units[cur_m.group(2)]) if cur_m else 0
            n = int(float(m.group(2)) * units[m.group(3)])
            new = cur + n if m.group(1) else n
            if new < cur:
                raise ApiError(500, "shrinking disks is not supported")
            newtxt = "size=%dG" % (new >> 30) if new % (1 << 30) == 0 else "size=%dM" % (new >> 20)
            if cur_m:
                val = val[:cur_m.start()] + newtxt + val[cur_m.end():]
            else:
                val += "," + newtxt
            vm["config"][disk] = val
        return self.w.new_task(p["node"], "resize", vm["vmid"], u, work)

    # --- agent
    def agent_check(self, p):
        vm = self.w.vm(p["node"], p["vmid"])
        if not vm["config"].get("agent") or vm["config"]["agent"].split(",")[0] in ("0", "enabled=0"):
            raise ApiError(500, "No QEMU guest agent configured")
        if vm["status"] != "running":
            raise ApiError(500, "VM %d is not running" % vm["vmid"])
        if vm.get("guest") is not None:
            # a cloud-init guest: only an agent its image or user-data brings (pve_guest.py)
            if not vm["agent_ok"] or not pve_guest.agent_running(vm):
                raise ApiError(500, "QEMU guest agent is not running")
            return vm
        if not vm["agent_ok"] or time.time() - vm["started"] < self.w.knobs["agent_delay"] * self.w.scale:
            raise ApiError(500, "QEMU guest agent is not running")
        return vm

    def h_GET_nodes_node_qemu_vmid_agent_network_get_interfaces(self, p, u):
        vm = self.agent_check(p)
        if vm.get("guest") is not None:
            return {"result": pve_guest.interfaces(vm)}
        res = [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]}]
        for k in sorted(vm["config"]):
            if re.fullmatch(r"net\d+", k):
                mac = vm["config"][k].split(",")[0].split("=")[-1].lower()
                ips = []
                if k == "net0" and vm.get("ip"):
                    ips.append({"ip-address": vm["ip"], "ip-address-type": "ipv4", "prefix": 24})
                res.append({"name": "eth" + k[3:], "hardware-address": mac, "ip-addresses": ips})
        return {"result": res}

    def h_POST_nodes_node_qemu_vmid_agent_ping(self, p, u):
        # apidata.json: agent/ping is a POST; the same errors as the reads (FACTS.md §4)
        self.agent_check(p)
        return {"result": {}}

    # --- storage
    def h_GET_nodes_node_storage(self, p, u):
        out = []
        for s, st in self.w.nodes[p["node"]]["storage"].items():
            if p.get("content") and p["content"] not in st["content"]:
                continue
            if not self.storage_visible(u, s):
                continue
            if not st.get("enabled", 1):
                if as_bool(p.get("enabled", 0)):
                    continue
                out.append({"storage": s, "type": st["type"], "content": ",".join(st["content"]),
                            "active": 0, "enabled": 0, "shared": st["shared"]})
                continue
            used = sum(i["size"] for i in st["items"].values()) + st.get("used", 0)
            out.append({"storage": s, "type": st["type"], "content": ",".join(st["content"]),
                        "active": 1, "enabled": 1, "shared": st["shared"], "total": st["total"],
                        "used": used, "avail": max(0, st["total"] - used)})
        return out

    def storage(self, p):
        st = self.w.nodes[p["node"]]["storage"].get(p["storage"])
        if st is None:
            raise ApiError(500, "storage '%s' does not exist" % p["storage"])
        return st

    def h_GET_nodes_node_storage_storage_status(self, p, u):
        st = self.storage(p)
        return {"type": st["type"], "total": st["total"], "active": 1, "enabled": 1,
                "content": ",".join(st["content"])}

    def h_GET_nodes_node_storage_storage_content(self, p, u):
        st = self.storage(p)
        out = []
        for it in st["items"].values():
            if p.get("content") and it["content"] != p["content"]:
                continue
            if p.get("vmid") and str(it.get("vmid")) != str(p["vmid"]):
                continue
            out.append({k: v for k, v in it.items() if k != "sha256" and not k.startswith("_")})
        return out

    def h_DELETE_nodes_node_storage_storage_content_volume(self, p, u):
        st = self.storage(p)
        vol = p["volume"] if ":" in p["volume"] else p["storage"] + ":" + p["volume"]

        def work():
            if vol not in st["items"]:
                raise ApiError(500, "volume '%s' does not exist" % vol)
            del st["items"][vol]
        return self.w.new_task(p["node"], "imgdel", p["storage"], u, work)

    def h_POST_nodes_node_storage_storage_download_url(self, p, u):
        st = self.storage(p)
        if st["type"] not in ("dir", "nfs", "cifs"):
            raise ApiError(500, "can't upload to storage type '%s', not a file based storage!" % st["type"])
        content = p["content"]
        if content not in st["content"]:
            raise ApiError(500, "storage '%s' is not configured for content-type '%s'" % (p["storage"], content))
        fname = pve_upload.content_filename(content, p["filename"], param_error, self.w.knobs.get("pve_version"))
        if ("checksum" in p) != ("checksum-algorithm" in p):
            raise param_error({"checksum": "missing property required by 'checksum-algorithm'"})
        volid = "%s:%s/%s" % (p["storage"], content, fname)
        # the "downloaded" file's content is derived from the URL, so its checksum is knowable
        body = ("labsim:" + p["url"]).encode()
        algo = p.get("checksum-algorithm", "sha256")
        got = hashlib.new(algo, body).hexdigest()

        def work():
            if p.get("compression") and content != "iso":
                raise ApiError(500, "decompression not supported for %s" % content)
            if volid in st["items"]:
                if "checksum" not in p:
                    raise ApiError(500, "refusing to override existing file '/var/lib/vz/template/%s/%s'"
                                   % (content, fname))
            elif self.w.factory is not None:
                # wget of a URL on the simulated Image Factory: it serves
                # only schematics it knows (FACTS-metal.md section 1), so
                # the download fails (the message is labsim's own)
                got_url = self.w.factory.fetch(p["url"])
                if got_url is not None and got_url[0] != 200:
                    raise ApiError(500, "labsim: download of '%s' failed: HTTP %d %s"
                                   % (p["url"], got_url[0], got_url[1].decode(errors="replace").strip()))
            if "checksum" in p and p["checksum"].lower() != got:
                raise ApiError(500, "checksum mismatch: got '%s' != expect '%s', aborting"
                               % (got, p["checksum"].lower()))
            if volid in st["items"]:
                return "file already exists, skipping download"
            st["items"][volid] = {"volid": volid, "content": content, "format": fname.rsplit(".", 1)[-1],
                                  "size": 100 << 20, "ctime": int(time.time()), "url": p["url"]}
        tid = re.sub(r"[:%]|[^\x20-\x7e]", lambda m: "%%%02X" % ord(m.group(0)), fname)
        return self.w.new_task(p["node"], "download", tid, u, work)

    def h_POST_nodes_node_storage_storage_upload(self, p, u):
        return pve_upload.h_upload(self, p, u)

    def h_GET_nodes_node_query_url_metadata(self, p, u):
        return {"filename": p["url"].rstrip("/").split("/")[-1], "size": 100 << 20,
                "mimetype": "application/octet-stream"}


# ---------------------------------------------------------------- HTTP

def form_pairs(s):
    """What urllib.parse.parse_qsl(s, keep_blank_values=True) answers
    (pieces split at '&', each at its first '=', a piece without one a
    blank value, '+' a space, %XX decoded as UTF-8 with replacement),
    decoding only the pieces that need it: parse_qsl's unquoting of
    every key and value of a create was a fifth of the simulator's CPU
    for it (bench/scale.sh). test_fastpaths.py checks it against parse_qsl."""
    out = []
    unquote = urllib.parse.unquote_plus
    for piece in s.split("&"):
        if not piece:
            continue
        k, _, v = piece.partition("=")
        if "%" in piece or "+" in piece:
            k, v = unquote(k), unquote(v)
        out.append((k, v))
    return out


class RequestHeaders:
    """A request's header fields by lower-cased name, the first of a
    repeated one (what email.message.Message.get answers). The Proxmox
    handler reads headers only through get(); the stdlib builds an
    email.message.Message with email's feed parser for every request,
    which was a third of the simulator's CPU for a GET at 200 VMs'
    creates (bench/scale.sh). The lines are still read by http.client
    (its line length and count limits)."""
    __slots__ = ("fields",)

    def __init__(self, lines):
        self.fields = {}
        for line in lines:
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if sep:
                self.fields.setdefault(name.strip().lower(), value.strip())

    def get(self, name, default=None):
        return self.fields.get(name.lower(), default)


_stdlib_parse_headers = http.client.parse_headers


def _parse_headers(fp, _class=http.client.HTTPMessage):
    if _class is RequestHeaders:
        return RequestHeaders(http.client._read_headers(fp))
    return _stdlib_parse_headers(fp, _class)


http.client.parse_headers = _parse_headers


_DATE = [None, ""]   # [second, its Date header text]


def make_handler(sim):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        MessageClass = RequestHeaders
        def version_string(self):
            return "pve-api-daemon/3.0"

        def date_time_string(self, timestamp=None):
            """The Date header, formatted once a second (email.utils'
            formatdate on every reply cost a create 2%)."""
            if timestamp is not None:
                return BaseHTTPRequestHandler.date_time_string(self, timestamp)
            now = int(time.time())
            if _DATE[0] != now:
                _DATE[1] = BaseHTTPRequestHandler.date_time_string(self, now)
                _DATE[0] = now
            return _DATE[1]

        def log_message(self, fmt, *args):
            if sim.verbose:
                sys.stderr.write("labsim: " + (fmt % args) + "\n")

        def send(self, status, obj=None, reason=None, raw=None, ctype="application/json;charset=UTF-8"):
            body = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
            if "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024:
                body = gzip.compress(body)
                gz = True
            else:
                gz = False
            self.send_response(status, reason)
            if body or status < 400:
                self.send_header("Content-Type", ctype)
            if gz:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            # the end of the headers and the body in one write (one TLS
            # record, one send) rather than end_headers() and another
            self._headers_buffer.append(b"\r\n" + body)
            self.flush_headers()

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raise ApiError(501, "chunked transfer encoding not supported")
            n = int(self.headers.get("Content-Length") or 0)
            if n > 512 * 1024:
                raise ApiError(501, "for data too large")
            return self.rfile.read(n) if n else b""

        def do_any(self, method):
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/_labsim/"):
                return self.control(method, url)
            rec = {"t": time.time(), "method": method, "path": url.path, "params": {}}
            hs = getattr(self.request, "labsim_hs", None)
            if hs:      # the connection's first request
                rec["conn_t"], rec["handshake"], rec["resumed"] = hs
                self.request.labsim_hs = None
            try:
                params = {}
                from_json = False
                if pve_upload.is_upload(method, url.path):
                    # multipart, streamed to a temp file (pve_upload.py)
                    body = b""
                    try:
                        params = pve_upload.read_request(self, sim.world)
                    except pve_upload.UploadError as e:
                        raise ApiError(e.status, e.message)
                else:
                    body = self.read_body()
                if body:
                    if method in ("GET", "DELETE"):
                        raise ApiError(501, "Unexpected content for method '%s'" % method)
                    ct = self.headers.get("Content-Type", "").split(";")[0].strip()
                    if ct == "application/json":
                        params = json.loads(body)
                        from_json = True
                        rec["body"] = "json"
                    elif ct in ("application/x-www-form-urlencoded", ""):
                        rec["body"] = "form"
                        for k, v in form_pairs(body.decode()):
                            params[k] = v if k not in params else (params[k] if isinstance(params[k], list) else [params[k]]) + [v]
                    else:
                        raise ApiError(506, "unsupported content type")
                for k, v in form_pairs(url.query):
                    params[k] = v
                rec["params"] = dict(params)
                with sim.world.lock:
                    sim.world.requests.append(rec)
                if not url.path.startswith("/api2/json/"):
                    raise ApiError(501, "no such uri")
                path = url.path[len("/api2/json"):]
                self.maybe_fault(path)
                user, privs = self.auth()
                self.maybe_hold(method, path)
                lat = sim.world.knobs["latency"]
                if isinstance(lat, dict):
                    lat = max([v for rx, v in lat.items() if re.search(rx, path)] or [0])
                if lat:
                    time.sleep(float(lat))
                # The simulator's own cost of the call (bench/scale.sh:
                # is the simulator the bottleneck?): CPU seconds of this
                # thread, and wall seconds, in the handler.
                c0, w0 = time.thread_time(), time.time()
                res = sim.api.handle(method, path, params, user, privs, from_json)
                rec["cpu"], rec["wall"] = time.thread_time() - c0, time.time() - w0
                rec["status"] = 200
                self.maybe_lose_reply(method, path)
                if isinstance(res, dict) and "__data" in res:
                    out = {"data": res["__data"], **res["__extra"]}
                else:
                    out = {"data": res}
                self.send(200, out)
            except ApiError as e:
                rec["status"] = e.status
                rec["error"] = e.message
                if e.status == 401:
                    time.sleep(3 * sim.world.scale)
                    self.send(401, None, reason=e.message)
                    return
                out = {"data": None, "message": e.message + "\n"}
                if e.errors:
                    out["errors"] = e.errors
                self.send(e.status, out, reason=e.message.splitlines()[0])
            except DropConnection:
                rec["status"] = "dropped"
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
            finally:
                sim.log_request(rec)

        def maybe_hold(self, method, path):
            """Knob hold: the call waits while an entry matches it, then
            is dropped unhandled (the client was killed meanwhile)."""
            w = sim.world

            def held():
                for key in w.knobs["hold"]:
                    m, _, rx = key.partition(" ")
                    if m == method and re.search(rx, path):
                        return True
                return False
            if not held():
                return
            what = "%s %s" % (method, path)
            with w.lock:
                w.held.append(what)
            try:
                while held():
                    time.sleep(0.01)
            finally:
                with w.lock:
                    w.held.remove(what)
            raise DropConnection()

        def maybe_lose_reply(self, method, path):
            """The call happened; its answer never reaches the client."""
            lose = sim.world.knobs["lose_reply"]
            with sim.world.lock:
                for key, left in list(lose.items()):
                    m, _, rx = key.partition(" ")
                    if m == method and left > 0 and re.search(rx, path):
                        lose[key] = left - 1
                        raise DropConnection()

        def maybe_fault(self, path):
            k = sim.world.knobs
            for rx, prob in k["drop_rate"].items():
                if re.search(rx, path) and random.random() < prob:
                    raise DropConnection()
            for rx, prob in k["error_rate"].items():
                if re.search(rx, path) and random.random() < prob:
                    raise ApiError(500, "labsim: injected error")

        def auth(self):
            h = self.headers.get("Authorization", "")
            m = re.match(r"^PVEAPIToken[= ]([^;]*)", h)
            if not m:
                raise ApiError(401, "No ticket")
            tok = urllib.parse.unquote(m.group(1))
            tid, sep, secret = tok.rpartition("=")
            if not sep or not re.fullmatch(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+", tid):
                raise ApiError(401, "Authentication failed!")
            t = sim.tokens.get(tid)
            if t is None or t["secret"] != secret:
                raise ApiError(401, "Authentication failed!")
            return tid, set(t.get("privs", ["*"]))

        def control(self, method, url):
            """Test-facing control endpoint; no auth, loopback only."""
            try:
                body = self.read_body()
                req = json.loads(body) if body else {}
                if not req and url.query:
                    req = dict(urllib.parse.parse_qsl(url.query))
                what = url.path[len("/_labsim/"):]
                w = sim.world
                if method == "GET" and what == "requests":
                    with w.lock:
                        return self.send(200, {"data": list(w.requests)})
                if method == "GET" and what == "state":
                    return self.send(200, {"data": w.snapshot()}, ctype="application/json")
                if method == "POST" and what == "knobs":
                    with w.lock:
                        for k, v in req.items():
                            if w.talos and w.talos.set_knob(k, v):
                                continue
                            if k not in w.knobs:
                                raise ApiError(400, "unknown knob '%s'" % k)
                            w.set_knob(k, v)
                    return self.send(200, {"data": dict(w.knobs, **(w.talos.knob_values() if w.talos else {}))})
                if method == "POST" and what == "vm":
                    # seed a foreign VM, or change knobs of one: {"vmid":..,"node":..,"config":{..},
                    # "status":"running","acpi_ignored":true,"lock":"backup","agent_ok":false}
                    with w.lock:
                        vmid = int(req["vmid"])
                        vm = w.vms.get(vmid)
                        if vm is None:
                            vm = {"vmid": vmid, "node": req.get("node", next(iter(w.nodes))),
                                  "status": "stopped", "config": {}, "acpi_ignored": False,
                                  "agent_ok": True, "started": None, "shutdown_at": None}
                            w.vms[vmid] = vm
                        vm["config"].update(req.get("config", {}))
                        if "lock" in req:
                            if req["lock"]:
                                vm["config"]["lock"] = req["lock"]
                            else:
                                vm["config"].pop("lock", None)
                        for k in ("acpi_ignored", "agent_ok", "ip", "talos_stuck"):
                            if k in req:
                                vm[k] = req[k]
                        if req.get("status") == "running" and vm["status"] != "running":
                            w.power_on(vm)
                        elif req.get("status") == "stopped":
                            w.power_off(vm)
                        return self.send(200, {"data": {k: v for k, v in vm.items()}})
                if method == "POST" and what == "volume":
                    with w.lock:
                        st = w.nodes[req["node"]]["storage"][req["storage"]]
                        st["items"][req["volid"]] = {"volid": req["volid"], "content": req.get("content", "iso"),
                                                      "format": req.get("format", "iso"), "size": req.get("size", 1 << 20),
                                                      "ctime": int(time.time())}
                        if "vmid" in req:   # an image owned by a VM (destroy-unreferenced-disks)
                            st["items"][req["volid"]]["vmid"] = int(req["vmid"])
                        if "data" in req:   # a file's text (a snippet written out of band: pve_ci.py)
                            st["items"][req["volid"]]["_data"] = req["data"].encode() * int(req.get("repeat", 1))
                            st["items"][req["volid"]]["size"] = len(st["items"][req["volid"]]["_data"])
                    return self.send(200, {"data": None})
                if what == "talos/foreign" and method in ("POST", "DELETE"):
                    # a Talos machine of another cluster: {"ip": "127.0.20.12"}
                    if w.talos is None:
                        raise ApiError(400, "Talos is not simulated (--no-talos)")
                    if method == "DELETE":
                        try:
                            w.talos.remove_foreign(req["ip"])
                        except KeyError:
                            raise ApiError(404, "no foreign node at %s" % req["ip"])
                        return self.send(200, {"data": None})
                    try:
                        return self.send(200, {"data": w.talos.add_foreign(req["ip"])})
                    except (ValueError, RuntimeError) as e:
                        raise ApiError(409, str(e))
                if method == "GET" and what == "factory":
                    # the Image Factory alone (a Proxmox lab has no metal)
                    if w.factory is None:
                        raise ApiError(400, "no Image Factory simulated (--factory-addr)")
                    with w.factory.lock:
                        return self.send(200, {"data": {"gets": list(w.factory.gets),
                                                        "posts": list(w.factory.posts),
                                                        "known": sorted(w.factory.known)}})
                if what.startswith("metal") and getattr(w, "metal", None) is None:
                    raise ApiError(400, "no metal servers simulated (--factory-addr)")
                if method == "POST" and what == "metal/boot":
                    # the rescue host's reboot: {"ip": "127.0.70.10", "disk": "/path/disk.img"}
                    return self.send(200, {"data": w.metal.boot(req["ip"], req["disk"])})
                if method == "GET" and what == "metal":
                    with w.talos.lock:
                        return self.send(200, {"data": w.metal.snapshot()})
                if method == "POST" and what == "metal/cut":
                    # the next image download stops after this many bytes
                    with w.factory.lock:
                        w.factory.cut_next = int(req["bytes"])
                    return self.send(200, {"data": None})
                if method == "POST" and what == "pool":
                    # seed a pool: {"poolid": "lab", "comment": ""}
                    with w.lock:
                        w.pools.setdefault(req["poolid"], {"comment": req.get("comment", ""), "vms": set()})
                    return self.send(200, {"data": None})
                if method == "POST" and what == "reset-requests":
                    with w.lock:
                        w.requests.clear()
                    return self.send(200, {"data": None})
                raise ApiError(404, "no such control call")
            except ApiError as e:
                self.send(e.status, {"error": e.message})
            except (KeyError, ValueError, TypeError) as e:
                self.send(400, {"error": "bad control request: %r" % (e,)})

        def do_GET(self):
            self.do_any("GET")

        def do_POST(self):
            self.do_any("POST")

        def do_PUT(self):
            self.do_any("PUT")

        def do_DELETE(self):
            self.do_any("DELETE")
    return Handler


class DropConnection(Exception):
    pass


class TLSServer(ThreadingHTTPServer):
    """Threaded HTTPS server doing each TLS handshake in the connection's own
    thread, so a stalled client cannot block accept()."""
    daemon_threads = True
    # socketserver's default backlog is 5: 200 VMs' threads connecting at
    # once overflowed it (dropped SYNs, 5 s connect timeouts in
    # bench/apply.sh 200). Capacity only, not a rule of the API.
    request_queue_size = 1024
    ssl_context = None
    admit = None        # admit(source ip, local ip): a host firewall (firewall.py)

    def finish_request(self, request, client_address):
        if self.admit is not None and not self.admit(client_address[0], request.getsockname()[0]):
            import firewall
            firewall.hold(request)      # dropped: never answered
            return
        request.settimeout(30)
        # Headers and body go out in separate writes; without NODELAY,
        # Nagle and the client's delayed ACK add 40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.time()
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        # when the connection came and how long its handshake took (and
        # whether it resumed a session), for the first request's record
        tls.labsim_hs = (t0, time.time() - t0, tls.session_reused)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


class Sim:
    """The process: world, API, and the request log file.

    requests.jsonl in the state directory gets one line per Proxmox API
    request (method, path, params as received: repeated form keys as lists,
    JSON bodies typed; body kind; status; error). It is never cleared, so
    pve_replay.py can check every request a test made."""
    log_path = None
    log_queue = None
    log_thread = None

    def log_request(self, rec):
        """Hand the record to the writer thread. Writing it here, under a
        lock shared by every connection's thread, made the threads queue
        on that lock (a write and a flush each, each then waiting for the
        GIL): 15 ms a request at 200 VMs' creates on 32 connections
        (bench/scale.sh), which held each connection's thread back from
        its next request. SimpleQueue.put neither blocks nor releases the
        GIL. The record is not changed after this."""
        if not self.log_path:
            return
        if self.log_queue is None:
            self.log_queue = queue.SimpleQueue()
            self.log_closing = threading.Event()
            self.log_thread = threading.Thread(target=self.log_writer, daemon=True)
            self.log_thread.start()
        self.log_queue.put(rec)

    def log_writer(self):
        """The records of the last 0.2 s as JSON lines, in one write,
        flushed: their encoding (a tenth of a create's CPU) leaves the
        connections' threads, and a burst of requests (200 VMs' creates
        in about 0.1 s, bench/scale.sh) is encoded once it is over rather
        than in the middle of it. A simulator stopped by a signal loses
        none (log_close ends the wait), one killed with SIGKILL those of
        the last moment."""
        with open(self.log_path, "a") as f:
            while True:
                recs = [self.log_queue.get()]
                if recs[0] is not None:
                    self.log_closing.wait(0.2)
                while True:
                    try:
                        recs.append(self.log_queue.get_nowait())
                    except queue.Empty:
                        break
                end = None in recs
                f.write("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in recs if r is not None))
                f.flush()
                if end:
                    return

    def log_close(self):
        """Write out what is queued and stop the writer (at shutdown)."""
        if self.log_queue is not None:
            self.log_closing.set()
            self.log_queue.put(None)
            self.log_thread.join()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("labsim: refusing non-loopback address %s" % host)
    return host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="strata lab simulator")
    ap.add_argument("--state", required=True)
    ap.add_argument("--proxmox-addr", default="127.0.0.1:8006")
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--reference", default=os.environ.get("STRATA_REFERENCE", DEFAULT_REF))
    ap.add_argument("--nodes", default="pve1,pve2,pve3")
    ap.add_argument("--tokens", help="JSON file: [{\"id\":\"u@r!n\",\"secret\":\"...\",\"privs\":[\"*\"]}]")
    ap.add_argument("--shared-iso-storage", metavar="NAME",
                    help="add a shared (nfs) storage NAME seen by every node (one copy for all)")
    ap.add_argument("--iso", action="append", default=["local:iso/talos-amd64.iso"],
                    help="volume pre-seeded on every node (repeatable)")
    ap.add_argument("--talos-port", type=int, default=50000)
    ap.add_argument("--talos-net", default="127.0.10.0/24")
    ap.add_argument("--talos-boot-seconds", type=float, default=20.0, help="ISO boot to maintenance (time-scaled)")
    ap.add_argument("--talos-install-seconds", type=float, default=30.0, help="apply to installed (time-scaled)")
    ap.add_argument("--talos-version", default="v1.12.11")
    ap.add_argument("--k8s-port", type=int, default=6443)
    ap.add_argument("--no-talos", action="store_true", help="do not simulate Talos nodes")
    ap.add_argument("--factory-addr", help="serve an Image Factory (plain HTTP) here, e.g. 127.0.70.1:0 (metal.py)")
    ap.add_argument("--factory-image", help="the raw test image the factory serves as metal-amd64.raw[.zst|.xz]")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    host, port = parse_addr(a.proxmox_addr)

    os.makedirs(a.state, exist_ok=True)
    schema_path = os.path.join(a.reference, "proxmox", "api-schema-subset.json")
    if not os.path.exists(schema_path):
        raise SystemExit("labsim: reference data not found at %s" % schema_path)
    sim = Sim()
    sim.verbose = a.verbose
    sim.log_path = os.path.join(a.state, "requests.jsonl")
    sim.world = World(a.nodes.split(","), a.time_scale)
    if a.shared_iso_storage:
        sim.world.set_knob("shared_iso_storage", a.shared_iso_storage)
    for n in sim.world.nodes.values():
        for vol in a.iso:
            s, name = vol.split(":", 1)
            if s in n["storage"]:
                n["storage"][s]["items"][vol] = {"volid": vol, "content": name.split("/")[0],
                                                 "format": name.rsplit(".", 1)[-1], "size": 100 << 20,
                                                 "ctime": int(time.time())}
    if a.tokens:
        with open(a.tokens) as f:
            sim.tokens = {t["id"]: t for t in json.load(f)}
    else:
        sim.tokens = {
            "root@pam!strata": {"id": "root@pam!strata", "secret": str(uuid.uuid4()), "privs": ["*"]},
            "audit@pve!ro": {"id": "audit@pve!ro", "secret": str(uuid.uuid4()),
                             "privs": ["VM.Audit", "Sys.Audit", "Datastore.Audit"]},
        }
    sim.api = Api(sim.world, Schema(schema_path), sim.tokens)
    Layer0Mixin.ALL_PRIVS = all_privileges(a.reference)
    if not a.no_talos:
        import talos
        if not ipaddress.ip_network(a.talos_net).subnet_of(ipaddress.ip_network("127.0.0.0/8")):
            raise SystemExit("labsim: --talos-net must be inside 127.0.0.0/8")
        sim.world.talos = talos.Manager(a.state, os.path.join(a.reference, "talos", "config.schema.json"),
                                        a.talos_port, a.talos_net, a.time_scale, a.talos_boot_seconds,
                                        a.talos_install_seconds, a.talos_version)
        sim.world.talos.k8s_port = a.k8s_port
        sim.world.talos.first_boot = lambda node: pve_upload.nocloud_boot(
            sim.world.talos, node, sim.world, DISK_RE)
    factory_port = None
    if a.factory_addr:
        import metal
        fhost, fport = parse_addr(a.factory_addr)
        if not ipaddress.ip_address(fhost).is_loopback:
            raise SystemExit("labsim: --factory-addr must be on loopback")
        # without --factory-image: boot ISOs only (Proxmox's download-url)
        sim.world.factory = metal.Factory(a.factory_image)
        factory_port = sim.world.factory.serve((fhost, fport))
        if sim.world.talos is not None and a.factory_image:
            sim.world.metal = metal.Metal(sim.world.talos, sim.world.factory)
    ca, cert, key, fp = make_self_signed(a.state, a.nodes.split(",")[0])
    sim.api.fingerprint = fp

    httpd = TLSServer((host, port), make_handler(sim))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    httpd.ssl_context = ctx

    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            sim.world.tick()
            stop.wait(0.005)
    threading.Thread(target=ticker, daemon=True).start()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def on_term(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    tok = sim.tokens.get("root@pam!strata") or next(iter(sim.tokens.values()))
    ready = {
        "pid": os.getpid(),
        "proxmox": {"host": host, "port": httpd.server_address[1],
                    "url": "https://%s:%d/api2/json" % (host, httpd.server_address[1]),
                    "ca_cert": ca, "fingerprint": fp, "nodes": a.nodes.split(",")},
        "token": {"id": tok["id"], "secret": tok["secret"],
                  "header": "PVEAPIToken=%s=%s" % (tok["id"], tok["secret"])},
        "tokens": list(sim.tokens.values()),
        "control": "https://%s:%d/_labsim/" % (host, httpd.server_address[1]),
        "time_scale": a.time_scale,
        "talos": None if a.no_talos else {"port": a.talos_port, "net": a.talos_net},
        "kubernetes": None if a.no_talos else {"port": a.k8s_port},
        "factory": None if factory_port is None else {"url": "http://%s:%d" % (fhost, factory_port)},
    }
    tmp = os.path.join(a.state, "ready.tmp")
    with open(tmp, "w") as f:
        json.dump(ready, f, indent=1)
    os.replace(tmp, os.path.join(a.state, "ready"))
    while not stop.is_set():
        stop.wait(0.2)
    httpd.shutdown()
    httpd.server_close()
    sim.log_close()
    if sim.world.talos is not None:
        sim.world.talos.shutdown()
    try:
        os.unlink(os.path.join(a.state, "ready"))
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
