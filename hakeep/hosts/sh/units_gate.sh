# shellcheck shell=sh
# Each unit of UNITS in its target state: those in RUNNING active, the others not; when VRRP_UNIT
# (keepalived) is in RUNNING, every VRRP instance MASTER or BACKUP and running what KA_EXPECT says
# (from its dump, at KA_DATA); when haproxy is in RUNNING and CONFIG exists, haproxy runs it as it
# is now (the gate's proof). Prints "ok" (exit 0) or what is wrong (exit 1). Variables: UNITS,
# RUNNING, VRRP_UNIT, KA_DATA, KA_LOCK, KA_EXPECT, CONFIG.
for unit in $UNITS; do
    case " $RUNNING " in
        *" $unit "*) hk_unit_active "$unit" || hk_fail "$unit:inactive" ;;
        *) if hk_unit_active "$unit"; then hk_fail "$unit:still-active"; fi ;;
    esac
done
case " $RUNNING " in *" $VRRP_UNIT "*) hk_check_keepalived "$VRRP_UNIT" "$KA_DATA" "$KA_LOCK" "$KA_EXPECT" ;; esac
case " $RUNNING " in
    *" haproxy "*)
        if [ -f "$CONFIG" ] && hk_unit_active haproxy && ! hk_runs_file haproxy "$CONFIG"; then
            hk_fail "haproxy:runs-an-older-config-than-its-file"
        fi ;;
esac
hk_report
