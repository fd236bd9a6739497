"""The request replay check (pve_replay.py) against crafted logs: each bad
request must be caught, and good ones must pass."""
import json
import os
import subprocess
import tempfile
import unittest

import pve_replay
from harness import REF

APIDATA = os.path.join(REF, "proxmox", "apidata.json")
HERE = os.path.dirname(os.path.abspath(__file__))

GOOD_CREATE = {"vmid": "201", "name": "cp1", "cores": "2", "sockets": "1", "memory": "2048",
               "cpu": "host", "scsihw": "virtio-scsi-single",
               "scsi0": "local-lvm:10,discard=on,iothread=1,ssd=1",
               "ide2": "local:iso/talos-amd64.iso,media=cdrom",
               "net0": "virtio,bridge=vmbr0,firewall=0", "boot": "order=scsi0;ide2",
               "agent": "enabled=1", "serial0": "socket", "vga": "serial0", "ostype": "l26",
               "onboot": "1", "tags": "strata;cp", "description": "x", "pool": "lab"}


KEY = ("ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHl2DOrIkzFgbVR0pQyv5ERC8DPg0vSYSMzWpsTQVFfU%20me%40h"
       "%0Assh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHl2DOrIkzFgbVR0pQyv5ERC8DPg0vSYSMzWpsTQVFfU%20two%40h%0A")


def rec(method, path, params=None, body=""):
    if body == "":
        body = "form" if params and method in ("POST", "PUT") else None
    return {"method": method, "path": "/api2/json" + path, "params": params or {}, "body": body}


