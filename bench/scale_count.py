#!/usr/bin/python3
"""bench/scale_count.py: the request counts and the time split of
bench/scale.sh (issue 13).

  scale_count.py sum REQUESTS STATE SINCE END LATENCY OUT
      REQUESTS: the simulator's request log (GET /_labsim/requests),
      STATE: its state (GET /_labsim/state), both JSON files; SINCE and
      END: epoch seconds of the part measured; LATENCY: seconds the
      simulator adds to every call. Writes OUT (JSON: the counts below)
      and OUT.paths (requests by endpoint).
  scale_count.py first OUT
      Prints when (epoch seconds) the first VM's and the last VM's first
      requests came, from OUT of sum.
  scale_count.py report WHAT N CONNS BEFORE CRIT ONE MANY
      Prints the counts of MANY (N VMs) against ONE (the same run for 1
      VM), and where the time between the two goes: CONNS, the client's
      connections at most; BEFORE, the requests each VM sends before its
      first task starts; CRIT, the 1-VM run's wall seconds.

A request is addressed to one VM when its path names the VM
(/nodes/{node}/qemu/{vmid}/...), when it creates one (POST
/nodes/{node}/qemu, the vmid in its parameters), or when it reads the
status or log of a task working on one VM (the UPID's id is the vmid).
Every other request is shared: a node's task listing (the shared polls),
a node's VM index, and cluster-wide or per-node reads and writes (GET
/cluster/resources, storage and ISO calls). Per VM counts only the
first kind; the shared ones are printed as they are, for 1 VM and for N,
so one sees whether they grow with the VM count."""
import collections
import json
import re
import sys

VM_PATH = re.compile(r"^/nodes/[^/]+/qemu/(\d+)(/|$)")
TASK_READ = re.compile(r"^/nodes/[^/]+/tasks/([^/]+)/(status|log)$")


def upid_vmid(upid):
    f = upid.replace("%3A", ":").split(":")
    return f[6] if len(f) > 6 and f[6].isdigit() else None


def kind(r):
    """(vmid or None, category) of one request."""
    p, m = r["path"][len("/api2/json"):], r["method"]
    v = VM_PATH.match(p)
    if v:
        return v.group(1), "write" if m != "GET" else "read"
    if m == "POST" and re.match(r"^/nodes/[^/]+/qemu/?$", p):
        return str(r["params"].get("vmid", "?")), "write"
    if p == "/access/permissions":
        v = re.match(r"^/vms/(\d+)$", str(r["params"].get("path", "")))
        if v:
            return v.group(1), "read"
    t = TASK_READ.match(p)
    if t:
        vmid = upid_vmid(t.group(1))
        return (vmid, "poll") if vmid else (None, "other")
    if m == "GET" and re.match(r"^/nodes/[^/]+/tasks/?$", p):
        return None, "task listing"
    if m == "GET" and re.match(r"^/nodes/[^/]+/qemu/?$", p):
        return None, "VM listing"
    return None, "other"


def summarize(reqs, state, since, end, lat):
    r = [x for x in reqs if since <= x["t"] <= end + 0.001]
    out = {"total": len(r), "vm": collections.Counter(), "shared": collections.Counter(),
           "vms": set(), "handshakes": 0, "handshake_s": 0.0}
    first = {}
    for x in r:
        vmid, cat = kind(x)
        if vmid:
            out["vm"][cat] += 1
            out["vms"].add(vmid)
            first.setdefault(vmid, x["t"])
        else:
            out["shared"][cat] += 1
        if "handshake" in x:
            out["handshakes"] += 1
            out["handshake_s"] += x["handshake"]
    # When each VM's first request came, from the first VM's.
    t0 = min(first.values()) if first else since
    out["first_spread"] = (max(first.values()) - t0) if first else 0.0
    out["first_t"] = [t0, max(first.values()) if first else t0]
    out["first_at"] = t0 - since
    # Each task on our VMs in the window: how long after its end a look
    # (its node's listing, or its own status read) was handled (arrival
    # plus the simulator's latency).
    looks = collections.defaultdict(list)
    for x in r:
        p = x["path"][len("/api2/json"):]
        m = re.match(r"^/nodes/([^/]+)/tasks/?$", p)
        if m and x["method"] == "GET":
            looks[m.group(1)].append(x["t"] + lat)
        t = TASK_READ.match(p)
        if t:
            looks[t.group(1).replace("%3A", ":")].append(x["t"] + lat)
    lags = []
    last_end = None
    for tk in state.get("tasks", []):
        vmid = str(tk.get("id"))
        if vmid not in out["vms"] or not (since <= tk["end"] <= end) or tk["status"] == "running":
            continue
        seen = [a for a in looks[tk["node"]] + looks[tk["upid"]] if a >= tk["end"]]
        if seen:
            lags.append(min(seen) - tk["end"])
        last_end = max(last_end or 0, tk["end"])
    out["lag_mean"] = sum(lags) / len(lags) if lags else 0.0
    out["lag_max"] = max(lags) if lags else 0.0
    out["tasks"] = len(lags)
    out["last_end"] = (last_end - since) if last_end else 0.0
    out["vms"] = len(out["vms"])
    paths = collections.Counter(
        x["method"] + " " + re.sub(r"UPID(%3A|:)[^/]*", "{upid}",
                                   re.sub(r"/\d{3,}", "/{vmid}",
                                          re.sub(r"/pve\d", "/{node}", x["path"][len("/api2/json"):])))
        for x in r)
    return out, paths


