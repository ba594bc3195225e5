# shellcheck shell=sh
# The health gate of one LB after a change: print "ok" and exit 0 when healthy, else print what is
# wrong (space-separated tokens) and exit 1. Every server in SERVERS must be known to haproxy; each
# backend in REQUIRE_UP (those that had a server UP before the change) must have a server whose last
# check passed (L4OK/L6OK/L7OK): a config that reaches no backend fails, though TCP still connects.
# keepalived is asked for its own account (its data dump): every VRRP instance MASTER or BACKUP, and
# running what KA_EXPECT says the new file holds (a reload that failed or did not happen shows).
# With HOLD_VIP set (the LB held the VIP and no peer can take it over), the LB must still hold it,
# in MASTER. Variables: UNITS, VRRP_UNIT (keepalived, checked when in UNITS), PORTS, SERVERS ("backend/server" ...), REQUIRE_UP, KA_DATA (where
# keepalived writes its dump), KA_LOCK, KA_EXPECT (hakeep.hosts.keepalived.expected of the new file, one
# instance a line), STATS_SOCKET (haproxy's admin sockets: the first that answers), HOLD_VIP ("" or the VIP's address), BINDS ("address:port" of the
# frontends bound to one address: listening there exactly), CONFIG (haproxy's config: its newest
# process must have started after the file was written, or a reload failed and an older config
# still runs).
for unit in $UNITS; do hk_unit_active "$unit" || hk_fail "$unit:inactive"; done
for port in $PORTS; do hk_listening "$port" || hk_fail "port-$port:not-listening"; done
for bind in $BINDS; do hk_listening_on "${bind%:*}" "${bind##*:}" || hk_fail "bind-$bind:not-listening"; done
if [ -n "$CONFIG" ] && hk_unit_active haproxy && ! hk_runs_file haproxy "$CONFIG"; then
    hk_fail "haproxy:runs-an-older-config-than-its-file"
fi
case " $UNITS " in *" $VRRP_UNIT "*) hk_check_keepalived "$VRRP_UNIT" "$KA_DATA" "$KA_LOCK" "$KA_EXPECT" ;; esac
if [ -n "$HOLD_VIP" ]; then
    [ -n "$(hk_vip_interfaces "$HOLD_VIP")" ] || hk_fail "vip:lost-with-no-peer-to-take-it"
    hk_some_instance_in MASTER || hk_fail "vrrp:not-master-with-no-peer"
fi
stat=""
reader=0
# (nothing to look up -- a rollback's gate: the files put back may name another socket, or none)
if [ -n "$SERVERS$REQUIRE_UP" ] && hk_any_socket "$STATS_SOCKET" && hk_stat_reader; then
    reader=1
    stat=$(hk_show_stats "$STATS_SOCKET" || true)
fi
if [ -n "$stat" ]; then
    for sv in $SERVERS; do
        printf '%s\n' "$stat" | awk -F, -v be="${sv%%/*}" -v srv="${sv#*/}" \
            '$1 == be && $2 == srv { found = 1 } END { exit !found }' || hk_fail "backend-$sv:missing"
    done
    for be in $REQUIRE_UP; do
        printf '%s\n' "$stat" | awk -F, -v be="$be" '
            NR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i }; next }
            $1 == be && $2 != "BACKEND" && $2 != "FRONTEND" && $(col["check_status"]) ~ /^L[467]OK/ { ok = 1 }
            END { exit !ok }' || hk_fail "backend-$be:no-server-passes-its-check"
    done
elif [ "$reader" = 1 ]; then
    hk_fail "haproxy-stats:unreadable"
fi
hk_report
