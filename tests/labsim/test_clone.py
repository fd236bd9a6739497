"""Clones and what a destroy frees (pve_clone.py). One test per rule; each
fails when its rule is removed (mutate.py)."""
import time
import unittest

from harness import LabsimCase

VM = {"name": "tpl", "cores": "2", "memory": "2048", "scsi0": "local-lvm:8",
      "net0": "virtio,bridge=vmbr0", "agent": "enabled=1", "ide2": "local-lvm:cloudinit"}


class CloneTest(LabsimCase):
    TOKENS = [{"id": "root@pam!strata", "secret": "5d1e8a02-6c1b-4a7e-8f0e-3b2a1c9d8e71", "privs": ["*"]},
              {"id": "clone@pve!cl", "secret": "3f6a2d1e-9b7c-4e8a-a1d2-5c6b7e8f9a0b",
               "privs": ["VM.Audit", "VM.Clone", "VM.Allocate"]},
              {"id": "noclone@pve!nc", "secret": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
               "privs": ["VM.Audit", "VM.Allocate", "VM.Config.Disk", "Datastore.AllocateSpace"]}]
    FIRST_VMID = 800

    def create(self, template=False, **over):
        vmid = self.vmid()
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid, **over)))
        self.assertEqual(st["exitstatus"], "OK", st)
        if template:
            st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/template" % vmid, {}))
            self.assertEqual(st["exitstatus"], "OK", st)
        return vmid

    def clone(self, src, **p):
        newid = p.pop("newid", None) or self.vmid()
        return newid, self.sim.call("POST", "/nodes/pve1/qemu/%d/clone" % src, dict(p, newid=newid))

    def clone_ok(self, src, **p):
        newid, (st, reason, body) = self.clone(src, **p)
        self.assertEqual(st, 200, (reason, body))
        t = self.sim.wait_task(body["data"])
        self.assertEqual(t["exitstatus"], "OK", t)
        return newid

    def config(self, vmid):
        return self.sim.ok("GET", "/nodes/pve1/qemu/%d/config" % vmid)

    def items(self, storage="local-lvm"):
        return {i["volid"]: i for i in self.sim.ok("GET", "/nodes/pve1/storage/%s/content" % storage)}

    def refused(self, src, want, **p):
        newid, (st, reason, body) = self.clone(src, **p)
        self.assertEqual(st, 500, body)
        self.assertIn(want, reason)
        return newid

    def test_linked_clone_of_template(self):
        tpl = self.create(template=True)
        tcfg = self.config(tpl)
        newid, (st, reason, body) = self.clone(tpl, name="web1")
        self.assertEqual(st, 200, body)
        upid = body["data"]
        self.assertEqual(upid.split(":")[5:7], ["qmclone", str(tpl)])    # id: the source
        self.assertEqual(self.config(newid).get("lock"), "clone")
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        cfg = self.config(newid)
        self.assertNotIn("lock", cfg)
        self.assertNotIn("template", cfg)
        self.assertEqual(cfg["name"], "web1")
        self.assertTrue(cfg["scsi0"].startswith("local-lvm:base-%d-disk-0/vm-%d-disk-0," % (tpl, newid)), cfg)
        self.assertEqual(cfg["ide2"], "local-lvm:vm-%d-cloudinit,media=cdrom" % newid)
        self.assertNotEqual(cfg["net0"], tcfg["net0"])
        self.assertNotEqual(cfg["smbios1"], tcfg["smbios1"])
        it = self.items()
        self.assertEqual(it["local-lvm:base-%d-disk-0/vm-%d-disk-0" % (tpl, newid)]["parent"], "base-%d-disk-0" % tpl)
        self.assertIn("local-lvm:vm-%d-cloudinit" % newid, it)
        # default name
        n2 = self.clone_ok(tpl)
        self.assertEqual(self.config(n2)["name"], "Copy-of-VM-tpl")

    def test_normal_vm_cloned_full_only(self):
        vm = self.create()
        self.refused(vm, "Linked clone feature is not supported for drive 'scsi0'", full=0)
        newid = self.clone_ok(vm)
        self.assertTrue(self.config(newid)["scsi0"].startswith("local-lvm:vm-%d-disk-0," % newid))

    def test_storage_only_for_full_clones(self):
        tpl = self.create(template=True)
        self.refused(tpl, "parameter 'storage' not allowed for linked clones", storage="local-lvm")
        self.refused(tpl, "parameter 'format' not allowed for linked clones", format="raw")
        self.refused(tpl, "storage 'local' does not support vm images", full=1, storage="local")
        newid = self.clone_ok(tpl, full=1, storage="local-lvm")
        self.assertTrue(self.config(newid)["scsi0"].startswith("local-lvm:vm-%d-disk-0," % newid))
        self.assertNotIn("parent", self.items()["local-lvm:vm-%d-disk-0" % newid])

    def test_other_storage_needs_allocatespace(self):
        tpl = self.create(template=True)
        tok = "PVEAPIToken=clone@pve!cl=3f6a2d1e-9b7c-4e8a-a1d2-5c6b7e8f9a0b"
        st, reason, _ = self.sim.call("POST", "/nodes/pve1/qemu/%d/clone" % tpl,
                                      {"newid": self.vmid(), "full": 1, "storage": "local-lvm"}, auth=tok)
        self.assertEqual((st, reason), (403, "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)"))
        newid, _ = self.clone(tpl)      # linked, on the template's storage: allowed for this token
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu/%d/clone" % tpl, {"newid": self.vmid()}, auth=tok)
        self.assertEqual(st, 200, reason)
        self.sim.wait_task(body["data"])

    def test_import_from_another_vm_needs_clone(self):
        src = self.create()
        tok = "PVEAPIToken=noclone@pve!nc=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
        disk = "local-lvm:0,import-from=local-lvm:vm-%d-disk-0" % src
        st, reason, _ = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": self.vmid(), "scsi0": disk}, auth=tok)
        self.assertEqual((st, reason), (403, "Permission check failed (/vms/%d, VM.Clone)" % src))
        t = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", {"vmid": self.vmid(), "scsi0": disk}))
        self.assertEqual(t["exitstatus"], "OK")

    def test_newid_taken(self):
        tpl = self.create(template=True)
        other = self.create()
        self.refused(tpl, "unable to create VM %d: config file already exists" % other, newid=other)

    def test_source_locked(self):
        tpl = self.create(template=True)
        self.sim.control("POST", "vm", {"vmid": tpl, "lock": "backup"})
        self.refused(tpl, "VM is locked (backup)")

    def test_target_needs_shared_disks(self):
        tpl = self.create(template=True)
        self.refused(tpl, "can't clone VM to node 'pve2' (VM uses local storage)", target="pve2")

    def test_parallel_clones_of_a_template(self):
        tpl = self.create(template=True)
        upids = []
        for _ in range(3):
            newid, (st, reason, body) = self.clone(tpl)
            self.assertEqual(st, 200, body)
            upids.append(body["data"])
        for u in upids:
            self.assertEqual(self.sim.wait_task(u)["exitstatus"], "OK")

    def test_running_source_lock_is_exclusive(self):
        vm = self.create()
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/status/start" % vm, {}))
        self.sim.control("POST", "knobs", {"task_seconds_by_type": {"qmclone": 300}})
        try:
            _, (st, _, b1) = self.clone(vm)
            _, (st2, _, b2) = self.clone(vm)
            self.assertEqual((st, st2), (200, 200))
            t2 = self.sim.wait_task(b2["data"], timeout=20)
            self.assertEqual(t2["exitstatus"],
                             "clone failed: can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout" % vm)
            self.assertEqual(self.sim.wait_task(b1["data"], timeout=20)["exitstatus"], "OK")
        finally:
            self.sim.control("POST", "knobs", {"task_seconds_by_type": {}})

    def test_failed_clone_leaves_nothing(self):
        tpl = self.create(template=True)
        self.sim.control("POST", "knobs", {"task_fail": {"qmclone": "storage went away"}})
        try:
            newid, (st, _, body) = self.clone(tpl)
            t = self.sim.wait_task(body["data"])
        finally:
            self.sim.control("POST", "knobs", {"task_fail": {}})
        self.assertEqual(t["exitstatus"], "clone failed: storage went away")
        st, reason, _ = self.sim.call("GET", "/nodes/pve1/qemu/%d/config" % newid)
        self.assertEqual(st, 500)
        self.assertFalse([v for v in self.items() if "vm-%d-" % newid in v])

    def test_destroy_frees_clone_volumes_and_guards_the_base(self):
        tpl = self.create(template=True)
        newid = self.clone_ok(tpl)
        t = self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/%d" % tpl))
        self.assertEqual(t["exitstatus"], "base volume 'local-lvm:base-%d-disk-0' is still in use by linked cloned" % tpl)
        self.assertNotIn("lock", self.config(tpl))
        t = self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/%d" % newid))
        self.assertEqual(t["exitstatus"], "OK")
        self.assertFalse([v for v in self.items() if "vm-%d-" % newid in v])
        t = self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/%d" % tpl))
        self.assertEqual(t["exitstatus"], "OK")
        self.assertFalse([v for v in self.items() if "-%d-" % tpl in v])

    def test_deleted_disk_is_unused_and_unreferenced_only_on_request(self):
        vm = self.create(scsi1="local-lvm:2")
        self.sim.ok("PUT", "/nodes/pve1/qemu/%d/config" % vm, {"delete": "scsi1,ide2"})
        cfg = self.config(vm)
        self.assertEqual(cfg.get("unused0"), "local-lvm:vm-%d-disk-1" % vm)
        self.assertNotIn("local-lvm:vm-%d-cloudinit" % vm, self.items())   # a cloud-init drive is freed
        orphan = "local-lvm:vm-%d-disk-7" % vm
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local-lvm", "volid": orphan,
                                            "content": "images", "format": "raw", "vmid": vm})
        v2 = self.create()
        orphan2 = "local-lvm:vm-%d-disk-7" % v2
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local-lvm", "volid": orphan2,
                                            "content": "images", "format": "raw", "vmid": v2})
        self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/%d" % vm))
        left = self.items()
        self.assertNotIn("local-lvm:vm-%d-disk-1" % vm, left)     # unused0 is freed
        self.assertIn(orphan, left)                                # not referenced: kept
        self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/%d" % v2, {"destroy-unreferenced-disks": 1}))
        self.assertNotIn(orphan2, self.items())


if __name__ == "__main__":
    unittest.main()
