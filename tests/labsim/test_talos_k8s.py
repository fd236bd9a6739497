"""The simulator's Kubernetes side of a node (FACTS-day2 4b, 4e): the
kubelet reports the version of machine.kubelet.image in its Node, a
control plane's kubelet posts mirror pods of its static pods (kube-system,
label k8s-app, image from cluster.apiServer/controllerManager/scheduler
.image), a config applied NO_REBOOT changes them only after the kubelet
restarted the pod (never before the node got the config), the bootstrap
manifests' CoreDNS Deployment and kube-proxy DaemonSet (none with
cluster.proxy.disabled), and the knobs for a static pod not Ready and one
that crash loops after an update. Each rule has a mutation in mutate.py
that this file catches."""
import time
import unittest

import yaml

import test_talos
from harness import NO_REFERENCE
from test_talos import TalosBase, have_talos_reference


def kube_COREDNS():
    import kube
    return kube.COREDNS_IMAGE


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosK8sTest(TalosBase, unittest.TestCase):
    kube_get = test_talos.TalosOpsTest.kube_get

    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def cluster(self, vmid, ep, proxy_disabled=False):
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint=ep)
        if proxy_disabled:
            docs = [d for d in yaml.safe_load_all(data) if d]
            docs[0]["cluster"].setdefault("proxy", {})["disabled"] = True
            data, cfg = yaml.safe_dump_all(docs, sort_keys=False).encode(), docs[0]
        cp = self.install(vmid, data)
        ch = self.admin(cp, cfg)
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        k8s = self.state()["kubernetes"][ep]
        return cp, ch, data, cfg, k8s

    def pods(self, cfg, k8s, comp):
        return self.kube_get(cfg, k8s, "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3D" + comp)["items"]

    def wait_pod(self, cfg, k8s, comp, pred, timeout=8):
        deadline = time.time() + timeout
        while time.time() < deadline:
            items = self.pods(cfg, k8s, comp)
            if items and pred(items[0]):
                return items[0]
            time.sleep(0.05)
        self.fail("%s: %r" % (comp, self.pods(cfg, k8s, comp)))

    @staticmethod
    def ready(p):
        return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])

    def apply_no_reboot(self, ch, docs):
        m = self.pb["machine"]
        data = yaml.safe_dump_all(docs, sort_keys=False).encode()
        return self.call(ch, "/machine.MachineService/ApplyConfiguration",
                         m.ApplyConfigurationRequest(data=data, mode=m.ApplyConfigurationRequest.NO_REBOOT),
                         m.ApplyConfigurationResponse)

    def test_static_pods_and_kubelet_version_from_config(self):
        ep = "https://k8s-static:6443"
        cp, ch, data, cfg, k8s = self.cluster(720, ep)
        for comp, key in (("kube-apiserver", "apiServer"), ("kube-controller-manager", "controllerManager"),
                          ("kube-scheduler", "scheduler")):
            p = self.wait_pod(cfg, k8s, comp, self.ready)
            self.assertEqual(p["spec"]["containers"][0]["image"], cfg["cluster"][key]["image"])
            self.assertEqual(p["spec"]["nodeName"], cp["hostname"])
            self.assertEqual(p["metadata"]["labels"]["tier"], "control-plane")
            self.assertIn("kubernetes.io/config.mirror", p["metadata"]["annotations"])
            self.assertEqual(p["status"]["phase"], "Running")
        node = self.kube_get(cfg, k8s, "/api/v1/nodes")["items"][0]
        want = "v" + cfg["machine"]["kubelet"]["image"].rsplit(":v", 1)[1]
        self.assertEqual(node["status"]["nodeInfo"]["kubeletVersion"], want)
        self.assertNotEqual(want, cp["version"])   # the kubelet's, not Talos's
        ch.close()

    def test_no_reboot_apply_changes_pods_only_after_restart(self):
        ep = "https://k8s-roll:6443"
        cp, ch, data, cfg, k8s = self.cluster(721, ep)
        # 200 s time-scaled (0.01): 2 s
        self.sim.control("POST", "knobs", {"k8s_static_pod_seconds": 200.0, "k8s_kubelet_restart_seconds": 200.0})
        old = self.wait_pod(cfg, k8s, "kube-scheduler", self.ready)["spec"]["containers"][0]["image"]
        docs = [d for d in yaml.safe_load_all(data) if d]
        docs[0]["cluster"]["scheduler"]["image"] = "registry.k8s.io/kube-scheduler:v1.35.9"
        docs[0]["machine"]["kubelet"]["image"] = "ghcr.io/siderolabs/kubelet:v1.35.9"
        r = self.apply_no_reboot(ch, docs)
        self.assertEqual(r.messages[0].mode, self.pb["machine"].ApplyConfigurationRequest.NO_REBOOT)
        # right after the apply the old pod and kubelet still run
        self.assertEqual(self.pods(cfg, k8s, "kube-scheduler")[0]["spec"]["containers"][0]["image"], old)
        node = self.kube_get(cfg, k8s, "/api/v1/nodes")["items"][0]
        self.assertNotEqual(node["status"]["nodeInfo"]["kubeletVersion"], "v1.35.9")
        p = self.wait_pod(cfg, k8s, "kube-scheduler",
                          lambda p: p["spec"]["containers"][0]["image"].endswith(":v1.35.9") and self.ready(p))
        self.assertTrue(p)
        deadline = time.time() + 8
        while time.time() < deadline:
            node = self.kube_get(cfg, k8s, "/api/v1/nodes")["items"][0]
            if node["status"]["nodeInfo"]["kubeletVersion"] == "v1.35.9":
                break
            time.sleep(0.05)
        self.assertEqual(node["status"]["nodeInfo"]["kubeletVersion"], "v1.35.9")
        # the others did not change
        self.assertEqual(self.pods(cfg, k8s, "kube-apiserver")[0]["spec"]["containers"][0]["image"],
                         cfg["cluster"]["apiServer"]["image"])
        self.sim.control("POST", "knobs", {"k8s_static_pod_seconds": 1.0, "k8s_kubelet_restart_seconds": 1.0})
        ch.close()

    def test_bootstrap_manifests(self):
        cp, ch, data, cfg, k8s = self.cluster(722, "https://k8s-dns:6443")
        d = self.kube_get(cfg, k8s, "/apis/apps/v1/namespaces/kube-system/deployments")["items"]
        self.assertEqual([x["metadata"]["name"] for x in d], ["coredns"])
        ds = self.kube_get(cfg, k8s, "/apis/apps/v1/namespaces/kube-system/daemonsets")["items"]
        self.assertEqual([x["metadata"]["name"] for x in ds], ["kube-proxy"])
        # Talos applied them: another client changing the image must take it over (force)
        self.assertEqual([m["manager"] for m in ds[0]["metadata"]["managedFields"]], ["talos"])
        ch.close()
        cp, ch, data, cfg, k8s = self.cluster(723, "https://k8s-noproxy:6443", proxy_disabled=True)
        ds = self.kube_get(cfg, k8s, "/apis/apps/v1/namespaces/kube-system/daemonsets")["items"]
        self.assertEqual(ds, [])
        ch.close()

    def cosi_manifests(self, ch):
        cs = self.pb["cosi"]
        return self.call(ch, "/cosi.resource.State/List",
                         cs.ListRequest(namespace="controlplane", type="Manifests.kubernetes.talos.dev"),
                         cs.ListResponse, stream=True)

    def test_cosi_manifests(self):
        """The bootstrap manifests as COSI resources (talosctl get manifests):
        rendered from the config the node runs now, while the objects Talos
        applied at bootstrap stay as they were; control planes only; a
        reader may list them."""
        import grpc
        cp, ch, data, cfg, k8s = self.cluster(725, "https://k8s-cosi:6443")
        got = self.cosi_manifests(ch)
        self.assertEqual([r.resource.metadata.id for r in got],
                         ["00-kubelet-bootstrapping-token", "01-csr-approver-role-binding", "10-kube-proxy",
                          "11-core-dns"])
        specs = {r.resource.metadata.id: yaml.safe_load(r.resource.spec.yaml_spec) for r in got}
        self.assertEqual(specs["10-kube-proxy"][0]["spec"]["template"]["spec"]["containers"][0]["image"],
                         cfg["cluster"]["proxy"]["image"])
        self.assertEqual(specs["00-kubelet-bootstrapping-token"][0]["stringData"]["token-id"],
                         cfg["cluster"]["token"].split(".")[0])
        docs = [d for d in yaml.safe_load_all(data) if d]
        docs[0]["cluster"]["coreDNS"] = {"image": "registry.k8s.io/coredns/coredns:v9.9.9"}
        self.apply_no_reboot(ch, docs)
        specs = {r.resource.metadata.id: yaml.safe_load(r.resource.spec.yaml_spec) for r in self.cosi_manifests(ch)}
        self.assertEqual(specs["11-core-dns"][0]["spec"]["template"]["spec"]["containers"][0]["image"],
                         "registry.k8s.io/coredns/coredns:v9.9.9")
        dep = self.kube_get(cfg, k8s, "/apis/apps/v1/namespaces/kube-system/deployments/coredns")
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["image"], kube_COREDNS())
        reader = self.admin(cp, cfg, orgs=("os:reader",))
        self.assertEqual(len(self.cosi_manifests(reader)), 4)
        cs = self.pb["cosi"]
        e = self.rpc_error(ch, "/cosi.resource.State/List", cs.ListRequest(namespace="x", type="Nope"),
                           cs.ListResponse, stream=True)
        self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND)
        reader.close()
        ch.close()
        wdata, wcfg = self.make_config(worker=True, endpoint="https://k8s-cosi:6443")
        w = self.install(726, wdata)
        wch = self.admin(w, wcfg)
        self.assertEqual(self.cosi_manifests(wch), [])
        wch.close()

    def test_knobs_unready_and_crashloop(self):
        ep = "https://k8s-knobs:6443"
        cp, ch, data, cfg, k8s = self.cluster(724, ep)
        self.wait_pod(cfg, k8s, "kube-controller-manager", self.ready)
        self.sim.control("POST", "knobs", {"k8s_static_pod_unready": {"724": "kube-controller-manager"}})
        p = self.wait_pod(cfg, k8s, "kube-controller-manager", lambda p: not self.ready(p))
        self.assertEqual(p["status"]["phase"], "Running")
        self.sim.control("POST", "knobs", {"k8s_static_pod_unready": {},
                                           "k8s_static_pod_fail_update": {"724": "kube-apiserver"}})
        self.wait_pod(cfg, k8s, "kube-controller-manager", self.ready)
        self.wait_pod(cfg, k8s, "kube-apiserver", self.ready)   # the first image runs fine
        docs = [d for d in yaml.safe_load_all(data) if d]
        docs[0]["cluster"]["apiServer"]["image"] = "registry.k8s.io/kube-apiserver:v1.35.9"
        self.apply_no_reboot(ch, docs)
        p = self.wait_pod(cfg, k8s, "kube-apiserver",
                          lambda p: p["spec"]["containers"][0]["image"].endswith(":v1.35.9"))
        time.sleep(1.0)
        p = self.pods(cfg, k8s, "kube-apiserver")[0]
        self.assertFalse(self.ready(p))
        self.assertEqual(p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.sim.control("POST", "knobs", {"k8s_static_pod_fail_update": {}})
        ch.close()


if __name__ == "__main__":
    unittest.main()
