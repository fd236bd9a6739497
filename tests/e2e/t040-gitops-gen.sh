#!/bin/sh
# strata gen writes the GitOps tree: every kustomization builds with
# kubectl, every document validates against the reference schemas, every
# HelmRelease's values against its chart; the tunnel token is SOPS-encrypted
# (decrypted here by the age CLI and python3-cryptography, never by strata);
# a second gen changes no byte; the user's apps/ files survive; two envs share
# one checkout; the checker itself fails on a broken tree.
. "$(dirname "$0")/lib.sh"

REF="$TOP/../shared/reference/kubernetes"
CHECK="$TOP/tests/gitops/check_tree.py"
if [ ! -d "$REF/schemas" ] || ! command -v kubectl >/dev/null || ! command -v age >/dev/null; then
	echo "skipped: needs ../shared/reference, kubectl and age"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
TOKEN=eyJhIjoidGVzdC10dW5uZWwtdG9rZW4ifQ
export TUNNEL_TOKEN=$TOKEN PVE_TOKEN_SECRET=unused

# prod: 3 control planes (HA: 3 replicas), every component; its tree goes
# into a checkout shared with homelab.
mkdir -p "$T/prod" "$T/homelab"
sed -n '/^name:/,/^nodes:/p' "$TOP/examples/prod/config.yml" | sed '$d' > "$T/prod/config.yml"
cat >> "$T/prod/config.yml" <<'EOF'
nodes:
  controlplane: {count: 3, memory: 8GiB, ip_start: 10.20.0.11}
  workers: {count: 3, memory: 16GiB, ip_start: 10.20.0.21}
gitops:
  repo: ssh://git@git.example.com/fleet.git
  known_hosts: "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
  local_path: ../fleet
components:
  storage:
    longhorn: true
    nfs: {server: 10.20.0.5, path: "/export/k8s"}
  ingress: nginx
  tunnel: {provider: cloudflared, token: "${TUNNEL_TOKEN}"}
  monitoring: true
  metrics_server: true
  cert_manager: true
EOF
# Longhorn's kubelet mount, as examples/prox-n100 gives it.
sed -i 's/^talos:$/talos:\n  patches:\n    - machine: {kubelet: {extraMounts: [{destination: \/var\/lib\/longhorn, type: bind, source: \/var\/lib\/longhorn, options: [bind, rshared, rw]}]}}/' "$T/prod/config.yml"

# homelab: 1 + 1, minimal (1 replica), NFS only, same checkout.
cat > "$T/homelab/config.yml" <<'EOF'
name: homelab
platform: proxmox
proxmox:
  endpoint: https://pve.home.arpa:8006
  token_id: strata@pve!homelab
  token_secret: ${PVE_TOKEN_SECRET}
  tls: {fingerprint: "a4:07:2b:9e:11:c3:58:f0:6d:84:e2:19:7a:b5:c6:03:f1:de:42:8b:90:5c:37:e8:16:a9:2d:74:cb:0e:63:f5"}
  nodes: [pve]
  vmid: {base: 3000, count: 100}
talos: {version: v1.12.11}
kubernetes: {vip: 192.168.1.50}
network: {cidr: 192.168.1.0/24, gateway: 192.168.1.1}
nodes:
  controlplane: {count: 1, ip_start: 192.168.1.51}
  workers: {count: 1, ip_start: 192.168.1.61}
gitops:
  repo: https://git.example.com/fleet.git
  local_path: ../fleet
components:
  storage:
    nfs: {server: 192.168.1.5, path: /export/k8s}
EOF

TREE="$T/fleet/cluster/kubernetes"
expect_rc 0 "validate prod (warnings only)" -- "$STRATA" validate "$T/prod"
expect_grep "ingress-nginx is retired upstream" "$T/err" "validate warns that ingress-nginx is retired"
expect_rc 0 "gen prod" -- "$STRATA" gen "$T/prod"
expect_grep "made the cluster's age key" "$T/err" "gen says it made the age key"
expect_grep "^sops recipient: age1" "$T/out" "gen prints the sops recipient"
expect_rc 0 "gen homelab" -- "$STRATA" gen "$T/homelab"
[ "$(stat -c %a "$T/prod/sops.agekey")" = 600 ] && ok "sops.agekey is 0600" || bad "sops.agekey mode $(stat -c %a "$T/prod/sops.agekey")"
if grep -rq "$TOKEN" "$T/fleet"; then bad "the tunnel token is in the tree in clear"; else ok "the tunnel token is nowhere in clear"; fi
rec=$(age-keygen -y "$T/prod/sops.agekey" 2>/dev/null)
[ -n "$rec" ] && grep -q "$rec" "$TREE/platform/overlays/prod/cloudflared-token.sops.yaml" && ok "secret is encrypted to the key age-keygen -y derives" || bad "recipient of sops.agekey missing from the secret"

