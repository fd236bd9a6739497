"""The etcd model's rules (etcd.py), one test each, driven directly with a
manual clock; test_talos_etcd.py drives the same through the Talos API."""
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcd  # noqa: E402


class FakeNode:
    def __init__(self, name, ip):
        self.name = name
        self.ip = ip
        self.state = "running"
        self.etcd_member = None
        self.etcd_joining = False

    def hostname(self):
        return self.name


class Clock:
    def __init__(self):
        self.pending = []

    def later(self, seconds, fn):
        self.pending.append(fn)

    def run(self, rounds=10):
        for _ in range(rounds):
            todo, self.pending = self.pending, []
            for fn in todo:
                fn()


class EtcdModelTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.lost = []
        self.e = etcd.Etcd(self.clock.later, dump=lambda: {"cluster": "c", "objects": [["k", 1]]},
                           on_lost=lambda: self.lost.append(True))
        self.n = [FakeNode("cp-%d" % i, "127.0.0.%d" % (10 + i)) for i in range(1, 4)]

    def three(self):
        self.e.bootstrap(self.n[0])
        for n in self.n[1:]:
            self.e.node_up(n)
        self.clock.run()
        self.assertEqual(sorted((m.name, m.learner) for m in self.e.members.values()),
                         [("cp-1", False), ("cp-2", False), ("cp-3", False)])

    def err(self, fn, *a):
        with self.assertRaises(etcd.EtcdError) as cm:
            fn(*a)
        return cm.exception

    def test_bootstrap_one_member_leads_and_only_once(self):
        m = self.e.bootstrap(self.n[0])
        self.assertEqual(self.e.leader, m.id)
        self.assertEqual([x.name for x in self.e.member_list(self.n[0])], ["cp-1"])
        x = self.err(self.e.bootstrap, self.n[1])
        self.assertEqual((x.code, x.msg), ("ALREADY_EXISTS", "etcd data directory is not empty"))

    def test_join_as_learner_unnamed_then_started_then_voter(self):
        self.e.bootstrap(self.n[0])
        self.e.node_up(self.n[1])
        m = self.e.member_of(self.n[1])
        self.assertIsNotNone(m)
        self.assertEqual((m.name, m.learner), ("", True))
        self.clock.run(1)
        self.assertEqual((m.name, m.learner), ("cp-2", True))
        self.clock.run(1)
        self.assertEqual((m.name, m.learner), ("cp-2", False))

    def test_no_join_without_quorum(self):
        self.three()
        self.n[1].state = self.n[2].state = "off"
        n4 = FakeNode("cp-4", "127.0.0.14")
        self.e.node_up(n4)
        self.clock.run(1)
        self.assertIsNone(self.e.member_of(n4))
        self.n[1].state = "running"
        self.clock.run()
        self.assertIsNotNone(self.e.member_of(n4))

    def test_leader_moves_with_quorum_none_without(self):
        self.three()
        first = self.e.leader
        self.e.members[first].node.state = "off"
        self.e.settle()
        self.assertNotIn(self.e.leader, (0, first))
        self.assertTrue(self.e.has_quorum())
        for n in self.n:
            n.state = "off"
        self.n[0].state = "running"
        self.e.settle()
        self.assertEqual(self.e.leader, 0)
        self.assertFalse(self.e.has_quorum())

    def test_member_list_needs_a_leader_unless_local(self):
        self.three()
        self.n[1].state = self.n[2].state = "off"
        x = self.err(self.e.member_list, self.n[0])
        self.assertEqual((x.code, x.msg), ("UNAVAILABLE", "etcdserver: no leader"))
        self.assertEqual(len(self.e.member_list(self.n[0], query_local=True)), 3)

    def test_member_list_only_on_a_running_member(self):
        self.e.bootstrap(self.n[0])
        x = self.err(self.e.member_list, self.n[1])
        self.assertEqual(x.code, "FAILED_PRECONDITION")

    def test_remove_unknown_is_not_found(self):
        self.three()
        x = self.err(self.e.remove_member, self.n[0], 12345)
        self.assertEqual((x.code, x.msg), ("NOT_FOUND", "etcdserver: member not found"))

    def test_remove_refused_below_quorum(self):
        self.three()
        self.n[2].state = "off"
        # removing a started member of 3 with one down leaves 1 started of 2
        x = self.err(self.e.remove_member, self.n[0], self.n[1].etcd_member)
        self.assertEqual((x.code, x.msg), ("FAILED_PRECONDITION", etcd.NOT_ENOUGH))
        # removing the down one is fine
        self.e.remove_member(self.n[0], self.n[2].etcd_member)
        self.assertEqual(len(self.e.members), 2)

    def test_remove_last_member_refused(self):
        self.e.bootstrap(self.n[0])
        x = self.err(self.e.leave, self.n[0])
        self.assertEqual(x.msg, etcd.NOT_ENOUGH)
        self.assertEqual(len(self.e.members), 1)

    def test_removed_member_does_not_rejoin(self):
        self.three()
        self.e.remove_member(self.n[0], self.n[2].etcd_member)
        self.e.node_up(self.n[2])
        self.clock.run()
        self.assertEqual(len(self.e.members), 2)
        self.assertIsNone(self.e.member_of(self.n[2]))

    def test_leave_really_leaves_and_a_reboot_joins_anew(self):
        self.three()
        old = self.n[2].etcd_member
        self.e.leave(self.n[2])
        self.assertNotIn(old, self.e.members)
        self.assertEqual(sorted(m.name for m in self.e.member_list(self.n[0])), ["cp-1", "cp-2"])
        self.assertIsNone(self.n[2].etcd_member)
        self.e.leave(self.n[2])     # not a member any more: nothing to do
        self.e.node_up(self.n[2])
        self.clock.run()
        self.assertNotIn(self.n[2].etcd_member, (None, old))

    def test_leave_refused_without_leader(self):
        self.three()
        self.n[0].state = self.n[1].state = "off"
        x = self.err(self.e.leave, self.n[2])
        self.assertEqual(x.msg, "etcdserver: no leader")

    def test_forfeit(self):
        self.e.bootstrap(self.n[0])
        x = self.err(self.e.forfeit, self.n[0])
        self.assertEqual(x.code, "FAILED_PRECONDITION")
        for n in self.n[1:]:
            self.e.node_up(n)
        self.clock.run()
        lead = self.e.leader
        other = next(n for n in self.n if n.etcd_member != lead)
        self.assertEqual(self.e.forfeit(other), "")
        self.assertEqual(self.e.leader, lead)
        leader_node = next(n for n in self.n if n.etcd_member == lead)
        new = self.e.forfeit(leader_node)
        self.assertEqual(len(new), 16)
        self.assertEqual(int(new, 16), self.e.leader)
        self.assertNotEqual(self.e.leader, lead)

    def test_status(self):
        self.three()
        st = self.e.status(self.n[1])
        self.assertEqual((st["member_id"], st["leader"], st["is_learner"]),
                         (self.n[1].etcd_member, self.e.leader, False))
        self.assertEqual(st["db_size"] % 512, 32)

    def test_snapshot_format_and_hash(self):
        self.e.bootstrap(self.n[0])
        blob = self.e.snapshot(self.n[0])
        self.assertEqual(len(blob) % 512, 32)
        self.assertEqual(hashlib.sha256(blob[:-32]).digest(), blob[-32:])
        self.assertEqual(etcd.decode_snapshot(blob)["objects"], [["k", 1]])
        bad = blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]
        x = self.err(etcd.decode_snapshot, bad)
        self.assertIn("expected sha256", x.msg)
        x = self.err(etcd.decode_snapshot, blob[:-1])
        self.assertEqual(x.msg, "sha256 checksum not found")
        # a raw db copy (no trailer) only with the skip
        raw = blob[:-32]
        self.err(etcd.decode_snapshot, raw)
        self.assertEqual(etcd.decode_snapshot(raw, skip_hash_check=True)["objects"], [["k", 1]])

    def test_data_lost_with_every_member_disk(self):
        self.three()
        self.e.node_wiped(self.n[0])
        self.e.node_wiped(self.n[1])
        self.assertEqual(self.lost, [])
        self.assertEqual(len(self.e.members), 3)   # wiped members stay listed
        self.e.node_wiped(self.n[2])
        self.assertEqual(self.lost, [True])
        self.assertFalse(self.e.bootstrapped())
        self.e.bootstrap(self.n[0])               # a fresh cluster may start


class KubeDumpTest(unittest.TestCase):
    def test_round_trip(self):
        import threading

        class Cl:
            lock = threading.RLock()
            objects = {("v1", "configmaps", "default", "a"): {"metadata": {"name": "a"}, "data": {"x": "1"}}}
            applied = {("v1", "configmaps", "default", "a"): {"strata": ("Apply", {"data": {"x": "1"}})}}
            cilium = None
            crd_types = {}

            def secs(self, k, d):
                return d
        src = Cl()
        d = etcd.decode_snapshot(etcd.encode_snapshot(etcd.kube_dump(src)))
        dst = Cl()
        dst.objects, dst.applied = {}, {}
        etcd.kube_load(dst, d)
        self.assertEqual(dst.objects, src.objects)
        self.assertEqual(dst.applied, src.applied)


if __name__ == "__main__":
    unittest.main()
