"""The simulator's rules for a rolling upgrade (FACTS-day2 §4a): boot ids
through Read, the etcd checks a control plane's Upgrade makes, STAGED
configs taken at the upgrade's reboot, a config change that keeps the
running version, and the per-node fault knobs. Each rule has a mutation in
mutate.py that this file catches."""
import time
import unittest

from harness import NO_REFERENCE
from test_talos import TalosBase, have_talos_reference


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosUpgradeTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    IMG = "factory.talos.dev/metal-installer/%s:v1.12.12" % ("ab" * 32)

    def boot_id(self, ch):
        m, c = self.pb["machine"], self.pb["common"]
        out = self.call(ch, "/machine.MachineService/Read", m.ReadRequest(path="/proc/sys/kernel/random/boot_id"),
                        c.Data, stream=True)
        return b"".join(d.bytes for d in out).decode().strip()

    def upgrade(self, ch):
        m = self.pb["machine"]
        return self.call(ch, "/machine.MachineService/Upgrade", m.UpgradeRequest(image=self.IMG), m.UpgradeResponse)

    def upgrade_error(self, ch):
        m = self.pb["machine"]
        return self.rpc_error(ch, "/machine.MachineService/Upgrade", m.UpgradeRequest(image=self.IMG),
                              m.UpgradeResponse)

    def wait_back(self, vmid, boot_before, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = [x for x in self.state()["nodes"] if x["vmid"] == vmid][0]
            if n["state"] == "running" and n["boot_id"] != boot_before:
                return n
            time.sleep(0.05)
        self.fail("node %d did not come back" % vmid)

    def test_boot_id_read_and_new_after_upgrade(self):
        import grpc
        m, c = self.pb["machine"], self.pb["common"]
        data, cfg = self.make_config(endpoint="https://bootid:6443")
        node = self.install(600, data)
        ch = self.admin(node, cfg)
        b1 = self.boot_id(ch)
        self.assertEqual(len(b1), 36)
        self.assertEqual(self.boot_id(ch), b1)
        e = self.rpc_error(ch, "/machine.MachineService/Read", m.ReadRequest(path="/etc/os-release"), c.Data,
                           stream=True)
        self.assertEqual(e.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.upgrade(ch)
        ch.close()
        st = self.wait_back(600, b1)
        self.assertEqual(st["version"], "v1.12.12")
        ch = self.admin(node, cfg)
        self.assertNotEqual(self.boot_id(ch), b1)
        ch.close()
        ev = [e for e in self.state()["node_events"] if e["vmid"] == 600]
        self.assertEqual([e["event"] for e in ev][-2:], ["down", "up"])

    def test_config_change_keeps_version_and_staged_waits_for_reboot(self):
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint="https://staged:6443",
                                     image="factory.talos.dev/metal-installer/%s:v1.12.10" % ("ab" * 32))
        node = self.install(610, data)
        self.assertEqual(node["version"], "v1.12.10")
        ch = self.admin(node, cfg)
        # a new install image by AUTO: the node reboots, but Talos stays the same
        data2, _ = self.make_config(endpoint="https://staged:6443",
                                    image="factory.talos.dev/metal-installer/%s:v1.12.11" % ("ab" * 32))
        b1 = self.boot_id(ch)
        self.call(ch, "/machine.MachineService/ApplyConfiguration",
                  m.ApplyConfigurationRequest(data=data2, mode=m.ApplyConfigurationRequest.AUTO),
                  m.ApplyConfigurationResponse)
        ch.close()
        st = self.wait_back(610, b1)
        self.assertEqual(st["version"], "v1.12.10")
        self.assertTrue(st["install_image"].endswith(":v1.12.11"))
        # STAGED: kept until the next reboot (here: the upgrade's)
        data3, _ = self.make_config(endpoint="https://staged:6443", image=self.IMG)
        ch = self.admin(node, cfg)
        r = self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=data3, mode=m.ApplyConfigurationRequest.STAGED),
                      m.ApplyConfigurationResponse)
        self.assertEqual(r.messages[0].mode, m.ApplyConfigurationRequest.STAGED)
        st = [x for x in self.state()["nodes"] if x["vmid"] == 610][0]
        self.assertEqual((st["state"], st["install_image"][-9:]), ("running", ":v1.12.11"))
        b2 = self.boot_id(ch)
        self.upgrade(ch)
        ch.close()
        st = self.wait_back(610, b2)
        self.assertEqual((st["version"], st["install_image"]), ("v1.12.12", self.IMG))

    def cluster(self, ep, vmids):
        """Control planes vmids in one cluster, bootstrapped on the first."""
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint=ep)
        nodes = [self.install(v, data) for v in vmids]
        ch = self.admin(nodes[0], cfg)
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ch.close()
        # the others join etcd after the bootstrap, one by one: an upgrade
        # before they all run is refused (a loaded machine got there first)
        deadline = time.time() + 30
        while time.time() < deadline:
            e = self.state().get("etcd", {}).get(ep)
            if e and len(e["members"]) == len(vmids) and all(x["started"] for x in e["members"]):
                break
            time.sleep(0.05)
        else:
            self.fail("etcd of %s never had %d started members" % (ep, len(vmids)))
        return nodes, cfg

    def test_two_member_etcd_refused(self):
        nodes, cfg = self.cluster("https://two:6443", [620, 621])
        ch = self.admin(nodes[0], cfg)
        e = self.upgrade_error(ch)
        self.assertIn("etcd member count(2) is insufficient to maintain quorum", e.details())
        ch.close()
        self.assertEqual([u for n in self.state()["nodes"] if n["vmid"] in (620, 621) for u in n["upgrades"]], [])

    def test_member_down_refused_and_fail_knob(self):
        nodes, cfg = self.cluster("https://three:6443", [630, 631, 632])
        self.sim.control("POST", "knobs", {"talos_install_seconds": 200})
        try:
            ch = self.admin(nodes[0], cfg)
            b = self.boot_id(ch)
            self.upgrade(ch)
            ch.close()
            self.node_state(630, "upgrading")
            ch = self.admin(nodes[1], cfg)
            e = self.upgrade_error(ch)
            self.assertIn("is not healthy; all members must be healthy to perform an upgrade", e.details())
            ch.close()
        finally:
            self.sim.control("POST", "knobs", {"talos_install_seconds": 20})
        self.wait_back(630, b, timeout=15)
        self.sim.control("POST", "knobs", {"talos_upgrade_fail_vmid": {"631": "pull failed: 502"}})
        try:
            ch = self.admin(nodes[1], cfg)
            e = self.upgrade_error(ch)
            self.assertIn("error validating installer image", e.details())
            self.assertIn("pull failed: 502", e.details())
            ch.close()
            ch = self.admin(nodes[2], cfg)   # only that node fails
            b = self.boot_id(ch)
            self.upgrade(ch)
            ch.close()
            self.wait_back(632, b)
        finally:
            self.sim.control("POST", "knobs", {"talos_upgrade_fail_vmid": {}})

    def test_unhealthy_after_upgrade(self):
        m, c = self.pb["machine"], self.pb["common"]
        nodes, cfg = self.cluster("https://sick:6443", [640])
        self.sim.control("POST", "knobs", {"talos_upgrade_unhealthy": {"640": 100}})
        try:
            ch = self.admin(nodes[0], cfg)
            b = self.boot_id(ch)
            self.upgrade(ch)
            ch.close()
            self.wait_back(640, b)
            ch = self.admin(nodes[0], cfg)
            svc = self.call(ch, "/machine.MachineService/ServiceList", c.NoArgs(), m.ServiceListResponse)
            etcd = [s for s in svc.messages[0].services if s.id == "etcd"][0]
            self.assertEqual((etcd.state, etcd.health.healthy), ("Running", False))
            time.sleep(1.2)    # 100 s time-scaled
            svc = self.call(ch, "/machine.MachineService/ServiceList", c.NoArgs(), m.ServiceListResponse)
            etcd = [s for s in svc.messages[0].services if s.id == "etcd"][0]
            self.assertEqual((etcd.state, etcd.health.healthy), ("Running", True))
            ch.close()
        finally:
            self.sim.control("POST", "knobs", {"talos_upgrade_unhealthy": {}})


if __name__ == "__main__":
    unittest.main()
