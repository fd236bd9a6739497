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

    def test_wipe_ephemeral_empties_etcd(self):
        """A bootstrapped control plane reset with only EPHEMERAL wiped keeps
        its config but not etcd's data (/var/lib/etcd is on EPHEMERAL):
        etcd waits in Preparing and Bootstrap is accepted again."""
        import time
        m, c = self.pb["machine"], self.pb["common"]
        data, cfg = self.make_config(endpoint="https://r494:6443")
        node = self.install(494, data)
        ch = self.admin(node, cfg)
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)

        def etcd_state():
            r = self.call(ch, "/machine.MachineService/ServiceList", c.NoArgs(), m.ServiceListResponse)
            return {s.id: s for s in r.messages[0].services}["etcd"].state
        deadline = time.time() + 10
        while etcd_state() != "Running" and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(etcd_state(), "Running")
        req = m.ResetRequest(system_partitions_to_wipe=[m.ResetPartitionSpec(label="EPHEMERAL", wipe=True)],
                             reboot=True)
        self.call(ch, "/machine.MachineService/Reset", req, m.ResetResponse)
        ch.close()
        n = self.node_state(494, "running")
        self.assertIsNotNone(n["hostname"])
        ch = self.admin(node, cfg)
        self.assertEqual(etcd_state(), "Preparing")
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ch.close()


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosTryTest(TalosBase, unittest.TestCase):
    """ApplyConfiguration mode TRY on a running node: live, reverted after
    try_mode_timeout unless a later apply in another mode confirms it."""
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def tried(self, vmid, endpoint, confirm, timeout_s=2):
        import yaml
        m, c = self.pb["machine"], self.pb["common"]
        data, cfg = self.make_config(endpoint=endpoint)
        node = self.install(vmid, data)
        docs = [d for d in yaml.safe_load_all(data) if d]
        docs.append({"apiVersion": "v1alpha1", "kind": "NetworkDefaultActionConfig", "ingress": "block"})
        new = yaml.safe_dump_all(docs, sort_keys=False).encode()
        ch = self.admin(node, cfg)
        Mode = m.ApplyConfigurationRequest
        r = self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=new, mode=Mode.TRY,
                                                  try_mode_timeout=c.Duration(seconds=timeout_s)),
                      m.ApplyConfigurationResponse)
        self.assertEqual(r.messages[0].mode, Mode.TRY)
        n = [x for x in self.state()["nodes"] if x["vmid"] == vmid][0]
        self.assertIn("NetworkDefaultActionConfig", n["doc_kinds"])     # live at once
        self.assertEqual(n["state"], "running")                          # no reboot
        if confirm:
            self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=new, mode=Mode.AUTO), m.ApplyConfigurationResponse)
        ch.close()
        # try_mode_timeout is in real seconds (the client times its check
        # against it), not time-scaled: half-way it still holds
        import time
        time.sleep(timeout_s / 2)
        n = [x for x in self.state()["nodes"] if x["vmid"] == vmid][0]
        self.assertEqual((n["reverts"], n["trying"]), (0, not confirm))
        time.sleep(timeout_s / 2 + 0.5)
        return [x for x in self.state()["nodes"] if x["vmid"] == vmid][0]

    def test_try_reverts_after_its_timeout(self):
        n = self.tried(495, "https://t495:6443", confirm=False)
        self.assertEqual(n["reverts"], 1)
        self.assertNotIn("NetworkDefaultActionConfig", n["doc_kinds"])

    def test_a_later_apply_confirms_the_try(self):
        n = self.tried(496, "https://t496:6443", confirm=True)
        self.assertEqual(n["reverts"], 0)
        self.assertIn("NetworkDefaultActionConfig", n["doc_kinds"])

    def test_try_of_a_change_needing_a_reboot_is_refused(self):
        import grpc
        m = self.pb["machine"]
        data, cfg = self.make_config(endpoint="https://t497:6443")
        node = self.install(497, data)
        data2, _ = self.make_config(endpoint="https://t497:6443", image="ghcr.io/siderolabs/installer:v1.12.12")
        ch = self.admin(node, cfg)
        e = self.rpc_error(ch, "/machine.MachineService/ApplyConfiguration",
                           m.ApplyConfigurationRequest(data=data2, mode=m.ApplyConfigurationRequest.TRY),
                           m.ApplyConfigurationResponse)
        ch.close()
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(self.node_state(497, "running")["tries"], 0)


if __name__ == "__main__":
    unittest.main()
