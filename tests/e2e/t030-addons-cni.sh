#!/bin/sh
# The cni phase: from an empty simulator to every node Ready through the
# cilium install Job (helm in kube-system, hostNetwork, its own rights);
# the values pass the chart's schema; a re-run starts no Job and writes
# nothing to the cluster; changed values upgrade the release; a failed Job
# stops apply with its log lines and a later apply converges; kill -9
# while the Job runs, then a re-run waits for that Job instead of a second.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/cni"
write_env "$E" cni 3000 1 2 127.0.30
EP=https://127.0.30.10:6443
k8s() { labsim_py "s['talos']['kubernetes']['$EP']$1"; }
writes() { labsim_py "sum(1 for c in s['talos']['kubernetes']['$EP']['calls'] if c['method'] in ('PATCH', 'DELETE', 'POST', 'PUT'))"; }
jobs_started() { labsim_py "sum(1 for c in s['talos']['kubernetes']['$EP']['calls'] if c['method'] == 'PATCH' and c['path'].endswith('/jobs/strata-cilium-install'))"; }

expect_rc 0 "apply --yes of 1+2 from an empty simulator" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cni: Job kube-system/strata-cilium-install started (docker.io/alpine/helm:3.19.0)" "$T/err" "the install Job ran"
expect_grep "cni: cilium 1.18.4 running, 3 nodes Ready" "$T/err" "every node Ready"
expect_grep "cni: took .*strata" "$T/err" "strata's own time printed apart"
[ "$(k8s "['objects']" | grep -c "apps/v1 daemonsets kube-system/cilium")" = 1 ] && ok "the cilium DaemonSet exists" || bad "no cilium DaemonSet"
[ "$(k8s "['jobs']['kube-system/strata-cilium-install']")" = Complete ] && ok "the Job is Complete" || bad "job: $(k8s "['jobs']")"

# The values strata rendered pass the chart's values.schema.json.
if kube_get "$E" /api/v1/namespaces/kube-system/configmaps/strata-cilium-install > "$T/cm.json" 2>"$T/kerr"; then
	$PY -c "import json,sys; sys.stdout.write(json.load(open('$T/cm.json'))['data']['values.yaml'])" > "$T/values.yaml"
	$PY - "$T/values.yaml" "$REF/kubernetes/charts/cilium-1.18.4/values.schema.json" > "$T/v" 2>&1 <<'PYEOF'
import json, sys, yaml, jsonschema
v = yaml.safe_load(open(sys.argv[1]))
errs = list(jsonschema.Draft7Validator(json.load(open(sys.argv[2]))).iter_errors(v))
for e in errs:
    print("invalid:", list(e.path), e.message)
