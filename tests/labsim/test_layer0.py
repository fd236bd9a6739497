"""Layer 0 of the simulator (pve_layer0.py): per-path privileges and
/access/permissions, bridges with VLAN awareness, storage visibility and
enabled, node resources. Each test fails when its rule is removed
(mutate.py)."""
import unittest
import uuid

from harness import LabsimCase

VM = {"name": "n1", "cores": "2", "memory": "2048", "scsi0": "local-lvm:10",
      "net0": "virtio,bridge=vmbr0", "tags": "strata"}

ACL = {
    "/vms": {"privs": ["VM.Audit", "VM.Allocate", "VM.Config.CPU", "VM.Config.Memory",
                       "VM.Config.Disk", "VM.Config.Network", "VM.Config.Options"], "propagate": 1},
    "/storage/local-lvm": {"privs": ["Datastore.AllocateSpace"], "propagate": 1},
    "/storage": {"privs": ["Datastore.Audit"], "propagate": 0},
    "/sdn/zones/localnetwork/vmbr0": {"privs": ["SDN.Use"], "propagate": 1},
}


class Layer0Test(LabsimCase):
    secret = str(uuid.uuid4())
    TOKENS = [{"id": "root@pam!strata", "secret": str(uuid.uuid4()), "privs": ["*"]},
              {"id": "strata@pve!acl", "secret": secret, "acl": ACL},
              {"id": "strata@pve!one", "secret": secret,
               "acl": {"/vms/1501": {"privs": ["VM.Audit"], "propagate": 1}}}]
    acl = "PVEAPIToken=strata@pve!acl=" + secret

    def as_acl(self, method, path, params=None):
        return self.sim.call(method, path, params, auth=self.acl)

    # --- /access/permissions (FACTS.md §9)
    def test_node_vm_index(self):
        # GET /nodes/{node}/qemu (apidata.json): the node's VMs the caller
        # may VM.Audit, each with its QEMU process status as of now (a
        # VM just started reads running, where /cluster/resources still
        # lags, FACTS.md §4)
        for vmid, node in ((1501, "pve1"), (1502, "pve1"), (1503, "pve2")):
            self.sim.control("POST", "vm", {"vmid": vmid, "node": node, "config": {"name": "idx%d" % vmid}})
        self.sim.control("POST", "vm", {"vmid": 1502, "status": "running"})
        rows = {e["vmid"]: e for e in self.sim.ok("GET", "/nodes/pve1/qemu")}
        self.assertNotIn(1503, rows)
        self.assertEqual(rows[1501]["status"], "stopped")
        self.assertEqual(rows[1502]["status"], "running")
        self.assertIn("pid", rows[1502])
        self.assertNotIn("pid", rows[1501])
        self.sim.control("POST", "vm", {"vmid": 1502, "status": "stopped"})
        self.assertEqual({e["vmid"]: e["status"] for e in self.sim.ok("GET", "/nodes/pve1/qemu")}[1502],
                         "stopped")
        one = "PVEAPIToken=strata@pve!one=" + self.secret
        st, _, body = self.sim.call("GET", "/nodes/pve1/qemu", auth=one)
        self.assertEqual(st, 200, body)
        self.assertEqual([e["vmid"] for e in body["data"]], [1501])

    def test_permissions_per_path(self):
        st, _, body = self.as_acl("GET", "/access/permissions", {"path": "/vms/1234"})
        self.assertEqual(st, 200, body)
        got = body["data"]["/vms/1234"]
        self.assertEqual(got.get("VM.Allocate"), 1)          # propagated from /vms
        st, _, body = self.as_acl("GET", "/access/permissions", {"path": "/storage/local"})
        self.assertEqual(body["data"], {"/storage/local": {}})  # /storage does not propagate
        st, _, body = self.as_acl("GET", "/access/permissions", {"path": "/storage"})
        self.assertEqual(body["data"], {"/storage": {"Datastore.Audit": 0}})
        st, _, body = self.as_acl("GET", "/access/permissions", {"path": "/storage/local-lvm"})
        self.assertEqual(body["data"], {"/storage/local-lvm": {"Datastore.AllocateSpace": 1}})

    def test_permissions_tree_and_root(self):
        st, _, body = self.as_acl("GET", "/access/permissions")
        self.assertEqual(sorted(body["data"]), sorted(ACL))
        root = self.sim.ok("GET", "/access/permissions", {"path": "/nodes/pve1"})
        self.assertEqual(root["/nodes/pve1"].get("Sys.AccessNetwork"), 1)
        self.assertEqual(root["/nodes/pve1"].get("VM.Allocate"), 1)

    def test_permissions_of_another_user(self):
        st, _, body = self.as_acl("GET", "/access/permissions", {"userid": "root@pam"})
        self.assertEqual(st, 403, body)
        self.assertIn("(/access, Sys.Audit)", body["message"])

    def test_checks_are_per_path(self):
        # VM.Allocate on /vms, not Datastore.AllocateSpace on local (no ACL there)
        p = dict(VM, vmid="401")
        st = self.sim.wait_task(self.as_acl("POST", "/nodes/pve1/qemu", p)[2]["data"])
        self.assertEqual(st["exitstatus"], "OK")
        # the same privilege name held elsewhere does not count on /storage/local
        st, _, body = self.as_acl("DELETE", "/nodes/pve1/storage/local/content/local:iso/talos-amd64.iso")
        self.assertEqual(st, 403, body)
        self.assertIn("Permission check failed (/storage/local, Datastore.Allocate)", body["message"])
        st, _, body = self.as_acl("GET", "/nodes/pve1/status")
        self.assertEqual(st, 403, body)
        self.assertIn("(/nodes/pve1, Sys.Audit)", body["message"])

    def test_name_level_checks_see_only_acl_privileges(self):
        # GET /pools lists pools only with Pool.Audit, which no ACL grants
        self.sim.control("POST", "pool", {"poolid": "l0"})
        st, _, body = self.as_acl("GET", "/pools")
        self.assertEqual((st, body["data"]), (200, []))
        self.assertIn("l0", [p["poolid"] for p in self.sim.ok("GET", "/pools")])

    # --- network (FACTS.md §8)
    def test_version_from_knob(self):
        # GET /version answers the nodes' version (one knob for both calls)
        self.sim.control("POST", "knobs", {"pve_version": "7.4-17"})
        try:
            self.assertEqual(self.sim.ok("GET", "/version")["version"], "7.4-17")
            self.assertEqual(self.sim.ok("GET", "/nodes/pve1/version")["version"], "7.4-17")
        finally:
            self.sim.control("POST", "knobs", {"pve_version": "8.4.1"})
        self.assertEqual(self.sim.ok("GET", "/version")["version"], "8.4.1")

    def test_bridges_vlan_aware(self):
        self.sim.control("POST", "knobs", {"bridges": {"pve2": ["vmbr0", "vmbr1"]},
                                           "bridge_vlan_aware": {"pve2": ["vmbr1"]}})
        try:
            got = self.sim.ok("GET", "/nodes/pve2/network", {"type": "any_bridge"})
            by = {e["iface"]: e for e in got}
            self.assertEqual(sorted(by), ["vmbr0", "vmbr1"])
            self.assertEqual(by["vmbr1"].get("bridge_vlan_aware"), 1)
            self.assertNotIn("bridge_vlan_aware", by["vmbr0"])
            self.assertEqual(by["vmbr0"]["bridge_ports"], "eno1")
            every = self.sim.ok("GET", "/nodes/pve2/network")
            self.assertIn("eth", [e["type"] for e in every])
        finally:
            self.sim.control("POST", "knobs", {"bridges": {}, "bridge_vlan_aware": {}})

    # --- storage (apidata.json GET /nodes/{node}/storage)
    def test_storage_visible_only_with_audit_or_allocatespace(self):
        st, _, body = self.as_acl("GET", "/nodes/pve1/storage")
        self.assertEqual([s["storage"] for s in body["data"]], ["local-lvm"])
        every = self.sim.ok("GET", "/nodes/pve1/storage")
        self.assertEqual(sorted(s["storage"] for s in every), ["local", "local-lvm"])

    def test_storage_disabled_and_space(self):
        self.sim.control("POST", "knobs", {"storage": {"pve3": {
            "local-lvm": {"enabled": 0}, "local": {"total": 10 << 30, "used": 9 << 30}}}})
        try:
            got = {s["storage"]: s for s in self.sim.ok("GET", "/nodes/pve3/storage")}
            self.assertEqual(got["local-lvm"]["enabled"], 0)
            self.assertNotIn("avail", got["local-lvm"])
            self.assertLess(got["local"]["avail"], 1 << 30)
            only = self.sim.ok("GET", "/nodes/pve3/storage", {"enabled": 1})
            self.assertEqual([s["storage"] for s in only], ["local"])
        finally:
            self.sim.control("POST", "knobs", {"storage": {"pve3": {
                "local-lvm": {"enabled": 1}, "local": {"total": 100 << 30, "used": 0}}}})

    # --- nodes
    def test_node_resources(self):
        self.sim.control("POST", "knobs", {"node_resources": {"pve3": {"maxcpu": 4, "maxmem": 8 << 30,
                                                                        "status": "offline"}}})
        try:
            by = {n["node"]: n for n in self.sim.ok("GET", "/nodes")}
            self.assertEqual((by["pve3"]["maxcpu"], by["pve3"]["maxmem"], by["pve3"]["status"]),
                             (4, 8 << 30, "offline"))
            self.assertEqual(by["pve1"]["status"], "online")
        finally:
            self.sim.control("POST", "knobs", {"node_resources": {"pve3": {"maxcpu": 16, "maxmem": 64 << 30,
                                                                            "status": "online"}}})


if __name__ == "__main__":
    unittest.main()
