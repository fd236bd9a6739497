"""A VM's Talos state lives on its boot disk: restarting a VM boots the
installed Talos from its disk (even with the ISO detached), a replaced VM
with a new blank disk boots the ISO into maintenance mode again."""
import time
import unittest

from test_talos import TalosBase, have_talos_reference, NO_REFERENCE


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosDiskTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def nodes_of(self, vmid):
        return [n for n in self.state()["nodes"] if n["vmid"] == vmid]

    def power(self, vmid, action):
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/status/%s" % (vmid, action)))
        self.assertEqual(st["exitstatus"], "OK")

    def test_state_lives_on_the_disk(self):
        data, cfg = self.make_config(endpoint="https://disk:6443", hostname="disk-cp")
        self.install(480, data)
        # detach the ISO as strata does after the install, then restart:
        # the installed disk boots Talos
        self.power(480, "stop")
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/480/config",
                                       {"ide2": "none,media=cdrom", "boot": "order=scsi0"}))
        self.power(480, "start")
        n = self.node_state(480, "running")
        self.assertEqual(n["hostname"], "disk-cp")
        # replace: stop, delete (frees the disk), create anew with a blank disk
        self.power(480, "stop")
        self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/480", {"purge": "1"}))
        self.assertEqual(self.nodes_of(480), [])          # the old disk's machine is gone
        n = self.boot_vm(480)
        self.assertEqual(n["state"], "maintenance")
        self.assertIsNone(n["hostname"])
        self.assertEqual(len(self.nodes_of(480)), 1)

    def test_blank_disk_without_iso_does_not_boot(self):
        p = {"vmid": "481", "scsi0": "local-lvm:10", "net0": "virtio,bridge=vmbr0", "start": "1"}
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        time.sleep(0.3)
        self.assertEqual(self.nodes_of(481), [])

    def test_bootstrap_transient_errors(self):
        import grpc
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint="https://transient:6443", hostname="tr-cp")
        node = self.install(482, data)
        msgs = ["bootstrap is not available yet", "time is not in sync yet"]
        self.sim.control("POST", "knobs", {"talos_bootstrap_transient": msgs})
        ch = self.admin(node, cfg)
        for want in msgs:
            e = self.rpc_error(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
            self.assertEqual((e.code(), e.details()), (grpc.StatusCode.FAILED_PRECONDITION, want))
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ch.close()
        self.assertEqual(self.state()["knobs"]["talos_bootstrap_transient"], [])

    def test_slow_boot(self):
        p = {"vmid": "483", "scsi0": "local-lvm:10", "net0": "virtio,bridge=vmbr0",
             "ide2": "local:iso/talos-amd64.iso,media=cdrom"}
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        self.sim.control("POST", "knobs", {"talos_slow": {"483": 100}})   # 1 s more at scale 0.01
        t0 = time.time()
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/483/status/start"))
        time.sleep(0.4)
        self.assertEqual(self.nodes_of(483)[0]["state"], "booting")   # boot is 0.1 s, plus 1 s slow
        self.node_state(483, "maintenance")
        self.assertGreater(time.time() - t0, 1.0)