assert v["ipam"]["mode"] == "kubernetes" and v["k8sServicePort"] == 7445 and v["kubeProxyReplacement"] is True
assert "SYS_MODULE" not in v["securityContext"]["capabilities"]["ciliumAgent"]
assert v["cgroup"] == {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
print("valid" if not errs else "INVALID")
PYEOF
	expect_grep "^valid" "$T/v" "rendered values validate against cilium 1.18.4's values.schema.json"
	kube_get "$E" /apis/batch/v1/namespaces/kube-system/jobs/strata-cilium-install > "$T/job.json"
	$PY - "$T/job.json" > "$T/j" 2>&1 <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
p = j["spec"]["template"]["spec"]
c = p["containers"][0]
assert p["hostNetwork"] is True and p["tolerations"] == [{"operator": "Exists"}], p
assert p["serviceAccountName"] == "strata-cilium-install" and p["dnsPolicy"] == "Default"
assert c["command"][:5] == ["helm", "upgrade", "--install", "cilium", "cilium"] and "1.18.4" in c["command"]
print("shape ok")
PYEOF
	expect_grep "^shape ok" "$T/j" "Job: hostNetwork, every taint tolerated, own ServiceAccount, pinned chart"
else
	bad "could not read the values ConfigMap"; cat "$T/cm.json" "$T/kerr"
fi

w0=$(writes)
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "cilium 1.18.4 installed with these values; no Job" "$T/err" "re-run starts no Job"
[ "$(writes)" = "$w0" ] && ok "re-run wrote nothing to the cluster" || bad "re-run wrote $(( $(writes) - w0 )) times"

# Changed values: a new Job, helm upgrades the release.
printf '    values: {hubble: {enabled: false}}\n' > "$T/vals"
sed -i '/^kubernetes:/r '"$T/vals" "$E/config.yml"
sed -i 's/^    values:/  cni:\n    values:/' "$E/config.yml"
expect_rc 0 "apply of changed cni values" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cni: Job kube-system/strata-cilium-install started" "$T/err" "changed values start a Job"
[ "$(k8s "['objects']" | grep -c "v1 secrets kube-system/sh.helm.release.v1.cilium.v2")" = 1 ] \
	&& ok "helm upgraded the release (revision 2)" || bad "no release v2"

# A failing Job stops apply with its log; nothing recorded; a later run converges.
labsim_ctl POST knobs '{"k8s_job_fail": {"^strata-cilium": "chart download failed: 503"}}' > /dev/null
sed -i 's/hubble: {enabled: false}/hubble: {enabled: true}/' "$E/config.yml"
expect_rc 1 "a failing Job stops apply" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Job kube-system/strata-cilium-install failed; the log of pod strata-cilium-install-.* ends:" "$T/err" "the error names the Job"
expect_grep "    Error: chart download failed: 503" "$T/err" "and quotes its log's last lines"
labsim_ctl POST knobs '{"k8s_job_fail": {}}' > /dev/null
expect_rc 0 "a later apply converges" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "cni: cilium 1.18.4 running, 3 nodes Ready" "$T/err" "converged"

# Values helm's schema refuses: helm's message reaches the user.
sed -i 's/hubble: {enabled: true}/kubeProxyReplacement: 3/' "$E/config.yml"
expect_rc 1 "values the chart's schema refuses" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "kubeProxyReplacement: Invalid value" "$T/err" "helm's schema error quoted"
sed -i 's/kubeProxyReplacement: 3/hubble: {enabled: true}/' "$E/config.yml"

# An image that cannot be pulled: the bounded wait ends with the reason.
labsim_ctl POST knobs '{"k8s_image_pull_fail": {"alpine/helm": "manifest unknown"}}' > /dev/null
sed -i 's/hubble: {enabled: true}/hubble: {enabled: true, relay: {enabled: false}}/' "$E/config.yml"
expect_rc 1 "an unpullable helm image stops apply at the bound" -- "$STRATA" apply "$E" --yes --timeout 3s
expect_grep "Job kube-system/strata-cilium-install Complete not reached after 3s; last seen: pod strata-cilium-install-.*: ImagePullBackOff: Back-off pulling image \"docker.io/alpine/helm:3.19.0\"" "$T/err" "the error says which image and why"
labsim_ctl POST knobs '{"k8s_image_pull_fail": {}}' > /dev/null
expect_rc 0 "then it converges" -- "$STRATA" apply "$E" --yes --timeout 60s
sed -i 's/hubble: {enabled: true, relay: {enabled: false}}/hubble: {enabled: true}/' "$E/config.yml"

# kill -9 while the Job runs; the re-run waits for that Job.
labsim_ctl POST knobs '{"k8s_job_seconds": 200}' > /dev/null
sed -i 's/hubble: {enabled: true}/hubble: {enabled: false}/' "$E/config.yml"
"$STRATA" apply "$E" --yes --timeout 60s > "$T/bg.out" 2> "$T/bg.err" &
pid=$!
i=0
until grep -q "strata-cilium-install started" "$T/bg.err" 2>/dev/null || [ $i -gt 300 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect_grep "strata-cilium-install started" "$T/bg.err" "killed while its Job ran"
j0=$(jobs_started)
labsim_ctl POST knobs '{"k8s_job_seconds": 5}' > /dev/null
expect_rc 0 "re-run after kill -9 during the cni phase" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "from an earlier apply still runs; waiting for it\|for this config completed earlier; not started again" "$T/err" "the re-run reuses the Job"
[ "$(jobs_started)" = "$j0" ] && ok "no second Job" || bad "another Job was applied"
expect_grep "cni: .*3 nodes Ready\|cni: 3/3 nodes Ready" "$T/err" "converged after kill -9"

finish
