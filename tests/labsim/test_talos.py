import io
import os
import sys
import tarfile
import time
import unittest
import urllib.parse

import yaml

from harness import Labsim, have_reference, NO_REFERENCE, REF, HERE

FIXTURE = os.path.join(REF, "talos", "fixtures", "stability", "v1.12", "base-controlplane.yaml")


def have_talos_reference():
    return have_reference() and os.path.exists(FIXTURE) and \
        os.path.exists(os.path.join(REF, "talos", "config.schema.json"))


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class TalosTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc  # noqa: F401
        cls.sim = Labsim("--talos-boot-seconds", "10", "--talos-install-seconds", "20")
        sys.path.insert(0, HERE)
        import talos
        cls.talos = talos
        cls.pb = talos.load_protos(cls.sim.dir)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def node_state(self, vmid, want, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            _, _, body = self.sim.control("GET", "state")
            for n in body["data"]["talos"]["nodes"]:
                if n["vmid"] == vmid and n["state"] == want:
                    return n
            time.sleep(0.05)
        self.fail("talos node %d never reached %s: %r" % (vmid, want, body["data"]["talos"]))

    def boot_vm(self, vmid):
        p = {"vmid": str(vmid), "scsi0": "local-lvm:10", "net0": "virtio,bridge=vmbr0",
             "ide2": "local:iso/talos-amd64.iso,media=cdrom", "agent": "1", "start": "1"}
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))
        return self.node_state(vmid, "maintenance")

    def channel(self, node, root, key=None, crt=None):
        import grpc
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=crt)
        return grpc.secure_channel("%s:%d" % (node["ip"], node["port"]), creds)

    def call(self, ch, method, req, resp_cls, stream=False, metadata=None):
        mk = ch.unary_stream if stream else ch.unary_unary
        fn = mk(method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=resp_cls.FromString)
        r = fn(req, timeout=5, metadata=metadata)
        return list(r) if stream else r

    def test_maintenance_apply_then_mtls(self):
        import grpc
        m, c = self.pb["machine"], self.pb["common"]
        node = self.boot_vm(300)
        self.assertTrue(node["ip"].startswith("127.0.10."))
        ifs = self.sim.ok("GET", "/nodes/pve1/qemu/300/agent/network-get-interfaces")
        self.assertEqual(ifs["result"][1]["ip-addresses"][0]["ip-address"], node["ip"])
        ch = self.channel(node, node["maintenance_ca"].encode())
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(cm.exception.details(), "API is not implemented in maintenance mode")
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=b"kind: HostnameConfig\n"), m.ApplyConfigurationResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with open(FIXTURE, "rb") as f:
            data = f.read()
        cfg = next(yaml.safe_load_all(data))
        bad = dict(cfg, machine=dict(cfg["machine"], bogusKey=1))
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=yaml.safe_dump(bad).encode()), m.ApplyConfigurationResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        r = self.call(ch, "/machine.MachineService/ApplyConfiguration",
                      m.ApplyConfigurationRequest(data=data), m.ApplyConfigurationResponse)
        self.assertEqual(len(r.messages), 1)
        ch.close()
        node = self.node_state(300, "running")

        ca_pem, ca, ca_key = self.talos.load_ca(cfg["machine"]["ca"]["crt"], cfg["machine"]["ca"]["key"])
        crt, key = self.talos.issue(ca, ca_key, "admin", orgs=["os:admin"], server=False)
        ch = self.channel(node, ca_pem, key, crt)
        v = self.call(ch, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse,
                      metadata=[("node", node["ip"])])
        self.assertEqual(v.messages[0].version.tag, "v1.12.11")
        self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        chunks = self.call(ch, "/machine.MachineService/Kubeconfig", c.NoArgs(), c.Data, stream=True)
        blob = b"".join(d.bytes for d in chunks)
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
            kc = yaml.safe_load(tf.extractfile("kubeconfig").read())
        self.assertEqual(kc["clusters"][0]["cluster"]["server"], cfg["cluster"]["controlPlane"]["endpoint"])
        ch.close()

        # a reader cert is authenticated but not authorized
        crt2, key2 = self.talos.issue(ca, ca_key, "reader", orgs=["os:reader"], server=False)
        ch = self.channel(node, ca_pem, key2, crt2)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/Bootstrap", m.BootstrapRequest(), m.BootstrapResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        ch.close()

        # a client cert from another CA is refused at the TLS layer
        other_pem, other_key = self.talos.issue(None, None, "other-ca")
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        oca = x509.load_pem_x509_certificate(other_pem)
        okey = serialization.load_pem_private_key(other_key, None)
        crt3, key3 = self.talos.issue(oca, okey, "admin", orgs=["os:admin"], server=False)
        ch = self.channel(node, ca_pem, key3, crt3)
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(ch, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        ch.close()


if __name__ == "__main__":
    unittest.main()
