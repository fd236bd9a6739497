#!/bin/sh
# The gate and the refusals of a rolling upgrade:
# - a node that comes back from its upgrade unhealthy (the simulator's
#   talos_upgrade_unhealthy: kubelet unhealthy, Node NotReady) holds the
#   roll at the gate; longer than --timeout, the roll stops there with the
#   cluster as it is; once healthy, a re-run continues;
# - a 2-member etcd is never upgraded (plan and apply refuse);
# - a Kubernetes downgrade is refused, and a Talos and a Kubernetes
#   upgrade together, with nothing sent to any node.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.112.128/25
E="$T/envs/ug"
write_env "$E" ug 1600 1 2 127.0.112
cat >> "$E/config.yml" <<'YAML'
talos:
  version: v1.12.10
YAML
roll() { $PY "$TOP/tests/e2e/upgrade_log.py" "$LABSIM_DIR" "$1" "$2" > "$T/roll" 2>&1; sed 's/^/     : /' "$T/roll"; }
now() { $PY -c 'import time; print(time.time())'; }
upgrades() { labsim_py "len([u for n in s['talos']['nodes'] for u in n['upgrades']])"; }
applies() { talos_calls ApplyConfiguration; }

expect_rc 0 "apply 1+2 at v1.12.10" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(labsim_py "all(c['cni_ready'] for c in s['talos']['kubernetes'].values())")" = True ] && ok "nodes Ready (the CNI is in)" \
	|| bad "CNI not ready"

# a changed kubernetes.version: refused before anything is sent
sed -i 's/^kubernetes:$/kubernetes:\n  version: 1.35.3/' "$E/config.yml"
a0=$(applies)
expect_rc 2 "plan refuses a changed kubernetes.version" -- "$STRATA" plan "$E"
expect_grep "kubernetes.version 1.35.4 -> 1.35.3" "$T/err" "names the versions"
expect_grep "is a downgrade" "$T/err" "a downgrade is named as such"
sed -i 's/  version: 1.35.3/  version: 1.34.2/' "$E/config.yml"
expect_rc 2 "a minor back: refused" -- "$STRATA" plan "$E"
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(applies)" = "$a0" ] && ok "no config sent to any node" || bad "ApplyConfiguration $a0 -> $(applies)"
# (a Kubernetes upgrade forward rolls: t113-t115)
sed -i 's/  version: 1.34.2/  version: 1.35.9/' "$E/config.yml"
sed -i 's/version: v1.12.10/version: v1.12.11/' "$E/config.yml"
expect_rc 2 "plan refuses both upgrades at once" -- "$STRATA" plan "$E"
expect_grep "talos.version and kubernetes.version both changed: strata rolls one upgrade at a time" "$T/err" "one upgrade at a time"
[ "$(applies)" = "$a0" ] && ok "still nothing sent" || bad "ApplyConfiguration $a0 -> $(applies)"
sed -i 's/version: v1.12.11/version: v1.12.10/' "$E/config.yml"
sed -i '/^  version: 1.35.9$/d' "$E/config.yml"

# ug-w-1 (vmid 1601) comes back unhealthy for 8 s (800 s x 0.01)
labsim_ctl POST knobs '{"talos_upgrade_unhealthy": {"1601": 800}}' > /dev/null
sed -i 's/version: v1.12.10/version: v1.12.11/' "$E/config.yml"
t0=$(now)
expect_rc 1 "apply: the gate after ug-w-1 runs out (--timeout 3s)" -- "$STRATA" apply "$E" --yes --timeout 3s
expect_grep "health gate after ug-w-1: not healthy after 3s: .*ug-w-1 is not Ready; the roll stopped here (2 of 3 nodes upgraded)" \
	"$T/err" "the roll stops at the gate, saying why"
roll "$t0" v1.12.11
expect_grep "^order 1600 1601$" "$T/roll" "ug-w-2 not touched"
expect_grep "^versions 1600:v1.12.11 1601:v1.12.11 1602:v1.12.10$" "$T/roll" "the cluster as it was left"
# wait until it is healthy again, then re-run: the roll continues
got=$(labsim_wait_for "not any(n['unhealthy'] for n in s['talos']['nodes'])")
[ "$got" = yes ] && ok "ug-w-1 healthy again" || bad "ug-w-1 stays unhealthy"
labsim_ctl POST knobs '{"talos_upgrade_unhealthy": {"1602": 100}}' > /dev/null
t1=$(now)
expect_rc 0 "apply again: continues; a node unhealthy 1 s is waited for" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$rc" = 0 ] || tail -5 "$T/err"
roll "$t1" v1.12.11
expect_grep "^order 1602$" "$T/roll" "only ug-w-2 left"
expect_grep "^all-at yes" "$T/roll" "every node at v1.12.11"
expect_grep "health gate after ug-w-2: 3 nodes up over mTLS, etcd healthy on 1 control plane, 3 Kubernetes nodes Ready" "$T/err" "the gate passed once it was Ready again"
gate_ms=$($PY - "$LABSIM_DIR" "$t1" <<'PYEOF'
import json, ssl, sys, urllib.request
r = json.load(open(sys.argv[1] + "/ready"))
ctx = ssl.create_default_context(cafile=r["proxmox"]["ca_cert"])
s = json.load(urllib.request.urlopen(r["control"] + "state", context=ctx))["data"]["talos"]
up = [e["t"] for e in s["node_events"] if e["vmid"] == 1602 and e["event"] == "up" and e["t"] >= float(sys.argv[2])][0]
print(int((max(c["t"] for c in s["calls"]) - up) * 1000))
PYEOF
)
[ "${gate_ms:-0}" -ge 900 ] && ok "strata kept checking until the node was healthy (${gate_ms} ms after it was back)" \
	|| bad "gate did not wait: ${gate_ms} ms"

# a 2-member etcd: refused
E2="$T/envs/u2"
write_env "$E2" u2 1660 2 0 127.0.112
sed -i 's/127.0.112.1\([0-9]\)/127.0.112.3\1/g' "$E2/config.yml"
cat >> "$E2/config.yml" <<'YAML'
talos:
  version: v1.12.10
YAML
expect_rc 0 "apply 2 control planes at v1.12.10" -- "$STRATA" apply "$E2" --yes --timeout 60s
sed -i 's/version: v1.12.10/version: v1.12.11/' "$E2/config.yml"
u0=$(upgrades)
expect_rc 2 "plan refuses to upgrade a 2-member etcd" -- "$STRATA" plan "$E2"
expect_grep "refusing to upgrade a control plane of a 2-member etcd" "$T/err" "says why"
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E2" --yes --timeout 60s
[ "$(upgrades)" = "$u0" ] && ok "no Upgrade sent" || bad "upgrades $u0 -> $(upgrades)"
finish
