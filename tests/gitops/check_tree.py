#!/usr/bin/env python3
"""Check a GitOps tree written by `strata gen`, independently of strata.

  check_tree.py TREE AGEKEY REFERENCE

- every folder holding a kustomization.yaml builds with `kubectl kustomize`
  (any stderr output is an error);
- every built document validates against REFERENCE/schemas (the Kubernetes
  and Flux JSON schemas, strict like `kubectl apply --validate=strict`);
- SOPS files are decrypted here, without strata: the data key with the
  `age` CLI, values with AES-256-GCM (python3-cryptography), the MAC
  recomputed (SHA-512 over every value in order; see sops.go Tree.Decrypt);
  no value under data/stringData may be in clear;
- every HelmRelease's values (valuesFrom ConfigMaps and Secrets, then
  inline values) validate against the chart's values.schema.json, or, for
  charts without one, every key we set exists in the chart's values.yaml;
- every HelmRelease names a HelmRepository and ConfigMaps/Secrets that the
  build contains; at most one StorageClass is the default.

Prints one line per problem and "N passed, N failed"; exits 1 on any problem.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

passed = 0
failed = 0


def ok(msg):
    global passed
    passed += 1
    print("ok   " + msg)


def bad(msg):
    global failed
    failed += 1
    print("FAIL " + msg)


def kustomize(path):
    p = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True)
    if p.returncode != 0 or p.stderr.strip():
        bad("kubectl kustomize %s: %s" % (path, (p.stderr or "exit %d" % p.returncode).strip()))
        return None
    ok("kubectl kustomize " + path)
    return [d for d in yaml.safe_load_all(p.stdout) if d]


# ---- SOPS, from the format description (not strata's code) ----

ENC = re.compile(r"^ENC\[AES256_GCM,data:([^,]*),iv:([^,]+),tag:([^,]+),type:(\w+)\]$")


def sops_decrypt(doc, agekey, where, sort_keys):
    meta = doc.get("sops")
    if not isinstance(meta, dict) or not meta.get("age"):
        bad("%s: no sops.age block" % where)
        return None
    for k in ("lastmodified", "mac", "version"):
        if k not in meta:
            bad("%s: sops.%s missing" % (where, k))
            return None
    key = None
    for entry in meta["age"]:
        if not re.match(r"^age1[0-9a-z]{58}$", entry.get("recipient", "")):
            bad("%s: bad recipient %r" % (where, entry.get("recipient")))
        p = subprocess.run(["age", "-d", "-i", agekey], input=entry["enc"].encode(),
                           capture_output=True)
        if p.returncode == 0:
            key = p.stdout
    if key is None or len(key) != 32:
        bad("%s: the age CLI opens no 32-byte data key" % where)
        return None
    regex = re.compile(meta.get("encrypted_regex", "^(data|stringData)$"))
    mac = hashlib.sha512()
    clear = []

    def dec(value, aad):
        m = ENC.match(value) if isinstance(value, str) else None
        if not m:
            return None
        data, iv, tag = (base64.b64decode(x) for x in m.group(1, 2, 3))
        return AESGCM(key).decrypt(iv, data + tag, aad.encode())

    def walk(node, path, encrypted):
        if isinstance(node, dict):
            out = {}
            items = sorted(node.items()) if sort_keys else node.items()
            for k, v in items:
                if not path and k == "sops":
                    continue
                out[k] = walk(v, path + [k], encrypted or bool(regex.search(k)))
            return out
        if isinstance(node, list):
            return [walk(v, path, encrypted) for v in node]
        if encrypted:
            plain = dec(node, ":".join(path) + ":")
            if plain is None:
                clear.append(":".join(path))
                plain = str(node).encode()
            mac.update(plain)
            return plain.decode()
        text = {True: "True", False: "False"}.get(node, node) if isinstance(node, bool) else node
        mac.update(str(text).encode())
        return node

    try:
        plain = walk(doc, [], False)
    except Exception as e:  # a tag that does not verify
        bad("%s: a value does not decrypt: %s" % (where, e))
        return None
    if clear:
        bad("%s: values in clear under the encrypted keys: %s" % (where, ", ".join(clear)))
        return None
    want = dec(meta["mac"], str(meta["lastmodified"]))
    if want is None or want.decode() != mac.hexdigest().upper():
        bad("%s: the sops MAC does not match" % where)
        return None
    ok("%s: sops file decrypts (age CLI + AES-GCM), MAC matches in %s order"
       % (where, "sorted-key (Flux)" if sort_keys else "file (sops CLI)"))
    return plain


# ---- schemas ----

def load_schemas(ref):
    idx = json.load(open(os.path.join(ref, "schemas", "index.json")))
    return {k: json.load(open(os.path.join(ref, "schemas", v))) for k, v in idx.items()}


def validate_doc(schemas, doc, where):
    kind = "%s/%s" % (doc.get("apiVersion"), doc.get("kind"))
    s = schemas.get(kind)
    if s is None:
        bad("%s: no schema for %s" % (where, kind))
        return
    errs = sorted(jsonschema.validators.validator_for(s)(s).iter_errors(doc), key=str)
    if errs:
        for e in errs[:5]:
            bad("%s: %s %s: %s" % (where, kind, "/".join(map(str, e.path)), e.message))
    else:
        ok("%s: %s %s validates" % (where, kind, doc["metadata"].get("name")))


# ---- chart values ----

def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_path(d, path, value):
    parts = path.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def keys_known(ours, defaults, path=""):
    """Keys we set that the chart's values.yaml does not have."""
    unknown = []
    for k, v in ours.items():
        p = path + "." + k if path else k
        if not isinstance(defaults, dict) or k not in defaults:
            unknown.append(p)
        elif isinstance(v, dict) and isinstance(defaults[k], dict) and defaults[k]:
            unknown += keys_known(v, defaults[k], p)
    return unknown


