#!/bin/sh
# strata.1 (generated from the help text) renders without warnings and is
# current; the bash and zsh completions parse, complete the commands and
# every long option each command's --help lists.
. "$(dirname "$0")/lib.sh"

"$STRATA" --man > "$T/strata.1"
if cmp -s "$T/strata.1" "$TOP/strata.1"; then ok "strata.1 is what 'strata --man' prints (make man)"; else
	bad "strata.1 is stale: run 'make man'"; diff "$TOP/strata.1" "$T/strata.1" | head -10 | sed 's/^/     | /'; fi
if command -v man > /dev/null; then
	(cd "$TOP" && LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat man --warnings ./strata.1 > "$T/man.out" 2> "$T/man.err")
	rc=$?
	[ $rc -eq 0 ] && ok "man ./strata.1 renders" || bad "man exit $rc"
	[ ! -s "$T/man.err" ] && ok "no groff warnings" || { bad "groff warnings"; sed 's/^/     | /' "$T/man.err" | head; }
	for c in init validate gen plan apply destroy status; do
		grep -q "^   strata $c\$" "$T/man.out" && ok "man page has a section for $c" || bad "no man section for $c"
	done
	expect_grep "^EXIT STATUS" "$T/man.out" "man page: exit status table"
	expect_grep "interrupted" "$T/man.out" "man page: exit 3"
else
	echo "skip: man not installed"
fi

B="$TOP/completions/strata.bash"
Z="$TOP/completions/_strata"
bash -n "$B" && ok "bash -n completions/strata.bash" || bad "bash syntax"
if command -v zsh > /dev/null; then
	zsh -n "$Z" && ok "zsh -n completions/_strata" || bad "zsh syntax"
	zsh -fc "fpath=($TOP/completions \$fpath); autoload -Uz compinit; compinit -u -d $T/zcomp; autoload -Uz _strata; [[ \${_comps[strata]} == _strata ]]" \
		&& ok "zsh: compinit binds _strata to strata" || bad "zsh compinit does not find _strata"
fi

# bash: drive the completion function as readline would.
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _strata; printf "%s\n" "${COMPREPLY[@]}"' _ "$B" "$@"
}
[ "$(complete_words strata ap)" = apply ] && ok "bash: 'strata ap' completes to apply" || bad "bash: ap -> $(complete_words strata ap)"
all=$(complete_words strata "" | tr '\n' ' ')
# every command 'strata --help' lists (a new one without completion fails)
cmds=$("$STRATA" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p')
[ "$(echo "$cmds" | wc -w)" -ge 15 ] && ok "strata --help lists the commands ($(echo $cmds))" || bad "commands from --help: $cmds"
for c in $cmds; do
	case " $all " in *" $c "*) ok "bash completes command $c";; *) bad "bash misses $c ($all)";; esac
	# the options list: lines "  -x, --opt ..." or "  --opt ..."
	"$STRATA" "$c" --help | sed -n 's/^  *\(-[a-zA-Z], \)\{0,1\}\(--[a-z][a-z0-9-]*\).*/\2/p' | sort -u > "$T/longopts"
	case $c in etcd) opts=$(complete_words strata etcd snapshot x --);;
	*) opts=$(complete_words strata "$c" --);; esac
	missing=
	while read -r o; do
		echo "$opts" | grep -qx -- "$o" || missing="$missing $o"
	done < "$T/longopts"
	[ -z "$missing" ] && ok "bash completes every long option of '$c --help'" || bad "$c: bash misses$missing"
done
[ "$(complete_words strata apply x -o j)" = json ] && ok "bash: -o completes json" || bad "-o json"
[ "$(complete_words strata init x --platform v)" = vps ] && ok "bash: --platform values" || bad "--platform"
mkdir -p "$T/w/environments/lab1" && : > "$T/w/environments/lab1/config.yml"
[ "$(cd "$T/w" && complete_words strata plan la)" = lab1 ] && ok "bash: ENV names under environments/" || bad "ENV names: $(cd "$T/w" && complete_words strata plan la)"
finish