# The independent checks, each env with its own key.
python3 "$CHECK" "$TREE" "$T/prod/sops.agekey" "$REF" > "$T/check" 2>&1
rc=$?
if [ $rc -eq 0 ]; then ok "tree checks ($(tail -1 "$T/check"))"; else bad "tree checks"; grep -v '^ok' "$T/check" | sed 's/^/     | /' | head -30; fi
expect_grep "cert-manager-v1.21.1/values.schema.json" "$T/check" "cert-manager values checked against its values.schema.json"
expect_grep "MAC matches in sorted-key (Flux) order" "$T/check" "SOPS MAC holds in Flux's order"
expect_grep "MAC matches in file (sops CLI) order" "$T/check" "SOPS MAC holds in file order"
expect_grep "kubectl kustomize $TREE/apps/overlays/homelab" "$T/check" "homelab's overlay builds too"

# Design overrides and per-env replicas.
expect_grep "replicaCount: 3" "$TREE/platform/overlays/prod/values/ingress-nginx.yaml" "prod: 3 ingress replicas"
expect_grep "replicaCount: 1" "$TREE/platform/overlays/homelab/values/nfs-provisioner.yaml" "homelab: 1 replica"
expect_grep "defaultClass: false" "$TREE/platform/overlays/prod/values/longhorn.yaml" "Longhorn gives up the default class to NFS"
expect_grep "defaultClassReplicaCount: 2" "$TREE/platform/overlays/prod/values/longhorn.yaml" "Longhorn 2 replicas"
expect_grep "name: nfs-storage" "$TREE/platform/base/nfs-provisioner/helmrelease.yaml" "NFS class nfs-storage"
expect_grep "reclaimPolicy: Retain" "$TREE/platform/base/nfs-provisioner/helmrelease.yaml" "NFS reclaim Retain"
expect_grep "pod-security.kubernetes.io/enforce: privileged" "$TREE/platform/base/longhorn/namespace.yaml" "longhorn-system is privileged"
expect_grep "      enabled: true" "$TREE/platform/base/cert-manager/helmrelease.yaml" "cert-manager installs its CRDs"
expect_grep "disableNameSuffixHash: true" "$TREE/platform/overlays/prod/kustomization.yaml" "values ConfigMaps keep their names"
kubectl kustomize "$TREE/platform/overlays/prod" | grep -q "name: longhorn-values$" && ok "built ConfigMap is named longhorn-values (no hash)" || bad "ConfigMap name has a suffix"

# Re-running changes no byte; the user's files survive.
snap() { (cd "$T/fleet" && find . -type f | sort | xargs sha256sum; stat -c '%n %Y' $(find . -type f | sort)) ; }
echo "# mine" >> "$TREE/apps/overlays/prod/kustomization.yaml"
mkdir -p "$TREE/apps/base/blog" && echo "kind: Mine" > "$TREE/apps/base/blog/app.yaml"
snap > "$T/before"
sleep 1
expect_rc 0 "gen prod again" -- "$STRATA" gen "$T/prod"
expect_grep "0 files written" "$T/out" "second gen writes nothing"
expect_rc 0 "gen homelab again" -- "$STRATA" gen "$T/homelab"
snap > "$T/after"
cmp -s "$T/before" "$T/after" && ok "no byte and no mtime changed in the tree" || { bad "the tree changed"; diff "$T/before" "$T/after" | head; }
expect_grep "# mine" "$TREE/apps/overlays/prod/kustomization.yaml" "user edit in apps/ survives"
[ -f "$TREE/apps/base/blog/app.yaml" ] && ok "user file in apps/ survives" || bad "user file gone"

expect_rc 0 "gen -o json" -- "$STRATA" gen "$T/prod" -o json
python3 -c "import json,sys; d=json.load(open('$T/out'))['gitops']; assert d['files_written'] == 0 and d['files_unchanged'] > 30 and d['sops_recipient'].startswith('age1') and d['user_files_kept'] == 2, d" \
	&& ok "gen -o json reports the tree (nothing written)" || bad "gen -o json gitops object"

# A new token re-encrypts; without the token the old secret is kept.
export TUNNEL_TOKEN=another-token
expect_rc 0 "gen with a new token" -- "$STRATA" gen "$T/prod"
expect_grep "1 file written" "$T/out" "only the secret is rewritten"
unset TUNNEL_TOKEN
expect_rc 0 "gen without the token" -- "$STRATA" gen "$T/prod"
expect_grep "kept the encrypted tunnel secret" "$T/err" "gen says it kept the old secret"
rm "$TREE/platform/overlays/prod/cloudflared-token.sops.yaml"
expect_rc 2 "gen without the token and no secret fails (a config error)" -- "$STRATA" gen "$T/prod"
expect_grep "TUNNEL_TOKEN" "$T/err" "the error names the variable"
export TUNNEL_TOKEN=$TOKEN
expect_rc 0 "gen restores the secret" -- "$STRATA" gen "$T/prod"

