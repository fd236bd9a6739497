"""Reset as FACTS-day2.md describes it: validated before replying (SYSTEM_DISK
with user disks is a plain error), reboot=false powers the machine off,
wiping STATE (or the whole system disk) loses the config so the node comes
back in maintenance mode, wiping only EPHEMERAL keeps it installed."""
import unittest

from test_talos import TalosBase, have_talos_reference, NO_REFERENCE


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosResetTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def reset(self, vmid, endpoint, **kw):
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint=endpoint)
        node = self.install(vmid, data)
        ch = self.admin(node, cfg)
        parts = [m.ResetPartitionSpec(label=lab, wipe=True) for lab in kw.pop("labels", [])]
        req = m.ResetRequest(system_partitions_to_wipe=parts, **kw)
        return ch, req

    def test_system_disk_with_user_disks_is_refused(self):
        import grpc
        m = self.pb["machine"]
        ch, req = self.reset(490, "https://r490:6443", mode=m.ResetRequest.SYSTEM_DISK,
                             user_disks_to_wipe=["/dev/sdb"], reboot=True)
        e = self.rpc_error(ch, "/machine.MachineService/Reset", req, m.ResetResponse)
        self.assertEqual(e.code(), grpc.StatusCode.UNKNOWN)
        self.assertIn("wipe mode SYSTEM_DISK doesn't support UserDisksToWipe parameter", e.details())
        ch.close()
        self.assertEqual(self.node_state(490, "running")["resets"], 0)

    def test_wipe_state_and_ephemeral_with_reboot_is_maintenance(self):
        m = self.pb["machine"]
        ch, req = self.reset(491, "https://r491:6443", labels=["STATE", "EPHEMERAL"], reboot=True,
                             mode=m.ResetRequest.SYSTEM_DISK)
        self.call(ch, "/machine.MachineService/Reset", req, m.ResetResponse)
        ch.close()
        n = self.node_state(491, "maintenance")
        self.assertIsNone(n["hostname"])

    def test_without_reboot_the_machine_is_off(self):
        m = self.pb["machine"]
        ch, req = self.reset(492, "https://r492:6443", labels=["STATE", "EPHEMERAL"], reboot=False)
        self.call(ch, "/machine.MachineService/Reset", req, m.ResetResponse)
        ch.close()
        self.node_state(492, "off")

    def test_wipe_only_ephemeral_keeps_the_config(self):
        m = self.pb["machine"]
        ch, req = self.reset(493, "https://r493:6443", labels=["EPHEMERAL"], reboot=True)
        self.call(ch, "/machine.MachineService/Reset", req, m.ResetResponse)
        ch.close()
        n = self.node_state(493, "running")
        self.assertEqual(n["resets"], 1)
        self.assertIsNotNone(n["hostname"])


if __name__ == "__main__":
    unittest.main()
