"""metal.py's rules: the Image Factory serves only schematics it knows
(FACTS-metal.md §1), every compression of the one image, and a cut
download stops short; a server boots Talos only from a disk that starts
with the image's bytes (a partial write boots nothing), a fresh one into
maintenance mode, and a reboot stops what ran at its address."""
import hashlib
import json
import os
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

import metal


class FakeMgr:
    """What Metal needs of talos.Manager, without gRPC servers: boots
    never complete (boot_seconds is far away), so the result is what the
    disk decided."""

    def __init__(self):
        self.lock = threading.RLock()
        self.by_ip = {}
        self.nodes = {}
        self.boot_seconds = 3600.0
        self.later = []
        self.wiped = []   # nodes whose etcd data went with their disk

    def _later(self, seconds, fn):
        self.later.append((seconds, fn))

    def etcd_of(self, node):
        mgr = self

        class Etcd:
            def node_wiped(self, n):
                mgr.wiped.append(n.ip)
        return Etcd()


class FactoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.img = os.path.join(cls.dir, "image.raw")
        with open(cls.img, "wb") as f:
            f.write(os.urandom(200000))
        cls.f = metal.Factory(cls.img)
        cls.port = cls.f.serve(("127.0.0.1", 0))

    @classmethod
    def tearDownClass(cls):
        cls.f.shutdown()

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def url(self, sid, suffix=".zst", ver="v1.12.11"):
        return "/image/%s/%s/metal-amd64.raw%s" % (sid, ver, suffix)

    def test_vanilla_schematic_in_every_compression(self):
        with open(self.img, "rb") as f:
            raw = f.read()
        st, body = self.get(self.url(metal.VANILLA, ""))
        self.assertEqual((st, body), (200, raw))
        st, body = self.get(self.url(metal.VANILLA, ".zst"))
        self.assertEqual(st, 200)
        self.assertEqual(subprocess.run(["zstd", "-dc"], input=body, stdout=subprocess.PIPE).stdout, raw)
        st, body = self.get(self.url(metal.VANILLA, ".xz"))
        self.assertEqual(subprocess.run(["xz", "-dc"], input=body, stdout=subprocess.PIPE).stdout, raw)

    def test_unknown_schematic_is_404_until_posted(self):
        yaml = b"customization:\n    extraKernelArgs:\n        - console=ttyS0\n"
        sid = hashlib.sha256(yaml).hexdigest()
        st, _ = self.get(self.url(sid))
        self.assertEqual(st, 404)
        req = urllib.request.Request("http://127.0.0.1:%d/schematics" % self.port, data=yaml, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.status, 201)
        st, _ = self.get(self.url(sid))
        self.assertEqual(st, 200)

    def post(self, body):
        req = urllib.request.Request("http://127.0.0.1:%d/schematics" % self.port, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_schematic_id_is_the_hash_of_the_canonical_yaml(self):
        # FACTS.md §f: IDs of upstream test schematics, whatever the layout
        # (JSON, flow style) of the body POSTed
        st, r = self.post(b'{"customization": {"systemExtensions": {"officialExtensions": '
                          b'["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]}}}')
        self.assertEqual((st, r["id"]), (201, "613e1592b2da41ae5e265e8789429f22e121aab91cb4deb6bc3c0b6262961245"))
        self.assertEqual(r["schematic"], "customization:\n    systemExtensions:\n        officialExtensions:\n"
                         "            - siderolabs/iscsi-tools\n            - siderolabs/util-linux-tools\n")
        st, r = self.post(b"customization:\n  systemExtensions: {officialExtensions: [siderolabs/qemu-guest-agent]}\n")
        self.assertEqual(r["id"], "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515")
        st, r = self.post(b"customization: {}\n")
        self.assertEqual(r["id"], metal.VANILLA)
        st, r = self.post(b"{}")
        self.assertEqual(r["id"], metal.VANILLA)       # empty fields omitted

    def test_unknown_schematic_fields_are_refused(self):
        st, msg = self.post(b"customization:\n    extraKernelArgs: [a]\n    extensions: [x]\n")
        self.assertEqual(st, 400)
        self.assertIn("line 3: field extensions not found in type schematic.Customization", msg)
        st, msg = self.post(b"custom: {}\n")
        self.assertEqual(st, 400)
        self.assertIn("field custom not found in type schematic.Schematic", msg)

    def test_only_metal_raw_and_iso_paths(self):
        # boot ISOs too (FACTS.md section f), of known schematics only
        self.assertEqual(self.get("/image/%s/v1.12.11/metal-amd64.iso" % metal.VANILLA)[0], 200)
        self.assertEqual(self.get("/image/%s/v1.12.11/nocloud-amd64.iso" % metal.VANILLA)[0], 200)
        self.assertEqual(self.get("/image/%s/v1.12.11/metal-amd64.iso" % ("0" * 64))[0], 404)
        self.assertEqual(self.get("/image/%s/v1.12.11/metal-amd64.img" % metal.VANILLA)[0], 404)
        self.assertEqual(self.get("/image/%s/1.12.11/metal-amd64.raw.zst" % metal.VANILLA)[0], 404)

    def test_cut_download_is_short(self):
        with self.f.lock:
            self.f.cut_next = 1000
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, self.url(metal.VANILLA, "")),
                                        timeout=5) as r:
                body = r.read()
        except Exception as e:  # noqa: BLE001  IncompleteRead: what a client sees
            body = getattr(e, "partial", b"")
        self.assertEqual(len(body), 1000)
        # the next one is whole again
        self.assertEqual(len(self.get(self.url(metal.VANILLA, ""))[1]), 200000)


