"""Minimal Kubernetes API for labsim: mTLS against the cluster CA, /version,
discovery, nodes (Ready once a CNI DaemonSet is applied), namespaces,
server-side apply that stores objects, batch/v1 Jobs that complete after a
time-scaled delay, and watches (enough for `kubectl wait`)."""
import copy
import datetime
import itertools
import json
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import yaml

CNI_NAMES = re.compile(r"cilium|flannel|calico|kube-router|weave", re.I)

RESOURCES = {  # core v1 resource -> (kind, namespaced)
    "nodes": ("Node", False), "namespaces": ("Namespace", False), "configmaps": ("ConfigMap", True),
    "secrets": ("Secret", True), "serviceaccounts": ("ServiceAccount", True), "services": ("Service", True),
    "pods": ("Pod", True),
}

GROUPS = {  # group -> [(resource, kind, namespaced)], all served at version v1
    "apps": [("daemonsets", "DaemonSet", True), ("deployments", "Deployment", True)],
    "batch": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "rbac.authorization.k8s.io": [("clusterroles", "ClusterRole", False),
                                  ("clusterrolebindings", "ClusterRoleBinding", False),
                                  ("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "apiextensions.k8s.io": [("customresourcedefinitions", "CustomResourceDefinition", False)],
}

VERBS = ["delete", "get", "list", "patch", "watch"]
_rv = itertools.count(int(time.time()))


def kind_of(gv, resource):
    if gv == "v1":
        return (RESOURCES.get(resource) or (None,))[0]
    for r, k, _ in GROUPS.get(gv.split("/")[0], []):
        if r == resource:
            return k
    return None


class Cluster:
    def __init__(self, endpoint, host, port, config, log):
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.config = config
        self.objects = {}  # (apiVersion, kind/resource, ns, name) -> obj
        self.nodes_fn = lambda: []  # -> [{hostname, ip, since, version, controlplane}]
        self.log = log
        self.server = None
        self.scale = 1.0
        self.knobs = {"k8s_job_seconds": 5.0, "k8s_job_fail": {}}
        self.lock = threading.RLock()
        self.closed = False
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.put("v1", "namespaces", None, ns, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": ns}})

    def put(self, gv, resource, ns, name, obj):
        with self.lock:
            md = obj.setdefault("metadata", {})
            md["name"] = name
            if ns:
                md["namespace"] = ns
            old = self.objects.get((gv, resource, ns, name))
            md.setdefault("uid", old["metadata"]["uid"] if old else
                          "%08x-labsim" % (hash((gv, resource, ns, name)) & 0xffffffff))
            md.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else _now())
            md["resourceVersion"] = str(next(_rv))
            self.objects[(gv, resource, ns, name)] = obj
            return obj

    def resource_version(self):
        with self.lock:
            return str(max([int(o["metadata"]["resourceVersion"]) for o in self.objects.values()] + [0]))

    def cni_ready(self):
        return any(r == "daemonsets" and CNI_NAMES.search(n) for (_, r, _, n) in list(self.objects))

    # --- Jobs
    def apply_job(self, ns, name, obj):
        """Server-side apply of a batch/v1 Job; returns (code, obj-or-status)."""
        key = ("batch/v1", "jobs", ns, name)
        with self.lock:
            old = self.objects.get(key)
            obj.pop("status", None)  # status is a subresource: apply to the object ignores it
            if old is not None:
                if (old.get("spec") or {}).get("template") != (obj.get("spec") or {}).get("template"):
                    return status(422, "Invalid", 'Job.batch "%s" is invalid: spec.template: Invalid value: '
                                  'field is immutable' % name)
                obj["status"] = old.get("status", {})
                return 200, self.put("batch/v1", "jobs", ns, name, obj)
            obj["status"] = {"active": 1, "ready": 0, "terminating": 0, "startTime": _now(),
                             "uncountedTerminatedPods": {}}
            stored = self.put("batch/v1", "jobs", ns, name, obj)
            uid = stored["metadata"]["uid"]
        t = threading.Timer(float(self.knobs.get("k8s_job_seconds", 5.0)) * self.scale,
                            self.finish_job, (ns, name, uid))
        t.daemon = True
        t.start()
        return 200, stored

    def finish_job(self, ns, name, uid):
        key = ("batch/v1", "jobs", ns, name)
        with self.lock:
            o = self.objects.get(key)
            if o is None or o["metadata"].get("uid") != uid:
                return
            now = _now()
            fail = None
            for pat, msg in (self.knobs.get("k8s_job_fail") or {}).items():
                if re.search(pat, name):
                    fail = msg or "Job has reached the specified backoff limit"
            st = {"startTime": o["status"].get("startTime", now), "ready": 0, "terminating": 0,
                  "uncountedTerminatedPods": {}}
            if fail:
                st["failed"] = 1
                st["conditions"] = [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": fail, "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": fail, "lastProbeTime": now, "lastTransitionTime": now}]
            else:
                st["succeeded"] = 1
                st["completionTime"] = now
                st["conditions"] = [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                     "message": "Reached expected number of succeeded pods",
                     "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                     "message": "Reached expected number of succeeded pods",
                     "lastProbeTime": now, "lastTransitionTime": now}]
            o = copy.deepcopy(o)
            o["status"] = st
            self.put("batch/v1", "jobs", ns, name, o)

    def job_summary(self):
        with self.lock:
            return {"%s/%s" % (ns, n): job_state(o) for (g, r, ns, n), o in self.objects.items()
                    if g == "batch/v1" and r == "jobs"}

    def node_objects(self):
        ready = self.cni_ready()
        out = []
        for n in self.nodes_fn():
            cond = {"type": "Ready", "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "kubelet is posting ready status" if ready else
                    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
                    "lastHeartbeatTime": _now(), "lastTransitionTime": _now()}
            out.append({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": n["hostname"], "creationTimestamp": n["since"],
                                     "labels": {"kubernetes.io/hostname": n["hostname"],
                                                "node-role.kubernetes.io/control-plane": ""}
                                     if n["controlplane"] else {"kubernetes.io/hostname": n["hostname"]}},
                        "spec": {} if ready else {"taints": [{"key": "node.kubernetes.io/not-ready",
                                                              "effect": "NoSchedule"}]},
                        "status": {"conditions": [cond], "addresses": [{"type": "InternalIP", "address": n["ip"]},
                                                                       {"type": "Hostname", "address": n["hostname"]}],
                                   "nodeInfo": {"kubeletVersion": "v1.34.1",
                                                "osImage": "Talos (%s)" % n.get("version", "v1.12.11"),
                                                "containerRuntimeVersion": "containerd://2.1.4",
                                                "kernelVersion": "6.12.52-talos", "architecture": "amd64",
                                                "operatingSystem": "linux"}}})
        return out


def job_state(o):
    conds = {c["type"]: c["status"] for c in (o.get("status") or {}).get("conditions") or []}
    if conds.get("Complete") == "True":
        return "Complete"
    if conds.get("Failed") == "True":
        return "Failed"
    return "Running"


def _now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return "<unknown>"
    s = max(0, int((datetime.datetime.utcnow() - t).total_seconds()))
    return "%ds" % s if s < 120 else "%dm" % (s // 60)


def table(columns, rows):
    """A meta.k8s.io/v1 Table (what kubectl asks for with as=Table)."""
    cols = [{"name": n, "type": "string", "format": "name" if n == "Name" else "", "description": n, "priority": 0}
            for n in columns]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols,
            "rows": [{"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                 "metadata": md}} for cells, md in rows]}


def node_table(nodes):
    rows = []
    for n in nodes:
        ready = n["status"]["conditions"][0]["status"] == "True"
        roles = ",".join(sorted(k.split("/", 1)[1] for k in n["metadata"]["labels"]
                                if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        rows.append(([n["metadata"]["name"], "Ready" if ready else "NotReady", roles, "1m",
                      n["status"]["nodeInfo"]["kubeletVersion"]], n["metadata"]))
    return table(("Name", "Status", "Roles", "Age", "Version"), rows)


def object_table(resource, items):
    if resource == "jobs":
        rows = []
        for o in items:
            st = o.get("status") or {}
            rows.append(([o["metadata"]["name"], job_state(o), "%d/1" % st.get("succeeded", 0),
                          "1s" if st.get("completionTime") else "", _age(o["metadata"].get("creationTimestamp"))],
                         o["metadata"]))
        return table(("Name", "Status", "Completions", "Duration", "Age"), rows)
    return table(("Name", "Age"), [([o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))],
                                    o["metadata"]) for o in items])


def status(code, reason, msg):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": msg, "reason": reason, "code": code}


def field_match(obj, selector):
    """fieldSelector: comma-separated metadata.name / metadata.namespace (= or ==, !=)."""
    for term in filter(None, (selector or "").split(",")):
        m = re.fullmatch(r"([\w.]+)(!=|==|=)(.*)", term)
        if not m or m.group(1) not in ("metadata.name", "metadata.namespace"):
            continue
        val = (obj.get("metadata") or {}).get(m.group(1).split(".")[1], "")
        if (val == m.group(3)) != (m.group(2) != "!="):
            return False
    return True


def label_match(obj, selector):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        m = re.fullmatch(r"([^=!]+)(!=|==|=)(.*)", term)
        if not m:
            if labels.get(term.strip()) is None:
                return False
            continue
        if (labels.get(m.group(1)) == m.group(3)) != (m.group(2) != "!="):
            return False
    return True


def handler_for(cluster):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.route("GET")

        def do_PATCH(self):
            self.route("PATCH")

        def do_DELETE(self):
            self.route("DELETE")

        def route(self, method):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            cluster.log.append({"t": time.time(), "method": method, "path": u.path, "query": q,
                                "content_type": self.headers.get("Content-Type")})
            if method == "GET" and q.get("watch") in ("true", "1"):
                m = self.parse(u.path)
                if m and m[3] is None:
                    return self.watch(m, q)
            try:
                code, obj = self.serve(method, u.path, q, body)
            except Exception as e:  # noqa: BLE001
                code, obj = status(500, "InternalError", str(e))
            self.reply(code, obj)

        @staticmethod
        def parse(path):
            """(gv, namespace, resource, name) for an object or collection path, else None."""
            m = re.fullmatch(r"/(?:api/(v1)|apis/([^/]+/[^/]+))(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?", path)
            if not m:
                return None
            return m.group(1) or m.group(2), m.group(3), m.group(4), m.group(5)

        def matching(self, gv, ns, resource, q):
            with cluster.lock:
                if gv == "v1" and resource == "nodes":
                    items = cluster.node_objects()
                else:
                    items = [o for (g, r, n2, _), o in sorted(cluster.objects.items(), key=lambda kv: str(kv[0]))
                             if g == gv and r == resource and (ns is None or n2 == ns)]
            return [o for o in items if field_match(o, q.get("fieldSelector"))
                    and label_match(o, q.get("labelSelector"))]

        def watch(self, parsed, q):
            """A watch stream: newline-delimited {"type", "object"} events, chunked,
            until timeoutSeconds (at most 60 s) or the client goes away."""
            gv, ns, resource, _ = parsed
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def emit(kind, obj):
                data = (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def sig(o):  # nodes are computed, not stored: their state is their Ready condition
                if gv == "v1" and resource == "nodes":
                    return json.dumps(o["status"]["conditions"][0]["status"])
                return o["metadata"].get("resourceVersion")

            seen = {}
            since = int(q.get("resourceVersion") or 0)
            initial = q.get("sendInitialEvents") == "true"
            for o in self.matching(gv, ns, resource, q):
                seen[o["metadata"]["name"], o["metadata"].get("namespace")] = sig(o)
                if initial or (since and int(o["metadata"].get("resourceVersion") or 0) > since):
                    emit("ADDED", o)
            try:
                if initial:
                    emit("BOOKMARK", {"kind": kind_of(gv, resource) or "Object", "apiVersion": gv,
                                      "metadata": {"resourceVersion": cluster.resource_version(),
                                                   "annotations": {"k8s.io/initial-events-end": "true"}}})
                deadline = time.time() + min(float(q.get("timeoutSeconds") or 60), 60)
                while time.time() < deadline and not cluster.closed:
                    time.sleep(0.02)
                    now = {}
                    for o in self.matching(gv, ns, resource, q):
                        k = (o["metadata"]["name"], o["metadata"].get("namespace"))
                        now[k] = sig(o)
                        if k not in seen:
                            emit("ADDED", o)
                        elif seen[k] != now[k]:
                            emit("MODIFIED", o)
                    for k in set(seen) - set(now):
                        emit("DELETED", {"apiVersion": gv, "kind": kind_of(gv, resource),
                                         "metadata": {"name": k[0], "namespace": k[1],
                                                      "resourceVersion": cluster.resource_version()}})
                    seen = now
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True

        def serve(self, method, path, q, body):
            if path in ("/version", "/version/"):
                return 200, {"major": "1", "minor": "34", "gitVersion": "v1.34.1", "platform": "linux/amd64"}
            if path in ("/healthz", "/readyz", "/livez"):
                return 200, "ok"
            if path == "/api":
                return 200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                             "serverAddress": "%s:%d" % (cluster.host, cluster.port)}]}
            if path == "/apis":
                groups = [{"name": g, "versions": [{"groupVersion": "%s/v1" % g, "version": "v1"}],
                           "preferredVersion": {"groupVersion": "%s/v1" % g, "version": "v1"}}
                          for g in GROUPS]
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            if path == "/api/v1":
                return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": r, "singularName": k.lower(), "namespaced": nsd, "kind": k, "verbs": VERBS}
                    for r, (k, nsd) in RESOURCES.items()]}
            m = re.fullmatch(r"/apis/([^/]+)/([^/]+)", path)
            if m:
                lst = GROUPS.get(m.group(1))
                if lst is None or m.group(2) != "v1":
                    return status(404, "NotFound", "the server could not find the requested resource")
                return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "%s/%s" % m.groups(),
                             "resources": [{"name": r, "singularName": k.lower(), "kind": k, "verbs": VERBS,
                                            "namespaced": nsd} for r, k, nsd in lst]}
            parsed = self.parse(path)
            if not parsed:
                return status(404, "NotFound", "the server could not find the requested resource")
            gv, ns, resource, name = parsed
            table_wanted = "as=Table" in (self.headers.get("Accept") or "")
            if gv == "v1" and resource == "nodes":
                nodes = self.matching(gv, None, "nodes", q)
                if name is None:
                    if table_wanted:
                        return 200, node_table(nodes)
                    return 200, {"kind": "NodeList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": cluster.resource_version()}, "items": nodes}
                for n in cluster.node_objects():
                    if n["metadata"]["name"] == name:
                        return 200, n
                return status(404, "NotFound", 'nodes "%s" not found' % name)
            # /api/v1/namespaces/{name} is matched as ns=None resource=namespaces name=X
            if method == "GET" and name is None:
                items = self.matching(gv, ns, resource, q)
                if table_wanted:
                    t = object_table(resource, items)
                    t["metadata"]["resourceVersion"] = cluster.resource_version()
                    return 200, t
                kind = kind_of(gv, resource)
                return 200, {"kind": kind + "List" if kind else "List", "apiVersion": gv,
                             "metadata": {"resourceVersion": cluster.resource_version()}, "items": items}
            key = (gv, resource, ns, name)
            if method == "GET":
                o = cluster.objects.get(key)
                if o is None:
                    return status(404, "NotFound", '%s "%s" not found' % (resource, name))
                return 200, o
            if method == "DELETE":
                with cluster.lock:
                    o = cluster.objects.pop(key, None)
                if o is None:
                    return status(404, "NotFound", '%s "%s" not found' % (resource, name))
                return 200, o
            if method == "PATCH":
                ct = (self.headers.get("Content-Type") or "").split(";")[0]
                if ct != "application/apply-patch+yaml":
                    return status(415, "UnsupportedMediaType", "labsim supports only server-side apply")
                if not q.get("fieldManager"):
                    return status(400, "BadRequest", "PATCH with apply requires fieldManager")
                if ns and ("v1", "namespaces", None, ns) not in cluster.objects:
                    return status(404, "NotFound", 'namespaces "%s" not found' % ns)
                obj = yaml.safe_load(body)
                if not isinstance(obj, dict) or not obj.get("kind") or obj.get("apiVersion") != gv:
                    return status(400, "BadRequest", "apiVersion/kind missing or not matching the URL")
                if (obj.get("metadata") or {}).get("name") not in (None, name):
                    return status(400, "BadRequest", "the name of the object does not match the name on the URL")
                obj.setdefault("metadata", {}).setdefault("managedFields", []).append(
                    {"manager": q["fieldManager"], "operation": "Apply", "apiVersion": gv})
                if gv == "batch/v1" and resource == "jobs":
                    if obj.get("kind") != "Job" or not ns:
                        return status(400, "BadRequest", "a batch/v1 jobs object must be a namespaced Job")
                    return cluster.apply_job(ns, name, obj)
                return 200, cluster.put(gv, resource, ns, name, obj)
            return status(405, "MethodNotAllowed", "method not allowed")
    return H


def start_cluster(cluster, cert_pem, key_pem, ca_pem, state_dir):
    """Serve cluster on (host, port) with mTLS against ca_pem."""
    d = tempfile.mkdtemp(prefix="kube-", dir=state_dir)
    paths = {}
    for n, data in (("crt", cert_pem), ("key", key_pem), ("ca", ca_pem)):
        paths[n] = "%s/%s.pem" % (d, n)
        with open(paths[n], "wb") as f:
            f.write(data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["crt"], paths["key"])
    ctx.load_verify_locations(paths["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    from labsim import TLSServer
    srv = TLSServer((cluster.host, cluster.port), handler_for(cluster))
    srv.ssl_context = ctx
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cluster.server = srv
