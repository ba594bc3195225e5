# shellcheck shell=sh
# Each unit of UNITS in its target state: those in RUNNING active, the others not; when VRRP_UNIT
# (keepalived) is in RUNNING, its VRRP state MASTER or BACKUP. Prints "ok" (exit 0) or what is
# wrong (exit 1). Variables: UNITS, RUNNING, VRRP_UNIT, STATE_FILE.
for unit in $UNITS; do
    case " $RUNNING " in
        *" $unit "*) hk_unit_active "$unit" || hk_fail "$unit:inactive" ;;
        *) if hk_unit_active "$unit"; then hk_fail "$unit:still-active"; fi ;;
    esac
done
case " $RUNNING " in *" $VRRP_UNIT "*) hk_check_vrrp "$STATE_FILE" ;; esac
hk_report
