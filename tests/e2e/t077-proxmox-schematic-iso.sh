#!/bin/sh
# The Proxmox ISO phase and a non-vanilla schematic: the ISO Proxmox
# downloads is the configured schematic's (extensions and kernel args), and
# strata POSTs that schematic to the Image Factory first, because a factory
# serves only the schematics it knows (FACTS-metal.md section 1). Against
# the simulator's factory (proxmox.image_factory), whose ISO download by
# Proxmox fails for an id it was never given: so does an apply naming a
# talos.schematic.id nobody registered, clearly and before any VM exists.
# Addresses 127.0.77.0/24.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.77.0/24
fac() { labsim_ctl GET factory | $PY -c "import json,sys; d=json.load(sys.stdin)['data']; print($1)"; }

E="$T/envs/sch"
write_env "$E" sch 7700 1 0 127.0.77
cat >> "$E/config.yml" <<'YAML'
talos:
  schematic:
    kernel_args: [net.ifnames=0]
    extensions: [siderolabs/qemu-guest-agent]
YAML
# the id the Image Factory gives this schematic: SHA-256 of its canonical
# YAML (FACTS.md section f), computed here independently of strata
SID=$(printf 'customization:\n    extraKernelArgs:\n        - net.ifnames=0\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/qemu-guest-agent\n' | sha256sum | cut -d' ' -f1)

expect_rc 0 "gen" -- "$STRATA" gen "$E"
expect_grep "image/$SID/v1.12.11/metal-amd64.iso" "$T/out" "gen prints the ISO of the configured schematic"
expect_grep "$FACTORY_URL/image/" "$T/out" "... from proxmox.image_factory"

expect_rc 0 "apply with extensions and kernel args" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "schematic ${SID%"${SID#????????????}"}... registered with $FACTORY_URL" "$T/err" "the schematic is registered first"
[ "$(fac "[p['id'] for p in d['posts']]")" = "['$SID']" ] && ok "one POST /schematics, answered with the id strata computed" \
	|| bad "factory posts: $(fac "d['posts']")"
[ "$(fac "[(g['path'], g['status']) for g in d['gets'] if g.get('by') == 'proxmox']")" = "[('/image/$SID/v1.12.11/metal-amd64.iso', 200)]" ] \
	&& ok "Proxmox downloaded the ISO of that schematic from the factory" || bad "factory gets: $(fac "d['gets']")"
isos=$(labsim_py "[v for v in s['nodes']['pve1']['storage']['local']['items'] if v.startswith('local:iso/talos-v')]")
[ "$isos" = "['local:iso/talos-v1.12.11-$(printf %.12s "$SID")-metal-amd64.iso']" ] \
	&& ok "the ISO in storage is named by the schematic id" || bad "ISOs on pve1: $isos"
grep '"ide2"' "$LABSIM_DIR/requests.jsonl" | grep -q "talos-v1.12.11-$(printf %.12s "$SID")-metal-amd64.iso,media=cdrom" \
	&& ok "the VM was created with that ISO in its drive" || bad "no VM create with that ISO (requests.jsonl)"
expect_grep "apply complete" "$T/err" "apply completed"

# a re-run: the ISO is there, nothing is posted or downloaded again
expect_rc 0 "re-run" -- "$STRATA" apply "$E" --yes --timeout 60s
[ "$(fac "len(d['posts']), len([g for g in d['gets'] if g.get('by') == 'proxmox'])")" = "1 1" ] \
	&& ok "re-run: no POST, no download" || bad "re-run: $(fac "len(d['posts']), d['gets']")"

# --- a talos.schematic.id the factory was never given: the ISO download
# fails (the simulator refuses it as the factory does), clearly, no VM ------
U="$T/envs/unk"
write_env "$U" unk 7750 1 0 127.0.77
UNK=$(printf 'customization:\n    extraKernelArgs:\n        - strata-t077-never-posted\n' | sha256sum | cut -d' ' -f1)
cat >> "$U/config.yml" <<YAML
talos:
  schematic:
    id: $UNK
YAML
expect_rc 1 "apply with an unregistered schematic id fails" -- "$STRATA" apply "$U" --yes --timeout 60s
expect_grep "phase 'iso'" "$T/err" "the error names the ISO phase"
expect_grep "download Talos ISO to local on 'pve1'" "$T/err" "it says the ISO download failed"
expect_grep "schematic not found" "$T/err" "... because the factory does not know the schematic"
[ "$(fac "[g['status'] for g in d['gets'] if g.get('by') == 'proxmox' and '$UNK' in g['path']]")" = "[404]" ] \
	&& ok "the factory refused that id" || bad "factory gets: $(fac "d['gets']")"
[ "$(fac "len(d['posts'])")" = 1 ] && ok "a given schematic id is not POSTed (its owner registered it)" \
	|| bad "posts: $(fac "d['posts']")"
[ "$(labsim_py "'7750' in s['vms']")" = False ] && ok "no VM was created" || bad "vm 7750 exists"

labsim_stop
finish