def check_values(ref, hr, objs, where):
    spec = hr["spec"]
    chart = spec["chart"]["spec"]
    ns = hr["metadata"]["namespace"]
    values = {}
    for vf in spec.get("valuesFrom", []):
        src = objs.get((vf["kind"], ns, vf["name"]))
        if src is None:
            bad("%s: valuesFrom %s %s/%s is not in the build" % (where, vf["kind"], ns, vf["name"]))
            return
        data = src.get("data") or src.get("stringData") or {}
        key = vf.get("valuesKey", "values.yaml")
        if key not in data:
            bad("%s: %s %s has no key %s" % (where, vf["kind"], vf["name"], key))
            return
        if vf.get("targetPath"):
            set_path(values, vf["targetPath"], data[key])
        else:
            values = merge(values, yaml.safe_load(data[key]) or {})
    values = merge(values, spec.get("values") or {})
    index = json.load(open(os.path.join(ref, "charts", "index.json")))
    info = index.get(chart["chart"], {}).get("versions", {}).get(chart["version"])
    if info is None:
        print("note %s: no chart facts for %s %s in the reference: values unchecked"
              % (where, chart["chart"], chart["version"]))
        return
    d = os.path.join(ref, "charts", info["dir"])
    if os.path.exists(os.path.join(d, "values.schema.json")):
        s = json.load(open(os.path.join(d, "values.schema.json")))
        defaults = yaml.safe_load(open(os.path.join(d, "values.yaml")))
        errs = list(jsonschema.validators.validator_for(s)(s).iter_errors(merge(defaults, values)))
        if errs:
            for e in errs[:5]:
                bad("%s: values: %s: %s" % (where, "/".join(map(str, e.path)), e.message))
            return
        ok("%s: values validate against %s/values.schema.json" % (where, info["dir"]))
    defaults = yaml.safe_load(open(os.path.join(d, "values.yaml")))
    unknown = keys_known(values, defaults)
    if unknown:
        bad("%s: values keys not in %s/values.yaml: %s" % (where, info["dir"], ", ".join(unknown)))
    else:
        ok("%s: every values key exists in %s/values.yaml" % (where, info["dir"]))
    return merge(defaults, values)


def main():
    tree, agekey, ref = sys.argv[1:4]
    schemas = load_schemas(ref)
    dirs = sorted(r for r, _, files in os.walk(tree) if "kustomization.yaml" in files)
    built = {}
    for d in dirs:
        docs = kustomize(d)
        if docs is not None and "/overlays/" in d + "/":
            built[d] = docs
    for r, _, files in os.walk(tree):
        for f in sorted(files):
            if f.endswith(".sops.yaml") and f != ".sops.yaml":
                path = os.path.join(r, f)
                sops_decrypt(yaml.safe_load(open(path)), agekey, path, False)
    envs = sorted({os.path.basename(d) for d in built})
    if not envs:
        bad("no overlays in " + tree)
    for env in envs:
        docs = []
        for layer in ("flux", "platform", "apps"):
            d = os.path.join(tree, layer, "overlays", env)
            if d not in built:
                bad("%s: no %s overlay" % (env, layer))
                continue
            for doc in built[d]:
                where = "%s/%s" % (layer, env)
                if "sops" in doc:
                    doc = sops_decrypt(doc, agekey, where, True)
                    if doc is None:
                        continue
                docs.append(doc)
                validate_doc(schemas, doc, where)
        objs = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in docs}
        defaults = 0
        for o in docs:
            if o["kind"] != "HelmRelease":
                continue
            where = "%s: HelmRelease %s" % (env, o["metadata"]["name"])
            src = o["spec"]["chart"]["spec"]["sourceRef"]
            if (src["kind"], src.get("namespace", o["metadata"]["namespace"]), src["name"]) not in objs:
                bad("%s: its %s %s is not in the build" % (where, src["kind"], src["name"]))
            full = check_values(ref, o, objs, where)
            chart = o["spec"]["chart"]["spec"]["chart"]
            if full and chart == "nfs-subdir-external-provisioner":
                sc = full["storageClass"]
                defaults += bool(sc.get("create", True) and sc.get("defaultClass"))
                if sc.get("name") != "nfs-storage" or sc.get("reclaimPolicy") != "Retain":
                    bad("%s: NFS class is %s/%s, want nfs-storage/Retain"
                        % (where, sc.get("name"), sc.get("reclaimPolicy")))
            if full and chart == "longhorn":
                defaults += bool(full["persistence"].get("defaultClass"))
                if full["persistence"].get("reclaimPolicy") != "Delete":
                    bad("%s: Longhorn reclaim policy is not Delete" % where)
        if defaults > 1:
            bad("%s: %d default StorageClasses" % (env, defaults))
        else:
            ok("%s: at most one default StorageClass (%d)" % (env, defaults))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
