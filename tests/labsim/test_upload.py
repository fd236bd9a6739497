"""The upload endpoint (pve_upload.py) and first boot from a cidata ISO."""
import hashlib
import io
import json
import time
import unittest

from harness import LabsimCase, NO_REFERENCE
from test_talos import TalosBase, have_talos_reference

UP = "/nodes/pve1/storage/local/upload"
NOCLOUD = "local:iso/talos-v1.12.11-376567988ad3-nocloud-amd64.iso"
METAL = "local:iso/talos-v1.12.11-376567988ad3-metal-amd64.iso"


def multipart(fields, file_name, data, file_field="filename", boundary="strataBoundary42"):
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                  % (boundary.encode(), k.encode(), v.encode()))
    if data is not None:
        out.write(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                  b"Content-Type: application/octet-stream\r\n\r\n" % (boundary.encode(), file_field.encode(),
                                                                       file_name.encode()))
        out.write(data + b"\r\n")
    out.write(b"--%s--\r\n" % boundary.encode())
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


def post_raw(sim, path, body, ctype, auth=True):
    return sim.call("POST", path, auth=auth, raw=(body, ctype))


def upload(sim, name, data, path=UP, auth=True, **fields):
    fields.setdefault("content", "iso")
    body, ctype = multipart(fields, name, data)
    return post_raw(sim, path, body, ctype, auth=auth)


def make_iso(files, label="cidata", rock_ridge=True, joliet=True):
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=label, rock_ridge="1.09" if rock_ridge else None,
            joliet=3 if joliet else None)
    for i, (name, data) in enumerate(files.items()):
        kw = {"iso_path": "/F%d.;1" % i}
        if rock_ridge:
            kw["rr_name"] = name
        if joliet:
            kw["joliet_path"] = "/" + name
        iso.add_fp(io.BytesIO(data), len(data), **kw)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def volumes(sim, storage="local", node="pve1"):
    return {v["volid"]: v for v in sim.ok("GET", "/nodes/%s/storage/%s/content" % (node, storage),
                                          {"content": "iso"})}


