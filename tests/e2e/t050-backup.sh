#!/bin/sh
# strata backup / restore: the env folder as one age-encrypted archive,
# checked against Debian's age and GNU tar both ways; wrong keys, cut and
# altered files, unsafe archives and existing targets write nothing.
. "$(dirname "$0")/lib.sh"

if ! command -v age >/dev/null 2>&1 || ! command -v age-keygen >/dev/null 2>&1; then
	echo "skip: needs Debian's age (age, age-keygen)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
umask 077
# Every restored folder gets a parent of its own: env folders side by side
# are siblings whose VM id ranges validate refuses to overlap.
E="$T/src/env"
mkdir -p "$E" "$T/out.d"
age-keygen -o "$T/key.txt" 2>/dev/null
age-keygen -o "$T/other.txt" 2>/dev/null
R=$(age-keygen -y "$T/key.txt")
cp "$TOP/examples/homelab/config.yml" "$E/config.yml"
cat >> "$E/config.yml" <<YAML

backup:
  recipients: [$R]
YAML
export PVE_TOKEN_SECRET=unused-here
expect_rc 0 "gen" -- "$STRATA" gen "$E"
mkdir -p "$E/patches"; echo "# mine" > "$E/patches/note.yaml"
ln -s /etc/passwd "$E/link-out"

expect_rc 0 "backup into a folder" -- "$STRATA" backup "$E" --to "$T/out.d"
B=$(ls "$T/out.d"/homelab-*.age 2>/dev/null | head -1)
[ -n "$B" ] && ok "backup file named ENV-<UTC>.age" || bad "no backup file in $T/out.d"
[ "$(stat -c %a "$B")" = 600 ] && ok "backup file is 0600" || bad "backup mode $(stat -c %a "$B")"
expect_grep "backup: .* files" "$T/err" "backup says what it wrote"
expect_grep "symlink" "$T/err" "the symlink left out is said"
grep -q "AGE-SECRET-KEY\|BEGIN PRIVATE\|ed25519" "$B" && bad "backup holds plain key text" || ok "nothing readable in the backup"

# Debian's age and GNU tar read it: the same files, byte for byte.
mkdir -p "$T/x"
if age -d -i "$T/key.txt" "$B" | tar -x -C "$T/x" 2>"$T/tar.err"; then
	ok "age -d | tar -x opens the backup"
else
	bad "age -d | tar -x failed: $(cat "$T/tar.err")"
fi
if (cd "$E" && find . -type f ! -name .lock | sort) > "$T/want.ls" &&
   (cd "$T/x" && find . -type f | sort) > "$T/got.ls" && cmp -s "$T/want.ls" "$T/got.ls" &&
   diff -r -x .lock -x link-out "$E" "$T/x" >/dev/null; then
	ok "the archive holds every file of the env, nothing else"
else
	bad "archive contents differ"; diff "$T/want.ls" "$T/got.ls" | head
fi
[ -e "$T/x/link-out" ] && bad "the symlink went into the archive" || ok "no symlink in the archive"

# strata restore rebuilds the folder.
expect_rc 0 "restore" -- "$STRATA" restore "$T/restored/env" --from "$B" -i "$T/key.txt"
if diff -r -x .lock -x link-out "$E" "$T/restored/env" >/dev/null; then ok "restored folder equals the env"; else
	bad "restored folder differs"; diff -r -x .lock -x link-out "$E" "$T/restored/env" | head; fi
[ "$(stat -c %a "$T/restored/env")" = 700 ] && ok "restored folder is 0700" || bad "restored folder mode $(stat -c %a "$T/restored/env")"
[ "$(stat -c %a "$T/restored/env/secrets.yaml")" = 600 ] && ok "secrets.yaml restored 0600" || bad "secrets.yaml mode"
expect_rc 0 "the restored env generates nothing new" -- "$STRATA" gen "$T/restored/env"
expect_grep "0 files written\|files_written" "$T/out" "gen after restore writes nothing"

