"""The simulated Kubernetes API: Jobs that complete, discovery, watches,
node names from the machine config; kubectl when it is installed."""
import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import unittest
import copy

import yaml

from harness import NO_REFERENCE, REF
from test_talos import TalosBase, have_talos_reference

JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  namespace: %s
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: %s
"""


def kubectl_path():
    return shutil.which("kubectl") or ("/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else None)


class KubeBase(TalosBase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()
        self = cls(cls.FIRST)
        m = cls.pb["machine"]
        data, cls.cfg = self.make_config(endpoint="https://kube:6443", hostname="cp-kube")
        cls.node = self.install(500, data)
        ch = self.admin(cls.node, cls.cfg)
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ch.close()
        k8s = self.state()["kubernetes"]["https://kube:6443"]
        cls.host, cls.port = k8s["host"], k8s["port"]
        # client files and a kubeconfig for the cluster's admin
        ca_pem, ca, ca_key = cls.talos.load_ca(cls.cfg["cluster"]["ca"]["crt"], cls.cfg["cluster"]["ca"]["key"])
        crt, key = cls.talos.issue(ca, ca_key, "admin", orgs=["system:masters"], server=False)
        cls.files = {}
        for n, b in (("ca", ca_pem), ("crt", crt), ("key", key)):
            cls.files[n] = os.path.join(cls.sim.dir, "kube-" + n)
            with open(cls.files[n], "wb") as f:
                f.write(b)
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        cls.kubeconfig = os.path.join(cls.sim.dir, "kubeconfig-kube")
        with open(cls.kubeconfig, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                            "clusters": [{"name": "c", "cluster": {
                                "server": "https://%s:%d" % (cls.host, cls.port),
                                "certificate-authority-data": b64(ca_pem)}}],
                            "users": [{"name": "u", "user": {"client-certificate-data": b64(crt),
                                                             "client-key-data": b64(key)}}],
                            "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u",
                                                                   "namespace": "default"}}]}, f)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def ctx(self):
        ctx = ssl.create_default_context(cafile=self.files["ca"])
        ctx.load_cert_chain(self.files["crt"], self.files["key"])
        return ctx

    def req(self, method, url, body=None, ctype=None, headers=None):
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx(), timeout=10)
        h = dict(headers or {})
        if ctype:
            h["Content-Type"] = ctype
        c.request(method, url, body=body, headers=h)
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        return r.status, data

    def apply(self, path, doc, manager="strata", force=False):
        body = yaml.safe_dump(doc) if isinstance(doc, dict) else doc
        return self.req("PATCH", "%s?fieldManager=%s%s" % (path, manager, "&force=true" if force else ""),
                        body, "application/apply-patch+yaml")

    def apply_job(self, name, ns="kube-system", image="busybox:1.36", **spec):
        doc = yaml.safe_load(JOB % (name, ns, image))
        doc["spec"]["template"]["spec"].update(spec)
        return self.apply("/apis/batch/v1/namespaces/%s/jobs/%s" % (ns, name), doc)

    def host_job(self, name, ns="kube-system", image="busybox:1.36", **spec):
        """A Job whose pod can run before a CNI: host network, every taint tolerated."""
        return self.apply_job(name, ns, image, hostNetwork=True, tolerations=[{"operator": "Exists"}], **spec)

    def get(self, path):
        return self.req("GET", path)

    def wait_for(self, fn, what, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(0.02)
        self.fail("never: %s" % what)

    def wait_job(self, name, want, ns="kube-system", timeout=10):
        def check():
            code, o = self.get("/apis/batch/v1/namespaces/%s/jobs/%s" % (ns, name))
            conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions", [])}
            return o if conds.get(want) == "True" else None
        return self.wait_for(check, "job %s %s" % (name, want), timeout)

    def job_pod(self, name, ns="kube-system"):
        _, pods = self.get("/api/v1/namespaces/%s/pods?labelSelector=job-name%%3D%s" % (ns, name))
        return pods["items"][-1] if pods["items"] else None

    def events(self, name, ns="kube-system"):
        _, ev = self.get("/api/v1/namespaces/%s/events?fieldSelector=involvedObject.name%%3D%s" % (ns, name))
        return [e["message"] for e in ev["items"]]

    def req_text(self, method, url):
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx(), timeout=10)
        c.request(method, url)
        r = c.getresponse()
        data = r.read().decode()
        c.close()
        return r.status, data

    def knobs(self, **kw):
        st, _, body = self.sim.control("POST", "knobs", kw)
        self.assertEqual(st, 200, body)


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class KubeTest(KubeBase, unittest.TestCase):
    FIRST = "test_jobs"

    def test_discovery_lists_jobs(self):
        _, groups = self.req("GET", "/apis")
        self.assertIn("batch", [g["name"] for g in groups["groups"]])
        _, res = self.req("GET", "/apis/batch/v1")
        jobs = [r for r in res["resources"] if r["name"] == "jobs"]
        self.assertEqual(len(jobs), 1)
        self.assertEqual((jobs[0]["kind"], jobs[0]["namespaced"]), ("Job", True))
        self.assertIn("watch", jobs[0]["verbs"])
        self.assertEqual(self.req("GET", "/apis/batch/v2")[0], 404)

    def test_jobs(self):
        self.knobs(k8s_job_seconds=100)  # 1 s at this scale
        try:
            code, o = self.host_job("seed")
            self.assertEqual(code, 200, o)
            self.assertNotIn("succeeded", o["status"])
            code, o = self.req("GET", "/apis/batch/v1/namespaces/kube-system/jobs/seed")
            self.assertEqual((code, o["kind"], o["metadata"]["managedFields"][0]["manager"]), (200, "Job", "strata"))
            self.assertFalse(o["status"].get("conditions"))
            _, jobs = self.req("GET", "/apis/batch/v1/jobs")
            self.assertEqual(jobs["kind"], "JobList")
            self.assertIn("seed", [j["metadata"]["name"] for j in jobs["items"]])
        finally:
            self.knobs(k8s_job_seconds=5)
        o = self.wait_job("seed", "Complete")
        self.assertEqual(o["status"]["succeeded"], 1)
        self.assertTrue(o["status"]["completionTime"])
        self.assertEqual(self.state()["kubernetes"]["https://kube:6443"]["jobs"]["kube-system/seed"], "Complete")
        # re-apply: status stays; a changed pod template is refused (immutable)
        code, o = self.host_job("seed")
        self.assertEqual((code, o["status"]["succeeded"]), (200, 1))
        code, o = self.host_job("seed", image="busybox:1.37")
        self.assertEqual((code, o["reason"]), (422, "Invalid"))
        self.assertIn("field is immutable", o["message"])
        # into a missing namespace: 404; the knob makes a job fail (after backoffLimit retries)
        self.assertEqual(self.apply_job("x", ns="nope")[0], 404)
        self.knobs(k8s_job_fail={"^doomed": "boom"})
        try:
            self.assertEqual(self.host_job("doomed-1")[0], 200)
            o = self.wait_job("doomed-1", "Failed")
            self.assertEqual((o["status"]["failed"], o["status"].get("succeeded")), (1, None))
            pod = self.job_pod("doomed-1")
            code, log = self.req_text("GET", "/api/v1/namespaces/kube-system/pods/%s/log?tailLines=1"
                                      % pod["metadata"]["name"])
            self.assertEqual((code, log), (200, "Error: boom\n"))
        finally:
            self.knobs(k8s_job_fail={})
        # delete (background propagation removes its pods; the default orphans them)
        self.assertEqual(self.req("DELETE", "/apis/batch/v1/namespaces/kube-system/jobs/doomed-1"
                                  "?propagationPolicy=Background")[0], 200)
        self.assertEqual(self.req("GET", "/apis/batch/v1/namespaces/kube-system/jobs/doomed-1")[0], 404)
        self.assertIsNone(self.job_pod("doomed-1"))
        self.assertEqual(self.req("DELETE", "/apis/batch/v1/namespaces/kube-system/jobs/seed")[0], 200)
        self.assertIsNotNone(self.job_pod("seed"))

    def test_pod_rules_before_a_cni(self):
        # Talos's baseline PodSecurity outside kube-system refuses host networking
        self.assertEqual(self.apply_job("psa", ns="default", hostNetwork=True,
                                        tolerations=[{"operator": "Exists"}])[0], 200)
        self.wait_for(lambda: any("violates PodSecurity" in m for m in self.events("psa", "default")), "PSA event")
        self.assertIsNone(self.job_pod("psa", "default"))
        # without tolerations the not-ready taint keeps the pod Pending
        self.assertEqual(self.apply_job("taint", hostNetwork=True)[0], 200)
        pod = self.wait_for(lambda: self.job_pod("taint"), "taint pod")
        self.wait_for(lambda: any("untolerated taint {node.kubernetes.io/not-ready: }" in m
                                  for m in self.events(pod["metadata"]["name"])), "FailedScheduling")
        # no CNI: a pod on the pod network never gets a sandbox
        self.assertEqual(self.apply_job("podnet", tolerations=[{"operator": "Exists"}])[0], 200)
        pod = self.wait_for(lambda: self.job_pod("podnet"), "podnet pod")
        self.wait_for(lambda: any("failed to setup network" in m for m in self.events(pod["metadata"]["name"])),
                      "sandbox event")
        code, o = self.req("GET", "/api/v1/namespaces/kube-system/pods/%s/log" % pod["metadata"]["name"])
        self.assertEqual((code, o["reason"]), (400, "BadRequest"))
        self.assertIn("is waiting to start: ContainerCreating", o["message"])
        # a missing service account: FailedCreate
        self.assertEqual(self.host_job("nosa", serviceAccountName="ghost")[0], 200)
        self.wait_for(lambda: any('serviceaccount "ghost" not found' in m for m in self.events("nosa")), "SA event")
        # an image that cannot be pulled
        self.knobs(k8s_image_pull_fail={"^nope/": "not found"})
        try:
            self.assertEqual(self.host_job("pull", image="nope/helm:1")[0], 200)
            pod = self.wait_for(lambda: (lambda p: p if p and p["status"].get("containerStatuses") else None)(
                self.job_pod("pull")), "pull status")
            st = pod["status"]["containerStatuses"][0]["state"]["waiting"]
            self.assertEqual(st["reason"], "ImagePullBackOff")
        finally:
            self.knobs(k8s_image_pull_fail={})
        # a slow job is still running after a while
        self.knobs(k8s_job_seconds=10000)
        try:
            self.assertEqual(self.host_job("slow")[0], 200)
            time.sleep(0.5)
            code, o = self.get("/apis/batch/v1/namespaces/kube-system/jobs/slow")
            self.assertFalse(o["status"].get("conditions"))
        finally:
            self.knobs(k8s_job_seconds=5)

    def test_builtin_schema(self):
        ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: bare\n  namespace: kube-system\n"
        code, o = self.apply("/apis/apps/v1/namespaces/kube-system/daemonsets/bare", ds)
        self.assertEqual((code, o["reason"]), (422, "Invalid"), o)
        self.assertIn({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"},
                      o["details"]["causes"])
        self.assertTrue(o["message"].startswith('DaemonSet.apps "bare" is invalid: '), o["message"])
        code, o = self.apply("/api/v1/namespaces/default/configmaps/c1",
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"},
                              "data": {"a": "1"}, "extra": 1})
        self.assertEqual(code, 400, o)
        self.assertIn(".extra: field not declared in schema", o["message"])

    def test_server_side_apply_conflicts(self):
        cm = lambda v: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"},  # noqa: E731
                        "data": {"x": v}}
        path = "/api/v1/namespaces/default/configmaps/ssa"
        self.assertEqual(self.apply(path, cm("1"), "alice")[0], 200)
        self.assertEqual(self.apply(path, cm("1"), "bob")[0], 200)   # same value: shared ownership
        code, o = self.apply(path, cm("2"), "bob")
        self.assertEqual((code, o["reason"]), (409, "Conflict"), o)
        self.assertEqual(o["message"], 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.x')
        self.assertEqual(o["details"]["causes"], [{"reason": "FieldManagerConflict",
                                                   "message": 'conflict with "alice" using v1', "field": ".data.x"}])
        code, o = self.apply(path, cm("2"), "bob", force=True)
        self.assertEqual((code, o["data"]), (200, {"x": "2"}))
        # a field its only manager stops applying is removed
        self.assertEqual(self.apply(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"},
                                           "data": {"y": "3"}}, "bob")[0], 200)
        _, o = self.get(path)
        self.assertEqual(o["data"], {"y": "3"})
        self.assertEqual(sorted(m["manager"] for m in o["metadata"]["managedFields"]), ["alice", "bob"])

    def test_delete_fail_knob(self):
        cm = lambda n: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}  # noqa: E731
        path = "/api/v1/namespaces/default/configmaps/"
        for n in ("undeletable", "other"):
            self.assertEqual(self.apply(path + n, cm(n))[0], 200)
        self.knobs(k8s_delete_fail={"/configmaps/undeletable$": "etcdserver: leader changed"})
        try:
            code, o = self.req("DELETE", path + "undeletable?propagationPolicy=Background")
            self.assertEqual((code, o), (500, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                               "status": "Failure", "code": 500, "reason": "InternalError",
                                               "message": "etcdserver: leader changed"}))
            self.assertEqual(self.get(path + "undeletable")[0], 200)  # nothing deleted
            self.assertEqual(self.req("DELETE", path + "other")[0], 200)  # a path the knob does not match
            self.assertEqual(self.get(path + "other")[0], 404)
        finally:
            self.knobs(k8s_delete_fail={})
        code, o = self.req("DELETE", path + "undeletable?propagationPolicy=Background")
        self.assertEqual((code, o["status"]), (200, "Success"), o)
        self.assertEqual(self.get(path + "undeletable")[0], 404)

    def test_crd_lifecycle_and_schema(self):
        with open(os.path.join(REF, "kubernetes", "crds", "source.toolkit.fluxcd.io_gitrepositories.yaml")) as f:
            crd = yaml.safe_load(f)
        path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/r"
        repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "r", "namespace": "default"},
                "spec": {"url": "ssh://git@example.org/r.git", "interval": "1m"}}
        self.assertEqual(self.apply(path, repo)[0], 404)  # unknown until the CRD exists
        self.knobs(k8s_crd_seconds=30)
        try:
            code, o = self.apply("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + crd["metadata"]["name"],
                                 crd)
            self.assertEqual(code, 200, o)
            self.assertEqual(self.apply(path, repo)[0], 404)  # not Established yet
        finally:
            self.knobs(k8s_crd_seconds=1)
        self.wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True" for c in self.get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + crd["metadata"]["name"])[1]
            .get("status", {}).get("conditions", [])), "Established")
        self.assertIn("source.toolkit.fluxcd.io", [g["name"] for g in self.get("/apis")[1]["groups"]])
        self.assertEqual(self.apply(path, repo)[0], 200)
        bad = copy.deepcopy(repo)
        bad["spec"] = {"interval": "5 min", "ref": {"branch": 3}}
        code, o = self.apply(path, bad, "other")
        self.assertEqual((code, o["reason"]), (422, "Invalid"), o)
        causes = {c["field"]: c for c in o["details"]["causes"]}
        self.assertEqual(causes["spec.interval"]["reason"], "FieldValueInvalid")
        self.assertIn("should match", causes["spec.interval"]["message"])
        self.assertEqual(causes["spec.ref.branch"]["reason"], "FieldValueTypeInvalid")
        self.assertEqual(o["details"]["kind"], "GitRepository")
        self.assertTrue(o["message"].startswith('GitRepository.source.toolkit.fluxcd.io "r" is invalid: ['))
        code, o = self.apply("/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/s",
                             {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                              "metadata": {"name": "s"}, "spec": {"interval": "1m"}})
        self.assertEqual((code, o["details"]["causes"][0]),
                         (422, {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.url"}))
        code, o = self.apply(path, dict(repo, spec=dict(repo["spec"], nonsense=True)))
        self.assertEqual(code, 400, o)
        self.assertIn(".spec.nonsense: field not declared in schema", o["message"])

    def test_node_named_from_config(self):
        _, nodes = self.req("GET", "/api/v1/nodes")
        self.assertEqual([(n["metadata"]["name"], n["status"]["addresses"][0]) for n in nodes["items"]],
                         [("cp-kube", {"type": "InternalIP", "address": self.node["ip"]})])

    def test_kubectl(self):
        kubectl = kubectl_path()
        if not kubectl:
            print("kubectl not found; skipped the kubectl checks", file=sys.stderr)
            self.skipTest("kubectl not installed")

        def run(*args):
            return subprocess.run([kubectl, "--kubeconfig", self.kubeconfig] + list(args),
                                  capture_output=True, text=True, timeout=60)
        out = run("get", "nodes")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"cp-kube\s+NotReady")
        self.knobs(k8s_job_seconds=150)  # 1.5 s: kubectl wait has to wait for it
        try:
            self.assertEqual(self.host_job("kubectl-wait")[0], 200)
        finally:
            self.knobs(k8s_job_seconds=5)
        t = time.time()
        out = run("wait", "-n", "kube-system", "--for=condition=complete", "job/kubectl-wait", "--timeout=30s")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("condition met", out.stdout)
        self.assertLess(time.time() - t, 20)
        out = run("get", "jobs", "-A")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"kube-system\s+kubectl-wait\s+Complete\s+1/1")
        out = run("get", "-n", "kube-system", "job", "kubectl-wait", "-o", "jsonpath={.status.succeeded}")
        self.assertEqual((out.returncode, out.stdout), (0, "1"), out.stderr)


CILIUM_VALUES = {  # the Talos values of FACTS.md §1
    "ipam": {"mode": "kubernetes"}, "kubeProxyReplacement": True,
    "k8sServiceHost": "localhost", "k8sServicePort": 7445,
    "securityContext": {"capabilities": {
        "ciliumAgent": ["CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN", "SYS_RESOURCE",
                        "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
        "cleanCiliumState": ["NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"]}},
    "cgroup": {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"},
}
INSTALL_RULES = [
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "serviceaccounts", "services", "namespaces",
                                      "resourcequotas"], "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings", "roles",
                                                               "rolebindings"],
     "verbs": ["get", "list", "create", "update", "patch", "delete", "escalate", "bind"]},
]


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class KubeAddonsTest(KubeBase, unittest.TestCase):
    """The cilium and flux installer Jobs, nodes turning Ready, Flux objects."""
    FIRST = "test_cilium_then_flux"

    def installer(self, name, image, script, values=None, rules=INSTALL_RULES, env=True):
        base = "/api/v1/namespaces/kube-system"
        self.assertEqual(self.apply(base + "/serviceaccounts/" + name, {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})[0], 200)
        self.assertEqual(self.apply("/apis/rbac.authorization.k8s.io/v1/clusterroles/" + name, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": rules})[0], 200)
        self.assertEqual(self.apply("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/" + name, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}]})[0], 200)
        spec = {"hostNetwork": True, "serviceAccountName": name, "restartPolicy": "Never",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "main", "image": image, "command": ["/bin/sh", "-ec", script],
                                "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "localhost"},
                                        {"name": "KUBERNETES_SERVICE_PORT", "value": "7445"}] if env else []}]}
        if values is not None:
            self.assertEqual(self.apply(base + "/configmaps/" + name, {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"values.yaml": yaml.safe_dump(values)}})[0], 200)
            spec["volumes"] = [{"name": "values", "configMap": {"name": name}}]
            spec["containers"][0]["volumeMounts"] = [{"name": "values", "mountPath": "/values"}]
        self.req("DELETE", "/apis/batch/v1/namespaces/kube-system/jobs/%s?propagationPolicy=Background" % name)
        code, o = self.apply("/apis/batch/v1/namespaces/kube-system/jobs/" + name, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": spec}}})
        self.assertEqual(code, 200, o)

    def last_log(self, name):
        pod = self.job_pod(name)
        return self.req_text("GET", "/api/v1/namespaces/kube-system/pods/%s/log?tailLines=20"
                             % pod["metadata"]["name"])[1]

    def nodes_ready(self):
        _, nodes = self.get("/api/v1/nodes")
        return [n["status"]["conditions"][0]["status"] for n in nodes["items"]]

    def cilium(self, version="1.18.4", values=CILIUM_VALUES, repo="--repo https://helm.cilium.io/", **kw):
        self.installer("cilium-install", "alpine/helm:3.19.0",
                       "helm upgrade --install cilium cilium %s --version %s "
                       "--namespace kube-system --values /values/values.yaml" % (repo, version), values, **kw)

    def test_cilium_then_flux(self):
        self.assertEqual(self.nodes_ready(), ["False"])
        # helm's failures, each with its own log line
        for kw, want in (({"version": "9.9.9"}, 'chart "cilium" version "9.9.9" not found'),
                         ({"repo": ""}, "non-absolute URLs should be in form of repo_name/path_to_chart"),
                         ({"values": dict(CILIUM_VALUES, kubeProxyReplacement=3)},
                          "kubeProxyReplacement: Invalid value"),
                         ({"rules": INSTALL_RULES[:1]}, 'cannot get resource "daemonsets" in API group "apps"'),
                         ({"env": False}, "Kubernetes cluster unreachable")):
            self.cilium(**kw)
            self.wait_job("cilium-install", "Failed")
            self.assertIn(want, self.last_log("cilium-install"))
        self.assertEqual(self.get("/apis/apps/v1/namespaces/kube-system/daemonsets/cilium")[0], 404)
        # values that do not work on Talos: the release exists, the agents do not run
        self.cilium(values={k: v for k, v in CILIUM_VALUES.items() if k != "securityContext"})
        self.wait_job("cilium-install", "Complete")
        time.sleep(0.3)
        self.assertEqual(self.nodes_ready(), ["False"])
        self.cilium()
        self.wait_job("cilium-install", "Complete")
        self.assertIn("REVISION: 2", self.last_log("cilium-install"))
        self.wait_for(lambda: self.nodes_ready() == ["True"], "node Ready")
        _, ds = self.get("/apis/apps/v1/namespaces/kube-system/daemonsets/cilium")
        self.assertEqual(ds["spec"]["template"]["spec"]["containers"][0]["image"], "quay.io/cilium/cilium:v1.18.4")
        self.wait_for(lambda: self.get("/apis/apps/v1/namespaces/kube-system/daemonsets/cilium")[1]["status"]
                      .get("numberReady") == 1, "cilium ready")
        _, secs = self.get("/api/v1/namespaces/kube-system/secrets?labelSelector=owner%3Dhelm,name%3Dcilium,"
                           "status%3Ddeployed")
        self.assertEqual([x["metadata"]["name"] for x in secs["items"]], ["sh.helm.release.v1.cilium.v2"])
        # a manager that is not helm cannot take helm's fields
        mine = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium", "namespace": "kube-system"},
                "spec": copy.deepcopy(ds["spec"])}
        self.assertEqual(self.apply("/apis/apps/v1/namespaces/kube-system/daemonsets/cilium", mine)[0], 200)
        mine["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/cilium/cilium:v1.18.5"
        code, o = self.apply("/apis/apps/v1/namespaces/kube-system/daemonsets/cilium", mine)
        self.assertEqual(code, 409, o)
        self.assertEqual(o["details"]["causes"][0]["field"], ".spec.template.spec.containers")
        self.assertIn('conflict with "helm" using apps/v1', o["message"])

        # Flux: CRDs, then controllers, then the objects get Ready
        ks = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/"
        self.assertEqual(self.get(ks.rstrip("/"))[0], 404)
        self.installer("flux-install", "ghcr.io/fluxcd/flux-cli:v2.9.4", "flux install --components-extra=")
        self.wait_job("flux-install", "Complete")
        self.assertIn("✔ install finished", self.last_log("flux-install"))
        self.wait_for(lambda: self.get(ks.rstrip("/"))[0] == 200, "Kustomization kind served")
        for d in ("source-controller", "kustomize-controller", "helm-controller", "notification-controller"):
            self.wait_for(lambda: self.get("/apis/apps/v1/namespaces/flux-system/deployments/" + d)[1]
                          .get("status", {}).get("availableReplicas") == 1, d)
        git = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system"
        self.assertEqual(self.apply(git, {
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "flux-system", "namespace": "flux-system"},
            "spec": {"url": "ssh://git@example.org/lab.git", "interval": "1m", "ref": {"branch": "main"},
                     "secretRef": {"name": "flux-system"}}})[0], 200)
        for name, dep in (("flux-system", None), ("platform", "flux-system"), ("apps", "platform")):
            doc = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": name, "namespace": "flux-system"},
                   "spec": {"interval": "5m", "prune": True, "wait": True, "path": "./cluster/" + name,
                            "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}
            if dep:
                doc["spec"]["dependsOn"] = [{"name": dep}]
            self.assertEqual(self.apply(ks + name, doc)[0], 200)

        def ready(path):
            c = [x for x in self.get(path)[1].get("status", {}).get("conditions", []) if x["type"] == "Ready"]
            return c[0] if c else None
        self.wait_for(lambda: ready(git), "git condition")
        self.assertIn("secrets \"flux-system\" not found", ready(git)["message"])
        self.wait_for(lambda: ready(ks + "apps") and ready(ks + "apps")["reason"] == "ArtifactFailed",
                      "apps waits for its source")
        self.assertEqual(self.apply("/api/v1/namespaces/flux-system/secrets/flux-system", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flux-system"},
            "stringData": {"identity": "k", "known_hosts": "example.org ssh-ed25519 AAAA"}})[0], 200)
        for n in ("flux-system", "platform", "apps"):
            self.wait_for(lambda: (ready(ks + n) or {}).get("status") == "True", "%s Ready" % n)
        self.assertTrue(self.get(ks + "apps")[1]["status"]["lastAppliedRevision"].startswith("main@sha1:"))
        doc["metadata"]["name"], doc["spec"]["dependsOn"] = "extra", [{"name": "missing"}]
        self.assertEqual(self.apply(ks + "extra", doc)[0], 200)
        self.wait_for(lambda: (ready(ks + "extra") or {}).get("message") ==
                      "dependency 'flux-system/missing' is not ready", "extra waits for missing")


if __name__ == "__main__":
    unittest.main()
