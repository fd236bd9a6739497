#!/bin/sh
# strata plan on platform vps: what apply would do to the server, found
# read-only, and apply then doing exactly that. t071's rescue system (a
# real sshd on loopback, the simulator's factory and metal boot; labsim.sh
# vps_lab) at 127.0.72.10:2272. plan before apply checks the rescue disk
# over SSH, read-only: a wrong disk path and a too-small disk are
# conflicts; with the right one it says install (rescue write) and writes
# nothing (no file in ENV, one read-only SSH login, no download, no byte on
# the disk); apply installs; plan says nothing to do; a changed
# talos patch is an update in plan, and apply applies just that; after
# destroy (its list shows the Reset target; -o json the plan event),
# plan says install without a rescue write (maintenance mode).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

vps_need_sshd
vps_lab 127.0.72 2272
start_sshd hostkey "$R/bin:/usr/bin:/bin"
write_vps "$DISK"

logins() { grep -c "Accepted publickey" "$R/sshd.log" 2>/dev/null || true; }
gets() { labsim_ctl GET metal | $PY -c "import json,sys; print(len(json.load(sys.stdin)['data']['factory_gets']))"; }
jget() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
envsum() { (cd "$E" && find . -type f ! -name .lock | sort | xargs -r sha256sum) | sha256sum; }

# --- before the first apply: plan checks the rescue disk, read-only --------
# a wrong disk path, then a too-small disk: conflicts found over SSH (the
# host key pinned), nothing written on the host or into ENV
write_vps "$R/nosuch.img"
before=$(envsum)
expect_rc 0 "plan with a disk path the rescue system does not have" -- "$STRATA" plan "$E"
expect_grep "^  ! edge-cp-1 *conflict  server $IP: Talos does not answer at $IP:50000: rescue install, but its check on the rescue system fails: disk '$R/nosuch.img' does not exist on the rescue system" "$T/out" \
	"plan reports the missing disk as a conflict, as rescue-install would refuse it"
expect_grep "^1 conflict: apply will refuse until resolved\.$" "$T/out" "and counts it"
[ "$(logins)" = 1 ] && ok "plan logged in to the rescue system once (read-only)" || bad "SSH logins: $(logins)"
[ ! -e "$R/nosuch.img" ] && ok "no disk file created on the host" || bad "plan created $R/nosuch.img"
[ "$(envsum)" = "$before" ] && ok "plan wrote nothing into ENV" || bad "plan changed ENV: $(ls -A "$E")"
SMALL="$R/small.img"
truncate -s 100M "$SMALL"
write_vps "$SMALL"
before=$(envsum)
expect_rc 0 "plan with a disk smaller than the image" -- "$STRATA" plan "$E" -o json
s=$(jget "$T/out" "d['summary']['conflict'], d['actions'][0]['action'], d['actions'][0]['rescue_check']['ok'], d['actions'][0]['rescue_check']['disk_bytes'], 'the image needs 1306525696' in d['actions'][0]['rescue_check']['error']")
[ "$s" = "1 conflict False 104857600 True" ] && ok "plan -o json: a conflict, rescue_check names the size and what the image needs" || bad "json: $s"
[ "$(stat -c %s "$SMALL")" = 104857600 ] && [ "$(tr -d '\0' < "$SMALL" | wc -c)" = 0 ] \
	&& ok "the small disk is untouched (size, all zeros)" || bad "plan wrote to $SMALL"
[ "$(envsum)" = "$before" ] && [ ! -e "$E/secrets.yaml" ] && [ ! -e "$E/state.json" ] \
	&& ok "plan wrote nothing into ENV (no secrets.yaml, no journal)" || bad "plan changed ENV: $(ls -A "$E")"

# --- the right disk: install, and nothing written --------------------------
write_vps "$DISK"
before=$(envsum) l=$(logins)
expect_rc 0 "plan before the first apply" -- "$STRATA" plan "$E"
expect_grep "^  + edge-cp-1 *install   server $IP: Talos does not answer at $IP:50000: rescue install (SSH to $IP:2272" "$T/out" \
	"plan says the node needs the rescue install"
expect_grep "; the rescue system checked: $DISK is a file of 1300 MiB, not mounted, big enough, and the host has curl and zstd: it fetches the image itself$" "$T/out" \
	"and what its check of the rescue system found"
expect_grep "^Plan: 1 to install, 0 to update, 0 unchanged\.$" "$T/out" "the summary line counts machines"
expect_grep "a new secrets bundle" "$T/out" "plan says the Talos files are to be generated"
[ "$(envsum)" = "$before" ] && [ ! -e "$E/secrets.yaml" ] && [ ! -e "$E/state.json" ] \
	&& ok "plan wrote nothing into ENV (no secrets.yaml, no state.json)" || bad "plan changed ENV: $(ls -A "$E")"
