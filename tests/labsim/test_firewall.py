"""The simulated node's ingress firewall (FACTS-metal.md §4): the rules of
its applied documents decide which source addresses reach apid (50000) and
the Kubernetes API (6443); a TRY that locks the client out is reverted."""
import socket
import ssl
import time
import unittest

import yaml

import firewall
from test_talos import TalosBase, have_talos_reference, NO_REFERENCE

BLOCK = {"apiVersion": "v1alpha1", "kind": "NetworkDefaultActionConfig", "ingress": "block"}


def rule(name, ports, subnets, proto="tcp"):
    ing = []
    for s in subnets:
        net, _, exc = s.partition(" except ")
        ing.append({"subnet": net, "except": exc} if exc else {"subnet": net})
    return {"apiVersion": "v1alpha1", "kind": "NetworkRuleConfig", "name": name,
            "portSelector": {"ports": ports, "protocol": proto}, "ingress": ing}


class RulesTest(unittest.TestCase):
    """firewall.admits on documents alone."""

    def test_no_documents_accept_everything(self):
        self.assertTrue(firewall.admits([], "198.51.100.7", 50000))

    def test_block_admits_only_listed_sources_on_listed_ports(self):
        docs = [BLOCK, rule("apid", [50000], ["198.51.100.0/24"])]
        self.assertTrue(firewall.admits(docs, "198.51.100.7", 50000))
        self.assertFalse(firewall.admits(docs, "203.0.113.7", 50000))
        self.assertFalse(firewall.admits(docs, "198.51.100.7", 6443))        # no rule: dropped
        self.assertFalse(firewall.admits(docs, "198.51.100.7", 50000, "udp"))  # other protocol

    def test_except_is_carved_out(self):
        docs = [BLOCK, rule("apid", [50000], ["10.0.0.0/8 except 10.9.0.0/16"])]
        self.assertTrue(firewall.admits(docs, "10.1.2.3", 50000))
        self.assertFalse(firewall.admits(docs, "10.9.2.3", 50000))

    def test_ranges_are_inclusive(self):
        docs = [BLOCK, rule("etcd", ["2379-2380"], ["10.0.0.1/32"])]
        self.assertTrue(firewall.admits(docs, "10.0.0.1", 2379))
        self.assertTrue(firewall.admits(docs, "10.0.0.1", 2380))
        self.assertFalse(firewall.admits(docs, "10.0.0.1", 2381))

    def test_accept_mode_drops_listed_ports_from_outside(self):
        docs = [{"apiVersion": "v1alpha1", "kind": "NetworkDefaultActionConfig", "ingress": "accept"},
                rule("apid", [50000], ["198.51.100.0/24"])]
        self.assertFalse(firewall.admits(docs, "203.0.113.7", 50000))
        self.assertTrue(firewall.admits(docs, "198.51.100.7", 50000))
        self.assertTrue(firewall.admits(docs, "203.0.113.7", 443))           # no rule: accepted

    def test_own_address_and_cluster_subnets(self):
        docs = [BLOCK]
        self.assertTrue(firewall.admits(docs, "192.0.2.5", 50000, own=("192.0.2.5",)))   # lo
        nets = firewall.cluster_nets({"cluster": {"network": {"podSubnets": ["10.244.0.0/16"]}}})
        self.assertTrue(firewall.admits(docs, "10.244.3.4", 10250, cluster_nets=nets))
        self.assertFalse(firewall.admits(docs, "10.245.3.4", 10250, cluster_nets=nets))


def answers(ip, port, src, timeout=1.0):
    """Whether ip:port answers a TLS ClientHello from source address src
    (an alert counts as an answer; silence is a dropped connection)."""
    try:
        s = socket.create_connection((ip, port), timeout, source_address=(src, 0))
    except OSError:
        return False
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s, do_handshake_on_connect=False)
        t.do_handshake()
        t.close()
        return True
    except socket.timeout:
        s.close()
        return False
    except (ssl.SSLError, OSError):
        s.close()
        return True


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class FirewallSimTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def config(self, ip, admin):
        data, main = self.make_config(endpoint="https://%s:6443" % ip)
        docs = [d for d in yaml.safe_load_all(data) if d]
        docs += [BLOCK, rule("apid", [50000], admin), rule("kube-apiserver", [6443], admin)]
        return yaml.safe_dump_all(docs, sort_keys=False).encode(), main

    def test_apid_and_kube_api_only_from_the_rules_sources(self):
        m = self.pb["machine"]
        node = self.boot_vm(750)
        ip = node["ip"]
        port = self.sim.ready["talos"]["port"]
        # maintenance mode: no firewall yet, anyone reaches 50000
        self.assertTrue(answers(ip, port, "127.0.75.201"))
        admin = ["127.0.75.200/32", "127.0.0.0/8 except 127.0.75.0/24"]
        data, cfg = self.config(ip, admin)
        ch = self.channel(node, node["maintenance_ca"].encode())
        self.call(ch, "/machine.MachineService/ApplyConfiguration", m.ApplyConfigurationRequest(data=data),
                  m.ApplyConfigurationResponse)
        ch.close()
        node = self.node_state(750, "running")
        self.assertTrue(answers(ip, port, "127.0.75.200"))
        self.assertTrue(answers(ip, port, "127.0.0.1"))
        self.assertFalse(answers(ip, port, "127.0.75.201"))     # in 127/8 but excepted
        self.assertTrue(answers(ip, port, ip))                   # the node itself (lo)
        ch = self.admin(node, cfg)
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        k8s = self.sim.ready["kubernetes"]["port"]
        deadline = time.time() + 10
        while time.time() < deadline and not answers(ip, k8s, "127.0.75.200"):
            time.sleep(0.1)
        self.assertTrue(answers(ip, k8s, "127.0.75.200"))
        self.assertFalse(answers(ip, k8s, "127.0.75.202"))

        # a TRY that leaves this client out: new connections from it are
        # dropped, an established one keeps working; reverted after the
        # timeout, it reaches the node again
        c = self.pb["common"]
        held = self.admin(node, cfg)
        self.call(held, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse)
        new, _ = self.config(ip, ["127.0.75.200/32"])
        r = self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=new, mode=m.ApplyConfigurationRequest.TRY,
                                                  try_mode_timeout=c.Duration(seconds=2)),
                      m.ApplyConfigurationResponse)
        self.assertEqual(r.messages[0].mode, m.ApplyConfigurationRequest.TRY)
        self.assertFalse(answers(ip, port, "127.0.0.1"))
        self.assertTrue(answers(ip, port, "127.0.75.200"))
        self.call(held, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse)
        held.close()
        ch.close()
        time.sleep(2.5)
        n = self.node_state(750, "running")
        self.assertEqual((n["reverts"], n["trying"]), (1, False))
        self.assertTrue(answers(ip, port, "127.0.0.1"))


if __name__ == "__main__":
    unittest.main()
