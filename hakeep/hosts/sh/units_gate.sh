# shellcheck shell=sh
# Each unit of UNITS in its target state: those in RUNNING active, the others not; when VRRP_UNIT
# (keepalived) is in RUNNING, its VRRP state MASTER or BACKUP; when haproxy is in RUNNING and CONFIG
# exists, haproxy runs it as it is now (the gate's proof). Prints "ok" (exit 0) or what is wrong
# (exit 1). Variables: UNITS, RUNNING, VRRP_UNIT, STATE_FILE, CONFIG.
for unit in $UNITS; do
    case " $RUNNING " in
        *" $unit "*) hk_unit_active "$unit" || hk_fail "$unit:inactive" ;;
        *) if hk_unit_active "$unit"; then hk_fail "$unit:still-active"; fi ;;
    esac
done
case " $RUNNING " in *" $VRRP_UNIT "*) hk_check_vrrp "$STATE_FILE" ;; esac
case " $RUNNING " in
    *" haproxy "*)
        if [ -f "$CONFIG" ] && hk_unit_active haproxy && ! hk_runs_file haproxy "$CONFIG"; then
            hk_fail "haproxy:runs-an-older-config-than-its-file"
        fi ;;
esac
hk_report