[ "$(logins)" = $((l + 1)) ] && ok "plan's one SSH session (the probe only)" || bad "SSH logins $l -> $(logins)"
[ "$(gets)" = 0 ] && ok "plan downloaded no image" || bad "factory GETs: $(gets)"
[ "$(head -c 4194304 "$DISK" | tr -d '\0' | wc -c)" = 0 ] && ok "the disk is untouched" || bad "plan wrote to the disk"
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
s=$(jget "$T/out" "d['platform'], d['summary'], d['actions'][0]['action'], d['actions'][0]['rescue_write'], d['actions'][0]['desired']['server'], d['actions'][0]['live']['talos']")
[ "$s" = "vps {'install': 1, 'update': 0, 'conflict': 0, 'unchanged': 0} install True $IP down" ] \
	&& ok "plan -o json: one install with a rescue write, Talos down" || bad "json: $s"
s=$(jget "$T/out" "d['actions'][0]['rescue_check']")
[ "$s" = "{'ok': True, 'disk_bytes': 1363148800, 'write': 'fetch', 'error': None}" ] \
	&& ok "plan -o json: rescue_check ok, the disk's size, the host fetches" || bad "rescue_check: $s"
l=$(logins)

expect_rc 2 "apply without a terminal or --yes refuses" -- "$STRATA" apply "$E" < /dev/null
expect_grep "^  + edge-cp-1 *install   server $IP: Talos does not answer" "$T/out" "apply shows the machine plan first"
expect_grep "not a terminal: pass --yes" "$T/err" "and asks for --yes"
[ "$(envsum)" = "$before" ] && [ "$(logins)" = "$l" ] && ok "nothing written, no SSH session (apply's plan does not look at the rescue system)" || bad "the refused apply changed something"

# --- apply does what plan said --------------------------------------------
expect_rc 0 "apply installs" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "and verified" "$T/err" "apply wrote and verified the image (the rescue install plan announced)"
expect_grep "apply complete: 1 machine installed, 0 unchanged; Talos config applied to 1 node in " "$T/err" \
	"apply's closing line counts the machine installed"

# --- installed: nothing to do ---------------------------------------------
before=$(envsum) applies=$(talos_calls ApplyConfiguration) l=$(logins)
expect_rc 0 "plan after apply" -- "$STRATA" plan "$E"
expect_grep "^    edge-cp-1 *unchanged server $IP: Talos v1.12.11 of this cluster answers at $IP:50000, its config as applied: nothing to do$" \
	"$T/out" "plan says nothing to do"
expect_grep "^Plan: 0 to install, 0 to update, 1 unchanged\.$" "$T/out" "summary: 1 unchanged"
[ "$(envsum)" = "$before" ] && ok "plan wrote nothing into ENV" || bad "plan changed ENV"
[ "$(talos_calls ApplyConfiguration)" = "$applies" ] && ok "plan sent no config" || bad "ApplyConfiguration calls $applies -> $(talos_calls ApplyConfiguration)"
[ "$(logins)" = "$l" ] && ok "plan opened no SSH session" || bad "SSH logins $l -> $(logins)"
expect_rc 0 "plan -o json after apply" -- "$STRATA" plan "$E" -o json
s=$(jget "$T/out" "d['summary']['unchanged'], d['actions'][0]['config'], d['actions'][0]['live']['talos'], d['actions'][0]['live']['installed'], d['actions'][0]['live']['rescue']")
[ "$s" = "1 unchanged v1.12.11 True rebooted" ] && ok "plan -o json: unchanged, Talos v1.12.11, journal installed/rebooted" || bad "json: $s"
gets1=$(gets)
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "its disk is not rewritten" "$T/err" "apply agrees: the disk is not rewritten"
expect_grep "apply complete: 0 machines installed, 1 unchanged in " "$T/err" "apply's closing line: nothing installed, nothing applied"
grep -q "Talos config applied to" "$T/err" && bad "apply applied a config plan called unchanged" || ok "apply applied no config, as plan said"
[ "$(gets)" = "$gets1" ] && ok "no download" || bad "downloads $gets1 -> $(gets)"
expect_rc 0 "apply without --yes and nothing to change runs (CI re-run)" -- "$STRATA" apply "$E" --timeout 60s < /dev/null
expect_grep "^Plan: 0 to install, 0 to update, 1 unchanged\.$" "$T/out" "its plan: nothing to do"

# --- a changed talos patch: update ----------------------------------------
sed -i 's|^  install_disk: /dev/vda.*|&\n  patches:\n    - machine: {sysctls: {net.core.somaxconn: "4096"}}|' "$E/config.yml"
before=$(envsum) applies=$(talos_calls ApplyConfiguration)
expect_rc 0 "plan after a patch change" -- "$STRATA" plan "$E"
expect_grep "^  ~ edge-cp-1 *update    server $IP: Talos v1.12.11 of this cluster at $IP:50000; nodes/edge-cp-1.yaml changed since it was applied: applied over mTLS" \
	"$T/out" "plan says the config changes"
