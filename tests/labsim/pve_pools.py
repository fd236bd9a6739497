"""Resource pools for the simulated Proxmox (FACTS.md §9 and §4).

A mixin of labsim.Api: the handlers of /pools and the pool check of a VM
create. The world keeps `pools`: {poolid: {"comment": str, "vms": set}}.
"""
from pve_rules import Refusal


def pool_visible(privs):
    # apidata.json GET /pools: "List all pools where you have Pool.Audit
    # permissions on /pool/<pool>" (ACL paths are not modelled: by name)
    return "*" in privs or "Pool.Audit" in privs or "Pool.Allocate" in privs


class PoolsMixin:
    def pool_entry(self, pid, members):
        pool = self.w.pools[pid]
        e = {"poolid": pid}
        if pool["comment"]:
            e["comment"] = pool["comment"]
        if members:
            e["members"] = [{"id": "qemu/%d" % v, "node": self.w.vms[v]["node"], "type": "qemu",
                             "vmid": v} for v in sorted(pool["vms"]) if v in self.w.vms]
        return e

    def h_GET_pools(self, p, u):
        privs = self.privs_of(u)
        if p.get("poolid"):
            if p["poolid"] not in self.w.pools or not pool_visible(privs):
                # pve-access-control Pool.pm index with poolid: unknown pool
                raise Refusal(500, "pool '%s' does not exist" % p["poolid"])
            return [self.pool_entry(p["poolid"], True)]
        if not pool_visible(privs):
            return []
        return [self.pool_entry(pid, False) for pid in sorted(self.w.pools)]

    def h_POST_pools(self, p, u):
        pid = p["poolid"]
        if pid in self.w.pools:
            raise Refusal(500, "create pool failed: pool '%s' already exists" % pid)
        self.w.pools[pid] = {"comment": p.get("comment", ""), "vms": set()}
        return None

    def h_DELETE_pools(self, p, u):
        pid = p["poolid"]
        if pid not in self.w.pools:
            raise Refusal(500, "delete pool failed: pool '%s' does not exist" % pid)
        # apidata.json DELETE /pools: "You can only delete empty pools (no members)."
        if any(v in self.w.vms for v in self.w.pools[pid]["vms"]):
            raise Refusal(500, "delete pool failed: pool '%s' is not empty" % pid)
        del self.w.pools[pid]
        return None

    def check_create_pool(self, p):
        """FACTS.md §4 Create: the pool must exist. pve-access-control
        RPCEnvironment check_pool_exist: raise_perm_exc("pool '$pool' does
        not exist"), i.e. 403 "Permission check failed (pool 'X' does not
        exist)"."""
        pid = p.get("pool")
        if pid and pid not in self.w.pools:
            raise Refusal(403, "Permission check failed (pool '%s' does not exist)" % pid)

    def pool_add(self, pid, vmid):
        if pid and pid in self.w.pools:
            self.w.pools[pid]["vms"].add(vmid)

    def pool_forget(self, vmid):
        # FACTS.md §4 Destroy: the VM's ACLs and pool membership go with it
        for pool in self.w.pools.values():
            pool["vms"].discard(vmid)

    def pool_of(self, vmid):
        for pid, pool in self.w.pools.items():
            if vmid in pool["vms"]:
                return pid
        return None
