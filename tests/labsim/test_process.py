import os
import signal
import unittest

from harness import Labsim, have_reference, NO_REFERENCE


@unittest.skipUnless(have_reference(), NO_REFERENCE)
class ProcessTest(unittest.TestCase):
    def test_ready_file_and_sigterm(self):
        sim = Labsim()
        try:
            r = sim.ready
            self.assertTrue(r["proxmox"]["url"].startswith("https://127.0.0.1:"))
            self.assertTrue(os.path.exists(r["proxmox"]["ca_cert"]))
            self.assertRegex(r["token"]["header"], r"^PVEAPIToken=root@pam!strata=[0-9a-f-]{36}$")
            sim.proc.send_signal(signal.SIGTERM)
            self.assertEqual(sim.proc.wait(15), 0)
            self.assertFalse(os.path.exists(os.path.join(sim.dir, "ready")))
        finally:
            sim.stop()

    def test_refuses_non_loopback(self):
        import subprocess
        from harness import HERE, REF
        p = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "labsim.py"), "--state", "/tmp/labsim-nonloop",
                            "--proxmox-addr", "10.0.0.1:8006", "--reference", REF], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("non-loopback", p.stderr)


if __name__ == "__main__":
    unittest.main()
