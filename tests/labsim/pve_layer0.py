"""Layer 0 of the simulated Proxmox: what the hypervisor offers before any
VM exists (issue 17). A mixin of labsim.Api.

- Per-path privileges (FACTS.md §9, §1 privsep): a token may carry
  "acl": {"/path": {"privs": [...], "propagate": 1}}, its effective
  (already intersected) ACLs. On a path the entry of the deepest ACL path
  above it that propagates, or the path's own, wins; a VM in a pool also
  gets the pool's privileges. Tokens with a plain "privs" list keep the
  older model: those names on every path.
- GET /access/permissions[?path=]: {"/path": {"Priv": propagate}}.
- GET /nodes/{node}/network[?type=]: bridges with bridge_vlan_aware and
  bridge_ports (FACTS.md §8), from the world's "bridges" and the knob
  "bridge_vlan_aware" {node: [bridge]}.
- GET /nodes/{node}/storage: only storages the token may see
  (Datastore.Audit or Datastore.AllocateSpace on /storage/S, apidata.json),
  `enabled` from the knob "storage" ({node: {storage: {...}}}), enabled=1
  filters disabled ones out.
- Node CPU, memory and status from the knob "node_resources"
  ({node: {"maxcpu": N, "maxmem": bytes, "status": "offline"}}).
"""
import os
import re

from pve_rules import Refusal

PRIV_RE = re.compile(r'"((?:VM|Sys|Datastore|SDN|Pool|Permissions|Realm|User|Group|Mapping)\.[A-Za-z.]*[A-Za-z])"')


def all_privileges(reference):
    """Every privilege name the API's permission checks use (apidata.json),
    what a '*' token or root holds on every path."""
    names = set()
    for f in ("apidata.json", "api-schema-subset.json"):
        p = os.path.join(reference, "proxmox", f)
        if os.path.exists(p):
            with open(p) as fh:
                names.update(PRIV_RE.findall(fh.read()))
    names.add("SDN.Use")   # FACTS.md §8: bridges in VM configs
    return sorted(names)


def split_path(path):
    return [x for x in path.split("/") if x]


class Layer0Mixin:
    ALL_PRIVS = []

    def token_acl(self, user):
        t = self.tokens.get(user)
        return t.get("acl") if t else None

    def expand(self, privs):
        return set(self.ALL_PRIVS) if "*" in privs else set(privs)

    def privs_at(self, user, path):
        """{privilege: propagate} the token holds on path."""
        t = self.tokens.get(user)
        if t is None:
            return {}
        acl = t.get("acl")
        if acl is None:
            return {p: 1 for p in sorted(self.expand(t.get("privs", ["*"])))}
        parts = split_path(path)
        cur = {}
        for i in range(len(parts) + 1):
            e = acl.get("/" + "/".join(parts[:i]))
            if e is None:
                continue
            prop = 1 if e.get("propagate", 1) else 0
            if i == len(parts) or prop:
                cur = {p: prop for p in self.expand(e.get("privs", []))}
        if len(parts) == 2 and parts[0] == "vms" and parts[1].isdigit():
            pool = self.pool_of(int(parts[1]))
            if pool:
                for p, prop in self.privs_at(user, "/pool/" + pool).items():
                    cur.setdefault(p, prop)
        return cur

    def acl_union(self, user):
        acl = self.token_acl(user) or {}
        out = set()
        for e in acl.values():
            out |= self.expand(e.get("privs", []))
        return out

    def acl_failure(self, check, user, params):
        """For a token with per-path ACLs: None when check passes, else the
        '(/path, Priv)' of the 403 message (FACTS.md §1)."""
        if self.token_acl(user) is None or not check:
            return None
        op = check[0]
        if op in ("and", "or"):
            fails = [self.acl_failure(c, user, params) for c in check[1:]]
            bad = [f for f in fails if f]
            if op == "and":
                return bad[0] if bad else None
            return bad[0] if len(bad) == len(fails) else None
        if op != "perm":
            return None
        path = re.sub(r"\{(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), check[1])
        have = self.privs_at(user, path)
        need = check[2]
        anyof = len(check) > 4 and check[3] == "any" and check[4]
        if anyof:
            return None if any(p in have for p in need) else "(%s, %s)" % (path, ", ".join(need))
        missing = [p for p in need if p not in have]
        return "(%s, %s)" % (path, missing[0]) if missing else None

    # --- /access/permissions
    def h_GET_access_permissions(self, p, u):
        if p.get("userid") and p["userid"] != u:
            # apidata.json: another user's permissions need Sys.Audit on /access
            if "Sys.Audit" not in self.privs_at(u, "/access"):
                raise Refusal(403, "Permission check failed (/access, Sys.Audit)")
            u = p["userid"]
        if p.get("path"):
            return {"__data": {p["path"]: self.privs_at(u, p["path"])}, "__extra": {}}
        acl = self.token_acl(u)
        paths = sorted(acl) if acl is not None else ["/"]
        return {"__data": {q: self.privs_at(u, q) for q in paths}, "__extra": {}}

    # --- /nodes/{node}/network
    def h_GET_nodes_node_network(self, p, u):
        node = p["node"]
        aware = set(self.w.knobs.get("bridge_vlan_aware", {}).get(node, []))
        out = []
        if p.get("type") in (None, "eth"):
            out.append({"iface": "eno1", "type": "eth", "active": 1, "exists": 1,
                        "method": "manual", "families": ["inet"], "priority": 3})
        if p.get("type") in (None, "bridge", "any_bridge", "any_local_bridge"):
            for i, b in enumerate(self.w.nodes[node]["bridges"]):
                e = {"iface": b, "type": "bridge", "active": 1, "autostart": 1,
                     "bridge_ports": "eno1" if i == 0 else "", "bridge_stp": "off", "bridge_fd": "0",
                     "method": "manual", "families": ["inet"], "priority": 4 + i}
                if b in aware:
                    e["bridge_vlan_aware"] = 1
                out.append(e)
        return {"__data": out, "__extra": {}}

    # --- storage visibility
    def storage_visible(self, user, storage):
        have = self.privs_at(user, "/storage/" + storage)
        return "Datastore.Audit" in have or "Datastore.AllocateSpace" in have


def apply_node_resources(world, v):
    for n, r in v.items():
        nv = world.nodes.get(n)
        if nv is None:
            raise ValueError("no node %s" % n)
        for k in ("maxcpu", "maxmem", "status"):
            if k in r:
                nv[k] = r[k]


def apply_storage(world, v):
    for n, stores in v.items():
        nv = world.nodes[n]
        for s, conf in stores.items():
            st = nv["storage"].setdefault(s, {"type": "dir", "shared": 0, "content": [],
                                              "total": 100 << 30, "items": {}})
            for k in ("type", "shared", "content", "total", "enabled", "used"):
                if k in conf:
                    st[k] = conf[k]


