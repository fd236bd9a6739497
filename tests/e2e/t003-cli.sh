#!/bin/sh
# The command-line surface against the simulator: -o json event streams,
# exit codes, nothing written when apply may not proceed, summaries,
# one-line usage errors, ENV forms.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start
E="$T/envs/cli"
write_env "$E" cli 1100 1 1 127.0.31

# tree_sum DIR: names, modes and contents of every file under DIR but
# .lock (the env lock's file: created by the first locking command, empty
# when no one holds it, never removed; docs/architecture.md, Lock)
tree_sum() { (cd "$1" && find . ! -name .lock -printf '%p %m %s\n' | sort && find . -type f ! -name .lock | sort | xargs -r sha256sum) | sha256sum; }

# A non-terminal apply without --yes decides before writing anything.
before=$(tree_sum "$E")
expect_rc 2 "apply without --yes off a terminal refuses" -- "$STRATA" apply "$E" < /dev/null
expect_grep "not a terminal: pass --yes to confirm" "$T/err" "says how to confirm"
expect_grep "apply not started, nothing changed" "$T/err" "says nothing changed"
[ "$(tree_sum "$E")" = "$before" ] && ok "env folder byte-identical after the refusal" \
	|| { bad "env folder changed by a refused apply"; ls -la "$E" | sed 's/^/     | /'; }
[ ! -e "$E/secrets.yaml" ] && ok "no secrets written before deciding" || bad "secrets.yaml written"
[ "$(labsim_py "sum(1 for v in s['vms'].values() if 'strata-cli' in (v['config'].get('tags') or ''))")" = 0 ] \
	&& ok "no VM created" || bad "VMs created by a refused apply"

# apply -o json: one JSON object per line on stdout, ending with a summary.
expect_rc 0 "apply --yes -o json" -- "$STRATA" apply "$E" --yes -o json
cp "$T/out" "$T/events"
$PY - "$T/events" > "$T/check" <<'PYEOF'
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "stream ends with a newline"
ev = [json.loads(l) for l in lines[:-1]]          # every line parses
types = [e["type"] for e in ev]
print("lines", len(ev))
print("first", types[0])
print("last", types[-1])
print("seq", [e["seq"] for e in ev] == list(range(1, len(ev) + 1)))
ph = [e["phase"] for e in ev if e["type"] == "phase_start"]
print("phases", " ".join(ph))
ends = {e["phase"]: e["result"] for e in ev if e["type"] == "phase_end"}
print("vms", ends.get("vms"), "install", ends.get("talos-install"))
steps = [e for e in ev if e["type"] == "step" and e["phase"] == "vms" and e["state"] == "ok"]
print("vm steps ok", len(steps))
print("plan create", [e for e in ev if e["type"] == "plan"][0]["plan"]["summary"]["create"])
s = ev[-1]
print("summary", s["result"], s["exit_code"], s["vms"]["created"], s["talos_applied"],
      isinstance(s["elapsed_s"], float), s["resumable"])
m = s["machines"]
print("machines", m["provider"], m["created"] == s["vms"]["created"], m["installed"], m["reset"])
PYEOF
[ $? -eq 0 ] && ok "every line of the event stream parses" || { bad "event stream does not parse"; head -5 "$T/events" | sed 's/^/     | /'; }
expect_grep "^first start$" "$T/check" "stream starts with a start event"
expect_grep "^last summary$" "$T/check" "stream ends with a summary event"
expect_grep "^seq True$" "$T/check" "events numbered in order"
expect_grep "^phases talos-config iso cidata remove-nodes vms cloud-init-vms start talos-install cidata-sweep bootstrap kubernetes" "$T/check" "a phase_start per phase"
expect_grep "^vms done install done$" "$T/check" "phase_end results"
expect_grep "^vm steps ok 2$" "$T/check" "one ok step per VM"
expect_grep "^plan create 2$" "$T/check" "the plan as an event with typed numbers"
expect_grep "^summary done 0 2 2 True False$" "$T/check" "summary: done, 2 VMs created, 2 nodes configured"
expect_grep "^machines proxmox True 2 0$" "$T/check" "summary machines: provider proxmox, the VM counts, 2 nodes installed"
if grep -qv '^{' "$T/events"; then bad "stdout holds only JSON"; else ok "stdout holds only JSON"; fi
expect_grep "apply complete: 2 VMs created, 0 changed, 0 deleted, 0 unchanged; Talos config applied to 2 nodes in" "$T/err" "human summary line on stderr"

