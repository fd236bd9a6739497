#!/bin/sh
# etcd snapshot and disaster recovery (issue 15 items 5 and 7): a snapshot
# taken with an os:etcd:backup certificate, recorded with size and SHA-256;
# restore refused while etcd is healthy and for a damaged file; then every
# VM destroyed, only the env folder left, and `strata restore --etcd`
# brings the cluster back: the objects applied before the snapshot exist,
# the one applied after does not, three etcd members, every node Ready, and
# Flux (its controllers and Kustomizations came back with etcd) reconciles
# again: a changed Kustomization is observed and Ready.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/dr"
write_env "$E" dr 3100 3 1 127.0.100
cat >> "$E/config.yml" <<'YAML'
gitops:
  repo: ssh://git@git.example.org/lab/fleet.git
  known_hosts: "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
YAML
EP=https://127.0.100.10:6443
KS=/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations

# kube_cm ENV NAME: server-side apply of ConfigMap default/NAME with ENV/kubeconfig
kube_cm() {
	kube_req PATCH "$1" "/api/v1/namespaces/default/configmaps/$2" \
		"{apiVersion: v1, kind: ConfigMap, metadata: {name: $2, namespace: default}, data: {made: $2}}" > /dev/null
}

expect_rc 0 "apply 3+1" -- "$STRATA" apply "$E" --yes --timeout 60s
kube_cm "$E" before-snapshot && ok "ConfigMap before-snapshot applied" || bad "could not apply before-snapshot"

# the snapshot
expect_rc 0 "etcd snapshot" -- "$STRATA" etcd snapshot "$E"
S=$(ls "$E"/etcd/dr-*.snapshot 2>/dev/null | head -1)
[ -n "$S" ] && ok "snapshot written to ENV/etcd/" || bad "no snapshot in $E/etcd"
[ "$(stat -c %a "$S")" = 600 ] && ok "snapshot is 0600" || bad "snapshot mode $(stat -c %a "$S")"
size=$(wc -c < "$S"); sha=$(sha256sum "$S" | cut -d' ' -f1)
[ $((size % 512)) = 32 ] && ok "snapshot is pages plus a SHA-256 ($size bytes)" || bad "snapshot size $size"
expect_grep "etcd snapshot of 'dr' from 127.0.100.1[123]: .*($size bytes, sha256 $sha)" "$T/err" "size and SHA-256 printed"
$PY - "$E/etcd/snapshots.json" "$S" "$size" "$sha" > "$T/rec" 2>&1 <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))[-1]
assert (r["file"], r["bytes"], r["sha256"]) == (sys.argv[2], int(sys.argv[3]), sys.argv[4]), r
print("recorded")
PYEOF
expect_grep "^recorded" "$T/rec" "snapshots.json records file, size and SHA-256"
$PY - "$E/talosconfig-etcd-backup" > "$T/role" 2>&1 <<'PYEOF'
import base64, sys, yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
t = yaml.safe_load(open(sys.argv[1]))
c = x509.load_pem_x509_certificate(base64.b64decode(t["contexts"][t["context"]]["crt"]))
print("orgs", [a.value for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)])
PYEOF
expect_grep "orgs \['os:etcd:backup'\]" "$T/role" "the snapshot talosconfig has the os:etcd:backup role only"
[ "$(stat -c %a "$E/talosconfig-etcd-backup")" = 600 ] && ok "talosconfig-etcd-backup is 0600" || bad "its mode"
expect_rc 0 "etcd snapshot --out" -- "$STRATA" etcd snapshot "$E" --out "$T/copy.snapshot"
[ -s "$T/copy.snapshot" ] && ok "--out FILE written" || bad "no --out file"
expect_rc 2 "an existing --out file is not replaced" -- "$STRATA" etcd snapshot "$E" --out "$T/copy.snapshot"
expect_rc 0 "etcd members" -- "$STRATA" etcd members "$E"
[ "$(grep -c 'dr-cp-[123] .* no ' "$T/out")" = 3 ] && ok "three voting members listed" || { bad "members:"; cat "$T/out"; }

kube_cm "$E" after-snapshot && ok "ConfigMap after-snapshot applied" || bad "could not apply after-snapshot"

# restore refuses a healthy etcd and a damaged file, before anything
expect_rc 2 "restore --etcd refused while etcd is healthy" -- "$STRATA" restore "$E" --etcd "$S" --yes
expect_grep "is healthy: recovering would throw away everything since the snapshot" "$T/err" "says why, and the words to go on"
cp "$S" "$T/bad.snapshot"; printf 'X' | dd of="$T/bad.snapshot" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_rc 2 "a damaged snapshot is refused" -- "$STRATA" restore "$E" --etcd "$T/bad.snapshot" --yes
expect_grep "SHA-256 trailer does not match" "$T/err" "damage named"
head -c 1000 "$S" > "$T/cut.snapshot"
expect_rc 2 "a cut snapshot is refused" -- "$STRATA" restore "$E" --etcd "$T/cut.snapshot" --yes
expect_grep "sha256 checksum not found" "$T/err" "cut file named"

# everything but the env folder goes
expect_rc 0 "destroy every VM" -- "$STRATA" destroy "$E" --yes
[ "$(labsim_py "'$EP' in s['talos']['kubernetes']")" = False ] && ok "the cluster is gone with its disks" || bad "kubernetes still served"
[ -f "$S" ] && [ -f "$E/secrets.yaml" ] && ok "env folder kept (secrets, snapshot)" || bad "env folder lost files"

