#!/bin/sh
# make demo: the whole job on one machine, nothing leaves loopback.
#  1. every example environment: init, validate (nodes expanded), gen
#  2. the lab simulator (tests/labsim) is started; an environment shaped
#     like prox-n100 (1 control plane + 2 workers) is pointed at it (its
#     node network moved to 127.0.20.0/24, where the simulated Talos nodes
#     listen), then plan, apply (Talos ISO, VMs in parallel, start, Talos
#     installed from a cidata ISO, etcd bootstrapped, kubeconfig,
#     Cilium by helm until every node is Ready, Flux and its sync objects),
#     status, kubectl get nodes, a second apply that has nothing to do,
#     and destroy
# The work folder holds generated secrets: it is removed at the end (also
# on failure or Ctrl-C) unless DEMO_KEEP=1 or DEMO_DIR names a folder.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
strata="$top/build/strata"
keep=${DEMO_KEEP:-0}
if [ -n "${DEMO_DIR:-}" ]; then
	work=$DEMO_DIR keep=1
	mkdir -p "$work"
else
	work=$(mktemp -d /tmp/strata-demo.XXXXXX)
fi
simpid=
cleanup() {
	if [ -n "$simpid" ]; then kill "$simpid" 2>/dev/null; wait "$simpid" 2>/dev/null || true; fi
	cd /
	if [ "$keep" = 1 ]; then
		echo "==> kept $work (it holds secrets; remove it when done)"
	else
		rm -rf "$work"
		echo "==> removed $work (DEMO_KEEP=1 keeps it)"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export STRATA_EXAMPLES="$top/examples"
export NO_COLOR=${NO_COLOR:-}
REF=${STRATA_REFERENCE:-$top/../shared/reference}
cd "$work"
echo "==> strata demo in $work"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# validate checks that the secrets a config names are there (never their
# values); the examples name variables and files a real user sets.
for ex in "$top"/examples/*/; do
	name=$(basename "$ex")
	env="demo-$name"
	step "example $name: init, validate, gen"
	rm -rf "environments/$env"
	"$strata" init "$env" --from "$name" >/dev/null
	grep -q 'file:pve-token' "environments/$env/config.yml" &&
		(umask 077; echo demo-placeholder > "environments/$env/pve-token")
	if ! PVE_TOKEN_SECRET=demo-placeholder FLUX_GITHUB_TOKEN=demo-placeholder \
	     CLOUDFLARE_TUNNEL_TOKEN=demo-placeholder \
	     "$strata" validate --nodes "$env"; then
		# ubuntu-vm and the VPS examples: validate refuses what apply
		# cannot do yet (it said why above); gen still writes their files.
		echo "(example $name: not something apply can carry out yet)"
	fi
	PVE_TOKEN_SECRET=demo-placeholder CLOUDFLARE_TUNNEL_TOKEN=demo-placeholder \
		"$strata" gen "$env"
done

if [ ! -f "$REF/proxmox/api-schema-subset.json" ]; then
	echo "reference data absent at $REF: the simulator part is skipped"
	exit 0
fi
step "starting the lab simulator (Proxmox API on 127.0.0.1)"
sim="$work/labsim"
mkdir -p "$sim"
/usr/bin/python3 "$top/tests/labsim/labsim.py" --state "$sim" --proxmox-addr 127.0.0.1:0 \
	--factory-addr 127.0.0.1:0 --time-scale 0.2 --reference "$REF" > "$sim/log" 2>&1 &
simpid=$!
i=0
while [ ! -f "$sim/ready" ]; do
	i=$((i + 1)); [ $i -gt 200 ] && { cat "$sim/log"; exit 1; }
	sleep 0.1
done
eval "$(/usr/bin/python3 -c "
import json; r = json.load(open('$sim/ready'))
print('port=%d fp=%s tid=%s' % (r['proxmox']['port'], r['proxmox']['fingerprint'], r['token']['id']))
print('factory=%s' % r['factory']['url'])
print('export PVE_TOKEN_SECRET=%s' % r['token']['secret'])")"
echo "simulator on 127.0.0.1:$port, fingerprint $fp"
# prox-n100 tags its VMs with VLAN 30: its hypervisor's bridges are
# VLAN-aware (Layer 0; the preflight checks it). The simulated one is
# told so, as an admin would have set it up.
curl -sfk -X POST -H 'Content-Type: application/json' \
	--data '{"bridge_vlan_aware": {"pve1": ["vmbr0"], "pve2": ["vmbr0"], "pve3": ["vmbr0"]}}' \
	"https://127.0.0.1:$port/_labsim/knobs" > /dev/null ||
	{ echo "the simulator refused its Layer-0 set-up"; exit 1; }
# prox-n100 syncs Flux from a private https repo: the simulator's
# source-controller only checks that a token Secret exists.
export FLUX_GITHUB_TOKEN=demo-token-for-the-simulator

env=environments/homelab-sim
rm -rf "$env"
# prox-n100 names a Flux token and a tunnel token (secret references); the
# demo has no real ones, only placeholders the simulator never checks.
export FLUX_GITHUB_TOKEN=demo-placeholder CLOUDFLARE_TUNNEL_TOKEN=demo-placeholder
"$strata" init homelab-sim --from prox-n100 >/dev/null
# Point the copy at the simulator: endpoint, Image Factory, token, pinned fingerprint,
# its node names and storage; drop the file secrets and the CA file.
/usr/bin/python3 - "$env/config.yml" "$port" "$fp" "$tid" "$factory" <<'PYEOF'
import re, sys
p, port, fp, tid, factory = sys.argv[1:]
s = open(p).read()
# Proxmox fetches the ISO of the example's schematic (its extensions) from
# the simulator's Image Factory, which strata registers the schematic with
s = s.replace("  endpoint: https://n100-a.home.arpa:8006",
              "  endpoint: https://127.0.0.1:%s\n  image_factory: %s" % (port, factory))
s = re.sub(r"token_id: .*", 'token_id: "%s"' % tid, s)
s = s.replace("token_secret: file:pve-token", "token_secret: ${PVE_TOKEN_SECRET}")
s = s.replace("    ca_file: pve-root-ca.pem", '    fingerprint: "%s"' % fp)
s = s.replace("nodes: [n100-a, n100-b, n100-c]", "nodes: [pve1, pve2, pve3]")
s = s.replace("disks: local-zfs", "disks: local-lvm")
for a, b in (("n100-a", "pve1"), ("n100-b", "pve2"), ("n100-c", "pve3")):
    s = s.replace("placement: " + a, "placement: " + b)
# The simulated Talos nodes listen on their static addresses: loopback.
s = s.replace("192.168.30.", "127.0.20.")
open(p, "w").write(s)
PYEOF
step "strata gen homelab-sim"
"$strata" gen homelab-sim
step "strata plan homelab-sim"
"$strata" plan homelab-sim
step "strata apply homelab-sim --yes"
"$strata" apply homelab-sim --yes
step "strata status homelab-sim"
"$strata" status homelab-sim
if command -v kubectl >/dev/null 2>&1; then
	step "kubectl --kubeconfig $env/kubeconfig get nodes"
	kubectl --kubeconfig "$env/kubeconfig" get nodes -o wide
fi
step "strata apply homelab-sim --yes (again: nothing to do)"
"$strata" apply homelab-sim --yes
step "strata destroy homelab-sim --yes"
"$strata" destroy homelab-sim --yes
step "done"