@unittest.skipUnless(os.path.exists(APIDATA), "apidata.json absent at %s" % APIDATA)
class ReplayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.routes = pve_replay.load_routes(APIDATA)

    def check(self, r):
        return pve_replay.check_request(self.routes, r)

    def bad(self, r, *words):
        v = self.check(r)
        self.assertTrue(v, "not caught: %r" % (r,))
        for w in words:
            self.assertIn(w, " ".join(v))
        return v

    def test_good_requests_pass(self):
        for r in (rec("POST", "/nodes/pve1/qemu", GOOD_CREATE),
                  rec("GET", "/cluster/resources", {"type": "vm"}),
                  rec("GET", "/pools"),
                  rec("POST", "/pools", {"poolid": "lab", "comment": "strata"}),
                  rec("POST", "/nodes/pve1/qemu/201/config",
                      {"ipconfig0": "ip=10.0.0.5/24,gw=10.0.0.1", "nameserver": "10.0.0.1 1.1.1.1",
                       "sshkeys": KEY, "cicustom": "user=local:snippets/u.yaml", "startup": "order=2,up=30",
                       "net1": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1,tag=20"}),
                  rec("PUT", "/nodes/pve1/qemu/201/resize", {"disk": "scsi0", "size": "20G"}),
                  rec("GET", "/nodes/pve1/tasks/UPID%3Apve1%3A0003A001%3A00000001%3A66A0B1C2"
                      "%3Aqmcreate%3A201%3Aroot%40pam%21strata%3A/status"),
                  rec("DELETE", "/nodes/pve1/storage/local/content/local:iso/x.iso")):
            self.assertEqual(self.check(r), [], r)

    def test_clone_cloudinit_agent(self):
        for r in (rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "201", "name": "web1", "full": "0",
                                                             "pool": "lab", "description": "x"}),
                  rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "202", "full": "1", "storage": "local-lvm",
                                                             "format": "raw", "target": "pve2"}),
                  rec("PUT", "/nodes/pve1/qemu/201/cloudinit"),
                  rec("GET", "/nodes/pve1/qemu/201/cloudinit"),
                  rec("GET", "/nodes/pve1/qemu/201/cloudinit/dump", {"type": "network"}, body=None),
                  rec("GET", "/nodes/pve1/qemu/201/agent/network-get-interfaces"),
                  rec("POST", "/nodes/pve1/qemu/201/agent/ping")):
            self.assertEqual(self.check(r), [], r)
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "201", "full": "true"}), "full", "boolean")
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "201", "linked": "1"}), "linked", "not defined")
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"name": "web1"}), "newid", "not optional")
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "99"}), "newid")
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "201", "name": "web_1"}), "name", "DNS")
        self.bad(rec("POST", "/nodes/pve1/qemu/9000/clone", {"newid": "201", "format": "img"}), "format", "enumeration")
        self.bad(rec("GET", "/nodes/pve1/qemu/201/cloudinit/dump", {"type": "vendor"}, body=None), "type", "enumeration")
        self.bad(rec("GET", "/nodes/pve1/qemu/201/cloudinit/dump"), "type", "not optional")
        self.bad(rec("PUT", "/nodes/pve1/qemu/201/cloudinit", {"force": "1"}), "force", "not defined")
        self.bad(rec("POST", "/nodes/pve1/qemu/201/agent/network-get-interfaces"), "method POST")

    def test_cloudinit_values(self):
        self.bad(rec("POST", "/nodes/pve1/qemu/201/config", {"sshkeys": "ssh-ed25519%20AAAA%20me%40host"}),
                 "sshkeys", "SSH public key validation error")
        self.bad(rec("POST", "/nodes/pve1/qemu/201/config", {"cicustom": "user=local:iso/seed.iso"}),
                 "cicustom", "not in the snippets directory")
        self.bad(rec("POST", "/nodes/pve1/qemu/201/config", {"cicustom": "user=seed.yaml"}), "cicustom", "volume")

    def test_unknown_path_and_method(self):
        self.bad(rec("GET", "/nodes/pve1/qemu/201/bogus"), "no such path")
        self.bad(rec("PATCH", "/nodes/pve1/qemu"), "method PATCH")
        self.bad({"method": "GET", "path": "/api2/extjs/nodes", "params": {}}, "not below")

    def test_unknown_missing_and_types(self):
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, bogus="1")), "bogus", "not defined")
        p = dict(GOOD_CREATE)
        del p["vmid"]
        self.bad(rec("POST", "/nodes/pve1/qemu", p), "vmid", "not optional")
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, onboot="true")), "boolean")
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, cores="two")), "integer")
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, cores="0")), "minimum")
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, ostype="linux")), "enumeration")
        # index outside FACTS.md §5's range
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, scsi31="local-lvm:1")), "scsi31")

    def test_repeated_key(self):
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, tags=["a", "b"])), "ARRAY")

    def test_named_formats(self):
        for k, v, word in (("name", "bad_name", "DNS"),
                           ("tags", "ok;Bad Tag!", "tag"),
                           ("pool", "a/b/c/d", "pool"),
                           ("ipconfig0", "ip=10.0.0.5", "ip"),
                           ("ipconfig0", "gw=10.0.0.1", "required by 'ip'"),
                           ("ipconfig0", "ip=10.0.0.5/4", "ip"),
                           ("sshkeys", "ssh-ed25519 AAAA me@host", "urlencoded"),
                           ("nameserver", "10.0.0.1,not_a_name!", "address"),
                           ("boot", "order=scsi0;efidisk0", "boot device"),
                           ("boot", "order=scsi0;floppy", "boot device"),
                           ("startup", "order=first", "order"),
                           ("net0", "virtio=BD:24:11:AA:BB:CC,bridge=vmbr0", "unicast"),
                           ("net0", "virtio,bridge=vmbr0,bogus=1", "bogus"),
                           ("net0", "virtio,bridge=vmbr0,bridge=vmbr1", "duplicate"),
                           ("scsi0", "local-lvm:10,discard=yes", "discard"),
                           ("cpu", "host,flags=aes", "flags"),
                           ("hotplug", "disk,ram", "hotplug")):
            self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, **{k: v})), k, word)

    def test_unmodelled_format_is_a_violation(self):
        # a named format pve_formats.py does not know must not pass unchecked
        self.bad(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, affinity="0,5,8-11")),
                 "affinity", "not modelled")

    def test_body_on_delete_and_path_conflict(self):
        self.bad(rec("DELETE", "/nodes/pve1/qemu/201", {"purge": "1"}, body="form"), "body on DELETE")
        self.bad(rec("POST", "/nodes/pve1/qemu/201/config", {"vmid": "202", "cores": "2"}), "conflicting")

    def test_root_only_option(self):
        self.bad(rec("DELETE", "/nodes/pve1/qemu/201", {"skiplock": "1"}, body=None), "skiplock", "root-only")
        self.bad(rec("POST", "/nodes/pve1/qemu/201/status/stop", {"keepActive": "1"}), "keepActive")

    def test_cli_exit_status(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "requests.jsonl")
            with open(log, "w") as f:
                f.write(json.dumps(rec("POST", "/nodes/pve1/qemu", GOOD_CREATE)) + "\n")
            r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "pve_replay.py"), "--apidata", APIDATA, log],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("1 requests checked against apidata.json, 0 violations", r.stdout)
            with open(log, "a") as f:
                f.write(json.dumps(rec("POST", "/nodes/pve1/qemu", dict(GOOD_CREATE, tags=["a", "b"]))) + "\n")
            r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "pve_replay.py"), "--apidata", APIDATA, log],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("violation: POST /api2/json/nodes/pve1/qemu: tags:", r.stdout)
            self.assertIn("2 requests checked against apidata.json, 1 violations", r.stdout)