# A re-run: nothing to do; the summary says so.
expect_rc 0 "second apply" -- "$STRATA" apply "$E" < /dev/null
expect_grep "apply complete: 0 VMs created, 0 changed, 0 deleted, 2 unchanged in" "$T/err" "re-run summary"

# status: drift from the config marked like plan, a summary line, JSON nulls.
expect_rc 0 "status" -- "$STRATA" status "$E"
expect_grep "^  cli-cp-1 .* ok$" "$T/out" "status: a VM matching the config says ok"
expect_grep "^cli: 2 machines (Proxmox VMs), 2 running; 0 differ from the config; Talos 2/2 up" "$T/out" "status summary line"
labsim_ctl POST vm '{"vmid": 1101, "config": {"memory": "4096"}}' > /dev/null
expect_rc 0 "status after a change by hand" -- "$STRATA" status "$E"
expect_grep "^~ cli-w-1 .*memory 4096 MiB->2048 MiB (drift)$" "$T/out" "status marks the drift like plan"
expect_grep "1 differs from the config" "$T/out" "summary counts it"
expect_grep "'strata plan $E' lists the changes" "$T/out" "says what to run"
expect_rc 0 "status -o json" -- "$STRATA" status "$E" -o json
$PY - "$T/out" > "$T/check" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
w = [v for v in d["machines"] if v["name"] == "cli-w-1"][0]
cp = [v for v in d["machines"] if v["name"] == "cli-cp-1"][0]
print("worker etcd", w["etcd"], "differs", w["differs"], "config", w["config"])
print("cp etcd", cp["etcd"] is not None, "config", cp["config"])
print("summary", d["summary"]["differ"], d["summary"]["talos_up"], d["summary"]["machines"])
print("memory", type(w["live"]["memory_mib"]).__name__)
PYEOF
expect_grep "^worker etcd None differs \['memory'\] config update$" "$T/check" "status json: null where a value does not apply, the drifted field"
expect_grep "^cp etcd True config unchanged$" "$T/check" "status json: control plane's etcd"
expect_grep "^summary 1 2 2$" "$T/check" "status json summary"
$PY "$(dirname "$0")/status_shape.py" "$T/out" proxmox > "$T/shape" 2>&1
expect_grep "^cli-cp-1 controlplane proxmox vmid=1100 placement=pve1 state=running$" "$T/shape" \
	"status json: a machines array, the VM's id, Proxmox node and state as fields of the machine (vms: the same, deprecated)"
expect_rc 0 "plan -o json with the drift" -- "$STRATA" plan "$E" -o json
$PY -c "
import json; d = json.load(open('$T/out')); c = d['actions'][1]['changes'][0] if d['actions'][1]['changes'] else d['actions'][0]['changes'][0]
assert d['format_version'] == 2 and d['platform'] == 'proxmox' and c['field'] == 'memory' and c['from'] == 4096 and c['to'] == 2048 and c['unit'] == 'MiB' and c['drift'] is True, c
" && ok "plan json: platform proxmox, sizes are numbers with a unit" || bad "plan json typed values"
expect_rc 0 "apply corrects it" -- "$STRATA" apply "$E" --yes
expect_grep "apply complete: 0 VMs created, 1 changed, 0 deleted, 1 unchanged" "$T/err" "summary counts the changed VM"

