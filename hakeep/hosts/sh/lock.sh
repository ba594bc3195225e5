# shellcheck shell=sh
# The deploy lock: take flock -n on LOCK and hold it while hakeep's session lives. This shell holds
# it (fd 9). hakeep sends a heartbeat byte on standard input every few seconds; the holder lets go
# when standard input reaches EOF (hakeep unlocks, exits or is killed and the connection closes) or
# when no heartbeat came for HEARTBEAT seconds (the network died without closing the connection).
# Letting go, it first stops every command of this session still running (their process groups,
# noted under STEPS as SESSION*), so nothing hakeep started outlives its lock; then the kernel drops
# the lock. OWNER goes to LOCK.owner, so a second run can say who holds it.
# Variables: LOCK, OWNER, BUSY, BUSY_EXIT, ACQUIRED, HEARTBEAT, STEPS, SESSION.
exec 9>>"$LOCK" || exit 1
if ! flock -n 9; then
    echo "$BUSY"
    cat -- "$LOCK.owner" 2>/dev/null
    exit "$BUSY_EXIT"
fi
printf '%s\n' "$OWNER" > "$LOCK.owner.tmp" && mv -f -- "$LOCK.owner.tmp" "$LOCK.owner"
echo "$ACQUIRED"
if command -v timeout >/dev/null 2>&1 && command -v dd >/dev/null 2>&1; then
    while beat=$(timeout "$HEARTBEAT" dd bs=1 count=1 2>/dev/null) && [ -n "$beat" ]; do :; done
else
    cat > /dev/null
fi
set --
for f in "$STEPS/$SESSION"*; do
    case "$f" in *.stop|*.d|*.step) ;; *) [ -e "$f" ] && set -- "$@" "$f" ;; esac
done
[ $# -eq 0 ] || hk_stop_groups "$@"
rm -f "$STEPS/$SESSION"*.stop  # this run starts nothing more: its stop marks are done with
