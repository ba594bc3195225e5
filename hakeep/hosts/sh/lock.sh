# shellcheck shell=sh
# The deploy lock: take flock -n on LOCK and hold it until standard input reaches EOF. This shell
# holds it (fd 9): when the SSH channel closes -- hakeep unlocks, exits or is killed -- cat sees EOF,
# the shell exits and the kernel drops the lock. OWNER goes to LOCK.owner, so a second run can say
# who holds it. Variables: LOCK, OWNER, BUSY, BUSY_EXIT, ACQUIRED.
exec 9>>"$LOCK" || exit 1
if ! flock -n 9; then
    echo "$BUSY"
    cat -- "$LOCK.owner" 2>/dev/null
    exit "$BUSY_EXIT"
fi
printf '%s\n' "$OWNER" > "$LOCK.owner.tmp" && mv -f -- "$LOCK.owner.tmp" "$LOCK.owner"
echo "$ACQUIRED"
cat > /dev/null
