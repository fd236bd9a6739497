"""Cloud-init drives, templates and the node version (pve_cloudinit.py).
One test per rule; each fails when its rule is removed (mutate.py)."""
import unittest

from harness import LabsimCase

VM = {"name": "tpl", "cores": "2", "memory": "2048", "scsi0": "local-lvm:8",
      "net0": "virtio,bridge=vmbr0", "agent": "enabled=1", "serial0": "socket"}


class CloudinitTest(LabsimCase):
    FIRST_VMID = 700

    def vmid(self):
        return str(super().vmid())

    def create(self, **over):
        p = dict(VM, vmid=self.vmid(), **over)
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        self.assertEqual(st["exitstatus"], "OK", st)
        return p["vmid"]

    def config(self, vmid):
        return self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid)

    def volumes(self, storage):
        return [i["volid"] for i in self.sim.ok("GET", "/nodes/pve1/storage/%s/content" % storage)]

    def test_cloudinit_drive_allocated(self):
        vmid = self.create(ide2="local-lvm:cloudinit")
        self.assertEqual(self.config(vmid)["ide2"], "local-lvm:vm-%s-cloudinit,media=cdrom" % vmid)
        self.assertIn("local-lvm:vm-%s-cloudinit" % vmid, self.volumes("local-lvm"))

    def test_cloudinit_drive_needs_images_content(self):
        p = dict(VM, vmid=self.vmid(), ide2="local:cloudinit")
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual(st, 500, body)
        self.assertIn("storage 'local' does not support vm images", reason)

    def test_one_cloudinit_drive(self):
        p = dict(VM, vmid=self.vmid(), ide2="local-lvm:cloudinit", ide0="local-lvm:cloudinit")
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual(st, 500, body)
        self.assertIn("cloud-init drive is already attached at", reason + str(body))
        vmid = self.create(ide2="local-lvm:cloudinit")
        st, reason, body = self.sim.call("PUT", "/nodes/pve1/qemu/%s/config" % vmid,
                                         {"sata1": "local-lvm:cloudinit"})
        self.assertEqual(st, 500, body)
        self.assertIn("already attached at 'ide2'", reason + str(body))

    def test_template_task(self):
        vmid = self.create(ide2="local-lvm:cloudinit")
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/template" % vmid, {}))
        cfg = self.config(vmid)
        self.assertEqual(cfg.get("template"), 1)
        self.assertTrue(cfg["scsi0"].startswith("local-lvm:base-%s-disk-0," % vmid), cfg)
        self.assertIn("local-lvm:base-%s-disk-0" % vmid, self.volumes("local-lvm"))
        self.assertNotIn("local-lvm:vm-%s-disk-0" % vmid, self.volumes("local-lvm"))

    def test_template_one_disk(self):
        vmid = self.create(scsi1="local-lvm:2")
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/template" % vmid, {"disk": "scsi1"}))
        cfg = self.config(vmid)
        self.assertEqual(cfg.get("template"), 1)
        self.assertTrue(cfg["scsi1"].startswith("local-lvm:base-%s-disk-1," % vmid), cfg)
        self.assertTrue(cfg["scsi0"].startswith("local-lvm:vm-%s-disk-0," % vmid), cfg)

    def test_template_refusals(self):
        vmid = self.create()
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid, {}))
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu/%s/template" % vmid, {})
        self.assertEqual(st, 500)
        self.assertIn("if VM is running", reason)
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid, {}))
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/template" % vmid, {}))
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu/%s/template" % vmid, {})
        self.assertEqual(st, 500)
        self.assertIn("already a template", reason)
        v2 = self.create()
        self.sim.control("POST", "vm", {"vmid": int(v2), "lock": "backup"})
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu/%s/template" % v2, {})
        self.assertEqual(st, 500)
        self.assertIn("VM is locked (backup)", reason)

    def test_node_version(self):
        self.assertEqual(self.sim.ok("GET", "/nodes/pve1/version")["version"], "8.4.1")
        self.sim.control("POST", "knobs", {"pve_version": "8.3.5"})
        try:
            v = self.sim.ok("GET", "/nodes/pve1/version")
            self.assertEqual((v["version"], v["release"]), ("8.3.5", "8.3"))
        finally:
            self.sim.control("POST", "knobs", {"pve_version": "8.4.1"})

    def test_import_content_by_version(self):
        """FACTS-cloudinit.md §5: import content from PVE 8.2, guest images
        (not only OVA) into it through the API from 8.4."""
        url = "http://127.0.0.1:9/noble.img"
        p = {"url": url, "content": "import", "filename": "noble.qcow2"}
        path = "/nodes/pve1/storage/local/download-url"
        try:
            self.sim.control("POST", "knobs", {"pve_version": "8.1.4"})
            st, reason, body = self.sim.call("POST", path, p)
            self.assertEqual(st, 400, body)
            self.assertIn("enumeration", body["errors"]["content"])
            self.sim.control("POST", "knobs", {"pve_version": "8.3.5"})
            st, reason, body = self.sim.call("POST", path, p)
            self.assertEqual((st, body["errors"]), (400, {"filename": "invalid filename or wrong extension"}))
            self.assertEqual(self.sim.call("POST", path, dict(p, filename="appliance.ova"))[0], 200)
        finally:
            self.sim.control("POST", "knobs", {"pve_version": "8.4.1"})
        self.assertEqual(self.sim.call("POST", path, p)[0], 200)


if __name__ == "__main__":
    unittest.main()
