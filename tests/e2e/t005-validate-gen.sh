#!/bin/sh
# validate --nodes with long names, validate -o json, and gen removing the
# files of nodes that left the config (only files it wrote). Offline.
. "$(dirname "$0")/lib.sh"

export PVE_TOKEN_SECRET=t005-placeholder-token
E="$T/a/env"   # apart from the bad copy: siblings share VM id ranges
mkdir -p "$E"
cp "$TOP/examples/proxmox-example/config.yml" "$E/config.yml"

# --nodes: a name longer than 20 characters keeps every column in place.
sed -i 's/^name: proxmox-example$/name: a-rather-long-environment-name/' "$E/config.yml"
expect_rc 0 "validate --nodes" -- "$STRATA" validate --nodes "$E"
awk '/^NAME / || / controlplane | worker /' "$T/out" > "$T/table"
[ "$(wc -l < "$T/table")" -eq 4 ] && ok "header and three node rows" || bad "table rows: $(cat "$T/table")"
# The ADDRESS column starts at the same offset on every line.
offs=$(awk '{ print index($0, ($1 == "NAME") ? "ADDRESS" : $3) }' "$T/table" | sort -u | wc -l)
[ "$offs" -eq 1 ] && ok "columns line up with 33-character names" || { bad "columns shift"; cat "$T/table"; }
expect_grep "^a-rather-long-environment-name-w-2  *worker  " "$T/out" "long name printed whole"

# -o json: one object on stdout, nothing on stderr, same exit status.
expect_rc 0 "validate -o json (valid)" -- "$STRATA" validate -o json --nodes "$E"
[ ! -s "$T/err" ] && ok "json mode writes nothing to stderr" || bad "stderr: $(cat "$T/err")"
python3 - "$T/out" <<'EOF' && ok "valid json: valid, counts, three nodes" || bad "json of a valid config"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["valid"] is True and o["errors"] == 0 and o["diagnostics"] == [], o
assert o["controlplanes"] == 1 and o["workers"] == 2, o
assert [n["role"] for n in o["nodes"]] == ["controlplane", "worker", "worker"], o
assert o["nodes"][0]["address"] == "10.0.0.11" and isinstance(o["nodes"][0]["vmid"], int), o
EOF
B="$T/b/bad"
mkdir -p "$B"
sed -e 's/ip_start: 10.0.0.21/ip_start: 10.0.0.300/' -e 's/^  token_secret: .*/  token_secret: ${T005_UNSET_VAR}/' \
	"$TOP/examples/proxmox-example/config.yml" > "$B/config.yml"
expect_rc 2 "validate -o json (errors) exits 2" -- "$STRATA" validate -o json "$B"
python3 - "$T/out" "$B/config.yml" <<'EOF' && ok "json diagnostics: file, line, col, level, path, message" || bad "json diagnostics"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["valid"] is False and o["errors"] == 2, o
d = {x["path"]: x for x in o["diagnostics"]}
ip = d["nodes.workers.ip_start"]
assert ip["file"] == sys.argv[2] and ip["level"] == "error", ip
assert isinstance(ip["line"], int) and isinstance(ip["col"], int), ip
assert ip["message"] == "'10.0.0.300' is not an IPv4 address", ip
assert "T005_UNSET_VAR' is not set" in d["proxmox.token_secret"]["message"], d
assert set(ip) == {"file", "line", "col", "level", "path", "message"}, ip
EOF
if grep -q t005-placeholder-token "$T/out" "$T/err"; then bad "a secret in validate output"; else ok "no secret in validate output"; fi

# At run time an unset variable and a missing secret file exit alike (2),
# before anything is contacted.
P="$T/c/plan"
mkdir -p "$P"
sed 's/^  token_secret: .*/  token_secret: ${T005_UNSET_VAR}/' "$TOP/examples/proxmox-example/config.yml" > "$P/config.yml"
expect_rc 2 "plan with an unset variable exits 2" -- "$STRATA" plan "$P"
expect_grep "environment variable 'T005_UNSET_VAR' is not set" "$T/err" "plan names the variable"
sed -i 's/^  token_secret: .*/  token_secret: file:no-such-token/' "$P/config.yml"
expect_rc 2 "plan with a missing secret file exits 2" -- "$STRATA" plan "$P"
expect_grep "secret file 'no-such-token' does not exist" "$T/err" "plan names the file"

# gen, then shrink the worker pool: the removed node's files go, a user's
# file in nodes/ stays, and a generated file the user changed is kept.
expect_rc 0 "gen with two workers" -- "$STRATA" gen "$E"
W2=a-rather-long-environment-name-w-2
for f in nodes/$W2.yaml patches/$W2.yaml .generated.sha256; do
	[ -f "$E/$f" ] && ok "gen wrote $f" || bad "gen wrote $f"
