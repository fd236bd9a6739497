#!/usr/bin/python3
"""Break each simulator rule on purpose and check that its test fails.

    /usr/bin/python3 tests/labsim/mutate.py [NAME...]

For each mutation (a small change to pve_formats.py, pve_rules.py,
pve_pools.py, labsim.py, talos.py or etcd.py) the file is changed in a scratch copy of
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
    "metal-rewritten": ("metal.py", 'or getattr(node, "disk_stamp", stamp) != stamp', '',
                        "test_metal.MetalBootTest.test_rewritten_disk_boots_fresh_and_loses_etcd"),
    "metal-wipe-etcd": ("metal.py", 'self.mgr.etcd_of(node).node_wiped(node)', 'pass',
                        "test_metal.MetalBootTest.test_rewritten_disk_boots_fresh_and_loses_etcd"),
    "cloudinit-drive": ("labsim.py", 'if pve_cloudinit.is_cloudinit(volname):', 'if False:',
                        "test_cloudinit.CloudinitTest.test_cloudinit_drive_allocated"),
    "cloudinit-images": ("pve_cloudinit.py", 'if "images" not in st["content"]:', 'if False:',
                         "test_cloudinit.CloudinitTest.test_cloudinit_drive_needs_images_content"),
    "cloudinit-one": ("labsim.py", 'if two:', 'if False:',
                      "test_cloudinit.CloudinitTest.test_one_cloudinit_drive"),
    "template-base": ("pve_cloudinit.py", 'cfg[k] = base + v[len(vol):]', 'pass',
                      "test_cloudinit.CloudinitTest.test_template_task"),
    "template-running": ("pve_cloudinit.py", 'if vm["status"] == "running":', 'if False:',
                         "test_cloudinit.CloudinitTest.test_template_refusals"),
    "template-twice": ("pve_cloudinit.py", 'if str(cfg.get("template", "0")) == "1":', 'if False:',
                       "test_cloudinit.CloudinitTest.test_template_refusals"),
    "template-locked": ("pve_cloudinit.py", '    if cfg.get("lock"):', '    if False:',
                        "test_cloudinit.CloudinitTest.test_template_refusals"),
    "cluster-version": ("labsim.py", 'v = self.w.knobs.get("pve_version", "8.4.1")\n        return {"version": v,',
                        'v = "8.4.1"\n        return {"version": v,', "test_layer0.Layer0Test.test_version_from_knob"),
    "node-version": ("pve_cloudinit.py", 'v = sim.w.knobs.get("pve_version", "8.4.1")', 'v = "8.4.1"',
                     "test_cloudinit.CloudinitTest.test_node_version"),
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
    "upgrade-2-members": ("talos.py", 'if len(members) == 2:', 'if False:',
                          "test_talos_upgrade.TalosUpgradeTest.test_two_member_etcd_refused"),
    "upgrade-member-down": ("talos.py", 'if not o.started() or o.node.unhealthy():', 'if False:',
                            "test_talos_upgrade.TalosUpgradeTest.test_member_down_refused_and_fail_knob"),
    "upgrade-fail-vmid": ("talos.py", 'if why:\n            raise Fail(grpc.StatusCode.FAILED_PRECONDITION,\n'
                          '                       "error validating installer image %r: %s" % (image, why))\n'
                          '        if node.is_controlplane()', 'if node.is_controlplane()',
                          "test_talos_upgrade.TalosUpgradeTest.test_member_down_refused_and_fail_knob"),
    "upgrade-unhealthy": ("talos.py", 'node.unhealthy_until = time.time() + bad * self.scale', 'pass',
                          "test_talos_upgrade.TalosUpgradeTest.test_unhealthy_after_upgrade"),
    "upgrade-new-boot-id": ("talos.py", 'self.boot_id = str(uuid.uuid4())\n        self.state = "running"',
                            'self.state = "running"',
                            "test_talos_upgrade.TalosUpgradeTest.test_boot_id_read_and_new_after_upgrade"),
    "staged-at-reboot": ("talos.py", 'node.docs, node.config = node.staged', 'pass',
                         "test_talos_upgrade.TalosUpgradeTest.test_config_change_keeps_version_and_staged_waits_for_reboot"),
    "staged-not-now": ("talos.py", 'if not self.maint and req.mode == Mode.STAGED:', 'if False:',
                       "test_talos_upgrade.TalosUpgradeTest.test_config_change_keeps_version_and_staged_waits_for_reboot"),
    "config-keeps-version": ("talos.py", 'node.installed_tag = node.version_tag()', 'pass',
                             "test_talos_upgrade.TalosUpgradeTest.test_config_change_keeps_version_and_staged_waits_for_reboot"),
    "pdb-budget": ("kube.py", "if (self._pod_healthy(pod) and allowed < 1)", "if False and (self._pod_healthy(pod) and allowed < 1)",
                   "test_drain.DrainTest.test_pdb_blocks_eviction"),
    "pdb-disrupted": ("kube.py", "if self._pod_healthy(p) and not p[\"metadata\"].get(\"deletionTimestamp\"))",
                      "if self._pod_healthy(p))", "test_drain.DrainTest.test_pdb_allows_eviction_within_budget"),
    "pdb-two": ("kube.py", "if len(pdbs) > 1:", "if False:", "test_drain.DrainTest.test_two_pdbs_refused"),
    "node-stays": ("kube.py", "            for name, r in sorted(self.node_reg.items()):\n",
                   "            for name, r in sorted((k, v) for k, v in self.node_reg.items() if k in running):\n",
                   "test_drain.DrainTest.test_node_stays_until_deleted"),
    "node-reregisters": ("kube.py", "if r is None or r.get(\"ip\") is None:", "if r is None and False:",
                         "test_drain.DrainTest.test_deleted_node_of_running_kubelet_comes_back"),
    "node-gc-pods": ("kube.py", "if (p.get(\"spec\") or {}).get(\"nodeName\") == name:", "if False:",
                     "test_drain.DrainTest.test_node_delete_removes_its_pods"),
    "etcd-reset-leaves": ("talos.py", 'self.etcd_of(node).leave(node)',
        'pass', "test_talos_etcd.TalosEtcdTest.test_membership"),
    "etcd-cp-only": ("talos.py", 'if not node.is_controlplane():\n            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "%s is only',
        'if False:\n            raise Fail(grpc.StatusCode.UNIMPLEMENTED, "%s is only', "test_talos_etcd.TalosEtcdTest.test_membership"),
    "etcd-roles": ("talos.py", '    "/machine.MachineService/EtcdMemberList": READERS | {"os:etcd:backup"},\n',
        '', "test_talos_etcd.TalosEtcdTest.test_membership"),
    "etcd-join-waiting": ("talos.py", 'node.mgr.etcd_join_waiting(node)',
        'pass', "test_talos_etcd.TalosEtcdTest.test_membership"),
    "etcd-recover-restores": ("talos.py", 'etcd.kube_load(cl, data)',
        'pass', "test_talos_etcd.TalosEtcdTest.test_snapshot_recover"),
    "etcd-recover-hash": ("talos.py", 'data = etcd.decode_snapshot(node.etcd_recover, req.recover_skip_hash_check)',
        'data = etcd.decode_snapshot(node.etcd_recover, True)', "test_talos_etcd.TalosEtcdTest.test_snapshot_recover"),
    "etcd-disk-holds-data": ("talos.py", 'node.state = "off"\n                if node.config and node.is_controlplane():',
        'node.state = "off"\n                if False:', "test_talos_etcd.TalosEtcdTest.test_snapshot_recover"),
    "etcd-bootstrap-once": ("etcd.py", 'if self.members or getattr(node, "etcd_member", None):\n                raise EtcdError("ALREADY_EXISTS", NOT_EMPTY)',
        'if False:\n                raise EtcdError("ALREADY_EXISTS", NOT_EMPTY)', "test_etcd.EtcdModelTest.test_bootstrap_one_member_leads_and_only_once"),
    "etcd-join-learner": ("etcd.py", 'm = Member(self._new_id(), node, learner=True)',
        'm = Member(self._new_id(), node, learner=False)', "test_etcd.EtcdModelTest.test_join_as_learner_unnamed_then_started_then_voter"),
    "etcd-join-unnamed": ("etcd.py", 'm.name = node.hostname()\n                    self.log.append(("started"',
        'm.name = m.name\n                    self.log.append(("started"', "test_etcd.EtcdModelTest.test_join_as_learner_unnamed_then_started_then_voter"),
    "etcd-join-quorum": ("etcd.py", 'if not self.leader:\n                self.later(1.0, lambda: self._try_join(node))',
        'if False:\n                self.later(1.0, lambda: self._try_join(node))', "test_etcd.EtcdModelTest.test_no_join_without_quorum"),
    "etcd-quorum": ("etcd.py", 'return bool(v) and sum(1 for m in v if m.started()) >= len(v) // 2 + 1',
        'return bool(v)', "test_etcd.EtcdModelTest.test_leader_moves_with_quorum_none_without"),
    "etcd-reelect": ("etcd.py", 'if cur is not None and cur.started() and not cur.learner and self.has_quorum():',
        'if cur is not None:', "test_etcd.EtcdModelTest.test_leader_moves_with_quorum_none_without"),
    "etcd-list-leader": ("etcd.py", 'if not query_local and not self.leader:',
        'if False:', "test_etcd.EtcdModelTest.test_member_list_needs_a_leader_unless_local"),
    "etcd-list-running": ("etcd.py", '            self._running_member(node)\n            self.settle()\n            if not query_local',
        '            self.settle()\n            if not query_local', "test_etcd.EtcdModelTest.test_member_list_only_on_a_running_member"),
    "etcd-remove-notfound": ("etcd.py", 'if m is None:\n                raise EtcdError("NOT_FOUND", NOT_FOUND)',
        'if m is None:\n                return None', "test_etcd.EtcdModelTest.test_remove_unknown_is_not_found"),
    "etcd-remove-quorum": ("etcd.py", 'if not voters or left < len(voters) // 2 + 1:',
        'if not voters:', "test_etcd.EtcdModelTest.test_remove_refused_below_quorum"),
    "etcd-remove-last": ("etcd.py", 'if not voters or left < len(voters) // 2 + 1:',
        'if voters and left < len(voters) // 2 + 1:', "test_etcd.EtcdModelTest.test_remove_last_member_refused"),
    "etcd-removed-stays-out": ("etcd.py", '            if getattr(node, "etcd_member", None):\n                # removed',
        '            if False:\n                # removed', "test_etcd.EtcdModelTest.test_removed_member_does_not_rejoin"),
    "etcd-leave-removes": ("etcd.py", '            try:\n                self._remove(m.id)',
        '            try:\n                pass', "test_etcd.EtcdModelTest.test_leave_really_leaves_and_a_reboot_joins_anew"),
    "etcd-remove-leader": ("etcd.py", '            if not self.leader:\n                raise EtcdError("UNAVAILABLE", NO_LEADER)\n            m = self.members.get(mid)',
        '            m = self.members.get(mid)', "test_etcd.EtcdModelTest.test_leave_refused_without_leader"),
    "etcd-forfeit-one": ("etcd.py", 'if len(self.members) == 1:',
        'if False:', "test_etcd.EtcdModelTest.test_forfeit"),
    "etcd-forfeit-nonleader": ("etcd.py", 'if self.leader != m.id:\n                return ""',
        'if False:\n                return ""', "test_etcd.EtcdModelTest.test_forfeit"),
    "etcd-snapshot-hash": ("etcd.py", 'if hashlib.sha256(blob[:-32]).digest() != blob[-32:]:',
        'if False:', "test_etcd.EtcdModelTest.test_snapshot_format_and_hash"),
    "etcd-snapshot-pages": ("etcd.py", 'if len(blob) < 32 or len(blob) % 512 != 32:',
        'if len(blob) < 32:', "test_etcd.EtcdModelTest.test_snapshot_format_and_hash"),
    "etcd-data-on-disks": ("etcd.py", 'if self.members and not any(not isinstance(m.node, _Gone) for m in self.members.values()):',
        'if self.members and not self.members:', "test_etcd.EtcdModelTest.test_data_lost_with_every_member_disk"),
    "create-start": ("labsim.py", "                self.w.power_on(vm)\n            return None",
                     "                pass\n            return None", "test_tasks.TasksTest.test_create_start"),
    "create-autostart-checks": ("labsim.py", "pve_rules.check_start(vm, self.w.nodes[node])", "pass",
                                "test_tasks.TasksTest.test_failed_autostart_is_only_a_warning"),
    "tasks-source": ("labsim.py", '(source == "all" or (t["status"] == "running") == (source == "active"))',
                     "True", "test_tasks.TasksTest.test_list_source"),
    "tasks-since": ("labsim.py", 'ts = [t for t in ts if t["starttime"] >= int(p["since"])]', 'pass',
                    "test_tasks.TasksTest.test_list_since"),
    "tasks-list-status": ("labsim.py", 'e["status"] = t["exitstatus"]', 'e["status"] = "OK"',
                          "test_tasks.TasksTest.test_list_status_is_exit_status"),
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
