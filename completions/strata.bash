# bash completion for strata (installed by 'make install' as
# $(PREFIX)/share/bash-completion/completions/strata)

_strata_envs() {
	# ENV: folders, and the names under ./environments
	local cur=$1 d
	COMPREPLY+=($(compgen -d -- "$cur"))
	if [[ $cur != */* && -d environments ]]; then
		for d in environments/*/; do
			[[ -f ${d}config.yml ]] || continue
			d=${d#environments/}
			d=${d%/}
			[[ $d == "$cur"* ]] && COMPREPLY+=("$d")
		done
	fi
}

_strata() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmds="init validate gen plan apply destroy status backup restore etcd history preflight hypervisor ansible template help"
	local opts cmd=${COMP_WORDS[1]}
	COMPREPLY=()
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
		return
	fi
	case $cmd in
	init)     opts="--platform --from --help" ;;
	validate) opts="--quiet --nodes --keys -o --help" ;;
	gen)      opts="-o --help" ;;
	plan)     opts="-o --help" ;;
	preflight|hypervisor) opts="-o --help" ;;
	apply)    opts="--yes --dry-run --parallel --timeout -o --reinstall --help" ;;
	destroy)  opts="--yes --parallel --purge-state -o --help" ;;
	status)   opts="--health -o --help" ;;
	template) opts="--vmid --image --node --sha256 --check --help" ;;
	ansible)  [[ $COMP_CWORD -ge 3 ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; }
		  opts="--help" ;;
	backup)   opts="--to --with-etcd --help" ;;
	restore)  opts="--from --identity --passphrase-env --etcd --yes --timeout --confirm --help" ;;
	etcd)     if [[ $COMP_CWORD -eq 2 ]]; then
			COMPREPLY=($(compgen -W "snapshot members --help" -- "$cur")); return
		  fi
		  opts="--out --help" ;;
	history)  opts="-o --help" ;;
	help)     COMPREPLY=($(compgen -W "${cmds% help}" -- "$cur")); return ;;
	*)        return ;;
	esac
	case $prev in
	-o|--output) COMPREPLY=($(compgen -W "json" -- "$cur")); return ;;
	--platform|-p) COMPREPLY=($(compgen -W "proxmox vps" -- "$cur")); return ;;
	--parallel|-j|--timeout|-t|--reinstall|--passphrase-env|--confirm) return ;;
	--to|--from|--identity|-i|--etcd|--out) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--from)
		local ex=${STRATA_EXAMPLES:-/usr/local/share/strata/examples}
		[[ -d $ex ]] && COMPREPLY=($(compgen -W "$(cd "$ex" && ls)" -- "$cur"))
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		_strata_envs "$cur"
	fi
}
complete -F _strata strata
