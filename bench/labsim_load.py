#!/usr/bin/python3
"""bench/labsim_load.py PORT HEADER PID KIND CLIENTS N: N requests of KIND
(version: GET /version; create: POST /nodes/{node}/qemu with the
parameters strata sends for a Talos worker, start=1, a new vmid each)
to the lab simulator on 127.0.0.1:PORT, from CLIENTS processes at once
(each its own keep-alive TLS connection, opened before the measured
part), with the API token header HEADER. Prints the simulator's CPU
(process PID: user + system, its ticker thread included, and 0.3 s
after the last answer, for its request log written up to 0.2 s late)
and the wall time over the N requests: "KIND CLIENTS N cpu_s wall_s". The clients
are other processes, so their CPU is not the simulator's."""
import http.client
import multiprocessing
import os
import ssl
import sys
import time
import urllib.parse


def ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def create_params(vmid):
    return {"vmid": str(vmid), "name": "b-w-%d" % vmid, "cores": "2", "sockets": "1",
            "memory": "2048", "cpu": "x86-64-v2-AES", "scsihw": "virtio-scsi-single",
            "scsi0": "local-lvm:20,discard=on,iothread=1,ssd=1",
            "ide2": "local:iso/talos-amd64.iso,media=cdrom",
            "net0": "virtio=02:5A:%02X:%02X:%02X:01,bridge=vmbr0,firewall=0" % (
                vmid >> 16 & 255, vmid >> 8 & 255, vmid & 255),
            "boot": "order=scsi0;ide2", "agent": "enabled=1", "serial0": "socket",
            "vga": "serial0", "ostype": "l26", "onboot": "1", "tags": "strata-b;talos;worker",
            "description": "strata node role=worker\nmanaged-by=strata env=b", "start": "1"}


def client(args):
    port, header, kind, first, n, go = args
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(),
                                    timeout=30)
    c.request("GET", "/api2/json/version", headers={"Authorization": header})
    c.getresponse().read()          # connected, before the measured part
    go.wait()
    for vmid in range(first, first + n):
        if kind == "create":
            c.request("POST", "/api2/json/nodes/pve%d/qemu" % (1 + vmid % 3),
                      urllib.parse.urlencode(create_params(vmid)),
                      {"Authorization": header, "Content-Type": "application/x-www-form-urlencoded"})
        else:
            c.request("GET", "/api2/json/version", headers={"Authorization": header})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("%s: %d %s %s" % (kind, r.status, r.reason, body[:200]))


def main():
    port, header, pid, kind = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    clients, n = int(sys.argv[5]), int(sys.argv[6])
    per = n // clients
    with multiprocessing.Manager() as m:
        go = m.Event()
        with multiprocessing.Pool(clients) as pool:
            res = pool.map_async(client, [(port, header, kind, 1000 + k * per, per, go)
                                          for k in range(clients)])
            time.sleep(0.5)         # every client connected
            c0, t0 = ticks(pid), time.time()
            go.set()
            res.get(timeout=120)
            t1 = time.time()
            # the simulator encodes its request log up to 0.2 s late
            # (labsim.py log_writer): that CPU counts too
            time.sleep(0.3)
            c1 = ticks(pid)
    hz = os.sysconf("SC_CLK_TCK")
    print("%s %d %d %.3f %.3f" % (kind, clients, per * clients, (c1 - c0) / hz, t1 - t0))


if __name__ == "__main__":
    main()
