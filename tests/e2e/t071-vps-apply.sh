#!/bin/sh
# platform: vps end to end. A real OpenSSH server on loopback plays the
# rescue system (throwaway host key, high port); the install disk is a
# sparse file; the simulator serves the Image Factory and, when the rescue
# host's `reboot` script calls it, boots the server from that file (Talos
# maintenance mode at 127.0.71.10 only if the disk starts with the image).
# Then: the disk's bytes equal the image, the cluster bootstraps to Ready at
# the node's address (no VIP), a re-run never rewrites the disk; a changed
# host key, a wrong disk, a too-small disk, an interrupted transfer: clear
# errors, and a re-run completes; a host without zstd gets the stream.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

vps_need_sshd
vps_lab 127.0.71 2271

# --- refusals before a byte is written ----------------------------------
start_sshd hostkey2 "$R/bin:/usr/bin:/bin"
write_vps "$DISK"
expect_rc 1 "a changed host key is refused" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "host key" "$T/err" "the error names the host key"
stop_sshd
start_sshd hostkey "$R/bin:/usr/bin:/bin"
write_vps "$R/nodisk.img"
expect_rc 1 "a wrong disk path is refused" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "nodisk.img" "$T/err" "the error names the disk"
truncate -s 100M "$R/small.img"
write_vps "$R/small.img"
expect_rc 1 "a too-small disk is refused" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "small.img" "$T/err" "the error names the small disk"
[ "$(head -c 4096 "$R/small.img" | tr -d '\0' | wc -c)" = 0 ] && ok "nothing was written to the small disk" \
	|| bad "the small disk was written to"
[ ! -s "$R/reboots" ] && ok "no reboot after a refusal" || bad "rebooted after a refusal"

# --- an interrupted transfer (the host fetching it), then the re-run on a
# host without curl and zstd: strata streams it ----------------------------
write_vps "$DISK"
labsim_ctl POST metal/cut '{"bytes": 100000}' > /dev/null
expect_rc 1 "an interrupted download fails the apply" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "partial image" "$T/err" "it says the disk holds a partial image"
[ ! -s "$R/reboots" ] && ok "no reboot after the cut write" || bad "rebooted after a cut write"
stop_sshd
start_sshd hostkey "$R/bare"
expect_rc 0 "the re-run (host without zstd) writes the image and bootstraps" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "did not finish (interrupted or failed)" "$T/err" "the re-run reports the interrupted write loudly"
expect_grep "streamed by strata" "$T/err" "without zstd on the host, strata streams the image (libzstd) into dd"
expect_grep "bootstrapped etcd on edge-cp-1" "$T/err" "bootstrap at the node address"
expect_grep "apply complete" "$T/err" "apply completed"
if cmp -s -n "$(stat -c %s "$T/image.raw")" "$T/image.raw" "$DISK"; then
	ok "the disk file's first bytes equal the image"
else
	bad "the disk file differs from the image"
fi
[ "$(grep -c '"data": *"maintenance"' "$R/reboots")" = 1 ] && ok "one reboot into Talos maintenance mode" \
	|| { bad "reboots:"; sed 's/^/     | /' "$R/reboots"; }
expect_grep "server: https://$IP:6443" "$E/kubeconfig" "kubeconfig points at the node address"
expect_grep "$IP" "$E/talosconfig" "talosconfig endpoint is the node address"
ready=$(labsim_wait_for "any(n['ip'] == '$IP' and n['state'] == 'running' and n['bootstrapped'] for n in s['talos']['nodes'])")
[ "$ready" = yes ] && ok "the node runs bootstrapped" || bad "node not running"
kube_get "$E" /api/v1/nodes > "$T/nodes" 2>&1
rd=$($PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join('%s=%s' % (i['metadata']['name'], [c['status'] for c in i['status']['conditions'] if c['type'] == 'Ready']) for i in d['items']))" "$T/nodes" 2>&1)
[ "$rd" = "edge-cp-1=['True']" ] && ok "the Kubernetes node edge-cp-1 is Ready" || bad "nodes: $rd"

