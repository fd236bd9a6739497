"""The simulator's MachineService/ImagePull (FACTS-day2 sections 2, 3 and
4b step 2): admin and operator may pull, reader and etcd:backup may not;
the image goes into the namespace asked for and shows in the node's state
("pulls"); not in maintenance mode; the talos_image_pull_fail knob. Each
rule has a mutation in mutate.py that this file catches."""
import unittest

from harness import NO_REFERENCE
from test_talos import TalosBase, have_talos_reference


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosImagePullTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def pull(self, ch, ns, ref):
        m = self.pb["machine"]
        return self.call(ch, "/machine.MachineService/ImagePull", m.ImagePullRequest(namespace=ns, reference=ref),
                         m.ImagePullResponse)

    def pull_error(self, ch, ns, ref):
        m = self.pb["machine"]
        return self.rpc_error(ch, "/machine.MachineService/ImagePull", m.ImagePullRequest(namespace=ns, reference=ref),
                              m.ImagePullResponse)

    def test_image_pull(self):
        import grpc
        c = self.pb["common"]
        data, cfg = self.make_config(endpoint="https://pull:6443")
        node = self.install(640, data)
        ch = self.admin(node, cfg)
        r = self.pull(ch, c.NS_CRI, "registry.k8s.io/kube-apiserver:v1.36.0")
        self.assertEqual(len(r.messages), 1)
        op = self.admin(node, cfg, orgs=("os:operator",))
        self.pull(op, c.NS_SYSTEM, "ghcr.io/siderolabs/kubelet:v1.36.0")
        op.close()
        pulls = [(p["namespace"], p["ref"]) for p in
                 [x for x in self.state()["nodes"] if x["vmid"] == 640][0]["pulls"]]
        self.assertEqual(pulls, [("NS_CRI", "registry.k8s.io/kube-apiserver:v1.36.0"),
                                 ("NS_SYSTEM", "ghcr.io/siderolabs/kubelet:v1.36.0")])
        for orgs in (("os:reader",), ("os:etcd:backup",)):
            rd = self.admin(node, cfg, orgs=orgs)
            e = self.pull_error(rd, c.NS_CRI, "registry.k8s.io/kube-scheduler:v1.36.0")
            self.assertEqual(e.code(), grpc.StatusCode.PERMISSION_DENIED, orgs)
            rd.close()
        self.sim.control("POST", "knobs", {"talos_image_pull_fail": {"kube-proxy": "not found"}})
        try:
            e = self.pull_error(ch, c.NS_CRI, "registry.k8s.io/kube-proxy:v1.36.0")
            self.assertEqual(e.code(), grpc.StatusCode.UNKNOWN)
            self.assertIn("not found", e.details())
        finally:
            self.sim.control("POST", "knobs", {"talos_image_pull_fail": {}})
        self.sim.control("POST", "knobs", {"talos_image_pull_unimplemented": [640]})
        try:
            e = self.pull_error(ch, c.NS_CRI, "registry.k8s.io/kube-proxy:v1.36.0")
            self.assertEqual(e.code(), grpc.StatusCode.UNIMPLEMENTED)
        finally:
            self.sim.control("POST", "knobs", {"talos_image_pull_unimplemented": []})
        self.assertEqual(len([x for x in self.state()["nodes"] if x["vmid"] == 640][0]["pulls"]), 2)
        ch.close()


if __name__ == "__main__":
    unittest.main()
