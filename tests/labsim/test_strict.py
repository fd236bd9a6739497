"""The simulator refuses what real Proxmox refuses (pve_formats.py,
pve_rules.py). One test per rule; each fails when its rule is removed."""
import time
import urllib.parse

from harness import LabsimCase

VM = {"name": "n1", "cores": "2", "memory": "2048", "scsi0": "local-lvm:10",
      "net0": "virtio,bridge=vmbr0", "ide2": "local:iso/talos-amd64.iso,media=cdrom",
      "boot": "order=scsi0;ide2", "tags": "strata"}


class StrictTest(LabsimCase):
    ARGS = ("--shared-iso-storage", "isos")
    FIRST_VMID = 300

    def vmid(self):
        return str(super().vmid())

    def refused(self, key, want, **over):
        p = dict(VM, vmid=self.vmid(), **over)
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual((st, reason), (400, "Parameter verification failed."), body)
        self.assertIn(key, body["errors"])
        self.assertIn(want, body["errors"][key])
        return body

    def create(self, **over):
        p = dict(VM, vmid=self.vmid(), **over)
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        self.assertEqual(st["exitstatus"], "OK")
        return p["vmid"]

    # --- named formats (FACTS.md §6)
    def test_ipconfig(self):
        self.refused("ipconfig0", "invalid format", ipconfig0="ip=10.0.0.5")          # no prefix
        self.refused("ipconfig0", "invalid format", ipconfig0="ip=10.0.0.5/4")        # prefix < 8
        self.refused("ipconfig0", "required by 'ip'", ipconfig0="gw=10.0.0.1")        # gw without ip
        self.create(ipconfig0="ip=10.0.0.5/24,gw=10.0.0.1")

    def test_sshkeys_urlencoded(self):
        # a real key (pve_ci.py runs ssh-keygen -l on it), encoded once and not
        key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHl2DOrIkzFgbVR0pQyv5ERC8DPg0vSYSMzWpsTQVFfU me@h")
        self.refused("sshkeys", "urlencoded", sshkeys=key)
        self.create(sshkeys=urllib.parse.quote(key, safe=""))

    def test_mac_unicast(self):
        self.refused("net0", "unicast", net0="virtio=BD:24:11:00:00:01,bridge=vmbr0")
        self.create(net0="virtio=BC:24:11:00:00:01,bridge=vmbr0")

    def test_boot_order_devices(self):
        self.refused("boot", "boot device", boot="order=scsi0;efidisk0")
        self.refused("boot", "boot device", boot="order=disk0")

    def test_startup(self):
        self.refused("startup", "invalid format", startup="order=first")
        self.refused("startup", "invalid format", startup="order=1,later=2")
        self.create(startup="order=1,up=30")

    def test_nameserver(self):
        self.refused("nameserver", "address", nameserver="10.0.0.1 bad_name!")
        self.create(nameserver="10.0.0.1 1.1.1.1")

    def test_repeated_form_key(self):
        p = list(dict(VM, vmid=self.vmid()).items()) + [("tags", "other")]
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual(st, 400, body)
        self.assertIn("ARRAY", body["errors"]["tags"])

    # --- disks (FACTS.md §6, FACTS-cloudinit.md §5)
    def test_iso_needs_media_cdrom(self):
        self.refused("ide2", "explicit 'media=cdrom' is required for iso images",
                     ide2="local:iso/talos-amd64.iso")

    def test_import_from(self):
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local", "volid": "local:import/t.raw",
                                            "content": "import", "format": "raw", "size": 2 << 30})
        self.refused("scsi1", "'import-from' requires special syntax",
                     scsi1="local-lvm:10,import-from=local:import/t.raw")
        self.refused("scsi1", "has wrong type 'iso' - needs to be 'images' or 'import'",
                     scsi1="local-lvm:0,import-from=local:iso/talos-amd64.iso")
        self.refused("scsi1", "Only root can pass arbitrary filesystem paths",
                     scsi1="local-lvm:0,import-from=/tmp/x.raw")
        vmid = self.create(scsi1="local-lvm:0,import-from=local:import/t.raw")
        cfg = self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid)
        self.assertRegex(cfg["scsi1"], r"^local-lvm:vm-%s-disk-\d+,size=2G$" % vmid)

    def test_storage_content_types(self):
        p = dict(VM, vmid=self.vmid(), scsi0="local:10")     # 'local' holds no images
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual(st, 500, body)
        self.assertIn("does not support vm images", body["message"])
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local", "volid": "local:import/c.raw",
                                            "content": "import", "format": "raw"})
        p = dict(VM, vmid=self.vmid(), ide2="local:import/c.raw,media=cdrom")
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual(st, 500, body)
        self.assertIn("wrong content type 'import'", body["message"])

    # --- start (FACTS.md §4 Start)
    def test_vcpus_over_node_count(self):
        vmid = self.create(cores="32")
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
        self.assertEqual(st["exitstatus"], "MAX 16 vcpus allowed per VM on this node")

    def test_missing_bridge(self):
        vmid = self.create(net0="virtio,bridge=vmbr9")
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
        self.assertEqual(st["exitstatus"], "bridge 'vmbr9' does not exist")
        self.sim.control("POST", "knobs", {"bridges": {"pve1": ["vmbr0", "vmbr9"]}})
        try:
            st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
            self.assertEqual(st["exitstatus"], "OK")
        finally:
            self.sim.control("POST", "knobs", {"bridges": {}})

    # --- privileges (FACTS.md §1; qemu-server raise_param_exc)
    def test_skiplock_from_token(self):
        vmid = self.create()
        st, _, body = self.sim.call("DELETE", "/nodes/pve1/qemu/%s" % vmid, {"skiplock": "1"})
        self.assertEqual(st, 400, body)
        self.assertEqual(body["errors"]["skiplock"], "Only root may use this option.")
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu/%s/config" % vmid, {"skiplock": "1", "cores": "1"})
        self.assertEqual(body["errors"]["skiplock"], "Only root may use this option.")

    # --- responses
    def test_config_typed_as_returns(self):
        vmid = self.create(onboot="1")
        cfg = self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid)
        self.assertIs(type(cfg["cores"]), int)
        self.assertIs(type(cfg["onboot"]), int)
        self.assertIsInstance(cfg["memory"], str)      # FACTS.md §5: memory stays a string

    def test_resources_lag_after_create(self):
        self.sim.control("POST", "knobs", {"resources_lag": 500})   # 5 s at scale 0.01
        try:
            vmid = int(self.create(name="lagging"))
            e = [r for r in self.sim.ok("GET", "/cluster/resources", {"type": "vm"}) if r["vmid"] == vmid][0]
            self.assertEqual(e["status"], "unknown")
            self.assertNotIn("name", e)
            self.assertEqual(e["tags"], "strata")      # tags come from the config: current
        finally:
            self.sim.control("POST", "knobs", {"resources_lag": 10})
        time.sleep(0.15)
        e = [r for r in self.sim.ok("GET", "/cluster/resources", {"type": "vm"}) if r["vmid"] == vmid][0]
        self.assertEqual((e["status"], e["name"]), ("stopped", "lagging"))

    def test_tags_normalised(self):
        vmid = self.create(tags="Strata,CP cp;alpha")
        cfg = self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid)
        self.assertEqual(cfg["tags"], "alpha;cp;strata")

    def test_shared_iso_storage(self):
        url = "https://example.invalid/talos.iso"
        p = {"url": url, "content": "iso", "filename": "shared.iso"}
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/storage/isos/download-url", p))
        self.assertEqual(st["exitstatus"], "OK")
        for n in ("pve2", "pve3"):
            items = self.sim.ok("GET", "/nodes/%s/storage/isos/content" % n, {"content": "iso"})
            self.assertIn("isos:iso/shared.iso", [i["volid"] for i in items])
        storages = self.sim.ok("GET", "/nodes/pve2/storage", {"content": "iso"})
        self.assertEqual([s["shared"] for s in storages if s["storage"] == "isos"], [1])
        res = self.sim.ok("GET", "/cluster/resources", {"type": "storage"})
        self.assertEqual(sorted(r["node"] for r in res if r["storage"] == "isos"), ["pve1", "pve2", "pve3"])

    # --- pools (FACTS.md §9, §4 Create)
    def test_pools(self):
        self.assertEqual(self.sim.ok("GET", "/pools"), [])
        p = dict(VM, vmid=self.vmid(), pool="lab")
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual((st, reason), (403, "Permission check failed (pool 'lab' does not exist)"), body)
        self.assertIsNone(self.sim.ok("POST", "/pools", {"poolid": "lab", "comment": "strata"}))
        st, _, body = self.sim.call("POST", "/pools", {"poolid": "lab"})
        self.assertEqual(st, 500)
        self.assertIn("already exists", body["message"])
        self.assertEqual(self.sim.ok("GET", "/pools"), [{"poolid": "lab", "comment": "strata"}])
        vmid = int(self.create(pool="lab"))
        one = self.sim.ok("GET", "/pools", {"poolid": "lab"})[0]
        self.assertEqual([m["vmid"] for m in one["members"]], [vmid])
        e = [r for r in self.sim.ok("GET", "/cluster/resources", {"type": "vm"}) if r["vmid"] == vmid][0]
        self.assertEqual(e["pool"], "lab")
        st, _, body = self.sim.call("DELETE", "/pools", {"poolid": "lab"})
        self.assertEqual(st, 500)
        self.assertIn("not empty", body["message"])
        # a token without Pool.Allocate: 403 naming path and privilege; one
        # without Pool.Audit sees no pools
        ro = [t for t in self.sim.ready["tokens"] if t["id"] == "audit@pve!ro"][0]
        hdr = "PVEAPIToken=%s=%s" % (ro["id"], ro["secret"])
        st, reason, _ = self.sim.call("POST", "/pools", {"poolid": "other"}, auth=hdr)
        self.assertEqual((st, reason), (403, "Permission check failed (/pool/other, Pool.Allocate)"))
        st, _, body = self.sim.call("GET", "/pools", auth=hdr)
        self.assertEqual((st, body["data"]), (200, []))

    # --- pending changes of running VMs (FACTS.md §4 Config; pve_pending.py)
    def config_task(self, vmid, params):
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/config" % vmid, params))
        self.assertEqual(st["exitstatus"], "OK")

    def running(self, **over):
        vmid = self.create(**over)
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
        return vmid

    def pending(self, vmid):
        return {e["key"]: e for e in self.sim.ok("GET", "/nodes/pve1/qemu/%s/pending" % vmid)}

    def test_pending_on_running_vm(self):
        vmid = self.running()
        self.config_task(vmid, {"cores": "4", "memory": "4096", "tags": "strata;new", "description": "d"})
        cur = self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid, {"current": "1"})
        self.assertEqual((cur["cores"], cur["memory"]), (2, "2048"))     # running config unchanged
        self.assertEqual((cur["tags"], cur["description"]), ("new;strata", "d"))   # applied live
        merged = self.sim.ok("GET", "/nodes/pve1/qemu/%s/config" % vmid)
        self.assertEqual((merged["cores"], merged["memory"]), (4, "4096"))
        pend = self.pending(vmid)
        self.assertEqual(pend["cores"], {"key": "cores", "value": "2", "pending": "4"})
        self.assertEqual(pend["memory"]["pending"], "4096")
        self.assertNotIn("pending", pend["tags"])
        st = self.sim.ok("GET", "/nodes/pve1/qemu/%s/status/current" % vmid)
        self.assertEqual((st["cpus"], st["maxmem"]), (2, 2048 << 20))
        # a reset keeps the pending changes, a reboot applies them
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/reset" % vmid))
        self.assertIn("pending", self.pending(vmid)["cores"])
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/reboot" % vmid))
        st = self.sim.ok("GET", "/nodes/pve1/qemu/%s/status/current" % vmid)
        self.assertEqual((st["status"], st["cpus"], st["maxmem"]), ("running", 4, 4096 << 20))
        self.assertFalse([e for e in self.pending(vmid).values() if "pending" in e or "delete" in e])

    def test_memory_hotplug(self):
        vmid = self.running(hotplug="network,disk,memory")
        self.config_task(vmid, {"memory": "4096", "cores": "4"})
        pend = self.pending(vmid)
        self.assertEqual(pend["memory"], {"key": "memory", "value": "4096"})   # live with memory hotplug
        self.assertEqual(pend["cores"]["pending"], "4")                       # cores never

    def test_stopped_vm_applies_at_once(self):
        vmid = self.create()
        self.config_task(vmid, {"cores": "4"})
        self.assertEqual(self.pending(vmid)["cores"], {"key": "cores", "value": "4"})
        # pending left from a running time is applied by the next start
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
        self.config_task(vmid, {"cores": "6"})
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid))
        self.assertEqual(self.pending(vmid)["cores"]["pending"], "6")
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/start" % vmid))
        self.assertEqual(self.sim.ok("GET", "/nodes/pve1/qemu/%s/status/current" % vmid)["cpus"], 6)
