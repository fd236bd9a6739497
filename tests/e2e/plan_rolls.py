"""Check the "rolls" object of `strata plan -o json` (docs/json.md) and print
what it says, one line per roll (used by t117, t118).

usage: plan_rolls.py FILE

Exits 1 with the first shape error. Prints:
  talos <to> <parallel> <name:role:from:to ...> | talos none
  kubernetes <from> <to> <component=node,node;...> joining=<node,...> | kubernetes none
  images <node_steps> <component=node:from>to,...;...> | images none
"""
import json
import sys

d = json.load(open(sys.argv[1]))
for k in ("format_version", "env", "actions", "summary"):
    assert k in d, "plan document without %r" % k
r = d.get("rolls")
assert isinstance(r, dict), "no rolls object"
assert set(r) == {"talos_upgrade", "kubernetes_upgrade", "image_roll"}, sorted(r)
STEPS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"]
FIELDS = ["cluster.apiServer.image", "cluster.controllerManager.image", "cluster.scheduler.image",
          "cluster.proxy.image", "machine.kubelet.image"]


def step_ok(s, node_kind):
    assert set(s) == {"component", "field", "nodes", "wait"}, sorted(s)
    assert s["component"] in STEPS, s["component"]
    assert s["field"] == FIELDS[STEPS.index(s["component"])], s
    assert s["wait"] in ("static-pod-ready", "none", "kubelet-version"), s["wait"]
    assert isinstance(s["nodes"], list)
    for n in s["nodes"]:
        if node_kind == "name":
            assert isinstance(n, str), n
        else:
            assert set(n) == {"name", "from", "to"} and all(isinstance(v, str) for v in n.values()), n


t = r["talos_upgrade"]
if t is None:
    print("talos none")
else:
    assert set(t) == {"to", "order", "parallel", "nodes"}, sorted(t)
    assert t["order"] == "controlplanes-then-workers" and isinstance(t["parallel"], int)
    for n in t["nodes"]:
        assert set(n) == {"name", "role", "from", "to"} and n["role"] in ("controlplane", "worker"), n
    print("talos", t["to"], t["parallel"], " ".join("%s:%s:%s:%s" % (n["name"], n["role"], n["from"], n["to"])
                                                    for n in t["nodes"]))
k = r["kubernetes_upgrade"]
if k is None:
    print("kubernetes none")
else:
    assert set(k) == {"from", "to", "mode", "steps", "joining"} and k["mode"] == "NO_REBOOT", sorted(k)
    assert isinstance(k["joining"], list) and all(isinstance(n, str) for n in k["joining"]), k["joining"]
    assert [s["component"] for s in k["steps"]] == STEPS, [s["component"] for s in k["steps"]]
    for s in k["steps"]:
        step_ok(s, "name")
    print("kubernetes", k["from"], k["to"], ";".join("%s=%s" % (s["component"], ",".join(s["nodes"]))
                                                    for s in k["steps"]),
          "joining=" + ",".join(k["joining"]))
i = r["image_roll"]
if i is None:
    print("images none")
else:
    assert set(i) == {"mode", "node_steps", "steps"} and i["mode"] == "NO_REBOOT", sorted(i)
    comps = [s["component"] for s in i["steps"]]
    assert comps == sorted(comps, key=STEPS.index), comps
    for s in i["steps"]:
        step_ok(s, "obj")
    assert i["node_steps"] == sum(len(s["nodes"]) for s in i["steps"]), i
    print("images", i["node_steps"], ";".join("%s=%s" % (s["component"], ",".join(
        "%s:%s>%s" % (n["name"], n["from"].rsplit(":", 1)[1], n["to"].rsplit(":", 1)[1]) for n in s["nodes"]))
        for s in i["steps"]))