def report(what, n, conns, before, crit, one, many):
    vm, sh = many["vm"], many["shared"]
    print("%s: requests addressed to one VM, per VM: %.2f = %.2f writes + %.2f reads + %.2f task "
          "status/log reads" % (what, sum(vm.values()) / n, vm.get("write", 0) / n,
                                vm.get("read", 0) / n, vm.get("poll", 0) / n))

    def shared(s):
        return "%d (%d task listings, %d VM listings, %d other: cluster, storage, ISO)" % (
            sum(s.values()), s.get("task listing", 0), s.get("VM listing", 0), s.get("other", 0))
    print("%s: shared requests, not addressed to one VM: %s at %d VMs; %s at 1 VM" % (
        what, shared(sh), n, shared(one["shared"])))
    print("%s: all requests per VM: %.2f (shared ones spread over the VMs: %.2f)" % (
        what, many["total"] / n, sum(sh.values()) / n))
    # where the time goes
    # Each VM sends `before` requests, one after the other, before its
    # first task starts; all VMs' go over at most `conns` connections,
    # each call taking the latency at least: the last VM's first task
    # starts that much after the first VM's, whatever the client does.
    bound = max(0, (n * before + conns - 1) // conns - before) * many["latency"]
    print("%s: time: the last VM's first request reached the simulator %.3fs after the first "
          "VM's; with %d requests per VM before its first task, over %d connections at %.0f ms "
          "per call, its first task starts at least %.3fs after the first VM's, so wall / "
          "critical path >= %.2f" % (
              what, many["first_spread"], before, conns, many["latency"] * 1000, bound,
              (crit + bound) / crit))
    print("%s: time: tasks found %.3fs after their end on average, %.3fs at most (%d tasks); "
          "1 VM: %.3fs on average (%d tasks)" % (
              what, many["lag_mean"], many["lag_max"], many["tasks"], one["lag_mean"], one["tasks"]))
    print("%s: time: the last task ended %.3fs into the run (1 VM: %.3fs); TLS handshakes "
          "%d taking %.3fs in all (1 VM: %d)" % (
              what, many["last_end"], one["last_end"], many["handshakes"], many["handshake_s"],
              one["handshakes"]))


def main():
    if sys.argv[1] == "sum":
        reqs = json.load(open(sys.argv[2]))["data"]
        state = json.load(open(sys.argv[3]))["data"]
        since, end, lat = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
        out, paths = summarize(reqs, state, since, end, lat)
        out["latency"] = lat
        with open(sys.argv[7], "w") as f:
            json.dump(out, f)
        with open(sys.argv[7] + ".paths", "w") as f:
            for k, v in sorted(paths.items(), key=lambda x: -x[1]):
                f.write("  %5d %s\n" % (v, k))
    elif sys.argv[1] == "first":     # the epoch seconds of the first VM's and the last VM's first request
        print("%.3f %.3f" % tuple(json.load(open(sys.argv[2]))["first_t"]))
    elif sys.argv[1] == "report":
        what, n, conns, before = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        report(what, n, conns, before, float(sys.argv[6]), json.load(open(sys.argv[7])),
               json.load(open(sys.argv[8])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
