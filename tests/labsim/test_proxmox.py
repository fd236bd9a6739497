import re
import time
import unittest
import urllib.parse

from harness import LabsimCase

UPID_RE = (r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
           r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$")

BASE_VM = {"vmid": "200", "name": "cp1", "cores": "2", "memory": "2048", "scsi0": "local-lvm:20",
           "net0": "virtio,bridge=vmbr0", "ide2": "local:iso/talos-amd64.iso,media=cdrom",
           "agent": "1", "cpu": "host", "boot": "order=scsi0;ide2", "tags": "strata;cp"}


class ProxmoxTest(LabsimCase):

    def create(self, vmid, **over):
        p = dict(BASE_VM, vmid=str(vmid), **over)
        upid = self.sim.ok("POST", "/nodes/pve1/qemu", p)
        return upid, self.sim.wait_task(upid)

    def test_unknown_param_rejected(self):
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": "101", "bogus": "1"})
        self.assertEqual(st, 400)
        self.assertEqual(reason, "Parameter verification failed.")
        self.assertIn("bogus", body["errors"])
        self.assertIn("not defined in schema", body["errors"]["bogus"])

    def test_true_for_boolean_rejected(self):
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": "102", "start": "true"})
        self.assertEqual(st, 400)
        self.assertEqual(body["errors"]["start"], "type check ('boolean') failed - got 'true'")
        # JSON true is fine
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": 102, "start": False}, json_body=True)
        self.assertEqual(st, 200, body)
        self.sim.wait_task(body["data"])

    def test_bad_integer_and_missing(self):
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": "abc"})
        self.assertEqual(st, 400)
        self.assertIn("type check ('integer') failed", body["errors"]["vmid"])
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", {"name": "x"})
        self.assertEqual(body["errors"]["vmid"], "property is missing and it is not optional")

    def test_bad_property_string(self):
        st, _, body = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": "103", "net0": "virtio,bogus=1"})
        self.assertEqual(st, 400)
        self.assertIn("invalid format", body["errors"]["net0"])

    def test_auth(self):
        st, reason, body = self.sim.call("GET", "/nodes", auth=False)
        self.assertEqual((st, reason, body), (401, "No ticket", None))
        st, reason, _ = self.sim.call("GET", "/nodes", auth="PVEAPIToken=root@pam!strata=wrong")
        self.assertEqual((st, reason), (401, "Authentication failed!"))
        ro = [t for t in self.sim.ready["tokens"] if t["id"] == "audit@pve!ro"][0]
        hdr = "PVEAPIToken=%s=%s" % (ro["id"], ro["secret"])
        st, _, _ = self.sim.call("GET", "/nodes", auth=hdr)
        self.assertEqual(st, 200)
        st, reason, _ = self.sim.call("POST", "/nodes/pve1/qemu", {"vmid": "104"}, auth=hdr)
        self.assertEqual(st, 403)

    def test_create_task_config_roundtrip(self):
        upid, st = self.create(210)
        self.assertRegex(upid, UPID_RE)
        self.assertEqual(upid.split(":")[5:8], ["qmcreate", "210", "root@pam!strata"])
        self.assertEqual(st["status"], "stopped")
        self.assertEqual(st["exitstatus"], "OK")
        self.assertEqual(st["user"], "root@pam")
        self.assertEqual(st["tokenid"], "strata")
        log = self.sim.ok("GET", "/nodes/pve1/tasks/%s/log" % upid)
        self.assertEqual(log[-1]["t"], "TASK OK")
        cfg = self.sim.ok("GET", "/nodes/pve1/qemu/210/config")
        self.assertEqual(cfg["name"], "cp1")
        self.assertEqual(cfg["tags"], "cp;strata")     # normalised: sorted (FACTS.md §6)
        self.assertRegex(cfg["net0"], r"^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$")
        self.assertTrue(cfg["scsi0"].startswith("local-lvm:vm-210-disk-0,"))
        self.assertIn("size=20G", cfg["scsi0"])
        self.assertNotIn("lock", cfg)
        # PUT (sync) and POST (task) config
        self.assertIsNone(self.sim.ok("PUT", "/nodes/pve1/qemu/210/config", {"description": "hello", "delete": "tags"}))
        upid = self.sim.ok("POST", "/nodes/pve1/qemu/210/config", {"memory": "4096", "digest": cfg["digest"]})
        st = self.sim.wait_task(upid)
        self.assertIn("checksum mismatch", st["exitstatus"])
        upid = self.sim.ok("POST", "/nodes/pve1/qemu/210/config", {"memory": "4096"})
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        cfg = self.sim.ok("GET", "/nodes/pve1/qemu/210/config")
        self.assertEqual((cfg["description"], cfg["memory"]), ("hello", "4096"))
        self.assertNotIn("tags", cfg)
        # wrong node
        st, reason, _ = self.sim.call("GET", "/nodes/pve2/qemu/210/config")
        self.assertEqual(st, 500)
        self.assertIn("does not exist", reason)

    def test_lifecycle_and_delete_purge(self):
        self.create(220)
        time.sleep(0.15)   # past the resources lag after a create (10 s x 0.01)
        res = self.sim.ok("GET", "/cluster/resources", {"type": "vm"})
        e = [r for r in res if r["vmid"] == 220][0]
        self.assertEqual((e["node"], e["status"], e["tags"], e["id"]), ("pve1", "stopped", "cp;strata", "qemu/220"))
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/220/status/start"))
        self.assertEqual(st["exitstatus"], "OK")
        cur = self.sim.ok("GET", "/nodes/pve1/qemu/220/status/current")
        self.assertEqual((cur["status"], cur["agent"]), ("running", 1))
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/220/status/start"))
        self.assertEqual(st["exitstatus"], "VM 220 already running")
        st, reason, _ = self.sim.call("DELETE", "/nodes/pve1/qemu/220", {"purge": "1"})
        self.assertEqual((st, reason), (500, "VM 220 is running - destroy failed"))
        time.sleep(0.1)
        ifs = self.sim.ok("GET", "/nodes/pve1/qemu/220/agent/network-get-interfaces")
        self.assertEqual(ifs["result"][1]["name"], "eth0")
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/220/status/shutdown"))
        self.assertEqual(st["exitstatus"], "OK")
        self.sim.wait_task(self.sim.ok("PUT", "/nodes/pve1/qemu/220/resize", {"disk": "scsi0", "size": "+10G"}))
        self.assertIn("size=30G", self.sim.ok("GET", "/nodes/pve1/qemu/220/config")["scsi0"])
        upid = self.sim.ok("DELETE", "/nodes/pve1/qemu/220", {"purge": "1", "destroy-unreferenced-disks": "1"})
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        st, _, _ = self.sim.call("GET", "/nodes/pve1/qemu/220/config")
        self.assertEqual(st, 500)
        vols = self.sim.ok("GET", "/nodes/pve1/storage/local-lvm/content")
        self.assertFalse([v for v in vols if v.get("vmid") == 220])

    def test_lock_and_duplicate(self):
        self.sim.control("POST", "knobs", {"task_seconds": 100})
        try:
            upid = self.sim.ok("POST", "/nodes/pve1/qemu", dict(BASE_VM, vmid="230"))
            st, reason, _ = self.sim.call("PUT", "/nodes/pve1/qemu/230/config", {"description": "x"})
        finally:
            self.sim.control("POST", "knobs", {"task_seconds": 2.0})
        self.assertEqual((st, reason), (500, "VM is locked (create)"))
        st, reason, _ = self.sim.call("POST", "/nodes/pve1/qemu", dict(BASE_VM, vmid="230"))
        self.assertEqual(st, 500)
        self.assertIn("already exists", reason)
        self.sim.wait_task(upid)
        self.assertEqual(self.sim.ok("GET", "/cluster/nextid", {"vmid": "231"}), "231")
        st, _, body = self.sim.call("GET", "/cluster/nextid", {"vmid": "230"})
        self.assertEqual(body["errors"]["vmid"], "VM 230 already exists")

    def test_nodes_storage_download(self):
        nodes = self.sim.ok("GET", "/nodes")
        self.assertEqual(sorted(n["node"] for n in nodes), ["pve1", "pve2", "pve3"])
        url = "https://factory.example/image/abc/v1.12.0/metal-amd64.iso"
        p = {"url": url, "content": "iso", "filename": "talos-abc.iso"}
        upid = self.sim.ok("POST", "/nodes/pve2/storage/local/download-url", p)
        self.assertEqual(upid.split(":")[5], "download")
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        isos = self.sim.ok("GET", "/nodes/pve2/storage/local/content", {"content": "iso"})
        self.assertIn("local:iso/talos-abc.iso", [v["volid"] for v in isos])
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve2/storage/local/download-url", p))
        self.assertIn("refusing to override existing file", st["exitstatus"])
        st, _, body = self.sim.call("POST", "/nodes/pve2/storage/local/download-url", dict(p, filename="x.qcow2"))
        self.assertEqual(body["errors"]["filename"], "wrong file extension")
        st, reason, _ = self.sim.call("POST", "/nodes/pve2/storage/local-lvm/download-url", p)
        self.assertEqual(st, 500)

    def test_control_endpoint_and_knobs(self):
        st, _, body = self.sim.control("POST", "vm", {"vmid": 900, "node": "pve3", "status": "running",
                                                       "config": {"name": "foreign", "tags": "other"}})
        self.assertEqual(st, 200)
        res = self.sim.ok("GET", "/cluster/resources", {"type": "vm"})
        self.assertIn(900, [r["vmid"] for r in res])
        self.sim.control("POST", "knobs", {"task_fail": {"qmstart": "simulated start failure"}})
        try:
            self.create(240)
            st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/240/status/start"))
            self.assertEqual(st["exitstatus"], "simulated start failure")
        finally:
            self.sim.control("POST", "knobs", {"task_fail": {}})
        self.sim.control("POST", "knobs", {"error_rate": {"/cluster/nextid": 1.0}})
        try:
            st, reason, _ = self.sim.call("GET", "/cluster/nextid")
            self.assertEqual(st, 500)
        finally:
            self.sim.control("POST", "knobs", {"error_rate": {}})
        st, _, body = self.sim.control("GET", "requests")
        paths = [(r["method"], r["path"]) for r in body["data"]]
        self.assertIn(("GET", "/api2/json/cluster/nextid"), paths)
        st, _, body = self.sim.control("GET", "state")
        self.assertIn("900", body["data"]["vms"])

    def test_latency_and_dropped_connections(self):
        import http.client
        self.sim.control("POST", "knobs", {"latency": {"/version$": 0.3}})
        try:
            t0 = time.time()
            self.sim.ok("GET", "/version")
            self.assertGreaterEqual(time.time() - t0, 0.3)
        finally:
            self.sim.control("POST", "knobs", {"latency": 0})
        self.sim.control("POST", "knobs", {"drop_rate": {"/version$": 1.0}})
        try:
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                self.sim.call("GET", "/version")
        finally:
            self.sim.control("POST", "knobs", {"drop_rate": {}})
        st, _, body = self.sim.control("GET", "requests")
        self.assertEqual(body["data"][-1]["status"] if body["data"][-1]["path"].endswith("/version") else
                         [r for r in body["data"] if r["path"].endswith("/version")][-1]["status"], "dropped")
        st, _, _ = self.sim.control("POST", "knobs", {"no_such_knob": 1})
        self.assertEqual(st, 400)

    def test_stalled_client_does_not_block(self):
        import socket
        s = socket.create_connection(("127.0.0.1", self.sim.port))
        try:
            t0 = time.time()
            self.sim.ok("GET", "/version")
            self.assertLess(time.time() - t0, 5)
        finally:
            s.close()

    def test_acpi_ignored_shutdown_times_out(self):
        self.create(250)
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/250/status/start"))
        self.sim.control("POST", "vm", {"vmid": 250, "acpi_ignored": True})
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/250/status/shutdown", {"timeout": "5"}))
        self.assertEqual(st["exitstatus"], "VM quit/powerdown failed - got timeout")
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/250/status/shutdown",
                                            {"timeout": "5", "forceStop": "1"}))
        self.assertEqual(st["exitstatus"], "OK")
        self.assertEqual(self.sim.ok("GET", "/nodes/pve1/qemu/250/status/current")["status"], "stopped")


if __name__ == "__main__":
    unittest.main()
