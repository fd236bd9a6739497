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

import yaml

from harness import NO_REFERENCE
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


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class KubeTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()
        self = cls("test_jobs")
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

    def apply_job(self, name, ns="default", image="busybox:1.36"):
        return self.req("PATCH", "/apis/batch/v1/namespaces/%s/jobs/%s?fieldManager=strata" % (ns, name),
                        JOB % (name, ns, image), "application/apply-patch+yaml")

    def wait_job(self, name, want, ns="default", timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            code, o = self.req("GET", "/apis/batch/v1/namespaces/%s/jobs/%s" % (ns, name))
            conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions", [])}
            if conds.get(want) == "True":
                return o
            time.sleep(0.02)
        self.fail("job %s never %s: %r" % (name, want, o))

    def knobs(self, **kw):
        st, _, body = self.sim.control("POST", "knobs", kw)
        self.assertEqual(st, 200, body)

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
            code, o = self.apply_job("seed")
            self.assertEqual(code, 200, o)
            self.assertEqual(o["status"].get("active"), 1)
            self.assertNotIn("succeeded", o["status"])
            code, o = self.req("GET", "/apis/batch/v1/namespaces/default/jobs/seed")
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
        self.assertEqual(self.state()["kubernetes"]["https://kube:6443"]["jobs"]["default/seed"], "Complete")
        # re-apply: status stays; a changed pod template is refused (immutable)
        code, o = self.apply_job("seed")
        self.assertEqual((code, o["status"]["succeeded"]), (200, 1))
        code, o = self.apply_job("seed", image="busybox:1.37")
        self.assertEqual((code, o["reason"]), (422, "Invalid"))
        # into a missing namespace: 404; the knob makes a job fail
        self.assertEqual(self.apply_job("x", ns="nope")[0], 404)
        self.knobs(k8s_job_fail={"^doomed": "Job has reached the specified backoff limit"})
        try:
            self.assertEqual(self.apply_job("doomed-1")[0], 200)
            o = self.wait_job("doomed-1", "Failed")
            self.assertEqual((o["status"]["failed"], o["status"].get("succeeded")), (1, None))
        finally:
            self.knobs(k8s_job_fail={})
        # delete
        self.assertEqual(self.req("DELETE", "/apis/batch/v1/namespaces/default/jobs/doomed-1")[0], 200)
        self.assertEqual(self.req("GET", "/apis/batch/v1/namespaces/default/jobs/doomed-1")[0], 404)

    def test_watch_sees_completion(self):
        self.knobs(k8s_job_seconds=50)
        try:
            self.assertEqual(self.apply_job("watched")[0], 200)
        finally:
            self.knobs(k8s_job_seconds=5)
        _, lst = self.req("GET", "/apis/batch/v1/namespaces/default/jobs?fieldSelector=metadata.name%3Dwatched")
        self.assertEqual([j["metadata"]["name"] for j in lst["items"]], ["watched"])
        rv = lst["metadata"]["resourceVersion"]
        c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx(), timeout=10)
        c.request("GET", "/apis/batch/v1/namespaces/default/jobs?watch=true&fieldSelector=metadata.name%%3Dwatched"
                         "&resourceVersion=%s&timeoutSeconds=3" % rv)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        events = []
        while not events or events[-1]["type"] != "MODIFIED":
            raw = r.readline()
            if not raw:
                break
            if raw.strip():
                events.append(json.loads(raw))
        c.close()
        mods = [e for e in events if e["type"] == "MODIFIED"]
        self.assertTrue(mods, events)
        conds = {x["type"]: x["status"] for x in mods[-1]["object"]["status"]["conditions"]}
        self.assertEqual(conds.get("Complete"), "True")

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
            self.assertEqual(self.apply_job("kubectl-wait")[0], 200)
        finally:
            self.knobs(k8s_job_seconds=5)
        t = time.time()
        out = run("wait", "--for=condition=complete", "job/kubectl-wait", "--timeout=30s")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("condition met", out.stdout)
        self.assertLess(time.time() - t, 20)
        out = run("get", "jobs", "-A")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"default\s+kubectl-wait\s+Complete\s+1/1")
        out = run("get", "job", "kubectl-wait", "-o", "jsonpath={.status.succeeded}")
        self.assertEqual((out.returncode, out.stdout), (0, "1"), out.stderr)


if __name__ == "__main__":
    unittest.main()