# age -e | strata restore: an archive made by GNU tar and Debian's age.
(cd "$E" && tar -cf - --exclude=.lock --exclude=link-out .) | age -e -r "$R" > "$T/byage.age"
expect_rc 0 "restore an archive made by tar | age -e" -- "$STRATA" restore "$T/byage/env" --from "$T/byage.age" -i "$T/key.txt"
diff -r -x .lock -x link-out "$E" "$T/byage/env" >/dev/null && ok "tar|age archive restored exactly" || bad "tar|age restore differs"

# Failures write nothing.
expect_rc 1 "a wrong identity is refused" -- "$STRATA" restore "$T/r1/env" --from "$B" -i "$T/other.txt"
expect_grep "none of the given keys opens this backup" "$T/err" "wrong identity said plainly"
[ -e "$T/r1/env" ] && bad "wrong identity created the folder" || ok "wrong identity wrote nothing"
head -c $(( $(wc -c < "$B") - 100 )) "$B" > "$T/cut.age"
expect_rc 1 "a cut backup is refused" -- "$STRATA" restore "$T/r2/env" --from "$T/cut.age" -i "$T/key.txt"
[ -e "$T/r2/env" ] && bad "cut file created the folder" || ok "cut file wrote nothing"
cp "$B" "$T/flip.age"; printf 'X' | dd of="$T/flip.age" bs=1 seek=$(( $(wc -c < "$B") - 40 )) conv=notrunc 2>/dev/null
expect_rc 1 "an altered backup is refused" -- "$STRATA" restore "$T/r3/env" --from "$T/flip.age" -i "$T/key.txt"
[ -e "$T/r3/env" ] && bad "altered file created the folder" || ok "altered file wrote nothing"
mkdir -p "$T/evil"; echo x > "$T/evil/config.yml"
(cd "$T/evil" && tar -cf - config.yml -P --transform 's,^,../,' 2>/dev/null) | age -e -r "$R" > "$T/evil.age"
expect_rc 1 "an archive with ../ names is refused" -- "$STRATA" restore "$T/r4/env" --from "$T/evil.age" -i "$T/key.txt"
expect_grep "outside the env folder" "$T/err" "unsafe name named"
[ -e "$T/r4/env" ] || [ -e "$T/config.yml" ] && bad "unsafe archive wrote something" || ok "unsafe archive wrote nothing"
expect_rc 2 "restore never writes into an existing folder" -- "$STRATA" restore "$E" --from "$B" -i "$T/key.txt"
expect_grep "already exists" "$T/err" "existing folder named"
expect_rc 2 "backup never replaces a file" -- "$STRATA" backup "$E" --to "$B"

# A passphrase instead of recipients.
sed -i "s|recipients: \[$R\]|passphrase: \${BACKUP_PASS}|" "$E/config.yml"
export BACKUP_PASS="correct horse battery staple"
expect_rc 0 "backup with a passphrase" -- "$STRATA" backup "$E" --to "$T/pass.age"
grep -q "scrypt" "$T/pass.age" && ok "passphrase backup uses an scrypt stanza" || bad "no scrypt stanza"
expect_rc 0 "restore with the passphrase" -- "$STRATA" restore "$T/rp/env" --from "$T/pass.age" --passphrase-env BACKUP_PASS
diff -r -x .lock -x link-out "$E" "$T/rp/env" >/dev/null && ok "passphrase restore equals the env" || bad "passphrase restore differs"
WRONG=nope expect_rc 1 "a wrong passphrase is refused" -- env WRONG=nope "$STRATA" restore "$T/rp2/env" --from "$T/pass.age" --passphrase-env WRONG
[ -e "$T/rp2/env" ] && bad "wrong passphrase created the folder" || ok "wrong passphrase wrote nothing"

# Config checks.
sed -i "s|passphrase: \${BACKUP_PASS}|recipients: [age1notakey]|" "$E/config.yml"
expect_rc 2 "a bad recipient fails validate" -- "$STRATA" validate "$E"
expect_grep "backup.recipients\[0\]: 'age1notakey' is not an age recipient" "$T/err" "bad recipient named at its position"
sed -i "/^backup:/,\$d" "$E/config.yml"
expect_rc 2 "backup without keys is a config error" -- "$STRATA" backup "$E" --to "$T/nokey.age"
expect_grep "set backup.recipients" "$T/err" "says which key to set"
finish
