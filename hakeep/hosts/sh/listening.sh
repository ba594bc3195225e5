# shellcheck shell=sh
# Exit 0 once something listens on every TCP port in PORTS (the executor polls it after a reload).
# Variables: PORTS.
for port in $PORTS; do hk_listening "$port" || exit 1; done