done
[ "$(stat -c %a "$E/.generated.sha256")" = 600 ] && ok "the record is 0600" || bad "record mode"
echo "# mine" > "$E/nodes/notes.yaml"
echo "# mine" > "$E/patches/extra.yaml"
sed -i '/^  workers:/,/^[^ ]/s/count: 2/count: 1/' "$E/config.yml"
expect_rc 0 "gen after shrinking the pool" -- "$STRATA" gen "$E"
expect_grep "2 removed (nodes no longer in the config)" "$T/out" "gen says what it removed"
[ ! -e "$E/nodes/$W2.yaml" ] && ok "nodes/ file of the removed node is gone" || bad "nodes/$W2.yaml left behind"
[ ! -e "$E/patches/$W2.yaml" ] && ok "patches/ file of the removed node is gone" || bad "patches/$W2.yaml left behind"
[ -f "$E/nodes/a-rather-long-environment-name-w-1.yaml" ] && ok "the remaining worker keeps its file" || bad "w-1 file gone"
[ -f "$E/nodes/notes.yaml" ] && [ -f "$E/patches/extra.yaml" ] && ok "user files in nodes/ and patches/ survive" || bad "a user file was removed"
if grep -q "$W2" "$E/.generated.sha256"; then bad "record still lists the removed node"; else ok "record forgets the removed node"; fi
# A record naming files outside nodes/ and patches/ removes nothing.
h=$(sha256sum "$E/config.yml" | cut -d' ' -f1)
hs=$(sha256sum "$E/secrets.yaml" | cut -d' ' -f1)
printf '%s  nodes/../config.yml\n%s  config.yml\n%s  secrets.yaml\n' "$h" "$h" "$hs" >> "$E/.generated.sha256"
expect_rc 0 "gen with a tampered record" -- "$STRATA" gen "$E"
[ -f "$E/config.yml" ] && [ -f "$E/secrets.yaml" ] && ok "only nodes/ and patches/ files are ever removed" || bad "gen removed a file outside nodes/ and patches/"
expect_rc 0 "gen again changes nothing" -- "$STRATA" gen "$E"
expect_grep " written, [0-9]* unchanged$" "$T/out" "nothing removed on a re-run"

# A generated file changed by hand is kept when its node leaves.
sed -i '/^  workers:/,/^[^ ]/s/count: 1/count: 0/' "$E/config.yml"
echo "# edited" >> "$E/nodes/a-rather-long-environment-name-w-1.yaml"
expect_rc 0 "gen after removing the last worker" -- "$STRATA" gen "$E"
[ -f "$E/nodes/a-rather-long-environment-name-w-1.yaml" ] && ok "an edited generated file is kept" || bad "edited file removed"
expect_grep "kept nodes/a-rather-long-environment-name-w-1.yaml: changed since gen wrote it" "$T/err" "kept file named"
[ ! -e "$E/patches/a-rather-long-environment-name-w-1.yaml" ] && ok "its unchanged patch file is removed" || bad "patch file left"

# Aliases and merge keys in talos patches reach the node config resolved:
# an inline patch using an anchor from elsewhere in config.yml, and a patch
# file with a merge key. nodes/*.yaml must be valid YAML holding the values.
A="$T/d/alias"
mkdir -p "$A/patches"
sed -e 's|^  gateway: 10.0.0.1$|  gateway: \&gw 10.0.0.1|' -e 's|^  install_disk: /dev/sda$|  install_disk: /dev/sda\n  patches:\n    - machine:\n        kubelet:\n          extraArgs:\n            node-ip-gw: *gw\n    - patches/merge.yaml|' \
	"$TOP/examples/proxmox-example/config.yml" > "$A/config.yml"
cat > "$A/patches/merge.yaml" <<'EOF'
machine:
  sysctls: &base
    vm.max_map_count: "262144"
  sysfs:
    <<: *base
    kernel.mm.ksm.run: "0"
EOF
expect_rc 0 "validate: aliases in patches" -- "$STRATA" validate "$A"
expect_rc 0 "gen: aliases in patches" -- "$STRATA" gen "$A"
python3 - "$A/nodes/proxmox-example-w-1.yaml" <<'EOF' && ok "node config is valid YAML with the aliased values" || bad "aliases in the node config"
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
m = docs[0]["machine"]
assert m["kubelet"]["extraArgs"]["node-ip-gw"] == "10.0.0.1", m["kubelet"]
assert m["sysfs"] == {"vm.max_map_count": "262144", "kernel.mm.ksm.run": "0"}, m["sysfs"]
EOF

finish
