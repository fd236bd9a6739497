#!/bin/sh
# The gitops phase: Flux installed by the installer Job, its CRDs
# Established and controllers rolled out; the deploy key made once (0600,
# public key printed in OpenSSH form); GitRepository and the Kustomizations
# flux-system -> platform -> apps (dependsOn, 5m, prune, wait) Ready; the
# sops-age Secret from ENV/sops.agekey; a re-run writes nothing; kill -9
# during the phase, then a re-run converges.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/flux"
write_env "$E" flux 3100 1 1 127.0.31
cat >> "$E/config.yml" <<'YAML'
gitops:
  repo: ssh://git@git.example.org/lab/fleet.git
  known_hosts: "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
YAML
EP=https://127.0.31.10:6443
writes() { labsim_py "sum(1 for c in s['talos']['kubernetes']['$EP']['calls'] if c['method'] in ('PATCH', 'DELETE', 'POST', 'PUT'))"; }
KS=/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations
jq_py() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

expect_rc 0 "apply with gitops from an empty simulator" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "gitops: Job kube-system/strata-flux-install started (ghcr.io/fluxcd/flux-cli:v2.9.4)" "$T/err" "the flux install Job ran"
expect_grep "new deploy key for ssh://git@git.example.org/lab/fleet.git; add it (read-only)" "$T/err" "the deploy key is announced"
expect_grep "^    ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]* strata-flux-flux$" "$T/err" "in OpenSSH form"
[ "$(stat -c %a "$E/flux-deploy-key")" = 600 ] && ok "deploy key is 0600" || bad "deploy key mode"
if command -v ssh-keygen >/dev/null; then
	ssh-keygen -l -f "$E/flux-deploy-key.pub" > "$T/fp" 2>&1 && ok "ssh-keygen reads the public key" \
		|| { bad "ssh-keygen -l"; cat "$T/fp"; }
fi
expect_grep "no $E/sops.agekey: no sops-age Secret" "$T/err" "a missing age key is said, not hidden"
expect_grep "gitops: took .*strata" "$T/err" "strata's own time printed apart"

kube_get "$E" $KS > "$T/ks.json" 2> "$T/kerr"
$PY - "$T/ks.json" flux > "$T/chain" 2>&1 <<'PYEOF'
import json, sys
env = sys.argv[2]
ks = {k["metadata"]["name"]: k for k in json.load(open(sys.argv[1]))["items"]}
assert sorted(ks) == ["apps", "flux-system", "platform"], sorted(ks)
dep = {n: [d["name"] for d in k["spec"].get("dependsOn", [])] for n, k in ks.items()}
assert dep == {"flux-system": [], "platform": ["flux-system"], "apps": ["platform"]}, dep
for n, k in ks.items():
    s = k["spec"]
    assert (s["interval"], s["prune"], s["wait"]) == ("5m", True, True), s
    # the env's overlay of each layer in the tree strata gen writes
    assert s["path"] == "./cluster/kubernetes/%s/overlays/%s" % ({"flux-system": "flux"}.get(n, n), env), s["path"]
print("chain ok")
PYEOF
expect_grep "^chain ok" "$T/chain" "Kustomizations flux-system -> platform -> apps, 5m, prune, wait"
i=0
until kube_get "$E" $KS/apps 2>/dev/null | jq_py "[c['status'] for c in d.get('status', {}).get('conditions', []) if c['type'] == 'Ready']" | grep -q True || [ $i -gt 100 ]; do
	sleep 0.1; i=$((i + 1)); done
[ $i -le 100 ] && ok "apps Ready once its dependencies are" || bad "apps never Ready"

expect_rc 0 "status" -- "$STRATA" status "$E"
expect_grep "^cni  *cilium  *2/2  *1.18.4$" "$T/out" "status: Cilium version and ready/desired agents"
expect_grep "^flux  *apps  *True  *main@sha1:[0-9a-f]*$" "$T/out" "status: a Kustomization's Ready and last applied revision"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
$PY - "$T/out" > "$T/sj" 2>&1 <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1]))["addons"]
assert a["cni"] == {"name": "cilium", "version": "1.18.4", "ready": 2, "desired": 2}, a["cni"]
ks = {k["name"]: k for k in a["flux"]["kustomizations"]}
assert sorted(ks) == ["apps", "flux-system", "platform"] and all(k["ready"] == "True" for k in ks.values()), ks
assert ks["apps"]["revision"].startswith("main@sha1:")
print("json ok")
PYEOF
expect_grep "^json ok" "$T/sj" "status -o json has the addons"

