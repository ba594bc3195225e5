# shellcheck shell=sh
# Each unit in its target state: RUNNING active, STOPPED not; when VRRP_UNIT (keepalived) is in
# RUNNING, its VRRP state MASTER or BACKUP. Prints "ok" (exit 0) or what is wrong (exit 1).
# Variables: RUNNING, STOPPED, VRRP_UNIT, STATE_FILE.
for unit in $RUNNING; do hk_unit_active "$unit" || hk_fail "$unit:inactive"; done
for unit in $STOPPED; do
    if hk_unit_active "$unit"; then hk_fail "$unit:still-active"; fi
done
case " $RUNNING " in *" $VRRP_UNIT "*) hk_check_vrrp "$STATE_FILE" ;; esac
hk_report
