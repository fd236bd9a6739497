#!/bin/sh
# proxmox.pool: plan shows a missing pool, apply creates it (a token without
# Pool.Allocate gets an error naming the privilege, and nothing is created),
# the VMs land in it, destroy leaves it alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
NOPOOL_SECRET=6a1f2c3d-0000-4000-8000-00000000beef
cat > "$T/tokens.json" <<JSON
[{"id": "root@pam!strata", "secret": "$(cat /proc/sys/kernel/random/uuid)", "privs": ["*"]},
 {"id": "strata@pve!nopool", "secret": "$NOPOOL_SECRET",
  "privs": ["VM.Allocate", "VM.Audit", "VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU",
            "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options",
            "VM.Config.Cloudinit", "VM.PowerMgmt", "VM.GuestAgent.Audit", "Datastore.AllocateSpace",
            "Datastore.Audit", "Datastore.AllocateTemplate", "Datastore.Allocate", "Sys.Audit",
            "Sys.Modify", "Sys.AccessNetwork", "SDN.Use", "Pool.Audit"]}]
JSON
labsim_start --tokens "$T/tokens.json" --talos-net 127.0.30.0/24
E="$T/envs/pl"
write_env "$E" pl 1100 1 0 127.0.30
sed -i 's/^  nodes: \[pve1, pve2\]$/  nodes: [pve1, pve2]\n  pool: lab/' "$E/config.yml"
grep -q '^  pool: lab$' "$E/config.yml" && ok "config names pool lab" || bad "pool not in config"
pools() { labsim_py "sorted(s['pools'])"; }
pool_vms() { labsim_py "s['pools'].get('lab', {}).get('vms')"; }

# a token without Pool.Allocate
ROOT_SECRET=$PVE_TOKEN_SECRET
sed "s/token_id: \"$PVE_TOKEN_ID\"/token_id: \"strata@pve!nopool\"/" "$E/config.yml" > "$T/c" && cp "$T/c" "$E/config.yml"
export PVE_TOKEN_SECRET=$NOPOOL_SECRET
expect_rc 0 "plan with a missing pool" -- "$STRATA" plan "$E"
expect_grep "+ lab .*pool .*create (needs Pool.Allocate on /pool/lab)" "$T/out" "plan shows the pool to create"
expect_grep "Pool 'lab' does not exist: apply creates it." "$T/out" "plan says apply creates it"
expect_rc 0 "plan -o json" -- "$STRATA" plan "$E" -o json
[ "$($PY -c "import json; p=json.load(open('$T/out'))['pool']; print(p['id'], p['exists'], p['action'])")" = "lab False create" ] \
	&& ok "json: pool lab, missing, create" || bad "json pool $(cat "$T/out" | head -5)"
expect_rc 1 "apply without Pool.Allocate fails" -- "$STRATA" apply "$E" --yes
expect_grep "Pool.Allocate" "$T/err" "the error names the privilege"
expect_grep "/pool/lab" "$T/err" "and the ACL path"
expect_grep "create pool 'lab' in Proxmox first" "$T/err" "and what to do"
grep "error" "$T/err" | sed "s/^/     : /"
[ "$(pools)" = "[]" ] && ok "no pool made" || bad "pools $(pools)"
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "no VM made" || bad "VMs were created"

# the root token: apply creates the pool, then the VMs in it
sed 's/token_id: "strata@pve!nopool"/token_id: "root@pam!strata"/' "$E/config.yml" > "$T/c" && cp "$T/c" "$E/config.yml"
export PVE_TOKEN_SECRET=$ROOT_SECRET
expect_rc 0 "apply into a missing pool" -- "$STRATA" apply "$E" --yes
expect_grep "created pool 'lab'" "$T/err" "apply says it created the pool"
[ "$(pools)" = "['lab']" ] && ok "pool lab exists" || bad "pools $(pools)"
[ "$(pool_vms)" = "[1100]" ] && ok "the VM is in the pool" || bad "pool members $(pool_vms)"
expect_rc 0 "plan again" -- "$STRATA" plan "$E"
if grep -q "pool" "$T/out"; then bad "plan still shows the pool"; sed 's/^/     | /' "$T/out"; else ok "plan: pool exists, nothing to do for it"; fi
expect_grep "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 unchanged." "$T/out" "plan: nothing to do"

expect_rc 0 "destroy --yes" -- "$STRATA" destroy "$E" --yes
[ "$(labsim_py "len(s['vms'])")" = 0 ] && ok "VMs gone" || bad "VMs left"
[ "$(pools)" = "['lab']" ] && ok "destroy leaves the pool alone" || bad "pools after destroy $(pools)"
finish