# A Talos-only change without a terminal: refused before gen writes it.
sed -i 's/^nodes:/talos:\n  patches:\n    - {machine: {sysctls: {vm.max_map_count: "262144"}}}\nnodes:/' "$E/config.yml"
before=$(tree_sum "$E")
expect_rc 2 "a Talos config change off a terminal refuses" -- "$STRATA" apply "$E" < /dev/null
expect_grep "Talos configs changed since they were applied" "$T/out" "names the Talos change"
expect_grep "~ cli-w-1 .*nodes/cli-w-1.yaml" "$T/out" "node by node"
[ "$(tree_sum "$E")" = "$before" ] && ok "env folder byte-identical (nodes/*.yaml not rewritten)" || bad "refused apply rewrote files"
expect_rc 0 "apply --yes takes it" -- "$STRATA" apply "$E" --yes
expect_grep "Talos config applied to 2 nodes" "$T/err" "summary counts the nodes reconfigured"

# Failures print once, with the re-run hint; task ids read as words.
labsim_ctl POST knobs '{"task_fail": {"qmcreate": "unable to create VM - storage full"}}' > /dev/null
sed -i 's/workers: {count: 1,/workers: {count: 2,/' "$E/config.yml"
expect_rc 1 "apply with a failing create" -- "$STRATA" apply "$E" --yes
n=$(grep -c "storage full" "$T/err")
[ "$n" = 1 ] && ok "the error prints once" || { bad "the error prints $n times"; sed 's/^/     | /' "$T/err" | tail -8; }
expect_grep "run 'strata apply $E' again to resume" "$T/err" "re-run hint"
expect_grep "apply stopped after" "$T/err" "summary after a failure"
if grep -q "UPID:" "$T/err"; then bad "raw task id printed"; else ok "no raw task id"; fi
expect_grep "task qmcreate 1102 on pve[12] failed" "$T/err" "the task named by type, VM id and node"
labsim_ctl POST knobs '{"task_fail": {}}' > /dev/null
expect_rc 0 "the re-run converges" -- "$STRATA" apply "$E" --yes

# destroy -o json: events, then a summary saying what was kept.
expect_rc 0 "destroy --yes -o json" -- "$STRATA" destroy "$E" --yes -o json
last=$(tail -1 "$T/out")
case "$last" in *'"type": "summary"'*|*'"type":"summary"'*) ok "destroy stream ends with a summary";; *) bad "destroy last event: $last";; esac
echo "$last" | $PY -c "import json,sys; s=json.load(sys.stdin); assert s['vms']['deleted'] == 3 and 'secrets.yaml' in s['kept'] and s['result'] == 'done'" \
	&& ok "destroy summary: 3 deleted, secrets kept" || bad "destroy summary $last"
expect_grep "destroy complete: 0 VMs created, 0 changed, 3 deleted, 0 unchanged in .*; kept secrets.yaml" "$T/err" "destroy closing line"

# Exit codes: an unset variable and a missing secret file are both 2; 401 is 1.
sed -i 's/\${PVE_TOKEN_SECRET}/${CLI_NO_SUCH_VAR}/' "$E/config.yml"
expect_rc 2 "unset secret variable: exit 2" -- "$STRATA" plan "$E"
sed -i 's/\${CLI_NO_SUCH_VAR}/"file:no-such-token"/' "$E/config.yml"
expect_rc 2 "missing secret file: exit 2" -- "$STRATA" plan "$E"
echo wrong-secret > "$E/no-such-token"
expect_rc 1 "token refused (401): exit 1" -- "$STRATA" plan "$E"
expect_grep "HTTP 401" "$T/err" "401 named"

