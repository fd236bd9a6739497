"""Task listing and create with start=1 (FACTS.md §2, §4; apidata.json
/nodes/{node}/tasks). Each test fails when its rule is removed (mutate.py)."""
import time

from harness import LabsimCase

VM = {"name": "t1", "cores": "2", "memory": "2048", "scsi0": "local-lvm:10",
      "net0": "virtio=02:00:00:00:00:01,bridge=vmbr0", "boot": "order=scsi0"}


class TasksTest(LabsimCase):
    FIRST_VMID = 500

    def vmid(self):
        return str(super().vmid())

    def status(self, vmid):
        return self.sim.ok("GET", "/nodes/pve1/qemu/%s/status/current" % vmid)["status"]

    def test_create_start(self):
        vmid = self.vmid()
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid, start="1")))
        self.assertEqual((st["exitstatus"], self.status(vmid)), ("OK", "running"))

    def test_failed_autostart_is_only_a_warning(self):
        # more vCPUs than the node has: a qmstart would fail; at create
        # with start=1 the task still ends OK and the VM stays stopped
        vmid = self.vmid()
        upid = self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid, cores="32", start="1"))
        st = self.sim.wait_task(upid)
        self.assertEqual((st["exitstatus"], self.status(vmid)), ("OK", "stopped"))
        log = [x["t"] for x in self.sim.ok("GET", "/nodes/pve1/tasks/%s/log" % upid.replace("!", "%21"),
                                           {"start": "0", "limit": "0"})]
        self.assertTrue(any("vcpus" in t for t in log), log)

    def test_list_source(self):
        self.sim.control("POST", "knobs", {"task_seconds_by_type": {"qmstop": 3000}})
        try:
            vmid = self.vmid()
            self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid)))
            run = self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid)
            active = [t["upid"] for t in self.sim.ok("GET", "/nodes/pve1/tasks", {"source": "active"})]
            archive = [t for t in self.sim.ok("GET", "/nodes/pve1/tasks")]
            self.assertIn(run, active)
            self.assertNotIn(run, [t["upid"] for t in archive])
            self.assertTrue(archive and all(t.get("status") for t in archive), archive)
            every = [t["upid"] for t in self.sim.ok("GET", "/nodes/pve1/tasks", {"source": "all", "limit": "1000"})]
            self.assertTrue(set(active) < set(every))
        finally:
            self.sim.control("POST", "knobs", {"task_seconds_by_type": {}})

    def test_list_since(self):
        vmid = self.vmid()
        first = self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid))
        self.sim.wait_task(first)
        time.sleep(1.1)   # start times are epoch seconds
        later = self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid)
        since = int(later.split(":")[4], 16)
        got = [t["upid"] for t in self.sim.ok("GET", "/nodes/pve1/tasks",
                                               {"source": "all", "since": str(since), "limit": "1000"})]
        self.assertIn(later, got)
        self.assertNotIn(first, got)
        self.assertTrue(all(t["starttime"] >= since for t in self.sim.ok(
            "GET", "/nodes/pve1/tasks", {"source": "all", "since": str(since), "limit": "1000"})))

    def test_list_status_is_exit_status(self):
        self.sim.control("POST", "knobs", {"task_fail": {"qmstop": "VM quit failed - got timeout"}})
        try:
            vmid = self.vmid()
            self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid)))
            bad = self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid)
            self.sim.control("POST", "knobs", {"task_fail": {}})
            good = self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid)
            self.sim.wait_task(bad)
            self.sim.wait_task(good)
            seen = {t["upid"]: t.get("status") for t in self.sim.ok(
                "GET", "/nodes/pve1/tasks", {"source": "all", "limit": "1000"})}
            self.assertEqual(seen[bad], "VM quit failed - got timeout")
            self.assertEqual(seen[good], "OK")
        finally:
            self.sim.control("POST", "knobs", {"task_fail": {}})

    def test_list_limit_default_50(self):
        vmid = self.vmid()
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid)))
        last = None
        for _ in range(55):
            last = self.sim.ok("POST", "/nodes/pve1/qemu/%s/status/stop" % vmid)
        self.sim.wait_task(last)
        self.assertEqual(len(self.sim.ok("GET", "/nodes/pve1/tasks")), 50)
        self.assertGreater(len(self.sim.ok("GET", "/nodes/pve1/tasks", {"limit": "1000"})), 55)
        self.assertEqual(self.sim.ok("GET", "/nodes/pve1/tasks", {"limit": "1"})[0]["upid"], last)


class HoldTest(LabsimCase):
    """The test kill-point knobs task_hold and hold (labsim.py): the world
    stands still at a known point until the test lets go."""

    def state(self):
        return self.sim.control("GET", "state")[2]["data"]

    def test_task_hold_keeps_a_task_running(self):
        self.sim.control("POST", "knobs", {"task_hold": ["qmcreate"]})
        try:
            upid = self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid="701"))
            time.sleep(0.3)     # 15 times the task's duration (2 s x 0.01)
            st = self.sim.ok("GET", "/nodes/pve1/tasks/%s/status" % upid.replace("!", "%21"))
            self.assertEqual(st["status"], "running")
        finally:
            self.sim.control("POST", "knobs", {"task_hold": []})
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")

    def test_hold_waits_then_drops_the_call(self):
        import threading
        self.sim.control("POST", "knobs", {"hold": ["POST /qemu$"]})
        got = []

        def create():
            try:
                got.append(self.sim.call("POST", "/nodes/pve1/qemu", dict(VM, vmid="702")))
            except ConnectionError:
                got.append("dropped")
        t = threading.Thread(target=create, daemon=True)
        try:
            t.start()
            deadline = time.time() + 10
            while not self.state()["held"] and time.time() < deadline:
                time.sleep(0.02)
            self.assertEqual(self.state()["held"], ["POST /nodes/pve1/qemu"])
            self.assertTrue(t.is_alive())
            # a call the entry does not match is answered
            self.sim.ok("GET", "/nodes/pve1/qemu")
        finally:
            self.sim.control("POST", "knobs", {"hold": []})
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(got, ["dropped"])   # the connection closed, no reply
        self.assertNotIn("702", self.state()["vms"])
        self.assertEqual(self.state()["held"], [])
