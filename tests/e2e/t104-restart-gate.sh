#!/bin/sh
# The rolling restart (proxmox.restart: rolling) runs the cluster health
# gate (issue 15 item 1, FACTS-day2.md 4a: a health gate between the nodes
# of a roll): before every Talos VM's reboot and once after the last. A
# cluster that is not healthy (here: a Node cordoned by strata) stops the
# restart before any VM is rebooted, saying why; once healthy, a re-run
# restarts them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/rg"
write_env "$E" rg 1040 3 1 127.0.104

stops() { labsim_py "sum(1 for e in s['events'] if e['event'] == 'vm-stop')"; }
cordon() {   # NODE on|off: strata's cordon (annotation and unschedulable) set or lifted
	if [ "$2" = on ]; then
		kube_req PATCH "$E" "/api/v1/nodes/$1" \
			"{apiVersion: v1, kind: Node, metadata: {name: $1, annotations: {strata.dev/cordoned: t104}}, spec: {unschedulable: true}}"
	else
		kube_req PATCH "$E" "/api/v1/nodes/$1" "{apiVersion: v1, kind: Node, metadata: {name: $1}}"
	fi
}

expect_rc 0 "apply 3+1" -- "$STRATA" apply "$E" --yes --timeout 60s
sed -i 's/memory: 2GiB, disk: 10GiB}/memory: 3GiB, disk: 10GiB}/; s/memory: 2GiB, disk: 20GiB}/memory: 3GiB, disk: 20GiB}/' "$E/config.yml"

# not healthy: nothing restarted
cordon rg-w-1 on > "$T/c" 2>&1 && ok "rg-w-1 cordoned (as strata marks it)" || bad "cordon: $(cat "$T/c")"
before=$(stops)
expect_rc 1 "apply refuses to restart an unhealthy cluster" -- "$STRATA" apply "$E" --yes --timeout 3s
expect_grep "health gate before the restart of rg-cp-1: the cluster was not healthy within 3 s: cordon: Node rg-w-1 is cordoned by strata" "$T/err" "the gate names the check and what is wrong"
expect_grep "the restart of rg-cp-1 was not started" "$T/err" "and that nothing was started"
[ "$(stops)" = "$before" ] && ok "no VM rebooted" || bad "VMs stopped: $(stops) (before: $before)"

# healthy: every reboot gated, and once after the last
cordon rg-w-1 off > "$T/c" 2>&1 && ok "cordon lifted" || bad "uncordon: $(cat "$T/c")"
expect_rc 0 "apply restarts one at a time" -- "$STRATA" apply "$E" --yes --timeout 60s
for n in rg-cp-1 rg-cp-2 rg-cp-3 rg-w-1; do
	expect_grep "health gate before the restart of $n: passed (4 nodes" "$T/err" "gate before $n's restart"
done
expect_grep "health gate before the phases after the restarts: passed" "$T/err" "gate after the last restart"
expect_grep "restarted 4 VMs one at a time" "$T/err" "four restarts"
$PY - "$T/err" > "$T/order" <<'PYEOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
seq = [("gate", m.group(1)) if (m := re.search(r"health gate before the restart of (\S+): passed", l)) else
       ("restart", m2.group(1)) if (m2 := re.search(r"restarting (\S+) \(vmid", l)) else None for l in lines]
seq = [s for s in seq if s]
ok = all(seq[i] == ("gate", seq[i + 1][1]) for i in range(len(seq) - 1) if seq[i + 1][0] == "restart")
print("gated" if ok and sum(1 for s in seq if s[0] == "restart") == 4 else "UNGATED %s" % seq)
PYEOF
expect_grep "^gated" "$T/order" "each restart right after its gate"

labsim_stop
finish
