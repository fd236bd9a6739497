"""Start/stop labsim for tests and talk to it."""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import http.client
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("STRATA_REFERENCE",
                     os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "reference")))


def have_reference():
    return os.path.exists(os.path.join(REF, "proxmox", "api-schema-subset.json"))


NO_REFERENCE = "reference data absent at %s (set STRATA_REFERENCE)" % REF


def reference_or_skip():
    if not os.path.exists(os.path.join(REF, "proxmox", "api-schema-subset.json")):
        raise unittest.SkipTest("reference data absent at %s (set STRATA_REFERENCE)" % REF)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Labsim:
    def __init__(self, *extra, scale=0.01):
        reference_or_skip()
        self.dir = tempfile.mkdtemp(prefix="labsim-test-")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "labsim.py"), "--state", self.dir,
             "--proxmox-addr", "127.0.0.1:0", "--time-scale", str(scale), "--reference", REF,
             "--talos-port", str(free_port()), "--k8s-port", str(free_port())] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT)
        ready = os.path.join(self.dir, "ready")
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("labsim did not start: " + open(os.path.join(self.dir, "log")).read())
            time.sleep(0.05)
        with open(ready) as f:
            self.ready = json.load(f)
        self.port = self.ready["proxmox"]["port"]
        self.auth = self.ready["token"]["header"]
        self.ctx = ssl.create_default_context(cafile=self.ready["proxmox"]["ca_cert"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method, path, params=None, auth=True, json_body=False, raw_path=False, raw=None):
        """raw: (body bytes, content type) sent as is (a multipart upload)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        headers = {}
        if auth is True:
            headers["Authorization"] = self.auth
        elif auth:
            headers["Authorization"] = auth
        url = path if raw_path else "/api2/json" + path
        body = None
        if raw is not None:
            body, headers["Content-Type"] = raw
        elif params and method in ("GET", "DELETE"):
            url += "?" + urllib.parse.urlencode(params)
        elif params is not None:
            if json_body:
                body = json.dumps(params)
                headers["Content-Type"] = "application/json"
            else:
                body = urllib.parse.urlencode(params)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, url, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        try:
            obj = json.loads(data) if data else None
        except ValueError:
            obj = data
        return r.status, r.reason, obj

    def ok(self, method, path, params=None, **kw):
        st, reason, obj = self.call(method, path, params, **kw)
        if st != 200:
            raise AssertionError("%s %s -> %d %s %r" % (method, path, st, reason, obj))
        return obj["data"]

    def wait_task(self, upid, timeout=10):
        node = upid.split(":")[1]
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.ok("GET", "/nodes/%s/tasks/%s/status" % (node, urllib.parse.quote(upid, safe="")))
            if st["status"] == "stopped":
                return st
            time.sleep(0.02)
        raise AssertionError("task %s did not finish" % upid)

    def control(self, method, what, body=None):
        return self.call(method, "/_labsim/" + what, body, auth=False, json_body=True, raw_path=True)


class LabsimCase(unittest.TestCase):
    """A test class with one simulator for all its tests (cls.sim), the
    setUpClass/tearDownClass every Proxmox test class had: ARGS are extra
    labsim.py arguments, TOKENS (a list of {"id", "secret", "privs"|"acl"})
    are written to tokens.json and passed as --tokens, cls.tmp is a
    scratch directory removed at the end, and vmid() hands out VMIDs
    after FIRST_VMID. Skipped without the reference data (Labsim)."""
    ARGS = ()
    TOKENS = None
    FIRST_VMID = 100

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="labsim-%s-" % cls.__name__.lower())
        args = list(cls.ARGS)
        if cls.TOKENS is not None:
            path = os.path.join(cls.tmp, "tokens.json")
            with open(path, "w") as f:
                json.dump(cls.TOKENS, f)
            args += ["--tokens", path]
        try:
            cls.sim = Labsim(*args)
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.next = cls.FIRST_VMID

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def vmid(self):
        type(self).next += 1
        return type(self).next
