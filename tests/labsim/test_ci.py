"""Proxmox's own cloud-init (pve_ci.py): ci* parameters, the drive's
contents, GET/PUT cloudinit and dump. One test per rule; each fails when
its rule is removed (mutate.py)."""
import hashlib
import os
import subprocess
import unittest
import urllib.parse

import yaml

from harness import LabsimCase

VM = {"name": "web1", "cores": "1", "memory": "1024", "scsi0": "local-lvm:4",
      "net0": "virtio=BC:24:11:0A:0B:0C,bridge=vmbr0", "agent": "enabled=1", "ide2": "local-lvm:cloudinit"}


def keypair(d, name):
    path = os.path.join(d, name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name + "@lab", "-f", path], check=True)
    with open(path + ".pub") as f:
        return f.read().strip()


def enc(s):
    return urllib.parse.quote(s, safe="")     # FACTS.md §6: encodeURIComponent


class CiTest(LabsimCase):
    TOKENS = [{"id": "root@pam!strata", "secret": "5d1e8a02-6c1b-4a7e-8f0e-3b2a1c9d8e71", "privs": ["*"]},
              {"id": "audit@pve!ro", "secret": "7c2f9b14-0d3e-4c5a-9b8f-1e2d3c4b5a69",
               "privs": ["VM.Audit", "Sys.Audit", "Datastore.Audit"]},
              {"id": "ops@pve!noci", "secret": "0b7c9a56-2f4e-4d0b-9f5c-7b1f0e2a9d11",
               "privs": ["VM.Audit", "VM.Config.Options", "VM.Config.Disk"]}]
    FIRST_VMID = 900

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key1 = keypair(cls.tmp, "k1")
        cls.key2 = keypair(cls.tmp, "k2")

    def create(self, **over):
        vmid = self.vmid()
        st = self.sim.wait_task(self.sim.ok("POST", "/nodes/pve1/qemu", dict(VM, vmid=vmid, **over)))
        self.assertEqual(st["exitstatus"], "OK", st)
        return vmid

    def path(self, vmid, rest=""):
        return "/nodes/pve1/qemu/%d%s" % (vmid, rest)

    def dump(self, vmid, t, auth=True):
        st, reason, body = self.sim.call("GET", self.path(vmid, "/cloudinit/dump"), {"type": t}, auth=auth)
        self.assertEqual(st, 200, (reason, body))
        return body["data"]

    def pending(self, vmid):
        return {e["key"]: e for e in self.sim.ok("GET", self.path(vmid, "/cloudinit"))}

    def vmstate(self, vmid):
        st, _, body = self.sim.control("GET", "state")
        return body["data"]["vms"][str(vmid)]

    def test_sshkeys_must_be_keys(self):
        bad = enc("ssh-ed25519 AAAAnotakey me@h")
        p = dict(VM, vmid=self.vmid(), sshkeys=bad)
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual((st, reason), (500, "SSH public key validation error"), body)
        two_one_bad = enc(self.key1 + "\n" + "ssh-rsa AAAAB3NzaC1yc2E x@y\n")
        vmid = self.create(sshkeys=enc(self.key1 + "\n" + self.key2 + "\n"))
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/config"), {"sshkeys": two_one_bad})
        self.assertEqual((st, reason), (500, "SSH public key validation error"))
        # stored, and returned, still URL-encoded
        self.assertEqual(self.sim.ok("GET", self.path(vmid, "/config"))["sshkeys"], enc(self.key1 + "\n" + self.key2 + "\n"))

    def test_sshkeys_encoded_once(self):
        # FACTS.md §6: encoded twice (%2520) decodes to a line with "%20": not a key
        twice = urllib.parse.quote(enc(self.key1), safe="")
        p = dict(VM, vmid=self.vmid(), sshkeys=twice)
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual((st, reason), (500, "SSH public key validation error"), body)
        p = dict(VM, vmid=self.vmid(), sshkeys=self.key1.replace(" ", "+"))    # '+' for space: not urlencoded
        st, reason, body = self.sim.call("POST", "/nodes/pve1/qemu", p)
        self.assertEqual((st, reason), (400, "Parameter verification failed."), body)
        vmid = self.create()
        self.sim.ok("PUT", self.path(vmid, "/config"), {"sshkeys": enc(self.key1)}, json_body=True)   # JSON: once

    def test_cloudinit_keys_need_their_privilege(self):
        vmid = self.create()
        tok = "PVEAPIToken=%s=%s" % ("ops@pve!noci", "0b7c9a56-2f4e-4d0b-9f5c-7b1f0e2a9d11")
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/config"), {"ciuser": "x"}, auth=tok)
        self.assertEqual((st, reason), (403, "Permission check failed (/vms/%d, VM.Config.Cloudinit)" % vmid))
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/config"), {"description": "x"}, auth=tok)
        self.assertEqual(st, 200, reason)

    def test_cipassword_hashed_and_masked(self):
        vmid = self.create(cipassword="s3cret")
        self.assertEqual(self.sim.ok("GET", self.path(vmid, "/config"))["cipassword"], "**********")
        stored = self.vmstate(vmid)["config"]["cipassword"]
        self.assertTrue(stored.startswith("$6$"), stored)
        self.assertIn("password: %s" % stored, self.dump(vmid, "user"))
        # a token without VM.Config.Cloudinit sees it masked
        ro = [t for t in self.sim.ready["tokens"] if t["id"] == "audit@pve!ro"][0]
        self.assertIn("password: **********", self.dump(vmid, "user", auth="PVEAPIToken=%s=%s" % (ro["id"], ro["secret"])))
        pre = "$6$abcdefgh$" + "x" * 20
        v2 = self.create(cipassword=pre)
        self.assertEqual(self.vmstate(v2)["config"]["cipassword"], pre)

    def test_dump_user_data(self):
        vmid = self.create(ciuser="ops", sshkeys=enc(self.key1), searchdomain="corp.example", ciupgrade=0)
        ud = self.dump(vmid, "user")
        self.assertTrue(ud.startswith("#cloud-config\n"))
        doc = yaml.safe_load(ud)
        self.assertEqual((doc["hostname"], doc["fqdn"], doc["user"], doc["manage_etc_hosts"]),
                         ("web1", "web1.corp.example", "ops", True))
        self.assertEqual(doc["ssh_authorized_keys"], [self.key1])
        self.assertEqual((doc["users"], doc["chpasswd"]), (["default"], {"expire": False}))
        self.assertNotIn("package_upgrade", doc)
        root = yaml.safe_load(self.dump(self.create(ciuser="root"), "user"))
        self.assertEqual((root["disable_root"], "users" in root, root["package_upgrade"]), (False, False, True))

    def test_dump_network_and_meta(self):
        vmid = self.create(ipconfig0="ip=10.20.0.5/24,gw=10.20.0.1", nameserver="10.20.0.2 10.20.0.3",
                           net1="virtio,bridge=vmbr0")
        nc = self.dump(vmid, "network")
        doc = yaml.safe_load(nc)
        self.assertEqual(doc["version"], 1)
        phys = [c for c in doc["config"] if c["type"] == "physical"]
        self.assertEqual(len(phys), 1)      # net1 has no ipconfig1: left out
        self.assertEqual((phys[0]["name"], phys[0]["mac_address"]), ("eth0", "bc:24:11:0a:0b:0c"))
        self.assertEqual(phys[0]["subnets"], [{"type": "static", "address": "10.20.0.5",
                                               "netmask": "255.255.255.0", "gateway": "10.20.0.1"}])
        ns = [c for c in doc["config"] if c["type"] == "nameserver"][0]
        self.assertEqual(ns["address"], ["10.20.0.2", "10.20.0.3"])
        self.assertNotIn("search", ns)
        ud = self.dump(vmid, "user")
        self.assertEqual(self.dump(vmid, "meta"), "instance-id: %s\n" % hashlib.sha1((ud + nc).encode()).hexdigest())
        # neither nameserver nor searchdomain: the host's (knob host_dns)
        host = yaml.safe_load(self.dump(self.create(ipconfig0="ip=dhcp"), "network"))
        self.assertEqual(host["config"][0]["subnets"], [{"type": "dhcp4"}])
        self.assertEqual(host["config"][1], {"type": "nameserver", "address": ["192.0.2.53"], "search": ["lab.example"]})

    def test_pending_until_regenerated(self):
        vmid = self.create(ciuser="a")
        self.assertEqual(self.pending(vmid)["ciuser"], {"key": "ciuser", "pending": "a"})   # never written
        self.assertIsNone(self.sim.ok("PUT", self.path(vmid, "/cloudinit")))
        self.assertEqual(self.pending(vmid)["ciuser"], {"key": "ciuser", "value": "a"})
        self.sim.ok("PUT", self.path(vmid, "/config"), {"ciuser": "b", "ipconfig0": "ip=10.1.0.9/24"})
        self.assertEqual(self.pending(vmid)["ciuser"], {"key": "ciuser", "value": "a", "pending": "b"})
        self.assertEqual(self.pending(vmid)["ipconfig0"], {"key": "ipconfig0", "pending": "ip=10.1.0.9/24"})
        self.sim.ok("PUT", self.path(vmid, "/config"), {"delete": "ciuser"})
        self.assertEqual(self.pending(vmid)["ciuser"], {"key": "ciuser", "value": "a", "delete": 1})
        self.sim.control("POST", "vm", {"vmid": vmid, "lock": "backup"})
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/cloudinit"))
        self.assertEqual((st, reason), (500, "VM is locked (backup)"))
        self.sim.control("POST", "vm", {"vmid": vmid, "lock": None})

    def test_clone_copies_the_drive(self):
        # FACTS-cloudinit.md §6: the clone's drive holds what the template's held
        tpl = self.create(ciuser="a")
        self.sim.ok("PUT", self.path(tpl, "/cloudinit"))
        self.sim.wait_task(self.sim.ok("POST", self.path(tpl, "/template")))
        newid = self.vmid()
        self.sim.wait_task(self.sim.ok("POST", self.path(tpl, "/clone"), {"newid": newid}))
        self.assertEqual(self.pending(newid)["ciuser"], {"key": "ciuser", "value": "a"})
        self.sim.ok("PUT", self.path(newid, "/config"), {"ciuser": "b"})
        self.assertEqual(self.pending(newid)["ciuser"], {"key": "ciuser", "value": "a", "pending": "b"})

    def test_start_regenerates_a_changed_drive(self):
        vmid = self.create(ciuser="a")
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/start")))
        self.assertIn("user: a\n", self.vmstate(vmid)["ci_files"]["user-data"])
        self.assertNotIn("pending", self.pending(vmid)["ciuser"])
        self.sim.ok("PUT", self.path(vmid, "/config"), {"ciuser": "b"})      # running: pending
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/reset")))
        self.assertIn("user: a\n", self.vmstate(vmid)["ci_files"]["user-data"])   # a reset does not
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/reboot")))
        self.assertIn("user: b\n", self.vmstate(vmid)["ci_files"]["user-data"])

    def test_cicustom_snippets(self):
        vmid = self.create(cicustom="user=local:iso/talos-amd64.iso")
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/cloudinit"))
        self.assertEqual((st, reason), (500, "local:iso/talos-amd64.iso is not in the snippets directory"))
        t = self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/start")))
        self.assertEqual(t["exitstatus"], "local:iso/talos-amd64.iso is not in the snippets directory")
        ud = "#cloud-config\npackages: [qemu-guest-agent]\n"
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local", "volid": "local:snippets/u.yaml",
                                            "content": "snippets", "format": "yaml", "data": ud})
        self.sim.ok("PUT", self.path(vmid, "/config"), {"cicustom": "user=local:snippets/u.yaml"})
        self.sim.ok("PUT", self.path(vmid, "/cloudinit"))
        self.assertEqual(self.vmstate(vmid)["ci_files"]["user-data"], ud)
        self.assertTrue(self.dump(vmid, "user").startswith("#cloud-config\nhostname: web1\n"))  # dump: generated
        self.sim.control("POST", "volume", {"node": "pve1", "storage": "local", "volid": "local:snippets/big.yaml",
                                            "content": "snippets", "format": "yaml", "data": "#" * 1024,
                                            "repeat": 3 << 10})
        self.sim.ok("PUT", self.path(vmid, "/config"), {"cicustom": "user=local:snippets/big.yaml"})
        st, reason, _ = self.sim.call("PUT", self.path(vmid, "/cloudinit"))
        self.assertEqual((st, reason), (500, "Cloud-Init sum of snippets too big (> 3 MiB)"))

    def test_snippet_change_is_not_pending(self):
        vol = "local:snippets/s%d.yaml" % self.vmid()
        seed = {"node": "pve1", "storage": "local", "volid": vol, "content": "snippets", "format": "yaml"}
        self.sim.control("POST", "volume", dict(seed, data="#cloud-config\nruncmd: [one]\n"))
        vmid = self.create(cicustom="user=" + vol)
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/start")))
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/stop")))
        self.sim.control("POST", "volume", dict(seed, data="#cloud-config\nruncmd: [two]\n"))
        self.sim.wait_task(self.sim.ok("POST", self.path(vmid, "/status/start")))
        self.assertIn("[one]", self.vmstate(vmid)["ci_files"]["user-data"])    # FACTS-cloudinit.md §2
        self.sim.ok("PUT", self.path(vmid, "/cloudinit"))
        self.assertIn("[two]", self.vmstate(vmid)["ci_files"]["user-data"])


if __name__ == "__main__":
    unittest.main()
