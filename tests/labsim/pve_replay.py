#!/usr/bin/python3
"""Replay a labsim request log against the whole Proxmox API schema.

    pve_replay.py [--apidata PATH] requests.jsonl

The simulator writes STATE/requests.jsonl (one request per line: method,
path, params as received, body kind). This checks every request against
../shared/reference/proxmox/apidata.json, independently of the simulator's
own rules (which only know api-schema-subset.json and what we modelled):

- the path and method exist in the schema, the path's /api2/json prefix;
- no body on GET or DELETE (FACTS.md §1);
- path parameters not repeated with other values in the body (FACTS.md §1);
- every parameter known, required ones present, `requires` met, types,
  enums, patterns, min/max, lengths, named formats and property strings
  (pve_formats.py, strict: a format it does not model is a violation);
- repeated form keys (they arrive as arrays; FACTS.md §1);
- values the server refuses beyond the schema: `sshkeys` whose decoded
  lines do not pass `ssh-keygen -l` (FACTS.md §6; pve_ci.py does the same
  live), `cicustom` volumes that are not `snippets` (FACTS-cloudinit.md §1);
- methods with allowtoken 0 (strata always uses a token; FACTS.md §1), and
  options whose schema description says only root may use them (a token is
  never root@pam; FACTS.md §1).

Prints one line per violation and a summary; exit 1 on any violation.
"""
import argparse
import json
import os
import re
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pve_formats import Routes, check_params, lookup_prop  # noqa: E402

DEFAULT_APIDATA = os.path.join(os.environ.get(
    "STRATA_REFERENCE", os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "reference"))),
    "proxmox", "apidata.json")

# apidata.json descriptions ("only root is allowed to use this option", "Only
# root may use this option", "Only root@pam can set ...") and FACTS.md §4 Stop
# (skiplock and keepActive are root only)
ROOT_ONLY = re.compile(r"only root is allowed|only root may|only root@pam can", re.I)
ROOT_ONLY_KEYS = ("skiplock", "keepActive")


def load_routes(path):
    with open(path) as f:
        tree = json.load(f)
    eps = []

    def walk(n):
        if n.get("info"):
            eps.append({"path": n["path"], "info": n["info"]})
        for c in n.get("children", []) or []:
            walk(c)
    for t in tree:
        walk(t)
    # longest literal paths first, so /nodes/{node}/qemu/{vmid}/config does
    # not fall into a {volume}-style catch-all
    eps.sort(key=lambda e: (e["path"].count("{volume}"), -len(e["path"])))
    return Routes(eps)


def check_request(routes, rec):
    """The list of violations (strings) of one logged request."""
    method, path = rec.get("method"), rec.get("path", "")
    params = dict(rec.get("params") or {})
    from_json = rec.get("body") == "json"
    where = "%s %s" % (method, path)
    if not path.startswith("/api2/json/"):
        return ["%s: not below /api2/json/" % where]
    tmpl, info, pathp = routes.match(path[len("/api2/json"):])
    if tmpl is None:
        return ["%s: no such path in apidata.json" % where]
    if method not in info:
        return ["%s: method %s not defined for %s" % (where, method, tmpl)]
    minfo = info[method]
    out = []
    if rec.get("body") and method in ("GET", "DELETE"):
        out.append("%s: body on %s (Proxmox answers 501)" % (where, method))
    if not minfo.get("allowtoken", 1):
        out.append("%s: not available with API token" % where)
    for k, v in pathp.items():
        if k in params and str(params[k]) != v:
            out.append("%s: %s: duplicate parameter (already defined in URI) with conflicting values" % (where, k))
        params[k] = v
    errs = check_params(minfo, params, from_json, strict=True)
    for k in sorted(errs):
        out.append("%s: %s: %s" % (where, k, errs[k]))
    for k, why in value_rules(params, errs):
        out.append("%s: %s: %s" % (where, k, why))
    props = minfo.get("parameters", {}).get("properties", {})
    for k in sorted(params):
        spec = lookup_prop(props, k)
        if spec and (k in ROOT_ONLY_KEYS or ROOT_ONLY.search(spec.get("description", ""))):
            out.append("%s: %s: root-only option, refused for an API token (400 'Only root may use this option.')" % (where, k))
    return out


def value_rules(params, errs):
    """[(param, why)] of values the server refuses after the schema check."""
    out = []
    if isinstance(params.get("sshkeys"), str) and "sshkeys" not in errs:
        from pve_ci import valid_ssh_key
        for line in urllib.parse.unquote(params["sshkeys"]).split("\n"):
            if line.strip() and not valid_ssh_key(line.strip()):
                out.append(("sshkeys", "SSH public key validation error (not a key: %.40s)" % line.strip()))
                break
    if isinstance(params.get("cicustom"), str) and "cicustom" not in errs:
        for part in params["cicustom"].split(","):
            k, _, vol = part.partition("=")
            if vol and not vol.partition(":")[2].startswith("snippets/"):
                out.append(("cicustom", "%s is not in the snippets directory" % vol))
    return out


def read_log(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apidata", default=DEFAULT_APIDATA)
    ap.add_argument("log")
    a = ap.parse_args(argv)
    routes = load_routes(a.apidata)
    recs = read_log(a.log) if os.path.exists(a.log) else []
    bad = 0
    for rec in recs:
        for v in check_request(routes, rec):
            bad += 1
            print("violation: " + v)
    print("replay: %d requests checked against apidata.json, %d violations" % (len(recs), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
