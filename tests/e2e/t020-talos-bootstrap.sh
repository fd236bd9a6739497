#!/bin/sh
# One `strata apply` from an empty simulator to a cluster: 1+2 and 3+5.
# Nodes installed from maintenance mode, one Bootstrap, kubeconfig (0600)
# that kubectl uses, a talosconfig a Python gRPC client can use over mTLS,
# status, a re-run that changes nothing, a changed config applied to the
# running nodes, boot order switched to the disk with the ISO detached.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/small"
write_env "$E" small 1000 1 2

expect_rc 0 "apply --yes of 1+2 from an empty simulator" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "bootstrapped etcd on small-cp-1" "$T/err" "bootstrap reported"
expect_grep "Kubernetes: 3/3 nodes registered" "$T/err" "every node registered"
expect_grep "apply complete" "$T/err" "apply says it completed"
[ "$(talos_calls Bootstrap)" = 1 ] && ok "exactly one Bootstrap" || bad "Bootstrap calls: $(talos_calls Bootstrap)"
[ "$(talos_calls ApplyConfiguration)" = 3 ] && ok "one ApplyConfiguration per node" \
	|| bad "ApplyConfiguration calls: $(talos_calls ApplyConfiguration)"
[ "$(stat -c %a "$E/kubeconfig")" = 600 ] && ok "kubeconfig is 0600" || bad "kubeconfig mode $(stat -c %a "$E/kubeconfig")"
expect_grep "server: https://127.0.20.10:6443" "$E/kubeconfig" "kubeconfig points at the VIP"

if command -v kubectl >/dev/null 2>&1; then
	kubectl --kubeconfig "$E/kubeconfig" get nodes --no-headers > "$T/nodes" 2>&1
	[ "$(grep -c -E '^small-(cp|w)-[0-9]' "$T/nodes")" = 3 ] && ok "kubectl get nodes lists the 3 nodes" \
		|| { bad "kubectl get nodes"; sed 's/^/     | /' "$T/nodes"; }
else
	echo "skip kubectl get nodes: kubectl not installed"
fi

# Every VM boots from its disk now; the ISO is out of the drive.
for id in 1000 1001 1002; do
	# as GET config shows it: a boot order change waits for the next start
	b=$(labsim_py "dict(s['vms']['$id']['config'], **s['vms']['$id'].get('pending', {})).get('boot')")
	i=$(labsim_py "dict(s['vms']['$id']['config'], **s['vms']['$id'].get('pending', {})).get('ide2')")
	case "$b $i" in
	"order=scsi0 none,media=cdrom") ok "vm $id boots from disk, ISO detached" ;;
	*) bad "vm $id boot '$b' ide2 '$i'" ;;
	esac
done

# The talosconfig works for any gRPC client (mTLS against the OS CA).
$PY - "$E/talosconfig" "$LABSIM_DIR/pb" > "$T/py" 2>&1 <<'PYEOF'
import base64, sys, yaml, grpc
sys.path.insert(0, sys.argv[2])
import machine_pb2
tc = yaml.safe_load(open(sys.argv[1]))
ctx = tc["contexts"][tc["context"]]
b = lambda k: base64.b64decode(ctx[k])
creds = grpc.ssl_channel_credentials(root_certificates=b("ca"), private_key=b("key"), certificate_chain=b("crt"))
ch = grpc.secure_channel("%s:50000" % ctx["endpoints"][0], creds)
call = ch.unary_unary("/machine.MachineService/Version", request_serializer=lambda x: x,
                      response_deserializer=machine_pb2.VersionResponse.FromString)
r = call(b"", timeout=5)
print("version", r.messages[0].version.tag)
PYEOF
expect_grep "^version v1.12" "$T/py" "a Python gRPC client uses the talosconfig over mTLS"

