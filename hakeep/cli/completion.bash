# hakeep completion for bash (and zsh through bashcompinit): `hakeep completion bash`
_hakeep() {
    local cur prev cmd inv opts w what
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W @COMMANDS@' --help --version' -- "$cur"))
        return
    fi
    cmd="${COMP_WORDS[1]}"
    inv=""
    for w in "${COMP_WORDS[@]:2}"; do
        case "$w" in *.toml) inv="$w" ;; esac
    done
    case "$prev" in
        --limit|--to)
            what=--names; [ "$prev" = --to ] && what=--releases
            # each word as it is (compgen -W would expand $(...) in what a host named)
            [ -n "$inv" ] && while IFS= read -r w; do
                case "$w" in "$cur"*) COMPREPLY+=("$w") ;; esac
            done < <(hakeep completion "$what" "$inv" 2>/dev/null)
            return ;;
        --color) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
        --templates|-o|--output) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    esac
    case "$cmd" in
@CASES@
        *) opts="" ;;
    esac
    if [ "$cmd" = completion ] && [ "${cur#-}" = "$cur" ]; then
        COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
    elif [ "${cur#-}" != "$cur" ]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -S / -- "$cur"))
    fi
}
complete -o filenames -F _hakeep hakeep
