"""etcd through the simulated Talos API: membership calls, roles, the
control-plane-only refusals, a graceful Reset that leaves, and a snapshot
recovered onto a rebuilt control plane bringing the Kubernetes objects of
the snapshot back (FACTS-day2.md sections 2, 3, 4c, 4d)."""
import json
import ssl
import http.client
import os
import time
import unittest

from harness import NO_REFERENCE
from test_talos import TalosBase, have_talos_reference


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosEtcdTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def members(self, ch, **kw):
        m = self.pb["machine"]
        r = self.call(ch, "/machine.MachineService/EtcdMemberList", m.EtcdMemberListRequest(), m.EtcdMemberListResponse,
                      **kw)
        self.assertEqual(len(r.messages), 1)
        return r.messages[0].members

    def wait_members(self, ch, want, timeout=10):
        deadline = time.time() + timeout
        while True:
            ms = self.members(ch)
            got = sorted((x.hostname, x.is_learner) for x in ms)
            if got == want or time.time() > deadline:
                self.assertEqual(got, want)
                return ms
            time.sleep(0.05)

    def test_membership(self):
        import grpc
        m, c = self.pb["machine"], self.pb["common"]
        ep = "https://etcdm:6443"
        cfgs = {}
        nodes = {}
        for vmid, name in ((600, "cp-a"), (601, "cp-b"), (602, "cp-c")):
            data, cfgs[name] = self.make_config(endpoint=ep, hostname=name)
            nodes[name] = self.install(vmid, data)
        wk = self.install(603, self.make_config(worker=True, endpoint=ep, hostname="wk-a")[0])
        cfg = cfgs["cp-a"]
        a = self.admin(nodes["cp-a"], cfg)
        e = self.rpc_error(a, "/machine.MachineService/EtcdMemberList", m.EtcdMemberListRequest(),
                           m.EtcdMemberListResponse)
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)   # not bootstrapped: etcd not running
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ms = self.wait_members(a, [("cp-a", False), ("cp-b", False), ("cp-c", False)])
        for x in ms:
            self.assertEqual(list(x.peer_urls), ["https://%s:2380" % nodes[x.hostname]["ip"]])
            self.assertEqual(list(x.client_urls), ["https://%s:2379" % nodes[x.hostname]["ip"]])
        ids = {x.hostname: x.id for x in ms}
        st = self.state()["etcd"][ep]
        self.assertEqual(sorted(x["id"] for x in st["members"]), sorted("%016x" % i for i in ids.values()))

        # roles (section 2): reader and etcd:backup list and read status; only admin removes
        for orgs in (("os:reader",), ("os:etcd:backup",), ("os:operator",)):
            ch = self.admin(nodes["cp-b"], cfg, orgs=orgs)
            self.assertEqual(len(self.members(ch)), 3)
            s = self.call(ch, "/machine.MachineService/EtcdStatus", c.NoArgs(), m.EtcdStatusResponse)
            self.assertEqual(s.messages[0].member_status.member_id, ids["cp-b"])
            for meth, req, resp in (("EtcdRemoveMemberByID", m.EtcdRemoveMemberByIDRequest(member_id=ids["cp-c"]),
                                     m.EtcdRemoveMemberByIDResponse),
                                    ("EtcdLeaveCluster", m.EtcdLeaveClusterRequest(), m.EtcdLeaveClusterResponse),
                                    ("EtcdForfeitLeadership", m.EtcdForfeitLeadershipRequest(),
                                     m.EtcdForfeitLeadershipResponse)):
                e = self.rpc_error(ch, "/machine.MachineService/" + meth, req, resp)
                self.assertEqual(e.code(), grpc.StatusCode.PERMISSION_DENIED, meth)
            ch.close()
        rd = self.admin(nodes["cp-b"], cfg, orgs=("os:reader",))
        e = self.rpc_error(rd, "/machine.MachineService/EtcdSnapshot", m.EtcdSnapshotRequest(), c.Data, stream=True)
        self.assertEqual(e.code(), grpc.StatusCode.PERMISSION_DENIED)
        rd.close()

        # a worker: Unimplemented with the API's name
        w = self.admin(wk, cfg)
        for meth, req, resp, api in (
                ("EtcdMemberList", m.EtcdMemberListRequest(), m.EtcdMemberListResponse, "member list"),
                ("EtcdStatus", c.NoArgs(), m.EtcdStatusResponse, "etcd status"),
                ("EtcdLeaveCluster", m.EtcdLeaveClusterRequest(), m.EtcdLeaveClusterResponse, "etcd leave"),
                ("EtcdForfeitLeadership", m.EtcdForfeitLeadershipRequest(), m.EtcdForfeitLeadershipResponse,
                 "etcd forfeit leadership"),
                ("EtcdRemoveMemberByID", m.EtcdRemoveMemberByIDRequest(member_id=1), m.EtcdRemoveMemberByIDResponse,
                 "etcd remove member")):
            e = self.rpc_error(w, "/machine.MachineService/" + meth, req, resp)
            self.assertEqual((e.code(), e.details()),
                             (grpc.StatusCode.UNIMPLEMENTED, "%s is only available on control plane nodes" % api))
        w.close()

        # forfeit: "" on a non-leader; the leader hands over to a 16-hex-digit id
        lead = self.call(a, "/machine.MachineService/EtcdStatus", c.NoArgs(),
                         m.EtcdStatusResponse).messages[0].member_status.leader
        leader_name = next(n for n, i in ids.items() if i == lead)
        other = next(n for n in ids if n != leader_name)
        ch = self.admin(nodes[other], cfg)
        r = self.call(ch, "/machine.MachineService/EtcdForfeitLeadership", m.EtcdForfeitLeadershipRequest(),
                      m.EtcdForfeitLeadershipResponse)
        self.assertEqual(r.messages[0].member, "")
        ch.close()
        ch = self.admin(nodes[leader_name], cfg)
        r = self.call(ch, "/machine.MachineService/EtcdForfeitLeadership", m.EtcdForfeitLeadershipRequest(),
                      m.EtcdForfeitLeadershipResponse)
        self.assertRegex(r.messages[0].member, "^[0-9a-f]{16}$")
        self.assertNotEqual(int(r.messages[0].member, 16), lead)
        ch.close()

        # remove by an unknown id: NotFound; leave really leaves
        e = self.rpc_error(a, "/machine.MachineService/EtcdRemoveMemberByID",
                           m.EtcdRemoveMemberByIDRequest(member_id=1), m.EtcdRemoveMemberByIDResponse)
        self.assertEqual((e.code(), e.details()), (grpc.StatusCode.NOT_FOUND, "etcdserver: member not found"))
        ch = self.admin(nodes["cp-c"], cfg)
        self.call(ch, "/machine.MachineService/EtcdLeaveCluster", m.EtcdLeaveClusterRequest(),
                  m.EtcdLeaveClusterResponse)
        e = self.rpc_error(ch, "/machine.MachineService/EtcdStatus", c.NoArgs(), m.EtcdStatusResponse)
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
        ch.close()
        self.wait_members(a, [("cp-a", False), ("cp-b", False)])
        svc = {s.id: s for s in self.call(self.admin(nodes["cp-c"], cfg), "/machine.MachineService/ServiceList",
                                          c.NoArgs(), m.ServiceListResponse).messages[0].services}
        self.assertEqual(svc["etcd"].state, "Preparing")

        # a graceful Reset leaves etcd before it wipes: one member left, and
        # the last one may not leave
        ch = self.admin(nodes["cp-b"], cfg)
        self.call(ch, "/machine.MachineService/Reset", m.ResetRequest(graceful=True), m.ResetResponse)
        ch.close()
        self.wait_members(a, [("cp-a", False)])
        e = self.rpc_error(a, "/machine.MachineService/EtcdLeaveCluster", m.EtcdLeaveClusterRequest(),
                           m.EtcdLeaveClusterResponse)
        self.assertEqual(e.details(), "etcdserver: re-configuration failed due to not enough started members")
        a.close()

    def kube(self, ep, method, path, body=None, ctype="application/json"):
        k8s = self.state()["kubernetes"][ep]
        ctx = ssl.create_default_context(cafile=self.files["ca"])
        ctx.load_cert_chain(self.files["crt"], self.files["key"])
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection(k8s["host"], k8s["port"], context=ctx, timeout=5)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": ctype})
        r = conn.getresponse()
        out = r.status, json.loads(r.read() or b"{}")
        conn.close()
        return out

    def kube_raw(self, ep, path):
        k8s = self.state()["kubernetes"][ep]
        ctx = ssl.create_default_context(cafile=self.files["ca"])
        ctx.load_cert_chain(self.files["crt"], self.files["key"])
        ctx.check_hostname = False
        conn = http.client.HTTPSConnection(k8s["host"], k8s["port"], context=ctx, timeout=5)
        conn.request("GET", path)
        r = conn.getresponse()
        out = r.status, r.read()
        conn.close()
        return out

    def kube_files(self, cfg, prefix):
        ca_pem, ca, ca_key = self.talos.load_ca(cfg["cluster"]["ca"]["crt"], cfg["cluster"]["ca"]["key"])
        crt, key = self.talos.issue(ca, ca_key, "admin", orgs=["system:masters"], server=False)
        self.files = {}
        for n, b in (("ca", ca_pem), ("crt", crt), ("key", key)):
            self.files[n] = os.path.join(self.sim.dir, prefix + n)
            with open(self.files[n], "wb") as f:
                f.write(b)

    def test_no_quorum_api(self):
        """etcd without quorum: the Kubernetes API fails reads and writes
        with etcd's timeout and readyz fails on etcd; /version and
        discovery answer; with quorum back it serves again."""
        m = self.pb["machine"]
        ep = "https://etcdq:6443"
        cfgs, nodes = {}, {}
        for vmid, name in ((620, "cp-q1"), (621, "cp-q2"), (622, "cp-q3")):
            data, cfgs[name] = self.make_config(endpoint=ep, hostname=name)
            nodes[name] = self.install(vmid, data)
        a = self.admin(nodes["cp-q1"], cfgs["cp-q1"])
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        self.wait_members(a, [("cp-q1", False), ("cp-q2", False), ("cp-q3", False)])
        self.kube_files(cfgs["cp-q1"], "etcdq-")
        self.put_cm(ep, "q-before")
        self.assertEqual(self.kube_raw(ep, "/readyz"), (200, b"ok"))
        for vmid in (621, 622):
            self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/%d/status/stop" % vmid))
        self.assertFalse(self.state()["etcd"][ep]["has_quorum"])
        # the member still runs, its service is Running but not healthy
        # (Talos's health check is a quorum read); healthy again with quorum
        c = self.pb["common"]

        def etcd_svc():
            r = self.call(a, "/machine.MachineService/ServiceList", c.NoArgs(), m.ServiceListResponse)
            return {s.id: s for s in r.messages[0].services}["etcd"]
        svc = etcd_svc()
        self.assertEqual((svc.state, svc.health.healthy, svc.health.unknown), ("Running", False, False))
        self.assertEqual(svc.events.events[-1].msg, "Health check failed: context deadline exceeded")
        st, body = self.kube(ep, "GET", "/api/v1/namespaces/default/configmaps/q-before")
        self.assertEqual((st, body["reason"], body["message"]),
                         (500, "InternalError", "Internal error occurred: etcdserver: request timed out"))
        st, body = self.kube(ep, "PATCH", "/api/v1/namespaces/default/configmaps/q-after?fieldManager=test",
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "q-after"}},
                             ctype="application/apply-patch+yaml")
        self.assertEqual(st, 500)
        self.assertNotIn("v1 configmaps default/q-after", self.state()["kubernetes"][ep]["objects"])
        st, text = self.kube_raw(ep, "/readyz")
        self.assertEqual(st, 500)
        self.assertIn(b"[-]etcd failed: reason withheld", text)
        self.assertEqual(self.kube(ep, "GET", "/version")[0], 200)
        self.assertEqual(self.kube(ep, "GET", "/api/v1")[0], 200)
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/621/status/start"))
        deadline = time.time() + 10
        while not self.state()["etcd"][ep]["has_quorum"] and time.time() < deadline:
            time.sleep(0.05)
        svc = etcd_svc()
        self.assertEqual((svc.state, svc.health.healthy), ("Running", True))
        self.put_cm(ep, "q-after")
        a.close()

    def test_snapshot_size_knobs(self):
        """etcd_snapshot_bytes pads a snapshot with zero pages (still a
        valid one: pages plus its SHA-256, the objects restorable);
        etcd_snapshot_chunk_bytes sets the size of its messages."""
        m, c = self.pb["machine"], self.pb["common"]
        ep = "https://etcdk:6443"
        data, cfg = self.make_config(endpoint=ep, hostname="cp-k")
        a = self.admin(self.install(630, data), cfg)
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        self.sim.control("POST", "knobs", {"etcd_snapshot_bytes": 3 << 20, "etcd_snapshot_chunk_bytes": 1 << 20})
        try:
            msgs = list(self.call(a, "/machine.MachineService/EtcdSnapshot", m.EtcdSnapshotRequest(), c.Data,
                                  stream=True))
        finally:
            self.sim.control("POST", "knobs", {"etcd_snapshot_bytes": 0, "etcd_snapshot_chunk_bytes": 1024})
        blob = b"".join(d.bytes for d in msgs)
        self.assertEqual(len(blob), (3 << 20) + 32)
        self.assertEqual([len(d.bytes) for d in msgs[:3]], [1 << 20] * 3)
        self.assertEqual(self.talos.etcd.decode_snapshot(blob)["cluster"], cfg["cluster"]["clusterName"])
        a.close()

    def put_cm(self, ep, name):
        st, body = self.kube(ep, "PATCH", "/api/v1/namespaces/default/configmaps/%s?fieldManager=test" % name,
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                              "data": {"k": name}}, ctype="application/apply-patch+yaml")
        self.assertIn(st, (200, 201), body)

    def test_snapshot_recover(self):
        import grpc
        m, c = self.pb["machine"], self.pb["common"]
        ep = "https://etcdr:6443"
        data, cfg = self.make_config(endpoint=ep, hostname="cp-r")
        cp = self.install(610, data)
        a = self.admin(cp, cfg)
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        ca_pem, ca, ca_key = self.talos.load_ca(cfg["cluster"]["ca"]["crt"], cfg["cluster"]["ca"]["key"])
        crt, key = self.talos.issue(ca, ca_key, "admin", orgs=["system:masters"], server=False)
        self.files = {}
        for n, b in (("ca", ca_pem), ("crt", crt), ("key", key)):
            self.files[n] = os.path.join(self.sim.dir, "etcdr-" + n)
            with open(self.files[n], "wb") as f:
                f.write(b)
        self.put_cm(ep, "before")
        blob = b"".join(d.bytes for d in self.call(a, "/machine.MachineService/EtcdSnapshot",
                                                     m.EtcdSnapshotRequest(), c.Data, stream=True))
        self.assertEqual(len(blob) % 512, 32)
        self.put_cm(ep, "after")
        a.close()

        # the only control plane is destroyed: the data goes with its disk
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu/610/status/stop"))
        self.sim.wait_task(self.sim.ok("DELETE", "/nodes/pve1/qemu/610", {"purge": "1"}))
        self.assertNotIn(ep, self.state()["kubernetes"])
        self.assertFalse(self.state()["clusters"][ep]["bootstrapped"])

        # rebuilt with the same config: etcd is empty (Preparing)
        cp = self.install(611, data)
        a = self.admin(cp, cfg)
        svc = {s.id: s for s in self.call(a, "/machine.MachineService/ServiceList", c.NoArgs(),
                                          m.ServiceListResponse).messages[0].services}
        self.assertEqual(svc["etcd"].state, "Preparing")

        # Bootstrap{recover_etcd} without an upload: Bootstrap answers, the etcd service fails
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(recover_etcd=True), m.BootstrapResponse)
        svc = {s.id: s for s in self.call(a, "/machine.MachineService/ServiceList", c.NoArgs(),
                                          m.ServiceListResponse).messages[0].services}
        self.assertEqual(svc["etcd"].state, "Failed")
        self.assertNotIn(ep, self.state()["kubernetes"])

        # a snapshot whose SHA-256 does not match fails the same way
        up = a.stream_unary("/machine.MachineService/EtcdRecover", request_serializer=lambda x: x.SerializeToString(),
                            response_deserializer=m.EtcdRecoverResponse.FromString)
        bad = blob[:-1] + bytes([blob[-1] ^ 1])   # the SHA-256 trailer no longer matches
        up(iter([c.Data(bytes=bad[i:i + 4096]) for i in range(0, len(bad), 4096)]), timeout=5)
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(recover_etcd=True), m.BootstrapResponse)
        self.assertNotIn(ep, self.state()["kubernetes"])

        # the real snapshot, in 4096-byte pieces as talosctl sends it
        r = up(iter([c.Data(bytes=blob[i:i + 4096]) for i in range(0, len(blob), 4096)]), timeout=5)
        self.assertEqual(len(r.messages), 1)
        self.assertEqual(self.node_state(611, "running")["etcd_recover_bytes"], len(blob))
        self.call(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(recover_etcd=True), m.BootstrapResponse)
        objs = self.state()["kubernetes"][ep]["objects"]
        self.assertIn("v1 configmaps default/before", objs)
        self.assertNotIn("v1 configmaps default/after", objs)
        st, body = self.kube(ep, "GET", "/api/v1/namespaces/default/configmaps/before")
        self.assertEqual((st, body["data"]), (200, {"k": "before"}))
        self.assertIsNone(self.node_state(611, "running")["etcd_recover_bytes"])   # the file is consumed
        e = self.rpc_error(a, "/machine.MachineService/Bootstrap", m.BootstrapRequest(recover_etcd=True),
                           m.BootstrapResponse)
        self.assertEqual((e.code(), e.details()), (grpc.StatusCode.ALREADY_EXISTS, "etcd data directory is not empty"))
        self.assertEqual(len(self.members(a)), 1)
        a.close()


if __name__ == "__main__":
    unittest.main()
