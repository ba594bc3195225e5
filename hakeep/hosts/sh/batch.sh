# shellcheck shell=sh
# A batch: several steps of one host in one round trip (hakeep.run.batch). Variables, one word per
# step: SCRIPTS and LENGTHS (how many bytes of standard input its script and its input take), WAITS
# (0, or for how many seconds a waiting step is tried again, by the clock, until it passes: every
# 0.1 s for a second, then every 0.5 s) and DEADLINES (how long one run of it may take: it is
# stopped there, every process of it, as when it runs alone); KILL_AFTER (SIGTERM to SIGKILL) and
# DEADLINE_MARK (said on its stderr when stopped). Under hakeep.hosts.remote.bounded (hk_step_file
# set), the running step's process group is noted in "$hk_step_file.step" (emptied after the step),
# so stopping the batch, or its deadline, stops the step too; a stop noted there (".stop") keeps the
# next step from starting; and the working folder is "$hk_step_file.d", which bounded or the stop
# removes even when this shell is killed.
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
hk_pid=""
# hk_end_step: stop the step running now (its own group: beyond the reach of a signal to this one)
hk_end_step() {
    [ -z "$hk_pid" ] || kill -TERM "-$hk_pid" 2>/dev/null || kill -TERM "$hk_pid" 2>/dev/null || true
}
trap 'hk_end_step; exit 143' TERM
trap 'hk_end_step; exit 130' INT
# hk_take N FILE: the next N bytes of standard input into FILE (dd never reads past them)
hk_take() {
    if [ "$1" -eq 0 ]; then : > "$2"; else dd bs="$1" count=1 iflag=fullblock of="$2" 2>/dev/null; fi
}
# hk_stopped: true once a stop was asked for this batch (hk_stop_groups leaves the mark)
hk_stopped() { [ -n "$hk_file" ] && [ -e "$hk_file.stop" ]; }
# hk_try SECONDS FILE INPUT: one run of the script in FILE (stdin: INPUT; stdout, stderr: the
# caller's) under its deadline, in a process group of its own noted in the ".step" file (a stop noted
# first: not started). It runs in the background and is waited for, so a signal to this shell (a
# stop, the batch's deadline) is acted on at once, and stops the step too (hk_end_step).
hk_try() {
    if ! command -v timeout >/dev/null 2>&1; then  # (every supported distribution has it)
        /bin/sh "$2" <"$3"
        return
    fi
    hk_t0=$(date +%s)
    timeout -k "$KILL_AFTER" "$1" /bin/sh -c "if [ -n \"\$1\" ]; then echo \"\$PPID\" > \"\$1.step\"; \
[ ! -e \"\$1.stop\" ] || exit 143; fi; exec /bin/sh \"\$2\"" hk-step "$hk_file" "$2" <"$3" &
    hk_pid=$!
    wait "$hk_pid"
    hk_rc=$?
    hk_pid=""
    [ -z "$hk_file" ] || : > "$hk_file.step"
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
    hk_s="$hk_dir/script.$hk_i" hk_in="$hk_dir/in.$hk_i"
    hk_take "$hk_size" "$hk_s" || exit 92
    hk_take "$hk_n" "$hk_in" || exit 92
    # a short read (hakeep died or the link dropped mid-upload): never run half a script or file
    [ "$(stat -c %s "$hk_s" "$hk_in" | tr '\n' ' ')" = "$hk_size $hk_n " ] || exit 92
    hk_stopped && exit 143
    if [ "$hk_w" -gt 0 ]; then
        hk_end=$(($(date +%s) + hk_w))
        hk_tries=0
        while :; do
            hk_try "$hk_d" "$hk_s" "$hk_in" >"$hk_dir/out" 2>"$hk_dir/err"; hk_rc=$?
            [ "$hk_rc" -eq 0 ] && break
            [ "$(date +%s)" -gt "$hk_end" ] && break  # (whole seconds: it waits at least its time)
            hk_stopped && exit 143
            hk_tries=$((hk_tries + 1))
            if [ "$hk_tries" -le 10 ]; then sleep 0.1; else sleep 0.5; fi  # (a gate asks keepalived for a dump)
        done
    else
        hk_try "$hk_d" "$hk_s" "$hk_in" >"$hk_dir/out" 2>"$hk_dir/err"; hk_rc=$?
    fi
    hk_sizes=$(stat -c %s "$hk_dir/out" "$hk_dir/err")  # two lines: the sizes
    printf '@@%s step %s %s %s %s\n' "$hk_mark" "$hk_i" "$hk_rc" "${hk_sizes%%[!0-9]*}" "${hk_sizes##*[!0-9]}"
    cat "$hk_dir/out" "$hk_dir/err"
    [ "$hk_rc" -eq 0 ] || break
    hk_i=$((hk_i + 1))
done
true
