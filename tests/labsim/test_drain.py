"""The simulated Kubernetes API for scale-down: Nodes registered by their
kubelet stay (status Unknown) when the machine goes until deleted, a
deleted Node of a running kubelet registers again, cordon by server-side
apply, and the eviction subresource honouring PodDisruptionBudgets."""
import time
import unittest

import kube
from harness import have_reference


@unittest.skipUnless(have_reference(), "reference data absent")
class DrainTest(unittest.TestCase):
    def setUp(self):
        self.running = [{"hostname": "w-1", "ip": "127.0.9.1", "since": "x", "version": "v1.34.1",
                         "controlplane": False},
                        {"hostname": "w-2", "ip": "127.0.9.2", "since": "x", "version": "v1.34.1",
                         "controlplane": False}]
        self.c = kube.Cluster("https://x:6443", "127.0.0.1", 0, {}, [])
        self.c.scale = 0.01
        self.c.nodes_fn = lambda: list(self.running)
        self.c.cilium = {"works": True, "ready_at": 0}

    def tearDown(self):
        self.c.closed = True

    def names(self):
        return [n["metadata"]["name"] for n in self.c.node_objects()]

    def ready(self, name):
        return [n["status"]["conditions"][0]["status"] for n in self.c.node_objects()
                if n["metadata"]["name"] == name][0]

    def pod(self, name, node, app="web"):
        self.c.apply("v1", "pods", "default", name,
                     {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                      "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1"}]}}, "test")

    def wait_ready(self, name):
        for _ in range(200):
            p = self.c.get("v1", "pods", "default", name)
            if p and kube.Cluster._pod_healthy(p):
                return
            time.sleep(0.01)
        self.fail("pod %s never Ready" % name)

    def pdb(self, name, **spec):
        spec["selector"] = {"matchLabels": {"app": "web"}}
        self.c.apply("policy/v1", "poddisruptionbudgets", "default", name,
                     {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                      "spec": spec}, "test")

    def test_node_stays_until_deleted(self):
        self.assertEqual(self.names(), ["w-1", "w-2"])
        gone = self.running.pop()
        self.assertEqual(self.names(), ["w-1", "w-2"], "the Node of a machine that went away stays")
        self.assertEqual(self.ready("w-2"), "Unknown")
        self.assertIsNotNone(self.c.node_delete("w-2"))
        self.assertEqual(self.names(), ["w-1"])
        self.assertIsNone(self.c.node_delete("w-2"), "deleting it again: not found")
        self.running.append(gone)
        self.assertEqual(self.names(), ["w-1", "w-2"])

    def test_deleted_node_of_running_kubelet_comes_back(self):
        uid = [n["metadata"]["uid"] for n in self.c.node_objects() if n["metadata"]["name"] == "w-2"][0]
        self.c.node_delete("w-2")
        again = [n for n in self.c.node_objects() if n["metadata"]["name"] == "w-2"]
        self.assertEqual(len(again), 1, "the kubelet registers its Node again")
        self.assertNotEqual(again[0]["metadata"]["uid"], uid, "as a new object")

    def test_cordon_by_apply(self):
        n = self.c.node_apply("w-1", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "w-1", "annotations": {"strata.dev/cordoned": "removal"}}, "spec": {"unschedulable": True}},
            "strata")
        self.assertTrue(n["spec"]["unschedulable"])
        self.assertIn({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}, n["spec"]["taints"])
        n = self.c.node_apply("w-1", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w-1"}}, "strata")
        self.assertNotIn("unschedulable", n["spec"], "applying without the field gives it up")

    def test_pdb_blocks_eviction(self):
        self.pod("a", "w-1")
        self.pod("b", "w-2")
        self.wait_ready("a")
        self.wait_ready("b")
        self.pdb("web", minAvailable=2)
        with self.assertRaises(kube.ApiError) as e:
            self.c.evict("default", "a")
        self.assertEqual(e.exception.reply[0], 429)
        self.assertEqual(e.exception.reply[1]["message"],
                         "Cannot evict pod as it would violate the pod's disruption budget.")
        self.assertIsNone(self.c.get("v1", "pods", "default", "a").get("metadata", {}).get("deletionTimestamp"))

    def test_pdb_allows_eviction_within_budget(self):
        self.pod("a", "w-1")
        self.pod("b", "w-2")
        self.wait_ready("a")
        self.wait_ready("b")
        self.pdb("web", maxUnavailable=1)
        self.assertEqual(self.c.evict("default", "a"), 201)
        with self.assertRaises(kube.ApiError) as e:
            self.c.evict("default", "b")
        self.assertEqual(e.exception.reply[0], 429, "one already going: the budget is spent")
        for _ in range(300):
            if self.c.get("v1", "pods", "default", "a") is None:
                break
            time.sleep(0.01)
        self.assertIsNone(self.c.get("v1", "pods", "default", "a"), "the evicted pod terminates")

    def test_two_pdbs_refused(self):
        self.pod("a", "w-1")
        self.wait_ready("a")
        self.pdb("one", maxUnavailable=1)
        self.pdb("two", maxUnavailable=1)
        with self.assertRaises(kube.ApiError) as e:
            self.c.evict("default", "a")
        self.assertEqual(e.exception.reply[0], 500)

    def test_node_delete_removes_its_pods(self):
        self.pod("a", "w-2")
        self.assertIn("w-2", self.names())
        self.running.pop()
        self.c.node_delete("w-2")
        self.assertIsNone(self.c.get("v1", "pods", "default", "a"))


if __name__ == "__main__":
    unittest.main()
