# shellcheck shell=sh
# A batch: several steps of one host in one round trip (hakeep.run.batch). Variables: BASE (where the
# batch makes its private temp folder) and, one word per step, STEPS (each step's script, base64),
# LENGTHS (how many bytes of input it reads) and WAITS (0, or for how many seconds a waiting step is
# tried again, every 0.1 s, until it passes).
# Standard input: a random marker line, then every step's input one after the other. Output, for
# each step that ran: "@@MARKER step N CODE OUT_BYTES ERR_BYTES", then its output and its error
# output; after the first step that fails, nothing more runs.
IFS= read -r hk_mark || exit 90
case "$hk_mark" in ""|*[!0-9a-f]*) exit 90 ;; esac
mkdir -p "$BASE" 2>/dev/null
hk_dir=$(mktemp -d "$BASE/batch.XXXXXX") || exit 91
trap 'rm -rf "$hk_dir"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
cat > "$hk_dir/in" || exit 91
hk_off=0
hk_i=0
hk_lengths="$LENGTHS " hk_waits="$WAITS "
for hk_s64 in $STEPS; do
    hk_n=${hk_lengths%% *}; hk_lengths=${hk_lengths#* }
    hk_w=${hk_waits%% *}; hk_waits=${hk_waits#* }
    hk_s=$(printf '%s' "$hk_s64" | base64 -d) || exit 92
    if [ "$hk_w" -gt 0 ]; then
        hk_tries=$((hk_w * 10))
        while :; do
            /bin/sh -c "$hk_s" </dev/null >"$hk_dir/out" 2>"$hk_dir/err"; hk_rc=$?
            [ "$hk_rc" -eq 0 ] && break
            hk_tries=$((hk_tries - 1))
            [ "$hk_tries" -le 0 ] && break
            sleep 0.1
        done
    else
        tail -c +$((hk_off + 1)) "$hk_dir/in" | head -c "$hk_n" | /bin/sh -c "$hk_s" >"$hk_dir/out" 2>"$hk_dir/err"
        hk_rc=$?
    fi
    hk_off=$((hk_off + hk_n))
    printf '@@%s step %s %s %s %s\n' "$hk_mark" "$hk_i" "$hk_rc" "$(($(wc -c <"$hk_dir/out")))" \
        "$(($(wc -c <"$hk_dir/err")))"
    cat "$hk_dir/out" "$hk_dir/err"
    [ "$hk_rc" -eq 0 ] || break
    hk_i=$((hk_i + 1))
done
true