# Interrupted (SIGTERM during the Talos phases): exit 3, the stream ends with
# an interrupted, resumable summary; a re-run resumes.
I="$T/envs/intr"
write_env "$I" intr 1300 1 1 127.0.33
"$STRATA" apply "$I" --yes -o json > "$T/intr.out" 2> "$T/intr.err" &
pid=$!
i=0
until grep -q '"phase":"talos-install","title"' "$T/intr.out" 2>/dev/null || [ $i -gt 600 ]; do i=$((i + 1)); sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
[ $rc = 3 ] && ok "SIGTERM during apply exits 3" || { bad "exit $rc, want 3"; tail -5 "$T/intr.err" | sed 's/^/     | /'; }
tail -1 "$T/intr.out" | $PY -c "import json,sys; s=json.load(sys.stdin); assert s['type'] == 'summary' and s['result'] == 'interrupted' and s['exit_code'] == 3 and s['resumable'] is True, s" \
	&& ok "summary event: interrupted, resumable" || bad "last event $(tail -1 "$T/intr.out")"
expect_grep "apply interrupted after" "$T/intr.err" "closing line says interrupted"
expect_grep "run 'strata apply $I' again to resume" "$T/intr.err" "and how to resume"
cp "$T/intr.out" "$T/out"; cp "$T/intr.err" "$T/err"; _capture "$T/out" "$T/err"
expect_rc 0 "the re-run resumes" -- "$STRATA" apply "$I" --yes
expect_grep "apply complete: 0 VMs created" "$T/err" "nothing created twice"

# gen -o json: one object; a re-run writes nothing.
G="$T/envs/g"
write_env "$G" g 1200 1 1 127.0.32
expect_rc 0 "gen -o json" -- "$STRATA" gen "$G" -o json
$PY -c "import json; d = json.load(open('$T/out')); assert d['secrets_created'] is True and d['files_written'] > 5 and d['env'] == 'g' and len(d['schematic']) == 64, d" \
	&& ok "gen json: secrets created, files written" || bad "gen json $(cat "$T/out")"
expect_rc 0 "gen -o json again" -- "$STRATA" gen "$G" -o json
$PY -c "import json; d = json.load(open('$T/out')); assert d['secrets_created'] is False and d['files_written'] == 0 and d['files_unchanged'] > 5, d" \
	&& ok "gen json: nothing rewritten" || bad "gen json rerun $(cat "$T/out")"

# ENV forms: DIR/config.yml is its folder; NAME is ./NAME when it is an env.
expect_rc 0 "validate DIR/config.yml" -- "$STRATA" validate "$G/config.yml"
expect_grep "^$G/config.yml: valid" "$T/out" "takes the file's folder"
(cd "$T/envs" && "$STRATA" validate g > "$T/out" 2> "$T/err") && ok "bare NAME that is ./NAME" || bad "validate g in envs/"
expect_grep "^g/config.yml: valid" "$T/out" "./NAME preferred over environments/NAME"

# Usage errors: one line naming the command's help.
expect_rc 2 "unknown option" -- "$STRATA" apply "$E" --frob
[ "$(wc -l < "$T/err")" = 1 ] && ok "one line" || bad "$(wc -l < "$T/err") lines"
expect_grep "^error: unknown option '--frob'; see 'strata apply --help'$" "$T/err" "points at --help"
for c in init validate gen plan apply destroy status; do
	expect_rc 2 "$c --bogus" -- "$STRATA" $c --bogus
	expect_grep "see 'strata $c --help'" "$T/err" "$c: pointer to its help"
	expect_rc 0 "$c --help" -- "$STRATA" $c --help
	expect_grep "^Exit status:" "$T/out" "$c --help: exit codes"
	expect_grep "^Example:" "$T/out" "$c --help: an example"
	expect_grep "^  -h, --help" "$T/out" "$c --help: options"
done
expect_rc 0 "strata --help" -- "$STRATA" --help
expect_grep "^  3  interrupted" "$T/out" "--help lists exit 3"
expect_grep "401/403" "$T/out" "--help says where 401/403 fall"

finish
