#!/bin/sh
# Bad-config corpus: every cases/NNN-name.yml is validated as an env's
# config.yml; stderr must equal cases/NNN-name.expect exactly (the temp
# folder's path is shown as "ENV") and the exit status must be 2 (or 0 for
# a case whose .expect holds only warnings).
# A case may bring files for the env folder in cases/NNN-name.files/.
# A few inputs are generated here rather than committed: binary garbage,
# a NUL byte, a 10 MB file and deeply nested input.
#   tests/corpus/run.sh [--update]   (--update rewrites the .expect files)
set -u
here=$(cd "$(dirname "$0")" && pwd)
STRATA=${STRATA:-$here/../../build/asan/strata}
update=0
[ "${1:-}" = "--update" ] && update=1
work=$(mktemp -d /tmp/strata-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
pass=0 fail=0
# The cases reference ${PVE_TOKEN}; an unset variable is itself an error.
# Cases about unset variables use names nobody sets.
export PVE_TOKEN=corpus-placeholder
export STRATA_CORPUS_EMPTY=
unset STRATA_CORPUS_UNSET

gen_cases() {
	g="$work/generated"
	mkdir -p "$g"
	# 256 bytes of every value: not text.
	i=0; : > "$g/900-binary-garbage.yml"
	while [ $i -lt 256 ]; do printf "\\$(printf %o $(( (i * 97 + 13) % 256 )))" >> "$g/900-binary-garbage.yml"; i=$((i+1)); done
	printf 'name: lab\nplatform: prox\000mox\n' > "$g/901-nul-byte.yml"
	# 10 MB: a valid start and then a huge comment block.
	head -c 10485760 /dev/zero | tr '\0' '#' > "$g/902-ten-megabytes.yml"
	# 5000 levels of flow nesting.
	{ printf 'name: '; i=0; while [ $i -lt 5000 ]; do printf '['; i=$((i+1)); done; echo; } > "$g/903-deep-nesting.yml"
	python3 -c 'import sys; sys.stdout.write("a:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(1000)))' > "$g/904-deep-block-nesting.yml" 2>/dev/null ||
		awk 'BEGIN { print "a:"; for (i = 1; i <= 1000; i++) { s = ""; for (j = 0; j < i; j++) s = s " "; print s "a:" } }' > "$g/904-deep-block-nesting.yml"
}

check_case() {
	yml=$1
	base=${yml%.yml}
	name=$(basename "$base")
	expect="$here/cases/$name.expect"
	env="$work/envs/$name/env"
	rm -rf "$work/envs/$name"
	mkdir -p "$env"
	cp "$yml" "$env/config.yml"
	# Files beside config.yml (secret files, CA files, patches).
	if [ -d "$base.files" ]; then
		cp -R "$base.files/." "$env/"
	fi
	# A sibling environment, for the VM id overlap rule.
	if [ -f "$base.sibling" ]; then
		mkdir -p "$work/envs/$name/other"
		cp "$base.sibling" "$work/envs/$name/other/config.yml"
	fi
	NO_COLOR=1 "$STRATA" validate -q "$env" > "$work/stdout" 2> "$work/stderr"
	rc=$?
	sed "s|$work/envs/$name/||g" "$work/stderr" > "$work/got"
	if [ $update -eq 1 ]; then
		cp "$work/got" "$expect"
	fi
	want_rc=2
	grep -q ': error: \|^[0-9]* errors\?, ' "$expect" 2>/dev/null && ! grep -q '^0 errors' "$expect" || want_rc=0
	if [ ! -f "$expect" ]; then
		echo "FAIL $name: no $name.expect"
		fail=$((fail + 1))
	elif ! cmp -s "$work/got" "$expect"; then
		echo "FAIL $name: output differs"
		diff "$expect" "$work/got" | head -20
		fail=$((fail + 1))
	elif [ $rc -ne $want_rc ]; then
		echo "FAIL $name: exit $rc, want $want_rc"
		fail=$((fail + 1))
	elif grep -q 'AddressSanitizer\|runtime error\|LeakSanitizer' "$work/stderr"; then
		echo "FAIL $name: sanitizer report"
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
	fi
}

if [ ! -x "$STRATA" ]; then
	echo "corpus: $STRATA not built"
	echo "0 passed, 1 failed"
	exit 1
fi
gen_cases
for yml in "$here"/cases/*.yml "$work"/generated/*.yml; do
	check_case "$yml"
done
echo "corpus: $pass passed, $fail failed"
[ $fail -eq 0 ]
