#!/usr/bin/python3
"""Break each simulator rule on purpose and check that its test fails.

    /usr/bin/python3 tests/labsim/mutate.py [NAME...]

For each mutation (a one-line change to pve_formats.py, pve_rules.py,
pve_pools.py or labsim.py) the file is changed in a scratch copy of
tests/labsim, the rule's test is run there, and the result must be a
failure. Prints one line per rule; exit 1 if a test still passed with its
rule removed. Not part of `make check` (about 3 s per rule).
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import REF  # noqa: E402

# name: (file, text to find, replacement, test)
MUTATIONS = {
    "ipconfig-ip": ("pve_formats.py", 'if name == "!ipconfig-ip":', 'if name == "!ipconfig-ip-off":',
                    "test_strict.StrictTest.test_ipconfig"),
    "urlencoded": ("pve_formats.py", 'if name == "urlencoded":', 'if name == "urlencoded-off":',
                   "test_strict.StrictTest.test_sshkeys_urlencoded"),
    "mac-unicast": ("pve_formats.py", 'MAC_UNICAST = r"(?i)^[a-f0-9][02468ace](:[a-f0-9]{2}){5}$"',
                    'MAC_UNICAST = r"(?i)^[a-f0-9]{2}(:[a-f0-9]{2}){5}$"', "test_strict.StrictTest.test_mac_unicast"),
    "boot-order": ("pve_formats.py", 'if name == "!boot-order":', 'if name == "!boot-order-off":',
                   "test_strict.StrictTest.test_boot_order_devices"),
    "startup": ("pve_formats.py", '"pve-startup-order": {', '"pve-startup-order-off": {',
                "test_strict.StrictTest.test_startup"),
    "address-list": ("pve_formats.py", 'if name == "address-list":', 'if name == "address-list-off":',
                     "test_strict.StrictTest.test_nameserver"),
    "repeated-key": ("pve_formats.py", 'if isinstance(value, (list, dict)) and t not in ("array", "object"):',
                     'if False:', "test_strict.StrictTest.test_repeated_form_key"),
    "iso-media-cdrom": ("pve_rules.py", 'item.get("content") == "iso" and opts.get("media") != "cdrom"',
                        'False', "test_strict.StrictTest.test_iso_needs_media_cdrom"),
    "import-size-0": ("pve_rules.py", 'if not m or float(volname) != 0:', 'if False:',
                      "test_strict.StrictTest.test_import_from"),
    "import-not-iso": ("pve_rules.py", 'if s_item.get("content") not in ("images", "import"):', 'if False:',
                       "test_strict.StrictTest.test_import_from"),
    "import-abs-path": ("pve_rules.py", 'if src.startswith("/"):', 'if False:',
                        "test_strict.StrictTest.test_import_from"),
    "cdrom-content": ("pve_rules.py", 'and item.get("content") != "iso":', 'and False:',
                      "test_strict.StrictTest.test_storage_content_types"),
    "vcpus": ("pve_rules.py", 'if vcpus > node["maxcpu"]:', 'if False:',
              "test_strict.StrictTest.test_vcpus_over_node_count"),
    "bridge": ("pve_rules.py", 'if m and m.group(1) not in node["bridges"]:', 'if False:',
               "test_strict.StrictTest.test_missing_bridge"),
    "root-only": ("pve_rules.py", 'and user != "root@pam":', 'and False:',
                  "test_strict.StrictTest.test_skiplock_from_token"),
    "typed-returns": ("pve_rules.py", 'if t in ("integer", "boolean") and', 'if False and',
                      "test_strict.StrictTest.test_config_typed_as_returns"),
    "resources-lag": ("pve_rules.py", 'return created is not None and', 'return False and',
                      "test_strict.StrictTest.test_resources_lag_after_create"),
    "tags-normalised": ("labsim.py", 'v = pve_rules.normalize_tags(v)', 'pass',
                        "test_strict.StrictTest.test_tags_normalised"),
    "shared-storage": ("labsim.py", '"total": 1 << 40, "items": items}', '"total": 1 << 40, "items": dict(items)}',
                       "test_strict.StrictTest.test_shared_iso_storage"),
    "pool-must-exist": ("pve_pools.py", 'if pid and pid not in self.w.pools:', 'if False:',
                        "test_strict.StrictTest.test_pools"),
    "pool-audit": ("pve_pools.py", 'if not pool_visible(privs):\n            return []', 'if False:\n            return []',
                   "test_strict.StrictTest.test_pools"),
    "pool-not-empty": ("pve_pools.py", 'if any(v in self.w.vms for v in self.w.pools[pid]["vms"]):', 'if False:',
                       "test_strict.StrictTest.test_pools"),
    "talos-on-disk": ("talos.py", 'return vm.get("disk_uid") or vm["vmid"]', 'return vm["vmid"]',
                      "test_talos_disk.TalosDiskTest.test_state_lives_on_the_disk"),
    "bootstrap-transient": ("talos.py", 'transient = q.pop(0) if q else None', 'transient = None',
                            "test_talos_disk.TalosDiskTest.test_bootstrap_transient_errors"),
    "talos-slow": ("talos.py", 'self._later(self.boot_seconds + slow, up)', 'self._later(self.boot_seconds, up)',
                   "test_talos_disk.TalosDiskTest.test_slow_boot"),
    "pending-cores": ("pve_pending.py", 'if key in ("cores", "sockets"):\n        return False', 'if key in ("cores", "sockets"):\n        return True',
                      "test_strict.StrictTest.test_pending_on_running_vm"),
    "pending-memory": ("pve_pending.py", 'return "memory" in hp', 'return True',
                       "test_strict.StrictTest.test_pending_on_running_vm"),
    "memory-hotplug": ("pve_pending.py", 'return "memory" in hp', 'return False',
                       "test_strict.StrictTest.test_memory_hotplug"),
    "fast-plug": ("pve_pending.py", 'if key in FAST_PLUG:\n        return True', 'if key in FAST_PLUG:\n        return False',
                  "test_strict.StrictTest.test_pending_on_running_vm"),
    "reboot-applies": ("labsim.py", 'self.w.power_off(vm)\n            pve_pending.apply_pending(vm)', 'self.w.power_off(vm)',
                       "test_strict.StrictTest.test_pending_on_running_vm"),
    "start-applies": ("labsim.py", 'pve_pending.apply_pending(vm)      # a start applies pending changes', 'pass',
                      "test_strict.StrictTest.test_stopped_vm_applies_at_once"),
    "create-start": ("labsim.py", "                self.w.power_on(vm)\n            return None",
                     "                pass\n            return None", "test_tasks.TasksTest.test_create_start"),
    "create-autostart-checks": ("labsim.py", "pve_rules.check_start(vm, self.w.nodes[node])", "pass",
                                "test_tasks.TasksTest.test_failed_autostart_is_only_a_warning"),
    "tasks-source": ("labsim.py", '(source == "all" or (t["status"] == "running") == (source == "active"))',
                     "True", "test_tasks.TasksTest.test_list_source"),
    "tasks-limit": ("labsim.py", 'start, limit = int(p.get("start", 0)), int(p.get("limit", 50))',
                    'start, limit = int(p.get("start", 0)), int(p.get("limit", 100000))',
                    "test_tasks.TasksTest.test_list_limit_default_50"),
    # Layer 0 (pve_layer0.py, issue 17)
    "acl-propagate": ("pve_layer0.py", 'if i == len(parts) or prop:', 'if True:',
                      "test_layer0.Layer0Test.test_permissions_per_path"),
    "acl-inherit": ("pve_layer0.py", 'e = acl.get("/" + "/".join(parts[:i]))', 'e = acl.get(path) if i == len(parts) else None',
                    "test_layer0.Layer0Test.test_permissions_per_path"),
    "acl-check": ("labsim.py", 'why = self.acl_failure(check, user, params)', 'why = None',
                  "test_layer0.Layer0Test.test_checks_are_per_path"),
    "acl-privs-union": ("labsim.py", 'return self.acl_union(user)   # per-path ACLs', 'return {"*"}   # per-path ACLs',
                        "test_layer0.Layer0Test.test_name_level_checks_see_only_acl_privileges"),
    "perm-other-user": ("pve_layer0.py", 'if "Sys.Audit" not in self.privs_at(u, "/access"):', 'if False:',
                        "test_layer0.Layer0Test.test_permissions_of_another_user"),
    "perm-root-all": ("pve_layer0.py", 'return set(self.ALL_PRIVS) if "*" in privs else set(privs)', 'return set(privs)',
                      "test_layer0.Layer0Test.test_permissions_tree_and_root"),
    "vlan-aware": ("pve_layer0.py", 'if b in aware:', 'if True:',
                   "test_layer0.Layer0Test.test_bridges_vlan_aware"),
    "storage-visible": ("labsim.py", 'if not self.storage_visible(u, s):', 'if False:',
                        "test_layer0.Layer0Test.test_storage_visible_only_with_audit_or_allocatespace"),
    "storage-enabled": ("labsim.py", 'if not st.get("enabled", 1):', 'if False:',
                        "test_layer0.Layer0Test.test_storage_disabled_and_space"),
    "storage-used": ("labsim.py", 'for i in st["items"].values()) + st.get("used", 0)', 'for i in st["items"].values())',
                     "test_layer0.Layer0Test.test_storage_disabled_and_space"),
    "node-resources": ("labsim.py", 'apply_node_resources(self, v)', 'pass',
                       "test_layer0.Layer0Test.test_node_resources"),
    "node-status": ("labsim.py", '"status": v.get("status", "online"), "type": "node",', '"status": "online", "type": "node",',
                    "test_layer0.Layer0Test.test_node_resources"),
}


def run(name, spec, scratch):
    fname, old, new, test = spec
    path = os.path.join(scratch, fname)
    orig = open(os.path.join(HERE, fname)).read()
    if orig.count(old) != 1:
        return "stale (text found %d times in %s)" % (orig.count(old), fname)
    with open(path, "w") as f:
        f.write(orig.replace(old, new))
    try:
        r = subprocess.run(["/usr/bin/python3", "-m", "unittest", test], cwd=scratch,
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, STRATA_REFERENCE=REF))
    finally:
        shutil.copy(os.path.join(HERE, fname), path)
    return "caught" if r.returncode != 0 else "NOT CAUGHT"


def main(argv):
    names = argv or list(MUTATIONS)
    top = tempfile.mkdtemp(prefix="labsim-mutate-")
    scratch = os.path.join(top, "tests", "labsim")
    os.makedirs(scratch)
    os.symlink(os.path.join(HERE, "..", "..", "proto"), os.path.join(top, "proto"))
    bad = 0
    try:
        for f in os.listdir(HERE):
            if f.endswith(".py"):
                shutil.copy(os.path.join(HERE, f), scratch)
        # baseline: unchanged, the tests pass (and are not skipped) here
        tests = sorted({MUTATIONS[n][3] for n in names})
        r = subprocess.run(["/usr/bin/python3", "-m", "unittest"] + tests, cwd=scratch, capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, STRATA_REFERENCE=REF))
        if r.returncode != 0 or "skipped" in r.stderr:
            print("baseline failed or skipped:\n" + r.stderr[-2000:])
            return 1
        print("baseline: %d tests pass unchanged" % len(tests))
        for n in names:
            res = run(n, MUTATIONS[n], scratch)
            if res != "caught":
                bad += 1
            print("%-18s %s" % (n, res))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("%d rules, %d not caught" % (len(names), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
