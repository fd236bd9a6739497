#!/bin/sh
# The env folder as strata's root, against the real binary: destroy
# --purge-state of a folder whose name holds quotes, spaces and a $(...)
# removes exactly the generated files (no shell runs, nothing else
# touched) and reports a failure as a failure; a symlinked nodes/ is
# refused with nothing written where it points; a folder writable by
# others is refused with the chmod to run; commands that load secrets run
# non-dumpable with core dumps off.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start

# 1. A hostile folder name. The old "rm -rf '%s/nodes'" through a shell
#    ran the $(...) and removed its, a, dir and x/nodes next to it.
mkdir -p "$T/envs"
cd "$T/envs" || exit 1
E="$T/envs/it's a \"dir\" \$(touch PWNED) 'x"
write_env "$E" qn 3100 1 1 127.0.60
for sib in its a dir x x/nodes "it's a " "it"; do
	mkdir -p "$T/envs/$sib" && echo keep > "$T/envs/$sib/keep.yaml"
done
expect_rc 0 "gen in the hostile folder" -- "$STRATA" gen "$E"
[ -f "$E/secrets.yaml" ] && [ -d "$E/nodes" ] && ok "generated files there" || bad "gen wrote nothing"
echo mine > "$E/notes.txt"
mkdir -p "$E/patches" && echo "# mine" > "$E/patches/mine.yaml"
expect_rc 0 "destroy --purge-state" -- "$STRATA" destroy "$E" --yes --purge-state
expect_grep "removed generated files and secrets" "$T/err" "says what it removed"
gone=0
for f in state.json secrets.yaml talosconfig controlplane.yaml worker.yaml nodes; do
	[ -e "$E/$f" ] && { bad "$f left in the env folder"; gone=1; }
done
[ $gone = 0 ] && ok "every generated file removed"
[ -f "$E/config.yml" ] && [ -f "$E/notes.txt" ] && [ -f "$E/patches/mine.yaml" ] \
	&& ok "config.yml and the user's files kept" || bad "user files removed"
[ -z "$(find "$T" "$TOP" -maxdepth 2 -name 'PWNED*' 2>/dev/null)" ] \
	&& ok "no command from the folder name ran" || bad "the folder name ran a command"
n=0
for sib in its a dir x x/nodes "it's a " "it"; do
	[ -f "$T/envs/$sib/keep.yaml" ] && n=$((n + 1))
done
[ $n = 7 ] && ok "look-alike folders untouched" || bad "look-alike folders touched ($n/7 kept)"

# A failure is a failure: nodes/ holding a folder strata did not write.
expect_rc 0 "gen again" -- "$STRATA" gen "$E"
mkdir "$E/nodes/not-mine"
expect_rc 1 "purge that cannot remove nodes/ fails" -- "$STRATA" destroy "$E" --yes --purge-state
expect_grep "purge-state: cannot remove .*nodes.*not-mine" "$T/err" "names what it could not remove"
[ -d "$E/nodes/not-mine" ] && ok "the foreign folder kept" || bad "foreign folder removed"
rmdir "$E/nodes/not-mine"
cd "$TOP" || exit 1

# 2. A symlink inside the env folder where strata writes.
E2="$T/envs/sym"
write_env "$E2" sym 3200 1 0 127.0.61
mkdir "$T/elsewhere"
ln -s "$T/elsewhere" "$E2/nodes"
expect_rc 1 "gen refuses a symlinked nodes/" -- "$STRATA" gen "$E2"
expect_grep "'nodes' is a symlink; strata never writes through a link" "$T/err" "says why"
[ -z "$(ls -A "$T/elsewhere")" ] && ok "nothing written where nodes/ points" || bad "wrote into the link target: $(ls -A "$T/elsewhere")"
rm "$E2/nodes"
ln -s "$T/elsewhere/stolen" "$E2/talosconfig"
expect_rc 1 "gen refuses a symlinked talosconfig" -- "$STRATA" gen "$E2"
[ ! -e "$T/elsewhere/stolen" ] && ok "nothing written at the file link's target" || bad "link target written"
rm "$E2/talosconfig"
expect_rc 0 "gen once the links are gone" -- "$STRATA" gen "$E2"

# 3. An env folder others may write into.
chmod 0777 "$E2"
expect_rc 2 "a world-writable env folder is refused" -- "$STRATA" gen "$E2"
expect_grep "writable by group and others (mode 0777).*run 'chmod 700 $E2'" "$T/err" "gives the chmod"
expect_rc 2 "plan refuses it too" -- "$STRATA" plan "$E2"
chmod 0700 "$E2"
ln -s "$E2" "$T/envs/symenv"
expect_rc 2 "an env folder that is a symlink is refused" -- "$STRATA" plan "$T/envs/symenv"
expect_grep "is a symlink" "$T/err" "says so"

# 4. Commands that load secrets run non-dumpable with core dumps off.
#    Observed from outside: another process of the same user may read the
#    /proc/PID/environ (and mem) of a dumpable process, not of one with
#    PR_GET_DUMPABLE 0. strata runs as nobody, held on a FIFO config.yml;
#    a plain process as nobody is the control.
D=$(mktemp -d /tmp/strata-nd.XXXXXX)
chmod 755 "$D"
mkdir "$D/env" && mkfifo "$D/env/config.yml" && chown -R 65534:65534 "$D/env"
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
$NOBODY sleep 30 &
ctl=$!
# until setpriv has become nobody and run sleep (not a fixed 0.2 s)
i=0
until [ "$(stat -c %u /proc/$ctl 2>/dev/null)" = 65534 ] && [ "$(readlink /proc/$ctl/exe)" = "$(readlink -f "$(command -v sleep)")" ] || [ $i -gt 600 ]; do
	sleep 0.05; i=$((i + 1))
done
$NOBODY cat /proc/$ctl/environ > /dev/null 2>&1 && ok "control: nobody reads a dumpable process's environ" \
	|| bad "control: environ of a dumpable process unreadable"
kill $ctl; wait $ctl 2>/dev/null
for cmd in plan gen apply status destroy; do
	$NOBODY "$STRATA" $cmd "$D/env" > /dev/null 2>&1 &
	pid=$!
	i=0
	# Until it is strata (not setpriv) and blocked opening the FIFO.
	while ! { [ "$(cat /proc/$pid/wchan 2>/dev/null)" = wait_for_partner ] &&
		  grep -q strata /proc/$pid/comm 2>/dev/null; } && [ $i -lt 200 ]; do
		sleep 0.05; i=$((i + 1))
	done
	core=$(awk '/^Max core file size/ {print $5 " " $6}' /proc/$pid/limits 2>/dev/null)
	uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status 2>/dev/null)
	if $NOBODY cat /proc/$pid/environ > /dev/null 2>&1; then
		bad "strata $cmd: its environ is readable by another process of its user"
	elif [ "$uid" = 65534 ] && [ "$core" = "0 0" ]; then
		ok "strata $cmd runs non-dumpable (environ closed to its own user), core limit 0 0"
	else
		bad "strata $cmd: uid '$uid', core '$core'"
	fi
	kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
done
rm -rf "$D"

finish