# --- the journal keys the server as a machine (docs/state.md) -------------
img_sha=$(sha256sum "$T/image.raw" | cut -d' ' -f1)
j=$($PY -c "
import json,sys; d=json.load(open(sys.argv[1])); m=d['machines']['edge-cp-1']
print(d['format_version'], 'vms' in d, m['provider'], m['rescue'], m['image_sha256'] == sys.argv[2],
      'rescue' in d['talos']['edge-cp-1'], d['talos']['edge-cp-1']['installed'])" "$E/state.json" "$img_sha" 2>&1)
[ "$j" = "2 False vps rebooted True False mtls" ] && ok "state.json: machines.edge-cp-1 (provider vps, rescue rebooted, the image's SHA-256); Talos facts under talos" \
	|| bad "journal: $j"

# --- a re-run never rewrites, also from a journal an earlier strata wrote
# (format 1: the rescue install under talos.<node>, no machines) ---------
$PY -c "
import json,sys; p=sys.argv[1]; d=json.load(open(p)); m=d.pop('machines')['edge-cp-1']
d['format_version'] = 1; m.pop('provider')
d['talos']['edge-cp-1'].update(m); json.dump(d, open(p, 'w'))" "$E/state.json"
gets=$(labsim_ctl GET metal | $PY -c "import json,sys; print(len(json.load(sys.stdin)['data']['factory_gets']))")
expect_rc 0 "re-run (-o json, old journal)" -- "$STRATA" apply "$E" --yes --timeout 60s -o json
expect_grep "runs Talos of this cluster at $IP; its disk is not rewritten" "$T/err" "the installed disk is not rewritten"
s=$($PY -c "
import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e['type'] == 'summary': print(e['result'], sorted(e['machines'].items()), 'vms' in e)" "$T/out")
[ "$s" = "done [('changed', 0), ('created', 0), ('deleted', 0), ('installed', 0), ('provider', 'vps'), ('reset', 0), ('unchanged', 1)] False" ] \
	&& ok "the summary event counts the machine (provider vps, unchanged), no vms object" || bad "summary: $s"
gets2=$(labsim_ctl GET metal | $PY -c "import json,sys; print(len(json.load(sys.stdin)['data']['factory_gets']))")
[ "$gets" = "$gets2" ] && ok "no image download on the re-run" || bad "downloads $gets -> $gets2"
stop_sshd

# --- a firewall change to the running node goes in TRY mode first --------
nrules() { labsim_py "[x['doc_kinds'].count('NetworkRuleConfig') for x in s['talos']['nodes'] if x['ip'] == '$IP']"; }
before=$(nrules)
sed -i 's|^  admin_cidrs: \[127.0.0.0/8\]|  admin_cidrs: [127.0.0.0/8]\n  open_ports: [443/tcp]|' "$E/config.yml"
expect_rc 0 "apply of a firewall change" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "firewall changed: applying in TRY mode" "$T/err" "the firewall change is tried first"
expect_grep "firewall change tried, then applied" "$T/err" "then applied for good"
j=$($PY -c "
import json,sys; d=json.load(open(sys.argv[1]))
print(d['format_version'], d['machines']['edge-cp-1']['provider'], d['machines']['edge-cp-1']['rescue'], 'rescue' in d['talos']['edge-cp-1'])" "$E/state.json" 2>&1)
[ "$j" = "2 vps rebooted False" ] && ok "the old journal was written back as format 2, the rescue install kept" || bad "journal: $j"
sleep 1.5   # past the simulated try_mode_timeout (60 s x time scale)
t=$(labsim_py "[(x['tries'], x['reverts']) for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$t" = "[(1, 0)]" ] && ok "one TRY, not reverted (confirmed)" || bad "tries/reverts: $t"
after=$(nrules)
[ "$before" != "$after" ] && ok "the node holds the new rule ($before -> $after NetworkRuleConfig)" || bad "rules $before -> $after"

# --- a node the config no longer names is refused, not left behind ------
cp "$E/state.json" "$T/state.keep"
$PY -c "
import json,sys; p=sys.argv[1]; d=json.load(open(p))
d.setdefault('talos', {})['edge-old-1'] = {'config_sha256': '0' * 64}
json.dump(d, open(p, 'w'))" "$E/state.json"
expect_rc 2 "apply with an installed node gone from the config is refused" -- "$STRATA" apply "$E" --yes --timeout 30s
expect_grep "node 'edge-old-1' is installed (journal) but config.yml no longer names it" "$T/err" "the refusal names the node"
cp "$T/state.keep" "$E/state.json"

# --- destroy: Talos Reset after confirmation, secrets kept ---------------
expect_rc 2 "destroy without a terminal or --yes is refused" -- "$STRATA" destroy "$E" < /dev/null
expect_grep "edge-cp-1 *$IP" "$T/out" "destroy lists the node it would reset"
[ "$(talos_calls Reset)" = 0 ] && ok "no Reset before confirmation" || bad "Reset calls: $(talos_calls Reset)"
expect_rc 0 "destroy --yes" -- "$STRATA" destroy "$E" --yes
expect_grep "back in maintenance mode at $IP" "$T/err" "destroy waits until the node is back in maintenance mode"
[ "$(talos_calls Reset)" = 1 ] && ok "one Reset" || bad "Reset calls: $(talos_calls Reset)"
n=$(labsim_py "[(x['state'], x['resets']) for x in s['talos']['nodes'] if x['ip'] == '$IP']")
[ "$n" = "[('maintenance', 1)]" ] && ok "the simulator shows the node back in maintenance mode" || bad "node after destroy: $n"
[ -s "$E/secrets.yaml" ] && [ -s "$E/talosconfig" ] && ok "secrets.yaml and talosconfig kept (no --purge-state)" \
	|| bad "secrets removed without --purge-state"
expect_rc 0 "destroy again: nothing to reset" -- "$STRATA" destroy "$E" --yes
expect_grep "in maintenance mode at $IP already; nothing to reset" "$T/err" "a second destroy resets nothing"
[ "$(talos_calls Reset)" = 1 ] && ok "still one Reset" || bad "Reset calls: $(talos_calls Reset)"
labsim_stop
finish
