"""The simulator's shortcuts answer what the slow ways answer: form
bodies decoded as parse_qsl decodes them, a route found once as a scan
of every route finds it, handler names as built from the template. They
exist for the simulator's CPU (bench/labsim.sh), never to change a rule."""
import json
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labsim  # noqa: E402
from pve_formats import Routes  # noqa: E402

REF = os.environ.get("STRATA_REFERENCE", labsim.DEFAULT_REF)
SCHEMA = os.path.join(REF, "proxmox", "api-schema-subset.json")

CREATE = {"vmid": "3001", "name": "b-w-3001", "cores": "2", "memory": "2048",
          "scsi0": "local-lvm:20,discard=on,iothread=1,ssd=1",
          "ide2": "local:iso/talos-amd64.iso,media=cdrom",
          "net0": "virtio=02:5A:00:0B:B9:01,bridge=vmbr0,firewall=0",
          "boot": "order=scsi0;ide2", "tags": "strata-b;talos;worker",
          "description": "strata node role=worker\nmanaged-by=strata env=b", "start": "1",
          "sshkeys": urllib.parse.quote("ssh-ed25519 AAAA k@h", safe=""),
          "cipassword": "p+a ss&w=rd \u20ac"}


class FormPairsTest(unittest.TestCase):
    def test_as_parse_qsl(self):
        bodies = [urllib.parse.urlencode(CREATE), urllib.parse.urlencode(CREATE, quote_via=urllib.parse.quote),
                  "a=&b", "x=1+2%2B3&&c=%zz", "=v", "k=v=w", "%E2%82%AC=%FF", "&&", "", "a=1&a=2&a",
                  "plain=value&pct=%41%42&plus=a+b", "k%3D1=v%26", "+=+", "%=%", "a=%2"]
        for b in bodies:
            self.assertEqual(labsim.form_pairs(b), urllib.parse.parse_qsl(b, keep_blank_values=True), b)


@unittest.skipUnless(os.path.exists(SCHEMA), "reference data absent at %s" % REF)
class RoutesMemoTest(unittest.TestCase):
    def setUp(self):
        with open(SCHEMA) as f:
            self.eps = json.load(f)["endpoints"]

    def scan(self, routes, path):
        for rx, tmpl, info in routes.routes:
            m = rx.match(path)
            if m:
                return tmpl, info, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
        return None, None, None

    def test_memo_answers_as_the_scan(self):
        r = Routes(self.eps)
        paths = ["/nodes/pve1/qemu", "/nodes/pve2/qemu/3001/config", "/nodes/pve1/qemu/3001/status/stop",
                 "/nodes/pve1/storage/local/content/local%3Aiso%2Ftalos.iso", "/cluster/resources",
                 "/version", "/no/such/path", "/nodes/pve1/tasks/UPID%3Apve1%3A1/status"]
        for _ in range(2):          # a miss, then a hit
            for p in paths:
                self.assertEqual(r.match(p), self.scan(r, p), p)

    def test_callers_dict_is_its_own(self):
        r = Routes(self.eps)
        tmpl, _, pp = r.match("/nodes/pve1/qemu/3001/config")
        self.assertEqual(pp, {"node": "pve1", "vmid": "3001"})
        pp["vmid"] = "9999"
        pp["extra"] = "x"
        self.assertEqual(r.match("/nodes/pve1/qemu/3001/config")[2], {"node": "pve1", "vmid": "3001"})


class HandlerNameTest(unittest.TestCase):
    def test_names(self):
        for _ in range(2):
            self.assertEqual(labsim.handler_name("POST", "/nodes/{node}/qemu"), "h_POST_nodes_node_qemu")
            self.assertEqual(labsim.handler_name("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
                             "h_GET_nodes_node_qemu_vmid_status_current")


if __name__ == "__main__":
    unittest.main()
