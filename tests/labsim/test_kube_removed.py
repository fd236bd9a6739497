"""Older API group/versions the simulated API server still serves
(kube.SERVED_UNTIL, from the Kubernetes Deprecated API Migration Guide):
served only below the minor that removes them, a 404 from it on, like a
real API server of the cluster's current version; one storage for every
version, managedFields naming the version each manager wrote through."""
import json
import unittest

import kube

OLD = "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"
NEW = "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"
FS = """apiVersion: flowcontrol.apiserver.k8s.io/%s
kind: FlowSchema
metadata:
  name: user-fs
spec:
  matchingPrecedence: 500
  priorityLevelConfiguration: {name: catch-all}
"""


class Served(unittest.TestCase):
    def setUp(self):
        self.cl = kube.Cluster("https://x:6443", "127.0.0.1", 0,
                               {"cluster": {"apiServer": {"image": "registry.k8s.io/kube-apiserver:v1.31.4"}}}, [])
        H = kube.handler_for(self.cl)
        self.h = H.__new__(H)

    def tearDown(self):
        self.cl.closed = True

    def req(self, method, path, body=b"", ctype="application/apply-patch+yaml"):
        self.h.headers = {"Content-Type": ctype}
        q = {"fieldManager": "kubectl"} if method == "PATCH" else {}
        return self.h.serve(method, path, q, body)

    def apiserver(self, tag):
        self.cl.static_pods_fn = lambda: [{"component": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:" + tag}]

    def managers(self, obj):
        return {m["manager"]: m["apiVersion"] for m in obj["metadata"]["managedFields"]}

    def test_old_version_served_before_its_removal(self):
        code, lst = self.req("GET", OLD)
        self.assertEqual(code, 200)
        names = sorted(o["metadata"]["name"] for o in lst["items"])
        self.assertEqual(names, ["catch-all", "exempt"])  # the API server's own, through v1
        self.assertEqual({o["apiVersion"] for o in lst["items"]}, {"flowcontrol.apiserver.k8s.io/v1beta3"})
        self.assertEqual(self.managers(lst["items"][0]), {kube.APF_MANAGER: "flowcontrol.apiserver.k8s.io/v1"})
        code, groups = self.req("GET", "/apis")
        gvs = [v["groupVersion"] for g in groups["groups"] for v in g["versions"]]
        self.assertIn("flowcontrol.apiserver.k8s.io/v1beta3", gvs)

    def test_one_storage_managed_fields_per_version(self):
        code, o = self.req("PATCH", OLD + "/user-fs", (FS % "v1beta3").encode())
        self.assertEqual(code, 200, o)
        self.assertEqual(o["apiVersion"], "flowcontrol.apiserver.k8s.io/v1beta3")
        code, o = self.req("GET", NEW + "/user-fs")
        self.assertEqual(code, 200)
        self.assertEqual(o["apiVersion"], "flowcontrol.apiserver.k8s.io/v1")
        self.assertEqual(self.managers(o), {"kubectl": "flowcontrol.apiserver.k8s.io/v1beta3"})
        # the same manager applying through v1: its entry names v1 now
        code, o = self.req("PATCH", NEW + "/user-fs", (FS % "v1").encode())
        self.assertEqual(code, 200, o)
        self.assertEqual(self.managers(o), {"kubectl": "flowcontrol.apiserver.k8s.io/v1"})
        code, _ = self.req("DELETE", OLD + "/user-fs")
        self.assertEqual(code, 200)
        self.assertEqual(self.req("GET", NEW + "/user-fs")[0], 404)

    def test_404_from_the_minor_that_removes_it(self):
        self.req("PATCH", OLD + "/user-fs", (FS % "v1beta3").encode())
        self.apiserver("v1.32.0")
        code, st = self.req("GET", OLD)
        self.assertEqual(code, 404)
        self.assertEqual(st["reason"], "NotFound")
        self.assertEqual(self.req("GET", "/apis/flowcontrol.apiserver.k8s.io/v1beta3")[0], 404)
        code, groups = self.req("GET", "/apis")
        gvs = [v["groupVersion"] for g in groups["groups"] for v in g["versions"]]
        self.assertNotIn("flowcontrol.apiserver.k8s.io/v1beta3", gvs)
        # the object stays, served through v1
        code, o = self.req("GET", NEW + "/user-fs")
        self.assertEqual(code, 200)
        # the oldest API server decides while they differ
        self.cl.static_pods_fn = lambda: [
            {"component": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.32.0"},
            {"component": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.31.4"}]
        self.assertEqual(self.req("GET", OLD)[0], 200)

    def test_removed_before_1_30_never_served(self):
        for p in ("/apis/policy/v1beta1/podsecuritypolicies", "/apis/batch/v1beta1/cronjobs",
                  "/apis/flowcontrol.apiserver.k8s.io/v1beta2/flowschemas"):
            self.assertEqual(self.req("GET", p)[0], 404, p)


if __name__ == "__main__":
    unittest.main()
