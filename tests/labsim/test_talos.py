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
        self.check_kubernetes(kc, node)

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

    def check_kubernetes(self, kc, node):
        import base64
        import json
        import shutil
        import ssl
        import subprocess
        import http.client
        st = self.sim.control("GET", "state")[2]["data"]["talos"]["kubernetes"]
        (k8s,) = st.values()
        server = "https://%s:%d" % (k8s["host"], k8s["port"])
        kc["clusters"][0]["cluster"]["server"] = server
        path = os.path.join(self.sim.dir, "kubeconfig")
        with open(path, "w") as f:
            yaml.safe_dump(kc, f)
        user = kc["users"][0]["user"]
        files = {}
        for k, v in (("crt", user["client-certificate-data"]), ("key", user["client-key-data"]),
                     ("ca", kc["clusters"][0]["cluster"]["certificate-authority-data"])):
            files[k] = os.path.join(self.sim.dir, "k8s-" + k)
            with open(files[k], "wb") as f:
                f.write(base64.b64decode(v))
        ctx = ssl.create_default_context(cafile=files["ca"])
        ctx.load_cert_chain(files["crt"], files["key"])

        def req(method, url, body=None, ctype=None):
            c = http.client.HTTPSConnection(k8s["host"], k8s["port"], context=ctx, timeout=10)
            c.request(method, url, body=body, headers={"Content-Type": ctype} if ctype else {})
            r = c.getresponse()
            data = json.loads(r.read())
            c.close()
            return r.status, data

        self.assertEqual(req("GET", "/version")[1]["gitVersion"], "v1.34.1")
        _, nodes = req("GET", "/api/v1/nodes")
        self.assertEqual(nodes["items"][0]["status"]["conditions"][0]["status"], "False")
        kubectl = shutil.which("kubectl") or ("/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else None)
        if kubectl:
            out = subprocess.run([kubectl, "--kubeconfig", path, "get", "nodes"], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("NotReady", out.stdout)
        ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: cilium\n  namespace: kube-system\n"
        code, _ = req("PATCH", "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium?fieldManager=strata",
                      ds, "application/apply-patch+yaml")
        self.assertEqual(code, 200)
        code, obj = req("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium")
        self.assertEqual((code, obj["metadata"]["managedFields"][0]["manager"]), (200, "strata"))
        code, _ = req("PATCH", "/api/v1/namespaces/nope/configmaps/x?fieldManager=strata",
                      "apiVersion: v1\nkind: ConfigMap\n", "application/apply-patch+yaml")
        self.assertEqual(code, 404)
        _, nodes = req("GET", "/api/v1/nodes")
        self.assertEqual(nodes["items"][0]["status"]["conditions"][0]["status"], "True")
        if kubectl:
            out = subprocess.run([kubectl, "--kubeconfig", path, "get", "nodes"], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertRegex(out.stdout, r"talos-300\s+Ready")
        else:
            print("kubectl not found; skipped the kubectl part", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
