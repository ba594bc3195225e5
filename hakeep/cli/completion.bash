# hakeep completion for bash (and zsh through bashcompinit): `hakeep completion bash`
_hakeep() {
    local cur prev cmd inv opts w
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
            w=--names; [ "$prev" = --to ] && w=--releases
            [ -n "$inv" ] && COMPREPLY=($(compgen -W "$(hakeep completion "$w" "$inv" 2>/dev/null)" -- "$cur"))
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
