#!/bin/sh
# platform: vps, the Talos host firewall on the simulated node
# (tests/labsim/firewall.py enforces the applied documents per source
# address). A server whose disk already holds the image boots into
# maintenance mode (no SSH needed: rescue-install finds Talos there), apply
# installs and bootstraps it; then 50000 and 6443 answer only from the admin
# CIDRs (sources 127.0.75.200 allowed, 127.0.75.201 not; strata itself
# connects from 127.0.0.1). A firewall change that would lock strata out
# goes in TRY mode, is not confirmed, Talos reverts it, strata says so and
# the node answers again; a change that keeps strata in is confirmed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

NET=127.0.75
. "$(dirname "$0")/vpsfw.sh"
K8S=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['kubernetes']['port'])" "$LABSIM_DIR/ready")
[ "$(fw_answers $IP 50000 $OTHER)" = yes ] && ok "maintenance mode: no firewall yet, 50000 answers any source" \
	|| bad "maintenance mode refused $OTHER"

E="$T/envs/fw"
write_fw "127.0.0.1/32, $ADMIN/32"
expect_rc 0 "apply installs and bootstraps the server" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "maintenance mode at $IP" "$T/err" "rescue-install finds Talos in maintenance mode (nothing written)"
expect_grep "apply complete" "$T/err" "apply completed"

# --- the firewall of the installed node ----------------------------------
check() {   # check PORT SRC WANT WHAT
	got=$(fw_answers $IP "$1" "$2")
	[ "$got" = "$3" ] && ok "$4" || bad "$4 (answers: $got)"
}
check 50000 $ADMIN yes "apid (50000) answers from an admin CIDR ($ADMIN)"
check 50000 127.0.0.1 yes "apid answers from strata's address (127.0.0.1)"
check 50000 $OTHER no "apid does not answer from outside the admin CIDRs ($OTHER)"
check $K8S $ADMIN yes "the Kubernetes API (6443) answers from an admin CIDR"
check $K8S $OTHER no "the Kubernetes API does not answer from outside the admin CIDRs"
kube_get "$E" /api/v1/nodes > "$T/nodes" 2>&1 && ok "kubeconfig works from 127.0.0.1 through the firewall" \
	|| bad "kube API: $(head -c 300 "$T/nodes")"

# --- a change that locks strata out: TRY, not confirmed, reverted ---------
fwsha() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['talos']['fw-cp-1'].get('firewall_sha256'))" "$E/state.json"; }
sha0=$(fwsha)
# (apply refuses admin_cidrs without strata's own address before any TRY:
# t079; a strata_address naming an admitted address, as behind a NAT, gets
# past that check, and only the TRY finds that the node refuses 127.0.0.1)
write_fw "$ADMIN/32" "strata_address: $ADMIN"
expect_rc 1 "a firewall change excluding strata's own address fails the apply" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "firewall changed: applying in TRY mode" "$T/err" "it goes in TRY mode"
expect_grep "would lock strata out" "$T/err" "the error says the change would lock strata out"
expect_grep "Talos reverted it after 10s and the node answers again" "$T/err" "and that Talos reverted it and the node answers"
expect_grep "firewall.admin_cidrs" "$T/err" "and names firewall.admin_cidrs"
n=$(labsim_py "[(x['tries'], x['reverts'], x['trying']) for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$n" = "[(1, 1, False)]" ] && ok "the simulator: one TRY, reverted, never confirmed" || bad "tries/reverts/trying: $n"
[ "$(talos_calls ApplyConfiguration $IP)" = 2 ] && ok "no confirming ApplyConfiguration after the TRY (install + TRY only)" \
	|| bad "ApplyConfiguration calls: $(talos_calls ApplyConfiguration $IP)"
check 50000 127.0.0.1 yes "the node answers strata's address again (old firewall back)"
check 50000 $OTHER no "and still drops other sources"
[ "$(fwsha)" = "$sha0" ] && ok "the journal keeps the old firewall's digest" || bad "firewall_sha256 changed"

# --- a change that keeps strata in: tried, confirmed -----------------------
write_fw "127.0.0.1/32, $OTHER/32"
expect_rc 0 "a firewall change keeping strata's address is applied" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "firewall change tried, then applied" "$T/err" "tried, then confirmed"
sleep 11   # past try_timeout: a confirmed change is not reverted
n=$(labsim_py "[(x['tries'], x['reverts'], x['trying']) for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$n" = "[(2, 1, False)]" ] && ok "the simulator: the second TRY was confirmed, not reverted" || bad "tries/reverts/trying: $n"
check 50000 $OTHER yes "the newly admitted source reaches apid"
check 50000 $ADMIN no "the removed source no longer does"
[ "$(fwsha)" != "$sha0" ] && ok "the journal holds the new firewall's digest" || bad "firewall_sha256 unchanged"
labsim_stop
finish