class UploadTest(LabsimCase):
    ARGS = ("--no-talos",)

    def test_storage_must_enable_the_content(self):
        self.sim.control("POST", "knobs", {"storage": {"pve1": {"local": {"content": ["vztmpl", "import"]}}}})
        try:
            st, reason, body = upload(self.sim, "x.iso", make_iso({"user-data": b"x"}))
            self.assertEqual((st, reason), (500, "storage 'local' does not support 'iso' content"), body)
        finally:
            self.sim.control("POST", "knobs", {"storage": {"pve1": {"local": {"content": [
                "iso", "vztmpl", "import", "snippets", "backup"]}}}})

    def test_upload_is_a_task_then_a_listed_volume_then_deleted(self):
        data = make_iso({"user-data": b"x" * 5000})
        # a task long enough (2 s) that a loaded machine lists before it ends
        self.sim.control("POST", "knobs", {"task_seconds_by_type": {"imgcopy": 200}})
        try:
            st, _, body = upload(self.sim, "strata-a.iso", data)
            self.assertEqual(st, 200, body)
            upid = body["data"]
            self.assertEqual(upid.split(":")[5], "imgcopy")
            self.assertEqual(upid.split(":")[6], "")
            self.assertNotIn("local:iso/strata-a.iso", volumes(self.sim))   # only when the task ends
        finally:
            self.sim.control("POST", "knobs", {"task_seconds_by_type": {}})
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        vol = volumes(self.sim)["local:iso/strata-a.iso"]
        self.assertEqual(vol["size"], len(data))
        self.assertEqual(vol["format"], "iso")
        self.assertNotIn("_data", vol)
        upid = self.sim.ok("DELETE", "/nodes/pve1/storage/local/content/local:iso/strata-a.iso")
        self.assertEqual(self.sim.wait_task(upid)["exitstatus"], "OK")
        self.assertNotIn("local:iso/strata-a.iso", volumes(self.sim))

    def test_request_never_records_the_file_bytes(self):
        self.sim.control("POST", "reset-requests")
        st, _, body = upload(self.sim, "strata-secret.iso", b"SECRET-CA-KEY" * 10)
        self.assertEqual(st, 200, body)
        self.sim.wait_task(body["data"])
        reqs = self.sim.control("GET", "requests")[2]["data"]
        self.assertNotIn("SECRET-CA-KEY", json.dumps(reqs))
        p = [r for r in reqs if r["path"].endswith("/upload")][0]["params"]
        self.assertEqual(p["filename"], "strata-secret.iso")
        self.assertRegex(p["tmpfilename"], r"^/var/tmp/pveupload-[0-9a-f]+$")

    def test_upload_overwrites_an_existing_file(self):
        for data in (b"first", b"second!"):
            st, _, body = upload(self.sim, "strata-over.iso", data)
            self.assertEqual(self.sim.wait_task(body["data"])["exitstatus"], "OK")
        self.assertEqual(volumes(self.sim)["local:iso/strata-over.iso"]["size"], 7)

    def test_not_multipart_is_refused(self):
        st, reason, _ = post_raw(self.sim, UP, b"content=iso&filename=a.iso", "application/x-www-form-urlencoded")
        self.assertEqual(st, 501)
        self.assertIn("not implemented", reason)

    def test_file_part_must_be_the_filename_field(self):
        body, ctype = multipart({"content": "iso"}, "a.iso", b"abc", file_field="file")
        st, reason, _ = post_raw(self.sim, UP, body, ctype)
        self.assertEqual((st, reason), (501, "upload failed"))
        body, ctype = multipart({"content": "iso", "filename": "a.iso"}, None, None)
        st, reason, _ = post_raw(self.sim, UP, body, ctype)
        self.assertEqual((st, reason), (501, "upload failed"))

    def test_content_must_be_iso_vztmpl_or_import(self):
        st, _, body = upload(self.sim, "a.yaml", b"x", content="snippets")
        self.assertEqual(st, 400)
        self.assertIn("enumeration", body["errors"]["content"])

    def test_iso_needs_iso_or_img_extension_and_names_are_normalised(self):
        st, _, body = upload(self.sim, "config.yaml", b"x")
        self.assertEqual(st, 400)
        self.assertEqual(body["errors"]["filename"], "wrong file extension")
        st, _, body = upload(self.sim, "dir/my cidata.ISO", b"x")
        self.assertEqual(st, 200, body)
        self.sim.wait_task(body["data"])
        self.assertIn("local:iso/my_cidata.ISO", volumes(self.sim))

    def test_filename_longer_than_255_is_refused(self):
        st, _, body = upload(self.sim, "a" * 253 + ".iso", b"x")
        self.assertEqual(st, 400)
        self.assertIn("filename", body["errors"])

    def test_storage_must_be_file_based(self):
        st, reason, _ = upload(self.sim, "a.iso", b"x", path="/nodes/pve1/storage/local-lvm/upload")
        self.assertEqual(st, 500)
        self.assertEqual(reason, "can't upload to storage type 'lvmthin'")

    def test_checksum_pairs_and_is_checked_in_the_task(self):
        st, _, body = upload(self.sim, "c.iso", b"abc", checksum="00")
        self.assertEqual(st, 400)
        self.assertIn("checksum-algorithm", body["errors"]["checksum"])
        st, _, body = upload(self.sim, "c.iso", b"abc", checksum="00", **{"checksum-algorithm": "sha256"})
        self.assertEqual(st, 200)
        t = self.sim.wait_task(body["data"])
        self.assertIn("checksum mismatch: got '%s' != expect '00'" % hashlib.sha256(b"abc").hexdigest(),
                      t["exitstatus"])
        self.assertNotIn("local:iso/c.iso", volumes(self.sim))
        st, _, body = upload(self.sim, "c.iso", b"abc", checksum=hashlib.sha256(b"abc").hexdigest(),
                             **{"checksum-algorithm": "sha256"})
        self.assertEqual(self.sim.wait_task(body["data"])["exitstatus"], "OK")

    def test_needs_datastore_allocate_template(self):
        ro = [t for t in self.sim.ready["tokens"] if t["id"] == "audit@pve!ro"][0]
        st, reason, _ = upload(self.sim, "p.iso", b"x", auth="PVEAPIToken=%s=%s" % (ro["id"], ro["secret"]))
        # the real message names path and privilege (RPCEnvironment, see pve_rules.py)
        self.assertEqual((st, reason), (403, "Permission check failed (/storage/local, Datastore.AllocateTemplate)"))

    def test_unknown_form_field_is_refused(self):
        st, _, body = upload(self.sim, "u.iso", b"x", bogus="1")
        self.assertEqual(st, 400)
        self.assertIn("bogus", body["errors"])


