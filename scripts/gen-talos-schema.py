#!/usr/bin/env python3
"""Derive the compact key/type table that `strata validate` checks Talos
patches against, from the Talos machine-config JSON schema.

    scripts/gen-talos-schema.py [REFERENCE_DIR] > src/config/talos_schema_data.c

REFERENCE_DIR defaults to ../shared/reference/talos. It reads
config.schema.json (v1.12) and config.schema.v1.11.json: keys that v1.11
documents and v1.12 no longer does (machine.network.interfaces, ...) are
still decoded by v1.12, so they go in as "legacy" (validate warns).

Only structure is kept: key names, value kinds, enum values, document
kinds. No descriptions or other text. tests/unit/test_talos_schema.c runs
this script and fails when the committed table differs from its output.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_REF = os.path.join(HERE, "..", "..", "shared", "reference", "talos")

# What Talos v1.12 reads that its schema does not say, each from a fact in
# the reference: added to the table as if the schema had it.
EXTRA_KEYS = {
    # FACTS.md, "controlplane.yaml, document 1": upstream's generator
    # writes persist: true into every v1.12 config.
    "v1alpha1.Config": {"persist": {"type": "boolean"}},
}
EXTRA_ENUM = {
    # The schema's own description of machine.type: "join" is still
    # supported but deprecated; FACTS.md: init.yaml has type: init.
    ("v1alpha1.MachineConfig", "type"): ["init", "join"],
}

KINDS = ["TS_ANY", "TS_STR", "TS_INT", "TS_BOOL", "TS_ENUM", "TS_OBJ",
         "TS_OPEN", "TS_MAP", "TS_ARR", "TS_ONEOF"]


class Table:
    def __init__(self, new, old):
        self.new, self.old = new, old
        self.nodes = []          # (kind, a, n)
        self.props = []          # (name, node, legacy)
        self.enums = []          # strings
        self.alts = []           # node indices
        self.memo = {}           # key -> node index
        self.defnode = {}        # def name -> node index

    def node(self, key, build):
        if key in self.memo:
            return self.memo[key]
        idx = len(self.nodes)
        self.memo[key] = idx
        self.nodes.append(None)
        self.nodes[idx] = build()
        return idx

    def ref(self, name):
        if name in self.defnode:
            return self.defnode[name]
        idx = len(self.nodes)
        self.defnode[name] = idx
        self.nodes.append(None)
        new = self.new.get(name)
        old = self.old.get(name)
        self.nodes[idx] = self.build_obj(new if new is not None else old,
                                         old if new is not None else None)
        return idx

    def build_obj(self, s, legacy_from):
        if s.get("type") != "object" or "properties" not in s:
            return self.shape(s)
        props = [(k, self.conv(v), 0) for k, v in s["properties"].items()]
        if legacy_from is not None:
            have = set(s["properties"])
            props += [(k, self.conv(v), 1)
                      for k, v in legacy_from.get("properties", {}).items()
                      if k not in have]
        props.sort(key=lambda p: p[0])
        a = len(self.props)
        self.props.extend(props)
        return ("TS_OBJ", a, len(props))

    def shape(self, s):
        """The (kind, a, n) of a schema that is not a $ref."""
        if "oneOf" in s:
            alts = [self.conv(x) for x in s["oneOf"]]
            a = len(self.alts)
            self.alts.extend(alts)
            return ("TS_ONEOF", a, len(alts))
        if "enum" in s:
            vals = sorted(str(v) for v in s["enum"])
            a = len(self.enums)
            self.enums.extend(vals)
            return ("TS_ENUM", a, len(vals))
        t = s.get("type")
        if t == "string":
            return ("TS_STR", 0, 0)
        if t == "integer":
            return ("TS_INT", 0, 0)
        if t == "boolean":
            return ("TS_BOOL", 0, 0)
        if t == "array":
            return ("TS_ARR", self.conv(s.get("items", {})), 0)
        if t == "object":
            if "properties" in s:
                return self.build_obj(s, None)
            pp = s.get("patternProperties")
            if pp and list(pp) == [".*"]:
                return ("TS_MAP", self.conv(pp[".*"]), 0)
            return ("TS_OPEN", 0, 0)
        return ("TS_ANY", 0, 0)

    def conv(self, s):
        if "$ref" in s:
            return self.ref(s["$ref"].split("/")[-1])
        key = json.dumps(strip(s), sort_keys=True)
        return self.node(key, lambda: self.shape(s))


def strip(o):
    """Structure only, for de-duplicating identical shapes."""
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if k in ("properties", "patternProperties"):
                out[k] = {name: strip(sub) for name, sub in v.items()}
            elif k in ("type", "enum", "items", "oneOf", "$ref"):
                out[k] = strip(v)
        return out
    if isinstance(o, list):
        return [strip(x) for x in o]
    return o


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    ref = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_REF
    new = json.load(open(os.path.join(ref, "config.schema.json")))
    old = json.load(open(os.path.join(ref, "config.schema.v1.11.json")))
    for name, keys in EXTRA_KEYS.items():
        new["$defs"][name]["properties"].update(keys)
    for (name, key), vals in EXTRA_ENUM.items():
        new["$defs"][name]["properties"][key]["enum"] += vals
    t = Table(new["$defs"], old["$defs"])
    docs = []
    for alt in new["oneOf"]:
        name = alt["$ref"].split("/")[-1]
        d = new["$defs"][name]
        kind = d["properties"].get("kind", {}).get("enum", [None])[0]
        docs.append((kind, t.ref(name)))
    docs.sort(key=lambda d: (d[0] is not None, d[0] or ""))

    out = []
    w = out.append
    w("/*")
    w(" * Generated by scripts/gen-talos-schema.py from the Talos v1.12")
    w(" * machine-config schema (legacy keys from v1.11). Structure only: key")
    w(" * names, value kinds, enum values. Do not edit; regenerate.")
    w(" */")
    w('#include "config/talos_schema.h"')
    w("")
    w("static const struct ts_node nodes[] = {")
    for i, (k, a, n) in enumerate(t.nodes):
        w("\t/* %d */ { %s, %d, %d }," % (i, k, a, n))
    w("};")
    w("")
    w("static const struct ts_prop props[] = {")
    for name, node, legacy in t.props:
        w("\t{ %s, %d, %d }," % (c_str(name), node, legacy))
    w("};")
    w("")
    w("static const char *const enums[] = {")
    for e in t.enums:
        w("\t%s," % c_str(e))
    w("};")
    w("")
    w("static const unsigned short alts[] = {")
    w("\t" + ", ".join(str(x) for x in t.alts) + ",")
    w("};")
    w("")
    w("static const struct ts_doc docs[] = {")
    for kind, node in docs:
        w("\t{ %s, %d }," % (c_str(kind) if kind else "NULL", node))
    w("};")
    w("")
    w("const struct talos_schema talos_schema_v1_12 = {")
    w("\t.minor = 12,")
    w("\t.nodes = nodes,")
    w("\t.props = props,")
    w("\t.enums = enums,")
    w("\t.alts = alts,")
    w("\t.docs = docs,")
    w("\t.n_docs = sizeof(docs) / sizeof(docs[0]),")
    w("};")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
