#!/bin/sh
# ENV/history: one record per apply and destroy that goes ahead, each a
# header plus the event stream ending in a summary; none for a refused
# apply; no secret in any record; history lists and shows them; keep bounds.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"

labsim_start
E="$T/h1"
write_env "$E" h1 6000 1 0 127.0.60
printf '\nhistory:\n  keep: 3\n' >> "$E/config.yml"

expect_rc 2 "apply without a terminal and --yes is refused" -- "$STRATA" apply "$E" < /dev/null
[ -d "$E/history" ] && [ -n "$(ls "$E/history")" ] && bad "a refused apply wrote a history entry" || ok "a refused apply writes no history"
expect_rc 0 "apply" -- "$STRATA" apply "$E" --yes
expect_rc 0 "destroy" -- "$STRATA" destroy "$E" --yes
n=$(ls "$E/history" | wc -l)
[ "$n" = 2 ] && ok "two records after apply and destroy" || bad "history holds $n records"
[ "$(stat -c %a "$E/history")" = 700 ] && ok "history/ is 0700" || bad "history/ mode"
A=$(ls "$E/history" | grep -- '-apply.jsonl$' | head -1)
D=$(ls "$E/history" | grep -- '-destroy.jsonl$' | head -1)
[ -n "$A" ] && [ -n "$D" ] && ok "records named <UTC>-apply.jsonl and <UTC>-destroy.jsonl" || bad "record names: $(ls "$E/history")"
[ "$(stat -c %a "$E/history/$A")" = 600 ] && ok "records are 0600" || bad "record mode"
sha=$(sha256sum "$E/config.yml" | cut -d' ' -f1)
if $PY - "$E/history/$A" "$sha" apply <<'PYEOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
evs = [json.loads(l) for l in lines]          # every line parses
h = evs[0]
assert h["type"] == "history" and h["command"] == sys.argv[3], h
assert h["config_sha256"] == sys.argv[2], "config sha"
assert h["strata_version"], "version"
assert h["plan"]["env"] == "h1" and any(a["action"] == "create" for a in h["plan"]["actions"]), "plan in header"
assert evs[-1]["type"] == "summary" and evs[-1]["result"] == "done", evs[-1]
phases = [e["phase"] for e in evs if e["type"] == "phase_end"]
assert "vms" in phases and "bootstrap" in phases, phases
seqs = [e["seq"] for e in evs[1:]]
assert seqs == sorted(seqs), "seq order"
PYEOF
then ok "apply record: header (command, version, config sha256, plan), phases, summary; every line JSON"; else bad "apply record content"; fi
$PY -c "import json,sys; evs=[json.loads(l) for l in open(sys.argv[1])]; assert evs[0]['command']=='destroy' and evs[-1]['type']=='summary'" "$E/history/$D" \
	&& ok "destroy record ends with its summary" || bad "destroy record content"

# No secret value in any record: the token and everything in secrets.yaml.
awk 'NF == 2 && length($2) >= 16 { print $2 }' "$E/secrets.yaml" > "$T/pat"
printf '%s\n' "$PVE_TOKEN_SECRET" >> "$T/pat"
if grep -q -F -f "$T/pat" "$E/history"/*; then bad "a history record holds a secret value"; else ok "no secret in any history record ($(wc -l < "$T/pat") values checked)"; fi

expect_rc 0 "history lists" -- "$STRATA" history "$E"
expect_grep "destroy *done" "$T/out" "the newest (destroy) is listed with its result"
[ "$(sed -n 2p "$T/out" | awk '{print $3}')" = destroy ] && ok "newest first" || bad "order: $(cat "$T/out")"
expect_rc 0 "history shows one" -- "$STRATA" history "$E" 2
expect_grep "apply of 'h1' by strata" "$T/out" "entry 2 is the apply, with its header"
expect_grep "phase_end *bootstrap done" "$T/out" "the apply's phases are shown"
expect_rc 0 "history -o json" -- "$STRATA" history "$E" -o json
$PY -c "import json,sys; l=json.load(open(sys.argv[1])); assert [e['command'] for e in l]==['destroy','apply'], l" "$T/out" \
	&& ok "history -o json lists both, newest first" || bad "history -o json: $(cat "$T/out")"
expect_rc 2 "an entry that does not exist" -- "$STRATA" history "$E" 9
expect_grep "no history entry '9'" "$T/err" "names the missing entry"

# keep: 3 bounds the records.
expect_rc 0 "apply again" -- "$STRATA" apply "$E" --yes
expect_rc 0 "destroy again" -- "$STRATA" destroy "$E" --yes
n=$(ls "$E/history" | wc -l)
[ "$n" = 3 ] && ok "history.keep: 3 keeps the newest 3" || bad "history holds $n records with keep 3"
ls "$E/history" | grep -q "^$A$" && bad "the oldest record was kept" || ok "the oldest record went first"
finish
