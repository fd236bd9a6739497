#!/bin/sh
# Rolling Talos upgrade of 3+2 (issue 15 item 3): a changed talos.version
# upgrades through the Upgrade API with the new installer image, control
# planes first and one at a time, each node back with a new boot id and
# the new version and every node healthy (the gate) before the next; the
# simulator's node log proves no two control planes were down at once and
# the gate ran between. An upgrade failing on the third node stops the
# roll with the cluster as it is; a re-run continues and finishes. Workers
# are cordoned and drained before their upgrade and uncordoned after it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.110.128/25
E="$T/envs/up"
write_env "$E" up 1500 3 2 127.0.110
cat >> "$E/config.yml" <<'YAML'
talos:
  version: v1.12.10
YAML
roll() { $PY "$TOP/tests/e2e/upgrade_log.py" "$LABSIM_DIR" "$1" "$2" > "$T/roll" 2>&1; cat "$T/roll" | sed 's/^/     : /'; }
now() { $PY -c 'import time; print(time.time())'; }

expect_rc 0 "apply 3+2 at v1.12.10" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Kubernetes: 5/5 nodes registered" "$T/err" "cluster up"
expect_grep "Talos: all 5 nodes run v1.12.10, nothing to upgrade" "$T/err" "nothing to upgrade at first"
[ "$(labsim_py "sorted(set(n['version'] for n in s['talos']['nodes']))")" = "['v1.12.10']" ] && ok "every node runs v1.12.10" \
	|| bad "versions $(labsim_py "[n['version'] for n in s['talos']['nodes']]")"

# a downgrade and a jump over a minor are refused by plan, nothing changes
sed -i 's/version: v1.12.10/version: v1.12.9/' "$E/config.yml"
expect_rc 2 "plan refuses a downgrade" -- "$STRATA" plan "$E"
expect_grep "Talos v1.12.10 -> v1.12.9 is a downgrade" "$T/err" "says it is a downgrade"
expect_rc 2 "apply refuses it too" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(talos_calls Upgrade)" = 0 ] && ok "no Upgrade sent" || bad "Upgrade calls $(talos_calls Upgrade)"

sed -i 's/version: v1.12.9/version: v1.12.11/' "$E/config.yml"
expect_rc 0 "plan shows the roll" -- "$STRATA" plan "$E"
expect_grep "Talos upgrade to v1.12.11, rolling" "$T/out" "plan announces the rolling upgrade"
expect_grep "up-cp-1 .*v1.12.10 -> v1.12.11  (control plane: alone, then the gate)" "$T/out" "per node, control planes marked"
expect_grep "control planes one at a time, then workers 1 at a time" "$T/out" "and the order"

# the third node (up-cp-3, vmid 1502) fails validating the installer image
labsim_ctl POST knobs '{"talos_upgrade_fail_vmid": {"1502": "pull failed: registry answered 502"}}' > /dev/null
t0=$(now)
expect_rc 1 "apply: the upgrade fails on the third node" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "upgrade up-cp-3 (2 of 5 nodes done; the others were not touched" "$T/err" "the failure names the node and where the roll stopped"
expect_grep "registry answered 502" "$T/err" "with the server's reason"
roll "$t0" v1.12.11
expect_grep "^order 1500 1501 1502$" "$T/roll" "cp-1, cp-2 upgraded, cp-3 tried, workers not touched"
expect_grep "^versions 1500:v1.12.11 1501:v1.12.11 1502:v1.12.10 1503:v1.12.10 1504:v1.12.10$" "$T/roll" "the cluster as it was left"
expect_grep "^cp-overlap [01]$" "$T/roll" "never two control planes down at once"
expect_grep "^gate-between yes" "$T/roll" "the health gate ran between the nodes"

labsim_ctl POST knobs '{"talos_upgrade_fail_vmid": {}}' > /dev/null
t1=$(now)
expect_rc 0 "apply again: the roll continues" -- "$STRATA" apply "$E" --yes --timeout 60s
roll "$t1" v1.12.11
expect_grep "^order 1502 1503 1504$" "$T/roll" "continues with cp-3, then the workers"
expect_grep "^all-at yes" "$T/roll" "every node runs v1.12.11"
expect_grep "^cp-overlap [01]$" "$T/roll" "never two control planes down at once"
expect_grep "^down-overlap 1$" "$T/roll" "one node at a time (workers too, --parallel not given)"
expect_grep "^gate-between yes" "$T/roll" "the gate between every two nodes"
expect_grep "up-cp-3 is back: new boot id, Talos v1.12.11" "$T/err" "apply says the node came back with a new boot id"
expect_grep "up-w-1: cordoned, drained" "$T/err" "a worker is cordoned and drained before its upgrade"
if grep -q "up-cp-3: cordoned" "$T/err"; then bad "a control plane was drained"; else ok "control planes are not drained"; fi
# the cordon and the uncordon: server-side applies to the worker's Node
n_patch=$(labsim_py "len([c for k in s['talos']['kubernetes'].values() for c in k['calls'] if c['method'] == 'PATCH' and c['path'] == '/api/v1/nodes/up-w-2' and c['t'] >= $t1])")
[ "$n_patch" = 2 ] && ok "up-w-2's Node patched twice (cordon, uncordon)" || bad "Node patches for up-w-2: $n_patch"
expect_grep "health gate after up-w-2: 5 nodes up over mTLS, etcd healthy on 3 control planes" "$T/err" "a gate after the last node"
[ "$(labsim_py "len([u for n in s['talos']['nodes'] for u in n['upgrades']])")" = 5 ] && ok "five Upgrade calls accepted in all" \
	|| bad "upgrades $(labsim_py "[len(n['upgrades']) for n in s['talos']['nodes']]")"
[ "$(labsim_py "sorted(set(u['image'].split('/')[1] + ':' + u['image'].rsplit(':',1)[1] for n in s['talos']['nodes'] for u in n['upgrades']))")" = "['metal-installer:v1.12.11']" ] \
	&& ok "the installer image of the new version" || bad "images $(labsim_py "[u['image'] for n in s['talos']['nodes'] for u in n['upgrades']]")"
# the changed machine config (install.image) went in with the upgrade's
# reboot (staged), not as a second reboot
[ "$(labsim_py "sorted(set(n['install_image'].rsplit(':',1)[1] for n in s['talos']['nodes']))")" = "['v1.12.11']" ] \
	&& ok "each node's config carries the new installer" || bad "install images $(labsim_py "[n.get('install_image') for n in s['talos']['nodes']]")"
n_down=$(labsim_py "len([e for e in s['talos']['node_events'] if e['event'] == 'down' and e['t'] >= $t1])")
[ "$n_down" = 3 ] && ok "one reboot per node upgraded" || bad "reboots $n_down"

expect_rc 0 "apply once more" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Talos: all 5 nodes run v1.12.11, nothing to upgrade" "$T/err" "nothing left to upgrade"
[ "$(labsim_py "len([u for n in s['talos']['nodes'] for u in n['upgrades']])")" = 5 ] && ok "no Upgrade repeated" || bad "upgrades repeated"
expect_rc 0 "status --health after the roll" -- "$STRATA" status "$E" --health
expect_grep "ok.*cordon.*no node cordoned by strata" "$T/out" "no node left cordoned by strata"
finish