# Disabling a component removes this env's values for it (and the tunnel
# secret); the shared base stays; nothing of the user's is touched.
cp "$T/prod/config.yml" "$T/prod/config.full"
sed -i '/^  monitoring: true$/d; /^  tunnel: /d' "$T/prod/config.yml"
expect_rc 0 "gen without monitoring and tunnel" -- "$STRATA" gen "$T/prod"
expect_grep "3 removed" "$T/out" "gen removes the three env files (2 values, the secret)"
[ ! -e "$TREE/platform/overlays/prod/values/kube-prometheus-stack.yaml" ] && ok "monitoring values removed" || bad "monitoring values left behind"
[ ! -e "$TREE/platform/overlays/prod/cloudflared-token.sops.yaml" ] && ok "tunnel secret removed" || bad "tunnel secret left behind"
[ -e "$TREE/platform/base/kube-prometheus-stack/helmrelease.yaml" ] && ok "shared base kept" || bad "base removed"
python3 "$CHECK" "$TREE" "$T/prod/sops.agekey" "$REF" > "$T/check" 2>&1 && ok "tree still checks" || { bad "tree checks after disabling"; grep FAIL "$T/check" | head; }
cp "$T/prod/config.full" "$T/prod/config.yml"
expect_rc 0 "gen with everything again" -- "$STRATA" gen "$T/prod"
expect_grep "^# mine" "$TREE/apps/overlays/prod/kustomization.yaml" "user edit still there"

# Validation limits.
sed 's/^    longhorn: true$/    longhorn: true\n    longhorn_replicas: 4/' "$T/prod/config.yml" > "$T/prod/c2.yml"
mkdir -p "$T/bad" && cp "$T/prod/c2.yml" "$T/bad/config.yml"
expect_rc 2 "4 Longhorn replicas on 3 workers is refused" -- "$STRATA" validate "$T/bad"
expect_grep "4 Longhorn replicas need 4 workers, the cluster has 3" "$T/err" "validate says why"

for lp in . .. ./ "$T"; do
	mkdir -p "$T/lp" && sed "s|^  local_path: ../fleet$|  local_path: $lp|" "$T/prod/config.yml" > "$T/lp/config.yml"
	expect_rc 2 "local_path '$lp' holding the env folder is refused" -- "$STRATA" validate "$T/lp"
	expect_grep "holds the env folder" "$T/err" "validate says why ('$lp')"
done

# The checker is not blind: a misspelt values key, a schema error, a tampered
# secret and a broken kustomization each fail it.
cp -r "$T/fleet" "$T/broken"
BT="$T/broken/cluster/kubernetes"
sed -i 's/jobEnabled: false/jobEnabled: false\n      jobEnabeld: true/' "$BT/platform/base/longhorn/helmrelease.yaml"
python3 "$CHECK" "$BT" "$T/prod/sops.agekey" "$REF" > "$T/c1" 2>&1 && bad "checker missed a misspelt values key" || expect_grep "preUpgradeChecker.jobEnabeld" "$T/c1" "checker catches a misspelt values key"
cp -r "$T/fleet" "$T/broken2"; BT="$T/broken2/cluster/kubernetes"
sed -i 's/  interval: 30m/  interval: 30m\n  intervall: 1m/' "$BT/platform/base/cert-manager/helmrelease.yaml"
python3 "$CHECK" "$BT" "$T/prod/sops.agekey" "$REF" > "$T/c2" 2>&1 && bad "checker missed a schema error" || expect_grep "intervall" "$T/c2" "checker catches an unknown HelmRelease field"
cp -r "$T/fleet" "$T/broken3"; BT="$T/broken3/cluster/kubernetes"
sed -i 's/^type: Opaque$/type: kubernetes.io\/opaque/' "$BT/platform/overlays/prod/cloudflared-token.sops.yaml"
python3 "$CHECK" "$BT" "$T/prod/sops.agekey" "$REF" > "$T/c3" 2>&1 && bad "checker missed a tampered secret" || expect_grep "MAC does not match" "$T/c3" "checker catches a tampered secret (MAC)"
cp -r "$T/fleet" "$T/broken4"; BT="$T/broken4/cluster/kubernetes"
sed -i 's/values.yaml=values\/longhorn.yaml/values.yaml=values\/nope.yaml/' "$BT/platform/overlays/prod/kustomization.yaml"
python3 "$CHECK" "$BT" "$T/prod/sops.agekey" "$REF" > "$T/c4" 2>&1 && bad "checker missed a broken kustomization" || expect_grep "FAIL kubectl kustomize" "$T/c4" "checker catches a kustomization that does not build"
finish