class IsoDownloadTest(unittest.TestCase):
    """Proxmox's download-url of a boot ISO from the simulated factory
    (labsim --factory-addr without an image): like the real factory, it
    serves only schematics it knows (FACTS-metal.md section 1), so the
    download task of an id never POSTed fails, and succeeds once it is."""

    @classmethod
    def setUpClass(cls):
        import harness
        cls.sim = harness.Labsim("--factory-addr", "127.0.0.1:0", "--no-talos")
        cls.base = cls.sim.ready["factory"]["url"]

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def download(self, sid, name):
        p = {"url": "%s/image/%s/v1.12.11/metal-amd64.iso" % (self.base, sid),
             "content": "iso", "filename": name}
        return self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/storage/local/download-url", p))

    def test_unknown_schematic_iso_download_fails_until_posted(self):
        body = b"customization:\n    extraKernelArgs:\n        - labsim-iso-test\n"
        sid = hashlib.sha256(body).hexdigest()
        st = self.download(sid, "talos-unknown.iso")
        self.assertNotEqual(st["exitstatus"], "OK")
        self.assertIn("HTTP 404 schematic not found", st["exitstatus"])
        isos = self.sim.ok("GET", "/nodes/pve1/storage/local/content", {"content": "iso"})
        self.assertNotIn("local:iso/talos-unknown.iso", [v["volid"] for v in isos])
        req = urllib.request.Request(self.base + "/schematics", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(json.load(r)["id"], sid)
        self.assertEqual(self.download(sid, "talos-known.iso")["exitstatus"], "OK")
        self.assertEqual(self.download(metal.VANILLA, "talos-vanilla.iso")["exitstatus"], "OK")
        gets = self.sim.control("GET", "factory")[2]["data"]["gets"]
        self.assertEqual([g["status"] for g in gets if g.get("by") == "proxmox"], [404, 200, 200])


class MetalBootTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.img = os.path.join(self.dir, "image.raw")
        self.raw = os.urandom(50000)
        with open(self.img, "wb") as f:
            f.write(self.raw)
        self.mgr = FakeMgr()
        self.m = metal.Metal(self.mgr, metal.Factory(self.img))

    def disk(self, name, content, size=1 << 20):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(content)
            f.truncate(size)
        return p

    def test_blank_disk_boots_nothing(self):
        self.assertEqual(self.m.boot("127.0.71.10", self.disk("blank", b"")), "no-talos")
        self.assertEqual(self.mgr.by_ip, {})
        self.assertEqual(self.mgr.later, [])

    def test_partial_image_boots_nothing(self):
        self.assertEqual(self.m.boot("127.0.71.10", self.disk("half", self.raw[:25000])), "no-talos")
        self.assertEqual(self.mgr.by_ip, {})

    def test_missing_disk_boots_nothing(self):
        self.assertEqual(self.m.boot("127.0.71.10", os.path.join(self.dir, "nosuch")), "no-talos")

    def test_written_disk_boots_maintenance(self):
        d = self.disk("good", self.raw)
        self.assertEqual(self.m.boot("127.0.71.10", d), "maintenance")
        n = self.mgr.by_ip["127.0.71.10"]
        self.assertEqual((n.state, n.config), ("booting", None))
        self.assertEqual(len(self.mgr.later), 1)

    def test_installed_disk_boots_installed_and_other_disk_stops_it(self):
        d = self.disk("good", self.raw)
        self.m.boot("127.0.71.10", d)
        n = self.mgr.by_ip["127.0.71.10"]
        n.config = {"machine": {}}          # what an applied config leaves on the disk
        self.assertEqual(self.m.boot("127.0.71.10", d), "installed")
        # the disk overwritten with something else: the machine is gone
        with open(d, "r+b") as f:
            f.write(b"\0" * 100)
        self.assertEqual(self.m.boot("127.0.71.10", d), "no-talos")
        self.assertNotIn("127.0.71.10", self.mgr.by_ip)

    def test_rewritten_disk_boots_fresh_and_loses_etcd(self):
        # written again from the rescue system (apply --reinstall): the
        # same image bytes, but STATE and EPHEMERAL are gone, etcd's data
        # with them; the node boots into maintenance mode
        d = self.disk("good", self.raw)
        self.m.boot("127.0.71.10", d)
        n = self.mgr.by_ip["127.0.71.10"]
        n.config = {"machine": {"type": "controlplane"},
                    "cluster": {"controlPlane": {"endpoint": "https://127.0.71.10:6443"}}}
        self.assertEqual(self.m.boot("127.0.71.10", d), "installed")
        self.assertEqual(self.mgr.wiped, [])
        with open(d, "r+b") as f:
            f.write(self.raw)
        st = os.stat(d)
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        self.assertEqual(self.m.boot("127.0.71.10", d), "maintenance")
        self.assertIsNone(n.config)
        self.assertEqual(self.mgr.wiped, ["127.0.71.10"])


if __name__ == "__main__":
    unittest.main()
