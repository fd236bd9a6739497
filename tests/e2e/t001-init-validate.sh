#!/bin/sh
# strata --help, init and validate, end to end with the real binary.
. "$(dirname "$0")/lib.sh"

expect_rc 0 "strata --help" -- "$STRATA" --help
for c in init validate gen plan apply destroy status; do
	expect_grep "  $c " "$T/out" "--help lists '$c'"
done
for c in init validate gen plan apply destroy status; do
	expect_rc 0 "strata $c --help" -- "$STRATA" "$c" --help
	expect_grep "^usage: strata $c" "$T/out" "strata $c --help prints its usage"
done
expect_rc 2 "no command is a usage error" -- "$STRATA"
expect_rc 2 "unknown command is a usage error" -- "$STRATA" frobnicate
expect_grep "unknown command 'frobnicate'" "$T/err" "unknown command is named"
expect_rc 0 "strata --version" -- "$STRATA" --version

# Every example validates once its secrets are there (validate checks that
# ${VAR} is set and a file: secret exists; it never prints them).
export PVE_TOKEN_SECRET=t001-placeholder FLUX_GITHUB_TOKEN=t001-placeholder \
	CLOUDFLARE_TUNNEL_TOKEN=t001-placeholder
for e in "$TOP"/examples/*/; do
	x="$T/examples/$(basename "$e")"
	mkdir -p "$T/examples" && cp -R "$e" "$x"
	grep -q 'file:pve-token' "$x/config.yml" && echo t001-placeholder > "$x/pve-token"
	case $(basename "$e") in
	vps-*)
		expect_rc 0 "example $(basename "$e") validates (platform vps: tests/e2e/t071)" -- "$STRATA" validate "$x"
		expect_rc 0 "example $(basename "$e"): gen writes its configs" -- "$STRATA" gen "$x" ;;
	*)
		expect_rc 0 "example $(basename "$e") validates" -- "$STRATA" validate "$x" ;;
	esac
done

# init: a private folder, a renamed config, a .gitignore, never overwrite.
cd "$T"
git init -q repo && cd repo
expect_rc 0 "init proxmox" -- "$STRATA" init lab1 --platform proxmox
[ "$(stat -c %a environments/lab1)" = 700 ] && ok "env folder is 0700" || bad "env folder mode $(stat -c %a environments/lab1)"
[ "$(stat -c %a environments/lab1/config.yml)" = 600 ] && ok "config.yml is 0600" || bad "config.yml mode"
expect_grep "^name: lab1$" environments/lab1/config.yml "init sets name to the folder"
expect_rc 0 "the new env validates" -- "$STRATA" validate lab1
expect_grep "environments/lab1/config.yml: valid (proxmox, 1 control plane, 2 workers" "$T/out" "validate summary"
git add -A >/dev/null 2>&1
if git status --porcelain | grep -q environments; then bad "env folder is ignored by git"; else ok "env folder is ignored by git"; fi
expect_rc 1 "init refuses an existing env" -- "$STRATA" init lab1 --platform proxmox
expect_grep "already exists" "$T/err" "init says why"
expect_rc 2 "init rejects a bad platform" -- "$STRATA" init lab2 --platform openstack
expect_rc 2 "init needs --platform" -- "$STRATA" init lab2
expect_rc 2 "init rejects a bad env name" -- "$STRATA" init Lab_2 --platform vps
expect_rc 0 "init with an unnormalised examples path" -- env STRATA_EXAMPLES="$TOP/build/../examples/" "$STRATA" init lab3 --platform proxmox
expect_grep "^created environments/lab3 from $TOP/examples/proxmox-example$" "$T/out" "paths printed normalised"
if grep -q '/\.\./' "$T/out"; then bad "a '..' in init's output"; else ok "no '..' in init's output"; fi
expect_rc 2 "init --from an unknown example" -- "$STRATA" init lab4 --from nosuch
expect_grep "example 'nosuch' not found in $TOP/examples; the examples are: homelab, prod, prox-n100, proxmox-example" "$T/err" "lists the examples"
expect_rc 2 "init --platform vps --from a proxmox example" -- "$STRATA" init lab4 --platform vps --from homelab
expect_grep "example 'homelab' is a proxmox environment, not vps" "$T/err" "refuses the platform mismatch"
[ ! -e environments/lab4 ] && ok "nothing created on refusal" || bad "environments/lab4 created"
expect_rc 0 "init vps" -- "$STRATA" init edge --platform vps
expect_rc 0 "a vps env validates" -- "$STRATA" validate edge
expect_rc 0 "a vps env generates" -- "$STRATA" gen edge
expect_rc 0 "init --from prox-n100 copies patches" -- "$STRATA" init n100 --from prox-n100
[ -f environments/n100/patches/longhorn-mounts.yaml ] && ok "patch files copied" || bad "patch files copied"
expect_rc 2 "n100 copy without its token file is an error" -- "$STRATA" validate n100
expect_grep "error: proxmox.token_secret: secret file 'pve-token' does not exist" "$T/err" "missing secret file is an error"
echo t001-placeholder > environments/n100/pve-token
expect_rc 0 "n100 copy validates with its token file (warnings only)" -- "$STRATA" validate n100
expect_rc 2 "an empty variable is an error" -- env PVE_TOKEN_SECRET= "$STRATA" validate lab1
expect_grep "error: proxmox.token_secret: environment variable 'PVE_TOKEN_SECRET' is empty" "$T/err" "empty variable named"
if grep -q t001-placeholder "$T/out" "$T/err"; then bad "validate printed a secret"; else ok "validate prints no secret"; fi

# validate: errors exit 2 and are reported all at once, compiler style.
mkdir -p "$T/bad"
sed -e 's/ip_start: 10.0.0.21/ip_start: 10.0.0.300/' -e 's/cores: 2/cores: two/' \
	"$TOP/examples/proxmox-example/config.yml" > "$T/bad/config.yml"
expect_rc 2 "invalid config exits 2" -- "$STRATA" validate "$T/bad"
expect_grep "config.yml:[0-9]*:[0-9]*: error: nodes.workers.ip_start: '10.0.0.300' is not an IPv4 address" "$T/err" "bad IP reported with position"
expect_grep "error: nodes.controlplane.cores: expected an integer, got 'two'" "$T/err" "second error reported in the same run"
expect_grep "^2 errors, 0 warnings" "$T/err" "error count"
expect_rc 2 "missing env" -- "$STRATA" validate "$T/nope"
expect_grep "no such file; create it with 'strata init'" "$T/err" "missing config explained"

# docs/config.md documents every key of the schema.
"$STRATA" validate --keys | awk '{print $1}' > "$T/keys"
missing=0
while read -r k; do
	leaf=$(echo "$k" | sed 's/\[\]//g')
	grep -q -- "\`$leaf\`" "$TOP/docs/config.md" || { missing=$((missing + 1)); echo "     | undocumented: $leaf"; }
done < "$T/keys"
[ "$(wc -l < "$T/keys")" -gt 100 ] && ok "schema lists $(wc -l < "$T/keys") keys" || bad "schema key list too short"
[ $missing -eq 0 ] && ok "docs/config.md documents every key" || bad "docs/config.md misses $missing keys"

finish
