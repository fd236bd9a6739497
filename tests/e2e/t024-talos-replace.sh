#!/bin/sh
# A replaced VM is a fresh machine: its new blank disk boots the ISO into
# maintenance mode (the simulator keeps Talos state on the disk), and apply
# installs Talos on it again and it rejoins the cluster.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.32.0/24
E="$T/envs/rp"
write_env "$E" rp 1200 1 1 127.0.22

expect_rc 0 "apply 1+1" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "Kubernetes: 2/2 nodes registered" "$T/err" "both nodes registered"
maint_applies() { labsim_py "sum(1 for c in s['talos']['calls'] if c['method'].endswith('/ApplyConfiguration') and c['maintenance'])"; }
[ "$(maint_applies)" = 2 ] && ok "two installs from maintenance mode" || bad "maintenance applies $(maint_applies)"
old_disk=$(labsim_py "s['vms']['1201']['config']['scsi0']")

# a smaller disk cannot be shrunk in place: the worker is replaced
sed -i 's/workers: {count: 1, ip_start: 127.0.22.21, memory: 2GiB, disk: 20GiB}/workers: {count: 1, ip_start: 127.0.22.21, memory: 2GiB, disk: 10GiB}/' "$E/config.yml"
expect_rc 0 "plan" -- "$STRATA" plan "$E"
expect_grep "rp-w-1 .*replace" "$T/out" "plan replaces the worker"
expect_rc 0 "apply the replace" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "replaced" "$T/err" "the VM was replaced"
[ "$(maint_applies)" = 3 ] && ok "the new VM was installed from maintenance mode" \
	|| { bad "maintenance applies $(maint_applies)"; sed 's/^/     | /' "$T/err" | tail -20; }
new_disk=$(labsim_py "s['vms']['1201']['config']['scsi0']")
case "$new_disk" in *size=10G*) ok "new 10 GiB disk ($new_disk)";; *) bad "disk $new_disk (was $old_disk)";; esac
[ "$(labsim_py "[n['state'] for n in s['talos']['nodes'] if n['vmid'] == 1201]")" = "['running']" ] \
	&& ok "one machine for vmid 1201, running" || bad "nodes $(labsim_py "[(n['ip'], n['state']) for n in s['talos']['nodes'] if n['vmid'] == 1201]")"
[ "$(labsim_py "[n['ip'] for n in s['talos']['nodes'] if n['vmid'] == 1201]")" = "['127.0.22.21']" ] \
	&& ok "at its static address" || bad "address"
expect_grep "Kubernetes: 2/2 nodes registered" "$T/err" "the worker rejoined"
[ "$(talos_calls Bootstrap)" = 1 ] && ok "no second Bootstrap" || bad "Bootstrap calls $(talos_calls Bootstrap)"
expect_rc 0 "a re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "nothing to do" "$T/err" "is quiet"
finish
