# shellcheck shell=sh
# A batch: several steps of one host in one round trip (hakeep.run.batch). Variables, one word per
# step: SCRIPTS and LENGTHS (how many bytes of standard input its script and its input take), WAITS
# (0, or for how many seconds a waiting step is tried again, every 0.1 s by the clock, until it
# passes) and DEADLINES (how long one run of it may take: it is stopped there, every process of it,
# as when it runs alone); KILL_AFTER (SIGTERM to SIGKILL) and DEADLINE_MARK (said on its stderr
# when stopped). Under hakeep.hosts.remote.bounded (hk_step_file set), each step's process group is
# added to the step file, so stopping the batch stops the step too, and the working folder is
# "$hk_step_file.d", which bounded or the stop removes even when this shell is killed.
# Standard input: a random marker line, then for each step its script and its input, one after the
# other (read as the step comes, with dd, which never reads past what it is asked for). Output, for
# each step that ran: "@@MARKER step N CODE OUT_BYTES ERR_BYTES", then its output and its error
# output; after the first step that fails, nothing more runs.
IFS= read -r hk_mark || exit 90
case "$hk_mark" in ""|*[!0-9a-f]*) exit 90 ;; esac
hk_file=${hk_step_file:-}
if [ -n "$hk_file" ]; then
    hk_dir="$hk_file.d"
    mkdir -m 700 "$hk_dir" || exit 91
else
    hk_dir=$(mktemp -d) || exit 91
fi
trap 'rm -rf "$hk_dir"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# hk_take N FILE: the next N bytes of standard input into FILE
hk_take() {
    if [ "$1" -eq 0 ]; then : > "$2"; else dd bs="$1" count=1 iflag=fullblock of="$2" 2>/dev/null; fi
}
# hk_try SECONDS FILE: one run of the script in FILE (stdin, stdout, stderr: the caller's) under its deadline,
# in a process group of its own, noted in the step file (a stop noted there first keeps it from starting).
hk_try() {
    if ! command -v timeout >/dev/null 2>&1; then
        /bin/sh "$2"
        return
    fi
    hk_t0=$(date +%s)
    timeout -k "$KILL_AFTER" "$1" /bin/sh -c "if [ -n \"\$1\" ]; then echo \"\$PPID\" >> \"\$1\"; \
[ ! -e \"\$1.stop\" ] || exit 143; fi; exec /bin/sh \"\$2\"" hk-step "$hk_file" "$2"
    hk_rc=$?
    if { [ $hk_rc -eq 124 ] || [ $hk_rc -eq 137 ]; } && [ $(($(date +%s) - hk_t0)) -ge "$1" ]; then
        echo "$DEADLINE_MARK ($1s)" >&2
    fi
    return $hk_rc
}
hk_i=0
hk_lengths="$LENGTHS " hk_waits="$WAITS " hk_deadlines="$DEADLINES "
for hk_size in $SCRIPTS; do
    hk_n=${hk_lengths%% *}; hk_lengths=${hk_lengths#* }
    hk_w=${hk_waits%% *}; hk_waits=${hk_waits#* }
    hk_d=${hk_deadlines%% *}; hk_deadlines=${hk_deadlines#* }
    hk_s="$hk_dir/script.$hk_i"
    hk_take "$hk_size" "$hk_s" || exit 92
    hk_take "$hk_n" "$hk_dir/in.$hk_i" || exit 92
    if [ "$hk_w" -gt 0 ]; then
        hk_end=$(($(date +%s) + hk_w))
        while :; do
            hk_try "$hk_d" "$hk_s" </dev/null >"$hk_dir/out" 2>"$hk_dir/err"; hk_rc=$?
            [ "$hk_rc" -eq 0 ] && break
            [ "$(date +%s)" -gt "$hk_end" ] && break  # (whole seconds: it waits at least its time)
            sleep 0.1
        done
    else
        hk_try "$hk_d" "$hk_s" <"$hk_dir/in.$hk_i" >"$hk_dir/out" 2>"$hk_dir/err"; hk_rc=$?
    fi
    hk_sizes=$(stat -c %s "$hk_dir/out" "$hk_dir/err")  # two lines: the sizes
    printf '@@%s step %s %s %s %s\n' "$hk_mark" "$hk_i" "$hk_rc" "${hk_sizes%%[!0-9]*}" "${hk_sizes##*[!0-9]}"
    cat "$hk_dir/out" "$hk_dir/err"
    [ "$hk_rc" -eq 0 ] || break
    hk_i=$((hk_i + 1))
done
true
