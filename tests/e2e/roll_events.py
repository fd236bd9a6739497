"""Check the event stream of `strata apply -o json` (docs/json.md) for the
node steps of the rolls and print what it says (t123, t124).

usage: roll_events.py FILE

Exits 1 with the first shape error: every line one JSON object with type,
time and seq 1, 2, 3 ...; the last a summary. Prints:
  steps <roll> <node:component ...>   the "ok" node steps of that roll, in order
  one-at-a-time yes|no <why>          every running step ended (ok) before
                                      the next one began, on the same node
                                      and component, and none failed
  images <node:component=image ...>   what each ok step moved to
  summary <result> talos=<n> kubernetes=<n> images=<n>
  plan-rolls <talos|-> <kubernetes|-> <images|->  which rolls the plan event had
"""
import json
import sys

lines = open(sys.argv[1]).read().splitlines()
assert lines, "no events"
evs = []
for i, l in enumerate(lines):
    e = json.loads(l)
    assert isinstance(e, dict), "line %d is no object" % (i + 1)
    for k in ("type", "time", "seq"):
        assert k in e, "line %d without %r" % (i + 1, k)
    assert e["seq"] == i + 1, "line %d has seq %r" % (i + 1, e["seq"])
    evs.append(e)
assert evs[-1]["type"] == "summary", "the last event is %r" % evs[-1]["type"]
rolls = [e for e in evs if e["type"] == "step" and "roll" in e]
for e in rolls:
    assert e["phase"] == "talos-upgrade", e
    assert e["state"] in ("running", "ok", "failed"), e
    assert set(("item", "component", "image", "text")) <= set(e), e
names = []
for e in rolls:
    if e["roll"] not in names:
        names.append(e["roll"])
for r in names:
    print("steps", r, " ".join("%s:%s" % (e["item"], e["component"]) for e in rolls
                                if e["roll"] == r and e["state"] == "ok"))
ok, why, cur = True, "", None
for e in rolls:
    key = (e["roll"], e["item"], e["component"])
    if e["state"] == "running":
        if cur is not None:
            ok, why = False, "%s began before %s ended" % (key, cur)
            break
        cur = key
    elif e["state"] == "ok":
        if cur != key:
            ok, why = False, "%s ended, not begun (running: %s)" % (key, cur)
            break
        cur = None
    else:
        ok, why = False, "%s failed: %s" % (key, e["text"])
        break
if ok and cur is not None:
    ok, why = False, "%s never ended" % (cur,)
print("one-at-a-time", "yes" if ok else "no", why)
print("images", " ".join("%s:%s=%s" % (e["item"], e["component"], e["image"]) for e in rolls
                         if e["state"] == "ok"))
s = evs[-1]
sr = s.get("rolls") or {}
print("summary %s talos=%s kubernetes=%s images=%s" % (
    s.get("result"), sr.get("talos_upgrade"), sr.get("kubernetes_upgrade"), sr.get("image_roll")))
plan = [e for e in evs if e["type"] == "plan"]
pr = (plan[0]["plan"].get("rolls") or {}) if plan else {}
print("plan-rolls", " ".join(k if pr.get(k) else "-" for k in ("talos_upgrade", "kubernetes_upgrade", "image_roll")))
