#!/bin/sh
# platform: vps, strata's own address against the node's firewall
# (tests/labsim/firewall.py enforces it per source address; strata
# connects from 127.0.0.1, the test's other sources are 127.0.79.200/.201).
# - Before the first install's config is applied: admin_cidrs without
#   strata's address is refused, naming the address and the CIDRs, before
#   any byte of config reaches the node; validate refuses a
#   firewall.strata_address outside admin_cidrs.
# - Installed, a firewall change excluding strata is refused the same way
#   before the TRY; one whose strata_address claims an admitted address
#   (a NAT that is not there) goes in TRY mode, is not confirmed, and the
#   lock-out error names the address the node refused (127.0.0.1), what
#   strata_address said, the admin CIDRs and what to do.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

NET=127.0.79
. "$(dirname "$0")/vpsfw.sh"

E="$T/envs/src"
applies() { talos_calls ApplyConfiguration $IP; }
node_state() { labsim_py "[x['state'] for x in s['talos']['nodes'] if x['ip'] == '$IP']"; }

# --- before the first install: strata outside admin_cidrs -----------------
write_fw "$ADMIN/32"
expect_rc 2 "apply refuses a first install whose firewall excludes strata" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "strata connects to $IP from 127.0.0.1" "$T/err" "the error names strata's source address toward the node"
expect_grep "firewall.admin_cidrs: \[$ADMIN/32\]" "$T/err" "and the admin CIDRs"
expect_grep "locking strata out of its own node" "$T/err" "and says it would lock strata out"
expect_grep "Nothing was applied" "$T/err" "and that nothing was applied"
expect_grep "Add 127.0.0.1/32 to firewall.admin_cidrs" "$T/err" "and what to do"
expect_grep "firewall.strata_address" "$T/err" "and the NAT/VPN way out"
[ "$(applies)" = 0 ] && ok "no config reached the node" || bad "ApplyConfiguration calls: $(applies)"
[ "$(node_state)" = "['maintenance']" ] && ok "the node is still in maintenance mode" || bad "node: $(node_state)"
[ ! -e "$E/state.json" ] && ok "nothing journaled" || bad "state.json written"
[ ! -e "$E/secrets.yaml" ] && ok "no Talos secrets generated" || bad "secrets.yaml written"
expect_rc 2 "apply --dry-run refuses it the same way" -- "$STRATA" apply "$E" --dry-run
expect_grep "strata connects to $IP from 127.0.0.1" "$T/err" "the dry run names the address too"

# validate: strata_address must be an admitted address
write_fw "$ADMIN/32" "strata_address: $OTHER"
expect_rc 2 "validate refuses a strata_address outside admin_cidrs" -- "$STRATA" validate "$E"
cat "$T/out" "$T/err" > "$T/validate"
expect_grep "firewall.strata_address.*$OTHER is not in firewall.admin_cidrs" "$T/validate" "naming the key and the address"

# --- installed; then changes ----------------------------------------------
write_fw "127.0.0.1/32, $ADMIN/32"
expect_rc 0 "with strata's address admitted, apply installs and bootstraps" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "apply complete" "$T/err" "apply completed"
n0=$(applies)

write_fw "$ADMIN/32"
expect_rc 2 "a firewall change excluding strata is refused before the TRY" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "strata connects to $IP from 127.0.0.1" "$T/err" "naming strata's address"
[ "$(applies)" = "$n0" ] && ok "no ApplyConfiguration (no TRY)" || bad "ApplyConfiguration calls: $(applies) (was $n0)"
tries=$(labsim_py "[x['tries'] for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$tries" = "[0]" ] && ok "the simulator saw no TRY" || bad "tries: $tries"

# strata_address claims an admitted address the node never sees: the early
# check believes it, the TRY finds out
write_fw "$ADMIN/32" "strata_address: $ADMIN"
expect_rc 1 "a change whose strata_address is wrong is tried and fails" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "firewall changed: applying in TRY mode" "$T/err" "it goes in TRY mode"
expect_grep "would lock strata out" "$T/err" "the lock-out is reported"
expect_grep "Talos reverted it after 10s and the node answers again" "$T/err" "reverted, the node answers"
expect_grep "strata connects to $IP from 127.0.0.1 (its own address toward the node; firewall.strata_address says the node sees it as $ADMIN)" "$T/err" \
	"the lock-out error names the address the node refused and what strata_address said"
expect_grep "firewall.admin_cidrs: \[$ADMIN/32\]" "$T/err" "and the admin CIDRs"
expect_grep "firewall.strata_address ($ADMIN) is not the address the node sees" "$T/err" "and that strata_address is what is wrong"
expect_grep "remove strata_address and add 127.0.0.1/32 to admin_cidrs" "$T/err" "and what to do"
n=$(labsim_py "[(x['tries'], x['reverts'], x['trying']) for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$n" = "[(1, 1, False)]" ] && ok "the simulator: one TRY, reverted" || bad "tries/reverts/trying: $n"
[ "$(fw_answers $IP 50000 127.0.0.1)" = yes ] && ok "the node answers strata again (old firewall back)" || bad "127.0.0.1 refused"
[ "$(fw_answers $IP 50000 $OTHER)" = no ] && ok "and still drops $OTHER" || bad "$OTHER admitted"
labsim_stop
finish