expect_grep "^Plan: 0 to install, 1 to update, 0 unchanged\.$" "$T/out" "summary: 1 to update"
expect_grep "^Talos files: [1-9][0-9]* of [0-9]* to rewrite\.$" "$T/out" "plan counts the Talos files to rewrite"
[ "$(envsum)" = "$before" ] && ok "plan did not regenerate nodes/edge-cp-1.yaml" || bad "plan changed ENV"
[ "$(talos_calls ApplyConfiguration)" = "$applies" ] && ok "plan sent no config" || bad "plan sent a config"
expect_rc 0 "plan -o json after a patch change" -- "$STRATA" plan "$E" -o json
s=$(jget "$T/out" "d['actions'][0]['action'], d['actions'][0]['changes'][0]['field'], len(d['actions'][0]['changes'][0]['from']), d['actions'][0]['changes'][0]['to'], d['actions'][0]['rescue_write'], d['talos_files']['files_changed'] > 0")
[ "$s" = "update talos_config 64 None False True" ] && ok "plan -o json: update of talos_config (from the applied SHA-256, to be generated), no rescue write" || bad "json: $s"
expect_rc 0 "apply the patch change" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "changed config applied" "$T/err" "apply applies the changed config, as plan said"
expect_grep "apply complete: 0 machines installed, 1 unchanged; Talos config applied to 1 node in " "$T/err" "apply's closing line counts it"
expect_grep "its disk is not rewritten" "$T/err" "no rescue write for an update"
[ "$(talos_calls ApplyConfiguration)" -gt "$applies" ] && ok "one more ApplyConfiguration" || bad "no config sent"
expect_rc 0 "plan after applying it" -- "$STRATA" plan "$E"
expect_grep "^Plan: 0 to install, 0 to update, 1 unchanged\.$" "$T/out" "nothing to do again"

# --- after destroy: maintenance mode, install without a rescue write -----
expect_rc 2 "destroy without --yes lists what it would reset" -- "$STRATA" destroy "$E" < /dev/null
expect_grep "^  - edge-cp-1 *$IP *reset: Talos v1.12.11 of this cluster (single node: not graceful)$" "$T/out" \
	"destroy's list: the node, its address, a Reset of this cluster's Talos"
expect_rc 0 "destroy --yes -o json" -- "$STRATA" destroy "$E" --yes -o json
s=$($PY -c "
import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e['type'] == 'plan':
        p = e['plan']; print(p['platform'], p['summary'], [(a['action'], a['live']['name'], a['live']['talos']) for a in p['actions']])" "$T/out")
[ "$s" = "vps {'reset': 1, 'unchanged': 0, 'conflict': 0} [('reset', 'edge-cp-1', 'v1.12.11')]" ] \
	&& ok "destroy -o json: a plan event with the Reset target" || bad "destroy plan event: $s"
s=$($PY -c "
import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e['type'] == 'summary': print(e['result'], sorted(e['machines'].items()), 'vms' in e)" "$T/out")
[ "$s" = "done [('changed', 0), ('created', 0), ('deleted', 0), ('installed', 0), ('provider', 'vps'), ('reset', 1), ('unchanged', 0)] False" ] \
	&& ok "destroy's summary event counts the machine reset (no vms object on vps)" || bad "summary: $s"
expect_grep "destroy complete: 1 machine reset, 0 unchanged" "$T/err" "destroy's closing line counts it"
expect_rc 2 "destroy again without --yes" -- "$STRATA" destroy "$E" < /dev/null
expect_grep "^  - edge-cp-1 *$IP *nothing to reset: in maintenance mode already$" "$T/out" "destroy's list: nothing to reset"
l=$(logins)
expect_rc 2 "apply without --yes after destroy refuses (a machine to install)" -- "$STRATA" apply "$E" < /dev/null
expect_grep "not a terminal: pass --yes" "$T/err" "it asks for --yes"
expect_rc 0 "plan after destroy" -- "$STRATA" plan "$E"
expect_grep "^  + edge-cp-1 *install   server $IP: in Talos maintenance mode at $IP:50000 (the image is on the disk): no rescue write" \
	"$T/out" "plan says: config in maintenance mode, no rescue write"
expect_rc 0 "apply after destroy" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "is in Talos maintenance mode at $IP (booted from the image this environment wrote); nothing to write" "$T/err" \
	"apply agrees: nothing written (the journal kept the rescue install across destroy)"
expect_grep "bootstrapped etcd on edge-cp-1" "$T/err" "and bootstraps again"
[ "$(logins)" = "$l" ] && ok "no SSH session for it" || bad "SSH logins $l -> $(logins)"
stop_sshd
labsim_stop
finish