expect_rc 0 "restore --etcd" -- "$STRATA" restore "$E" --etcd "$S" --yes --timeout 60s
expect_grep "etcd snapshot ($size bytes) uploaded to dr-cp-1" "$T/err" "snapshot uploaded with EtcdRecover"
expect_grep "etcd recovered from the snapshot on dr-cp-1" "$T/err" "Bootstrap with recover_etcd"
[ "$(talos_calls EtcdRecover)" = 1 ] && ok "one EtcdRecover upload" || bad "EtcdRecover calls: $(talos_calls EtcdRecover)"
[ "$(talos_calls Bootstrap)" -ge 2 ] && ok "Bootstrap called for the recovery" || bad "Bootstrap calls: $(talos_calls Bootstrap)"
if kube_get "$E" /api/v1/namespaces/default/configmaps/before-snapshot > "$T/cm" 2>&1 && grep -q '"made": "before-snapshot"' "$T/cm"; then
	ok "the ConfigMap applied before the snapshot exists again"
else
	bad "before-snapshot missing: $(cat "$T/cm")"
fi
kube_get "$E" /api/v1/namespaces/default/configmaps/after-snapshot > /dev/null 2>&1 \
	&& bad "after-snapshot came back" || ok "the ConfigMap applied after the snapshot does not"
kube_get "$E" /api/v1/nodes > "$T/nodes.json" 2>&1
$PY - "$T/nodes.json" > "$T/ready" 2>&1 <<'PYEOF'
import json, sys
items = json.load(open(sys.argv[1]))["items"]
ready = sorted(n["metadata"]["name"] for n in items
               if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]))
print("ready", len(items), len(ready))
PYEOF
expect_grep "^ready 4 4" "$T/ready" "every node Ready"
# Flux reconciles again: a change to a Kustomization (a new generation) is
# observed by the restored kustomize-controller and the Kustomization Ready
kube_get "$E" $KS/apps > "$T/ks0" 2>&1 && grep -q '"flux-system"' "$T/ks0" \
	&& ok "the Kustomizations came back with etcd" || bad "no Kustomization apps: $(head -c 300 "$T/ks0")"
kube_req PATCH "$E" "$KS/apps" "{apiVersion: kustomize.toolkit.fluxcd.io/v1, kind: Kustomization, metadata: {name: apps, namespace: flux-system}, spec: {force: false}}" > "$T/ks1" 2>&1 \
	|| bad "could not change the Kustomization: $(head -c 300 "$T/ks1")"
i=0
until kube_get "$E" $KS/apps 2>/dev/null | $PY -c "
import json, sys
k = json.load(sys.stdin); st = k.get('status') or {}
ok = st.get('observedGeneration') == k['metadata']['generation'] and k['metadata']['generation'] > 1 and \
    any(c['type'] == 'Ready' and c['status'] == 'True' for c in st.get('conditions', []))
sys.exit(0 if ok else 1)" || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ $i -le 100 ] && ok "Flux reconciles again: the changed Kustomization observed and Ready" \
	|| bad "Kustomization apps not reconciled: $(kube_get "$E" $KS/apps 2>&1 | head -c 600)"
expect_rc 0 "status after the restore" -- "$STRATA" status "$E"
expect_grep "^flux  *apps  *True  *main@sha1:[0-9a-f]*$" "$T/out" "status: Flux's apps Ready with a revision"
r=$(labsim_wait_for "sum(1 for m in s['talos']['etcd']['$EP']['members'] if not m['learner'] and m['started']) == 3")
[ "$r" = yes ] && ok "three etcd members again (the others joined)" || bad "members: $(labsim_py "s['talos']['etcd']['$EP']['members']")"
expect_rc 0 "a later apply changes nothing" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(talos_calls EtcdRecover)" = 1 ] && ok "apply does not recover again" || bad "apply recovered again"

# strata backup leaves snapshots out unless --with-etcd, which adds the latest
printf '\nbackup:\n  passphrase: ${T100_PASS}\n' >> "$E/config.yml"
export T100_PASS=correct-horse-t100
expect_rc 0 "backup without --with-etcd" -- "$STRATA" backup "$E" --to "$T/b1.age"
expect_grep "1 etcd snapshot in .* left out (--with-etcd adds the latest)" "$T/err" "the snapshot is left out, and said"
expect_rc 0 "restore that backup" -- "$STRATA" restore "$T/r1/env" --from "$T/b1.age" --passphrase-env T100_PASS
[ -z "$(ls "$T/r1/env/etcd/"*.snapshot 2>/dev/null)" ] && [ -f "$T/r1/env/etcd/snapshots.json" ] \
	&& ok "no snapshot in the plain backup" || bad "plain backup: $(ls "$T/r1/env/etcd")"
expect_rc 0 "backup --with-etcd" -- "$STRATA" backup "$E" --to "$T/b2.age" --with-etcd
expect_grep "etcd snapshot etcd/$(basename "$S") included" "$T/err" "the latest snapshot included"
expect_rc 0 "restore the --with-etcd backup" -- "$STRATA" restore "$T/r2/env" --from "$T/b2.age" --passphrase-env T100_PASS
cmp -s "$S" "$T/r2/env/etcd/$(basename "$S")" && ok "the snapshot came back byte for byte" || bad "snapshot not in the backup"

labsim_stop
finish