expect_rc 0 "status" -- "$STRATA" status "$E"
expect_grep "small-cp-1 .*running .*v1.12.11 .*Running  *Ready  *ok$" "$T/out" "status: Talos version, etcd, Kubernetes readiness (Ready: the cni phase ran)"
expect_grep "small-w-1 .*running .*v1.12.11 .*-  *Ready  *ok$" "$T/out" "status: worker without etcd"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
[ "$($PY -c "import json; d=json.load(open('$T/out')); print(sorted(v['talos'] for v in d['machines']))")" = "['v1.12.11', 'v1.12.11', 'v1.12.11']" ] \
	&& ok "status json has the Talos version per node" || bad "status json talos"

labsim_ctl POST reset-requests > /dev/null
before=$(talos_calls ApplyConfiguration)
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "all 3 nodes up with their current config, nothing to do" "$T/err" "re-run says nothing to do"
expect_grep "bootstrap etcd: nothing to do" "$T/err" "no second bootstrap"
[ "$(talos_calls ApplyConfiguration)" = "$before" ] && ok "re-run applied no config" || bad "re-run applied configs"
[ "$(talos_calls Bootstrap)" = 1 ] && ok "still one Bootstrap" || bad "Bootstrap calls: $(talos_calls Bootstrap)"
[ "$(labsim_ctl GET requests | $PY -c "import json,sys; print(sum(1 for r in json.load(sys.stdin)['data'] if r['method'] != 'GET'))")" = 0 ] \
	&& ok "re-run sent Proxmox nothing but reads" || bad "re-run changed Proxmox"

# A changed config reaches the running nodes (mTLS, mode AUTO).
printf 'talos:\n  patches:\n    - machine:\n        sysctls: {vm.max_map_count: "262144"}\n' >> "$E/config.yml"
expect_rc 2 "a changed Talos config needs confirmation" -- "$STRATA" apply "$E" --timeout 60s < /dev/null
expect_grep "Talos configs changed since they were applied" "$T/out" "apply lists the Talos changes"
expect_grep "~ small-w-2 .*nodes/small-w-2.yaml" "$T/out" "node by node"
[ "$(talos_calls ApplyConfiguration 127.0.20.21)" = 0 ] && ok "nothing applied without confirmation" || bad "applied without --yes"
expect_rc 0 "apply of a changed Talos config" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "3 of 3 nodes installed or updated" "$T/err" "the three nodes got the new config"
[ "$(talos_calls ApplyConfiguration 127.0.20.21)" = 1 ] && ok "applied to the worker at its static address" \
	|| bad "applies at 127.0.20.21: $(talos_calls ApplyConfiguration 127.0.20.21)"
expect_rc 0 "and the next run is quiet again" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "nothing to do" "$T/err" "quiet re-run"

# 3+5 in the same simulator, another network.
B="$T/envs/big"
write_env "$B" big 2000 3 5 127.0.21
labsim_ctl POST reset-requests > /dev/null
b0=$(talos_calls Bootstrap)
expect_rc 0 "apply --yes of 3+5" -- "$STRATA" apply "$B" --yes --timeout 60s
expect_grep "Kubernetes: 8/8 nodes registered" "$T/err" "8 nodes registered"
[ "$(($(talos_calls Bootstrap) - b0))" = 1 ] && ok "3+5: exactly one Bootstrap" || bad "3+5 Bootstrap calls"
if command -v kubectl >/dev/null 2>&1; then
	kubectl --kubeconfig "$B/kubeconfig" get nodes --no-headers > "$T/nodes" 2>&1
	[ "$(grep -c -E '^big-(cp|w)-[0-9]' "$T/nodes")" = 8 ] && ok "kubectl lists the 8 nodes" \
		|| { bad "kubectl get nodes (3+5)"; sed 's/^/     | /' "$T/nodes"; }
fi
expect_rc 0 "destroy 3+5" -- "$STRATA" destroy "$B" --yes
[ "$($PY -c "import json; print('bootstrap' in json.load(open('$B/state.json')).get('phases', {}))")" = False ] \
	&& ok "destroy forgets the bootstrap" || bad "journal still says bootstrapped"

finish
