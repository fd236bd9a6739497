"""The guest of a cloud-init VM and its agent (pve_guest.py). One test per
rule; each fails when its rule is removed (mutate.py)."""
import hashlib
import time
import unittest

from harness import LabsimCase
from test_upload import make_iso, upload

URL = "http://127.0.0.1:9/noble-server-cloudimg-amd64.img"
IMG = "local:import/noble.qcow2"


class GuestTest(LabsimCase):
    ARGS = ("--no-talos",)
    FIRST_VMID = 500

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        body = ("labsim:" + URL).encode()
        t = cls.sim.wait_task(cls.sim.ok("POST", "/nodes/pve1/storage/local/download-url", {
            "url": URL, "content": "import", "filename": "noble.qcow2",
            "checksum": hashlib.sha256(body).hexdigest(), "checksum-algorithm": "sha256"}))
        assert t["exitstatus"] == "OK", t

    def setUp(self):
        self.sim.control("POST", "knobs", {"image_agent": [], "agent_delay": 5.0, "package_seconds": 30.0})

    def create(self, start=True, **over):
        vmid = over.pop("vmid", None) or self.vmid()
        p = {"vmid": vmid, "name": "vm%d" % vmid, "scsi0": "local-lvm:0,import-from=" + IMG,
             "net0": "virtio=BC:24:11:00:05:%02X,bridge=vmbr0" % (vmid % 256), "agent": "1",
             "ide2": "local-lvm:cloudinit", "ipconfig0": "ip=10.30.0.%d/24,gw=10.30.0.1" % (vmid % 200)}
        p.update(over)
        p = {k: v for k, v in p.items() if v is not None}
        t = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        self.assertEqual(t["exitstatus"], "OK", t)
        if start:
            self.start(vmid)
        return vmid

    def start(self, vmid):
        t = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/status/start" % vmid))
        self.assertEqual(t["exitstatus"], "OK", t)

    def ifaces(self, vmid):
        return self.sim.call("GET", "/nodes/pve1/qemu/%d/agent/network-get-interfaces" % vmid)

    def ipv4(self, vmid, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, reason, body = self.ifaces(vmid)
            if st == 200:
                return {i["name"]: [a["ip-address"] + "/%d" % a["prefix"] for a in i["ip-addresses"]
                                    if a["ip-address-type"] == "ipv4"] for i in body["data"]["result"]}
            self.assertEqual((st, reason), (500, "QEMU guest agent is not running"))
            time.sleep(0.02)
        return None

    def test_agent_errors_in_order(self):
        v = self.create(start=False, agent=None)
        self.assertEqual(self.ifaces(v)[:2], (500, "No QEMU guest agent configured"))
        v = self.create(start=False)
        self.assertEqual(self.ifaces(v)[:2], (500, "VM %d is not running" % v))
        self.start(v)
        time.sleep(0.2)        # well past agent_delay: the image has no agent
        self.assertEqual(self.ifaces(v)[:2], (500, "QEMU guest agent is not running"))

    def test_static_address_from_ipconfig(self):
        self.sim.control("POST", "knobs", {"image_agent": ["noble"], "agent_delay": 20.0})
        v = self.create()
        self.assertEqual(self.ifaces(v)[:2], (500, "QEMU guest agent is not running"))   # still booting
        st, reason, _ = self.sim.call("POST", "/nodes/pve1/qemu/%d/agent/ping" % v)
        self.assertEqual((st, reason), (500, "QEMU guest agent is not running"))
        got = self.ipv4(v)
        self.assertEqual(self.sim.ok("POST", "/nodes/pve1/qemu/%d/agent/ping" % v), {"result": {}})
        self.assertEqual(got["eth0"], ["10.30.0.%d/24" % (v % 200)])
        st, _, body = self.ifaces(v)
        eth0 = [i for i in body["data"]["result"] if i["name"] == "eth0"][0]
        self.assertEqual(eth0["hardware-address"], "bc:24:11:00:05:%02x" % (v % 256))

    def test_blank_disk_boots_nothing(self):
        self.sim.control("POST", "knobs", {"image_agent": [".*"]})
        v = self.create(scsi0="local-lvm:4")
        time.sleep(0.2)
        self.assertEqual(self.ifaces(v)[:2], (500, "QEMU guest agent is not running"))

    def test_seed_iso_in_place_of_the_drive(self):
        v = self.vmid()
        mac = "BC:24:11:00:06:%02X" % (v % 256)
        nc = ("version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: '%s'\n    set-name: eth0\n"
              "    addresses: [10.40.0.7/24]\n" % mac.lower()).encode()
        ud = b"#cloud-config\npackages:\n  - qemu-guest-agent\n  - python3\n"
        st, _, body = upload(self.sim, "seed-%d.iso" % v, make_iso({"user-data": ud, "network-config": nc,
                                                                   "meta-data": b"instance-id: x\n"}))
        self.assertEqual(self.sim.wait_task(body["data"])["exitstatus"], "OK")
        self.create(vmid=v, net0="virtio=%s,bridge=vmbr0" % mac, ide2="local:iso/seed-%d.iso,media=cdrom" % v,
                    ipconfig0=None)
        self.assertEqual(self.ipv4(v)["eth0"], ["10.40.0.7/24"])
        # user-data that does not install the agent: no agent
        v2 = self.vmid()
        st, _, body = upload(self.sim, "seed-%d.iso" % v2, make_iso({"user-data": b"#cloud-config\npackages: [python3]\n",
                                                                    "network-config": nc}))
        self.sim.wait_task(body["data"])
        self.create(vmid=v2, ide2="local:iso/seed-%d.iso,media=cdrom" % v2, ipconfig0=None)
        time.sleep(0.5)
        self.assertEqual(self.ifaces(v2)[:2], (500, "QEMU guest agent is not running"))

    def test_clone_of_an_image_template_boots_its_os(self):
        self.sim.control("POST", "knobs", {"image_agent": ["noble"]})
        tpl = self.create(start=False, ipconfig0=None)
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/template" % tpl))
        newid = self.vmid()
        t = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/clone" % tpl, {"newid": newid, "name": "c1"}))
        self.assertEqual(t["exitstatus"], "OK")
        self.sim.ok("PUT", "/nodes/pve1/qemu/%d/config" % newid, {"ipconfig0": "ip=10.50.0.3/24,gw=10.50.0.1"})
        self.start(newid)
        self.assertEqual(self.ipv4(newid)["eth0"], ["10.50.0.3/24"])

    def test_put_cloudinit_applies_pending_and_a_reset_rereads(self):
        self.sim.control("POST", "knobs", {"image_agent": ["noble"]})
        v = self.create()
        self.assertEqual(self.ipv4(v)["eth0"], ["10.30.0.%d/24" % (v % 200)])
        self.sim.ok("PUT", "/nodes/pve1/qemu/%d/config" % v, {"ipconfig0": "ip=10.60.0.9/24"})   # pending
        self.sim.ok("PUT", "/nodes/pve1/qemu/%d/cloudinit" % v)
        cur = self.sim.ok("GET", "/nodes/pve1/qemu/%d/config" % v, {"current": 1})
        self.assertEqual(cur["ipconfig0"], "ip=10.60.0.9/24")
        self.assertEqual(self.ipv4(v)["eth0"], ["10.30.0.%d/24" % (v % 200)])      # until the guest reboots
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/status/reset" % v))
        self.assertEqual(self.ipv4(v)["eth0"], ["10.60.0.9/24"])


if __name__ == "__main__":
    unittest.main()
