"""pve_cloudinit.check_one_drive: one cloud-init drive per VM
(FACTS-cloudinit.md §1), counted on drive keys only; a seed ISO put on the
drive's key replaces it (§4: "instead of a Proxmox cloudinit drive")."""
import unittest

import pve_cloudinit


class OneDriveTest(unittest.TestCase):
    def test_replacing_the_drive_with_a_seed_iso(self):
        have = {"ide2": "local-lvm:vm-5000-cloudinit,media=cdrom", "tags": "strata-template"}
        new = {"ide2": "local:iso/strata.e.a.seed-0123456789ab.iso,media=cdrom",
               "tags": "cloudinit"}   # a tag, not a drive
        self.assertIsNone(pve_cloudinit.check_one_drive(have, new))

    def test_a_second_drive_is_refused(self):
        have = {"ide2": "local-lvm:vm-5000-cloudinit,media=cdrom"}
        self.assertEqual(pve_cloudinit.check_one_drive(have, {"ide3": "local-lvm:cloudinit"}), ("ide3", "ide2"))


if __name__ == "__main__":
    unittest.main()