@unittest.skipUnless(have_talos_reference(), NO_REFERENCE + " (talos fixtures)")
class CidataBootTest(TalosBase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_sim("--iso", NOCLOUD, "--iso", METAL)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def put_iso(self, name, data):
        st, _, body = upload(self.sim, name, data)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.sim.wait_task(body["data"])["exitstatus"], "OK")
        return "local:iso/" + name

    def start(self, vmid, boot_iso, cidata_vol):
        p = {"vmid": str(vmid), "scsi0": "local-lvm:10", "net0": "virtio,bridge=vmbr0",
             "ide2": boot_iso + ",media=cdrom", "ide3": cidata_vol + ",media=cdrom",
             "agent": "1", "start": "1"}
        self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", p))

    def calls_to(self, ip):
        return [c for c in self.state()["calls"] if c["node"] == ip]

    def test_nocloud_with_machine_config_installs_without_maintenance(self):
        m, c = self.pb["machine"], self.pb["common"]
        data, cfg = self.make_config(hostname="ci-cp")
        vol = self.put_iso("strata-ci-cp.iso", make_iso({"user-data": data, "meta-data": b"instance-id: x\n"}))
        self.start(700, NOCLOUD, vol)
        seen = set()
        deadline = time.time() + 15
        while time.time() < deadline:
            n = [n for n in self.state()["nodes"] if n["vmid"] == 700]
            if n:
                seen.add(n[0]["state"])
                if n[0]["state"] == "running":
                    break
            time.sleep(0.02)
        self.assertIn("running", seen)
        self.assertNotIn("maintenance", seen)
        node = n[0]
        self.assertIsNone(node["maintenance_ca"])   # no maintenance server ever started
        self.assertEqual(node["platform"], "nocloud")
        self.assertIn("machine config from " + vol, node["first_boot"])
        ch = self.admin(node, cfg)
        r = self.call(ch, "/machine.MachineService/Version", c.NoArgs(), m.VersionResponse)
        ch.close()
        self.assertEqual(r.messages[0].platform.name, "nocloud")
        self.assertEqual([x for x in self.calls_to(node["ip"])
                          if x["method"].endswith("ApplyConfiguration")], [])

    def test_metal_iso_ignores_the_cidata_drive(self):
        data, _ = self.make_config(hostname="ci-metal")
        vol = self.put_iso("strata-ci-metal.iso", make_iso({"user-data": data}))
        self.start(701, METAL, vol)
        node = self.node_state(701, "maintenance")
        self.assertEqual(node["platform"], "metal")
        self.assertEqual(node["first_boot"], "the metal platform does not read cidata")

    def test_cloud_config_user_data_means_maintenance(self):
        vol = self.put_iso("strata-ci-cc.iso", make_iso({"user-data": b"#cloud-config\nusers: []\n"}))
        self.start(702, NOCLOUD, vol)
        node = self.node_state(702, "maintenance")
        self.assertIn("#cloud-config", node["first_boot"])

    def test_label_must_be_cidata(self):
        data, _ = self.make_config(hostname="ci-label")
        vol = self.put_iso("strata-ci-label.iso", make_iso({"user-data": data}, label="config2"))
        self.start(703, NOCLOUD, vol)
        node = self.node_state(703, "maintenance")
        self.assertEqual(node["first_boot"], "no cidata drive")

    def test_plain_iso9660_names_do_not_match_user_data(self):
        data, _ = self.make_config(hostname="ci-plain")
        vol = self.put_iso("strata-ci-plain.iso", make_iso({"user-data": data}, rock_ridge=False, joliet=False))
        self.start(704, NOCLOUD, vol)
        node = self.node_state(704, "maintenance")
        self.assertEqual(node["first_boot"], "no user-data on the cidata drive")

    def test_invalid_machine_config_is_an_error_not_maintenance(self):
        vol = self.put_iso("strata-ci-bad.iso", make_iso({"user-data": b"version: v1alpha1\nmachine: 7\n"}))
        self.start(705, NOCLOUD, vol)
        node = self.node_state(705, "error")
        self.assertIn("invalid", node["state"])

    def test_drive_over_3_mib_is_not_read(self):
        data, _ = self.make_config(hostname="ci-big")
        vol = self.put_iso("strata-ci-big.iso", make_iso({"user-data": data, "pad": b"\0" * (3 << 20)}))
        self.start(706, NOCLOUD, vol)
        node = self.node_state(706, "maintenance")
        self.assertEqual(node["first_boot"], "cidata drive larger than 3 MiB")


if __name__ == "__main__":
    unittest.main()
