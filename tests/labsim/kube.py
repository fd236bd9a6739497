"""Minimal Kubernetes API for labsim: mTLS against the cluster CA, /version,
discovery, nodes (Ready once a CNI DaemonSet is applied), namespaces and
server-side apply that stores objects."""
import datetime
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

CNI_NAMES = re.compile(r"cilium|flannel|calico|kube-router|weave", re.I)

RESOURCES = {  # resource -> (kind, namespaced)
    "nodes": ("Node", False), "namespaces": ("Namespace", False), "configmaps": ("ConfigMap", True),
    "secrets": ("Secret", True), "serviceaccounts": ("ServiceAccount", True), "services": ("Service", True),
    "pods": ("Pod", True),
}


class Cluster:
    def __init__(self, endpoint, host, port, config, log):
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.config = config
        self.objects = {}  # (apiVersion, kind/resource, ns, name) -> obj
        self.nodes_fn = lambda: []  # -> [{hostname, ip, since, controlplane}]
        self.log = log
        self.server = None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.put("v1", "namespaces", None, ns, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": ns}})

    def put(self, gv, resource, ns, name, obj):
        md = obj.setdefault("metadata", {})
        md["name"] = name
        if ns:
            md["namespace"] = ns
        old = self.objects.get((gv, resource, ns, name))
        md.setdefault("uid", old["metadata"]["uid"] if old else "%08x-labsim" % (hash((gv, resource, ns, name)) & 0xffffffff))
        md.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else _now())
        md["resourceVersion"] = str(int(time.time() * 1000))
        self.objects[(gv, resource, ns, name)] = obj
        return obj

    def cni_ready(self):
        return any(r == "daemonsets" and CNI_NAMES.search(n) for (_, r, _, n) in self.objects)

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
                        "status": {"conditions": [cond], "addresses": [{"type": "InternalIP", "address": n["ip"]}],
                                   "nodeInfo": {"kubeletVersion": "v1.34.1", "osImage": "Talos (v1.12.11)",
                                                "containerRuntimeVersion": "containerd://2.1.4",
                                                "kernelVersion": "6.12.52-talos", "architecture": "amd64",
                                                "operatingSystem": "linux"}}})
        return out


def _now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def node_table(nodes):
    cols = [{"name": n, "type": "string", "format": "name" if n == "Name" else "", "description": n, "priority": 0}
            for n in ("Name", "Status", "Roles", "Age", "Version")]
    rows = []
    for n in nodes:
        ready = n["status"]["conditions"][0]["status"] == "True"
        roles = ",".join(sorted(k.split("/", 1)[1] for k in n["metadata"]["labels"]
                                if k.startswith("node-role.kubernetes.io/"))) or "<none>"
        rows.append({"cells": [n["metadata"]["name"], "Ready" if ready else "NotReady", roles, "1m",
                               n["status"]["nodeInfo"]["kubeletVersion"]],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": n["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows}


def status(code, reason, msg):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": msg, "reason": reason, "code": code}


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
            try:
                code, obj = self.serve(method, u.path, q, body)
            except Exception as e:  # noqa: BLE001
                code, obj = status(500, "InternalError", str(e))
            self.reply(code, obj)

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
                          for g in ("apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io")]
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            if path == "/api/v1":
                return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": r, "singularName": k.lower(), "namespaced": nsd, "kind": k,
                     "verbs": ["get", "list", "patch", "delete"]} for r, (k, nsd) in RESOURCES.items()]}
            m = re.fullmatch(r"/apis/([^/]+)/([^/]+)", path)
            if m:
                res = {"apps": [("daemonsets", "DaemonSet"), ("deployments", "Deployment")],
                       "rbac.authorization.k8s.io": [("clusterroles", "ClusterRole"),
                                                     ("clusterrolebindings", "ClusterRoleBinding")],
                       "apiextensions.k8s.io": [("customresourcedefinitions", "CustomResourceDefinition")]}
                lst = res.get(m.group(1))
                if lst is None:
                    return status(404, "NotFound", "the server could not find the requested resource")
                return 200, {"kind": "APIResourceList", "groupVersion": "%s/%s" % m.groups(), "resources": [
                    {"name": r, "singularName": k.lower(), "kind": k, "verbs": ["get", "list", "patch"],
                     "namespaced": not r.startswith("cluster") and r != "customresourcedefinitions"}
                    for r, k in lst]}
            m = re.fullmatch(r"/(?:api/(v1)|apis/([^/]+/[^/]+))(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?", path)
            if not m:
                return status(404, "NotFound", "the server could not find the requested resource")
            gv = m.group(1) or m.group(2)
            ns, resource, name = m.group(3), m.group(4), m.group(5)
            if gv == "v1" and resource == "namespaces" and ns is None and name is None and method == "GET":
                pass
            if gv == "v1" and ns and resource not in RESOURCES and name is None:
                # /api/v1/namespaces/NAME (namespace object itself)
                pass
            if gv == "v1" and resource == "nodes":
                nodes = cluster.node_objects()
                if name is None:
                    if "as=Table" in (self.headers.get("Accept") or ""):
                        return 200, node_table(nodes)
                    return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": nodes}
                for n in nodes:
                    if n["metadata"]["name"] == name:
                        return 200, n
                return status(404, "NotFound", 'nodes "%s" not found' % name)
            if ns and resource == "namespaces":
                pass
            # /api/v1/namespaces/{name} is matched as ns=None resource=namespaces name=X
            if method == "GET" and name is None:
                items = [o for (g, r, n2, _), o in sorted(cluster.objects.items())
                         if g == gv and r == resource and (ns is None or n2 == ns)]
                return 200, {"kind": "List", "apiVersion": gv, "metadata": {}, "items": items}
            key = (gv, resource, ns, name)
            if method == "GET":
                o = cluster.objects.get(key)
                if o is None:
                    return status(404, "NotFound", '%s "%s" not found' % (resource, name))
                return 200, o
            if method == "DELETE":
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
