#!/bin/sh
# Only supported upgrade paths (issue 15 items 3 and 4, FACTS-day2 4a/4b):
# plan and apply refuse, with nothing sent to any node,
# - Talos to the next minor from an older patch (v1.12.10 -> v1.13.9:
#   a minor upgrade starts from the latest patch of the current one),
# - Talos over a minor (v1.12.10 -> v1.14.0: validate, no such Talos),
# - Kubernetes over a minor (1.35.4 -> 1.37.0) and down (1.35.4 -> 1.35.3),
# - Kubernetes beyond what the Talos version supports (1.36 on v1.12);
# and the supported path goes: v1.12.10 -> v1.12.11 (patch), then
# v1.12.11 -> v1.13.9 (next minor) is planned as an upgrade.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.121.192/26
E="$T/envs/up"
write_env "$E" up 1210 1 1 127.0.121
cat >> "$E/config.yml" <<'YAML'
talos:
  version: v1.12.10
YAML
sed -i 's/^kubernetes:$/kubernetes:\n  version: 1.35.4/' "$E/config.yml"
upgrades() { labsim_py "sum(len(n['upgrades']) for n in s['talos']['nodes'])"; }
applies() { talos_calls ApplyConfiguration; }

expect_rc 0 "apply 1+1 at v1.12.10, Kubernetes 1.35.4" -- "$STRATA" apply "$E" --yes --timeout 60s
u0=$(upgrades); a0=$(applies)

refused() { # refused RC WHAT GREP: plan and apply both refuse, nothing sent
	expect_rc "$1" "plan refuses $2" -- "$STRATA" plan "$E"
	expect_grep "$3" "$T/err" "plan says why ($2)"
	expect_rc "$1" "apply refuses $2" -- "$STRATA" apply "$E" --yes --timeout 60s
	expect_grep "$3" "$T/err" "apply says why ($2)"
	[ "$(upgrades)" = "$u0" ] && [ "$(applies)" = "$a0" ] && ok "nothing sent ($2)" \
		|| bad "sent: upgrades $u0 -> $(upgrades), applies $a0 -> $(applies)"
}

sed -i 's/version: v1.12.10/version: v1.13.9/' "$E/config.yml"
refused 2 "v1.12.10 -> v1.13.9" \
	"Talos v1.12.10 -> v1.13.9 leaves v1.12 before its latest patch: a minor upgrade is supported from the latest patch of the current minor; set talos.version to v1.12.11, apply, then v1.13.9"

sed -i 's/version: v1.13.9/version: v1.14.0/' "$E/config.yml"
refused 2 "v1.12.10 -> v1.14.0" "Talos v1.14 is not supported"

sed -i 's/version: v1.14.0/version: v1.12.10/' "$E/config.yml"
sed -i 's/version: 1.35.4/version: 1.37.0/' "$E/config.yml"
refused 2 "Kubernetes 1.35.4 -> 1.37.0" "Kubernetes 1.37 is not supported by Talos v1.12"
sed -i 's/version: 1.37.0/version: 1.36.0/' "$E/config.yml"
refused 2 "Kubernetes 1.36 on Talos v1.12" "Kubernetes 1.36 is not supported by Talos v1.12 (1.30 to 1.35)"
sed -i 's/version: 1.36.0/version: 1.35.3/' "$E/config.yml"
refused 2 "Kubernetes 1.35.4 -> 1.35.3" "Kubernetes 1.35.4 -> 1.35.3 is a downgrade"
sed -i 's/version: 1.35.3/version: 1.35.4/' "$E/config.yml"

# the supported path: the latest patch first, then the next minor
sed -i 's/version: v1.12.10/version: v1.12.11/' "$E/config.yml"
expect_rc 0 "apply v1.12.10 -> v1.12.11" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(upgrades)" = $((u0 + 2)) ] && ok "both nodes upgraded" || bad "upgrades $u0 -> $(upgrades)"
[ "$(labsim_py "sorted(set(n['version'] for n in s['talos']['nodes']))")" = "['v1.12.11']" ] && ok "every node runs v1.12.11" \
	|| bad "versions $(labsim_py "[n['version'] for n in s['talos']['nodes']]")"
sed -i 's/version: v1.12.11/version: v1.13.9/' "$E/config.yml"
expect_rc 0 "plan v1.12.11 -> v1.13.9" -- "$STRATA" plan "$E"
expect_grep "v1.12.11 -> v1.13.9" "$T/out" "the next minor from the latest patch is planned"
labsim_stop
finish
