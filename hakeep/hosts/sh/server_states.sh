# shellcheck shell=sh
# haproxy's `show stat` from its admin socket (the first of STATS_SOCKET that answers), for a drill
# that watches one server leave and rejoin rotation. Exit 1 when no socket answers or nothing can
# read one. Variables: STATS_SOCKET.
hk_any_socket "$STATS_SOCKET" && hk_stat_reader || exit 1
hk_show_stats "$STATS_SOCKET"