w0=$(writes)
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "gitops: Job kube-system/strata-flux-install for this config completed earlier" "$T/err" "no second Flux Job"
expect_grep "are current; nothing written" "$T/err" "re-run says so"
[ "$(writes)" = "$w0" ] && ok "re-run wrote nothing to the cluster" || bad "re-run wrote $(( $(writes) - w0 )) times"
grep -q "new deploy key" "$T/err" && bad "a second deploy key" || ok "the deploy key is made once"

# The age identity of strata gen becomes the sops-age Secret.
if command -v age-keygen >/dev/null; then
	age-keygen 2>/dev/null | grep '^AGE-SECRET-KEY-1' > "$E/sops.agekey"; chmod 600 "$E/sops.agekey"
	expect_rc 0 "apply with ENV/sops.agekey" -- "$STRATA" apply "$E" --yes --timeout 30s
	[ "$(kube_get "$E" /api/v1/namespaces/flux-system/secrets/sops-age | jq_py "d['data']['age.agekey']" | base64 -d | head -c 16)" = "AGE-SECRET-KEY-1" ] \
		&& ok "sops-age Secret holds the identity" || bad "sops-age Secret"
	[ "$(kube_get "$E" $KS/apps | jq_py "d['spec']['decryption']['secretRef']['name']")" = sops-age ] \
		&& ok "Kustomizations decrypt with it" || bad "no decryption"
	grep -q "AGE-SECRET-KEY" "$T/err" "$T/out" && bad "the age key was printed" || ok "the age key is never printed"
fi

# kill -9 while the Flux Job runs (a Flux version change is simulated by
# deleting the Job and the recorded digest), then a re-run converges.
kube_req DELETE "$E" "/apis/batch/v1/namespaces/kube-system/jobs/strata-flux-install?propagationPolicy=Background" > /dev/null
$PY -c "import json,sys; p='$E/state.json'; s=json.load(open(p)); s.get('addons',{}).pop('gitops',None); json.dump(s,open(p,'w'))"
labsim_ctl POST knobs '{"k8s_job_seconds": 200}' > /dev/null
"$STRATA" apply "$E" --yes --timeout 60s > "$T/bg.out" 2> "$T/bg.err" &
pid=$!
i=0
until grep -q "strata-flux-install started" "$T/bg.err" 2>/dev/null || [ $i -gt 300 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect_grep "strata-flux-install started" "$T/bg.err" "killed while its Job ran"
labsim_ctl POST knobs '{"k8s_job_seconds": 5}' > /dev/null
expect_rc 0 "re-run after kill -9 during the gitops phase" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "gitops: Flux v2.9.4; GitRepository flux-system" "$T/err" "converged after kill -9"

# https with a token: the Secret holds it as the password; never printed.
H="$T/envs/https"
write_env "$H" https 3200 1 0 127.0.32
printf 'gitops:\n  repo: https://git.example.org/lab/fleet.git\n  token: ${FLEET_TOKEN}\n' >> "$H/config.yml"
export FLEET_TOKEN=tok-5e3a1b0c9d
expect_rc 0 "apply with an https repo and a token" -- "$STRATA" apply "$H" --yes --timeout 60s
[ "$(kube_get "$H" /api/v1/namespaces/flux-system/secrets/flux-system | jq_py "d['data']['password']" | base64 -d)" = "$FLEET_TOKEN" ] \
	&& ok "the token is the Secret's password" || bad "token Secret"
[ "$(kube_get "$H" /apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system | jq_py "d['spec']['secretRef']['name']")" = flux-system ] \
	&& ok "the GitRepository uses it" || bad "no secretRef"
grep -q "$FLEET_TOKEN" "$T/err" "$T/out" "$H/state.json" && bad "the token leaked into output or state" || ok "the token is in no output and not in state.json"
[ -e "$H/flux-deploy-key" ] && bad "a deploy key for an https repo" || ok "no deploy key for https"

finish
