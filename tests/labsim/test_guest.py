"""pve_guest.booted_address: the address a cloud-init guest reports through
its agent comes from what it read at its last boot (pve_guest.py sources)."""
import unittest

import pve_guest
import pve_upload
from test_upload import make_iso

NET = b"""network:
  version: 2
  ethernets:
    eth0:
      match: {macaddress: "bc:24:11:5e:92:10"}
      set-name: eth0
      addresses: [127.0.92.10/24]
"""


def vm_with(boot_config, items):
    return {"node": "pve1", "boot_config": boot_config, "items": items}


def lookup(vm):
    return lambda node, vol: vm["items"].get(vol)


class GuestTest(unittest.TestCase):
    def setUp(self):
        self.iso = make_iso({"user-data": b"#cloud-config\n", "meta-data": b"instance-id: x\n",
                             "network-config": NET})
        self.items = {"local:iso/seed.iso": {"_data": self.iso}}

    def addr(self, cfg):
        vm = vm_with(cfg, self.items)
        return pve_guest.booted_address(None, vm, pve_upload.read_cidata, lookup(vm))

    def test_cidata_seed_address(self):
        cfg = {"net0": "virtio=BC:24:11:5E:92:10,bridge=vmbr0", "ide2": "local:iso/seed.iso,media=cdrom"}
        self.assertEqual(self.addr(cfg), "127.0.92.10")

    def test_seed_for_another_mac_configures_nothing(self):
        cfg = {"net0": "virtio=BC:24:11:5E:92:99,bridge=vmbr0", "ide2": "local:iso/seed.iso,media=cdrom"}
        self.assertIsNone(self.addr(cfg))

    def test_proxmox_drive_gives_ipconfig0(self):
        cfg = {"net0": "virtio=BC:24:11:5E:92:10", "ide2": "local-lvm:vm-5000-cloudinit,media=cdrom",
               "ipconfig0": "ip=127.0.92.20/24,gw=127.0.92.1"}
        self.assertEqual(self.addr(cfg), "127.0.92.20")

    def test_no_seed_no_address(self):
        self.assertIsNone(self.addr({"net0": "virtio=BC:24:11:5E:92:10", "ipconfig0": "ip=127.0.92.20/24"}))

    def test_not_labelled_cidata_is_not_read(self):
        self.items["local:iso/other.iso"] = {"_data": make_iso({"network-config": NET}, label="other")}
        cfg = {"net0": "virtio=BC:24:11:5E:92:10", "ide2": "local:iso/other.iso,media=cdrom"}
        self.assertIsNone(self.addr(cfg))

    def test_the_config_at_boot_counts_not_a_later_change(self):
        vm = vm_with({"net0": "virtio=BC:24:11:5E:92:10", "ide2": "local:iso/seed.iso,media=cdrom"}, self.items)
        vm["config"] = {"net0": "virtio=BC:24:11:5E:92:10", "ide2": "none,media=cdrom"}
        self.assertEqual(pve_guest.booted_address(None, vm, pve_upload.read_cidata, lookup(vm)), "127.0.92.10")


if __name__ == "__main__":
    unittest.main()


class OneDriveTest(unittest.TestCase):
    """pve_cloudinit.check_one_drive: one cloud-init drive per VM
    (FACTS-cloudinit.md §1), counted on drive keys only; a seed ISO put on
    the drive's key replaces it (§4: "instead of a Proxmox cloudinit drive")."""

    def test_replacing_the_drive_with_a_seed_iso(self):
        import pve_cloudinit
        have = {"ide2": "local-lvm:vm-5000-cloudinit,media=cdrom", "tags": "strata-template"}
        new = {"ide2": "local:iso/strata.e.a.seed-0123456789ab.iso,media=cdrom",
               "tags": "cloudinit"}   # a tag, not a drive
        self.assertIsNone(pve_cloudinit.check_one_drive(have, new))

    def test_a_second_drive_is_refused(self):
        import pve_cloudinit
        have = {"ide2": "local-lvm:vm-5000-cloudinit,media=cdrom"}
        self.assertEqual(pve_cloudinit.check_one_drive(have, {"ide3": "local-lvm:cloudinit"}), ("ide3", "ide2"))
