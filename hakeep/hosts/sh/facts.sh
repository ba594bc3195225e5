# shellcheck shell=sh
# Facts: everything the planner needs to know about one LB, in one round trip, read-only. Prints
# "@@MARK section" blocks that hakeep.hosts.facts.parse_facts reads; "end" last proves it completed.
# Variables: FACTS_VERSION, IFACE, VIP_IP, EXTRA_VIPS (the other VIPs' addresses), FILES (managed paths), CA_DIR, UNITS, STATE_FILE,
# STATS_SOCKET (haproxy's admin sockets, the first that answers), LOCK_OWNER (the lock's owner file; the lock, its name without .owner: held or free),
# RELEASES (the release history folder), PACKAGES (haproxy keepalived: each its program's name too),
# PROBE_VIP (1: ping the VIP when this host does not hold it, to see whether someone else answers,
# ask on IFACE which MACs answer ARP for it: hk_vip_arp's lines, and try each of PORTS through the
# VIP: "port=N:open|closed"),
# HAPROXY_CONFIG (whether haproxy runs that file as it is now; if not, the journal line that says why),
# VRRP_UNIT, KA_DATA and KA_LOCK (keepalived, where it writes its data dump, the lock that serialises
# dumps: what it runs, in its own words; for an instance in FAULT, keepalived's journal line on why).
# The section marker: a random word hakeep sends on standard input (never on a command line, where
# any local user could read it): no text the host prints (a process name, a file) can open a section.
IFS= read -r hk_mark || exit 90
case "$hk_mark" in ""|*[!0-9a-f]*) exit 90 ;; esac
hk_section() { printf '@@%s %s\n' "$hk_mark" "$*"; }
# hk_b64 FILE: FILE in base64 on one line (one process where base64 knows -w0: GNU coreutils)
if base64 -w0 </dev/null >/dev/null 2>&1; then
    hk_b64() { base64 -w0 "$1"; echo; }
else
    hk_b64() { base64 "$1" | tr -d '\n'; echo; }
fi
# The VIP probes wait for answers (ARP, ping, the frontend ports through the VIP): they run in the
# background from the start, and their section comes last, once everything else is read.
hk_probe=""
if [ "$PROBE_VIP" = 1 ] && hk_probe=$(mktemp 2>/dev/null); then
    {
        [ -d "/sys/class/net/$IFACE" ] && hk_vip_arp "$IFACE" "$VIP_IP" &
        if [ -z "$(hk_vip_interfaces "$VIP_IP")" ]; then  # not here: does someone else answer?
            if ! command -v ping >/dev/null 2>&1; then echo unknown
            else (if ping -c 1 -W 0.5 "$VIP_IP" >/dev/null 2>&1; then echo answers; else echo silent; fi) &
            fi
        fi
        for port in $PORTS; do
            (hk_port_open "$VIP_IP" "$port" 0.5 && echo "port=$port:open" || echo "port=$port:closed") &
        done
        for v in $EXTRA_VIPS; do  # the other VIPs: who answers ARP for each, and does it answer (xvip=V ...)
            [ -d "/sys/class/net/$IFACE" ] && { hk_vip_arp "$IFACE" "$v" | sed "s|^|xvip=$v |"; } &
            if [ -z "$(hk_vip_interfaces "$v")" ] && command -v ping >/dev/null 2>&1; then
                (if ping -c 1 -W 0.5 "$v" >/dev/null 2>&1; then echo "xvip=$v answers"; else echo "xvip=$v silent"; fi) &
            fi
        done
        wait
    } > "$hk_probe" 2>/dev/null &
fi
hk_section "facts $FACTS_VERSION"
hk_section "id"; id -u
hk_section "os"; cat /etc/os-release 2>/dev/null
hk_section "pkgmgr"
for m in apt-get dnf yum; do if command -v "$m" >/dev/null 2>&1; then echo "$m"; break; fi; done
hk_section "tools"
for t in haproxy keepalived systemctl ss flock sha256sum base64 socat nc python3 \
         firewall-cmd getenforce setsebool; do
    p=$(command -v "$t" 2>/dev/null) && echo "$t=$p"
done
hk_section "versions"
command -v haproxy >/dev/null 2>&1 && echo "haproxy=$(haproxy -v 2>/dev/null | head -n1)"
command -v keepalived >/dev/null 2>&1 && echo "keepalived=$(keepalived -v 2>&1 | head -n1)"
hk_section "haproxy_services"
# what this haproxy was built with beyond its core (its Prometheus exporter is one): `haproxy -vv`
command -v haproxy >/dev/null 2>&1 && haproxy -vv 2>/dev/null | sed -n '/^Available services/,$p' | head -n 20
hk_section "candidates"
# the packages not installed yet: the version the package manager would install, from its local
# metadata only (-C: no download; apt-cache never downloads): "@MANAGER", then its own output
set --
for p in $PACKAGES; do command -v "$p" >/dev/null 2>&1 || set -- "$@" "$p"; done
if [ $# -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "@apt-get"; apt-cache policy "$@" 2>/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        echo "@dnf"; timeout 20 dnf -q -C repoquery --latest-limit 1 --qf '%{name}=%{version}\n' "$@" 2>/dev/null
    elif command -v yum >/dev/null 2>&1; then
        echo "@yum"; timeout 20 yum -q -C list available "$@" 2>/dev/null
    fi
fi
hk_section "iface"
ip -o addr show dev "$IFACE" 2>/dev/null || echo "missing"
hk_section "vip"
hk_vip_interfaces "$VIP_IP"
for v in $EXTRA_VIPS; do  # the VIPs after the first: where each is (their probes are status' own)
    hk_section "xvip $v"
    hk_vip_interfaces "$v"
done
extra=""
for f in "$CA_DIR"/*-ca.crt; do
    [ -f "$f" ] || continue
    case " $FILES " in *" $f "*) ;; *) extra="$extra $f" ;; esac
done
for f in $FILES $extra; do
    hk_section "file $f"
    if [ -f "$f" ]; then
        stat -c 'mode=%a owner=%U group=%G' "$f"
        echo "sha256=$(sha256sum "$f" | cut -d' ' -f1)"
        hk_b64 "$f"
    else
        echo "absent"
    fi
done
for u in $UNITS; do
    hk_section "unit $u"
    systemctl show -p LoadState -p ActiveState -p SubState -p UnitFileState -p MainPID -p NRestarts \
        -p ActiveEnterTimestampMonotonic "$u.service" 2>/dev/null
    # the monotonic clock now, in µs, for how long the unit has been active (systemd's own clock)
    echo "Now=$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime 2>/dev/null)"
done
hk_section "vrrp_state"
cat "$STATE_FILE" 2>/dev/null
hk_section "sysctl"
echo "net.ipv4.ip_nonlocal_bind=$(cat /proc/sys/net/ipv4/ip_nonlocal_bind 2>/dev/null)"
echo "net.ipv6.ip_nonlocal_bind=$(cat /proc/sys/net/ipv6/ip_nonlocal_bind 2>/dev/null)"
hk_section "firewalld"
if command -v firewall-cmd >/dev/null 2>&1; then
    if firewall-cmd --state >/dev/null 2>&1; then
        echo running
        zone=$(firewall-cmd --get-zone-of-interface="$IFACE" 2>/dev/null || firewall-cmd --get-default-zone)
        echo "zone=$zone"
        echo "ports=$(firewall-cmd --zone="$zone" --list-ports 2>/dev/null)"
        echo "protocols=$(firewall-cmd --zone="$zone" --list-protocols 2>/dev/null)"
    else
        echo "not running"
    fi
else
    echo absent
fi
hk_section "selinux"
if command -v getenforce >/dev/null 2>&1; then getenforce 2>/dev/null; else echo absent; fi
if command -v getsebool >/dev/null 2>&1; then getsebool haproxy_connect_any 2>/dev/null; fi
hk_section "listen"
# "ADDRESS:PORT EXE" per listening TCP socket. Process names are never printed (any local user
# names their process as they like, newlines included): the program is the one /proc says the
# socket's holder runs, its pid taken from the very end of ss's record for the socket, which only ss
# writes (lines a name split off are joined back to their record first).
{ ss -Hltnp 2>/dev/null || ss -ltnp 2>/dev/null; } | awk '
    function flush() {
        if (rec == "") return
        pid = "-"; if (match(rec, /pid=[0-9]+,fd=[0-9]+\)\)[ \t]*$/)) { pid = substr(rec, RSTART + 4); sub(/,.*/, "", pid) }
        print addr, pid; rec = ""
    }
    $1 == "LISTEN" { flush(); rec = $0; addr = $4; next }
    rec != "" { rec = rec " " $0 }
    END { flush() }' | while read -r local pid; do
    exe=-
    if [ "$pid" != - ]; then
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null); exe=$(printf '%s' "${exe% (deleted)}" | tr -cd 'A-Za-z0-9._/+-')
    fi
    echo "$local ${exe:--}"
done
hk_section "haproxy_stat"
if hk_any_socket "$STATS_SOCKET" && hk_stat_reader; then hk_show_stats "$STATS_SOCKET"; fi
hk_section "stale"
if [ -f "$HAPROXY_CONFIG" ] && hk_unit_active haproxy && ! hk_runs_file haproxy "$HAPROXY_CONFIG"; then
    journalctl -u haproxy.service -n 200 --no-pager -o cat 2>/dev/null | hk_haproxy_failure | sed 's/^/haproxy=/'
    echo "haproxy=?"
fi
hk_section "keepalived_running"
if hk_unit_active "$VRRP_UNIT"; then
    ka=$(hk_keepalived_summary "$VRRP_UNIT" "$KA_DATA" "$KA_LOCK")
    case $? in
        0) echo "@answered"; [ -z "$ka" ] || printf '%s\n' "$ka" ;;
        2) echo "@blocked" ;;
        *) echo "@unanswered" ;;
    esac
    case "$ka" in
        *" state=FAULT"*)
            journalctl -u "$VRRP_UNIT.service" -n 300 --no-pager -o cat 2>/dev/null | hk_fault_reason \
                | sed 's/^/@why=/' ;;
    esac
fi
hk_section "lock"
cat "$LOCK_OWNER" 2>/dev/null
hk_section "lock_state"
hk_lock=${LOCK_OWNER%.owner}  # held: the kernel lists a lock on its inode (taking it to see would race a deploy)
hk_ino=$(stat -c %i "$hk_lock" 2>/dev/null)
if [ -n "$hk_ino" ] && awk -v ino="$hk_ino" '{ n = split($6, p, ":"); if (p[n] == ino) found = 1 } END { exit !found }' /proc/locks; then
    echo held
else
    echo free
fi
hk_section "releases"
if [ -d "$RELEASES" ]; then
    for d in "$RELEASES"/*/; do
        [ -f "$d/manifest.json" ] || continue
        id=${d%/}; id=${id##*/}
        hk_section "release $id"
        hk_b64 "$d/manifest.json"
        if [ -d "$d/files" ]; then
            # one stat for the release's files (managed paths have no white space)
            (cd "$d/files" && find . -type f -exec stat -c '%n mode=%a owner=%U group=%G' {} +) \
                | while read -r f st; do
                hk_section "release_file $id ${f#.}"
                echo "$st"
                hk_b64 "$d/files/${f#./}"
            done
        fi
    done
fi
hk_section "vip_probe"
if [ -n "$hk_probe" ]; then
    wait
    cat "$hk_probe"; rm -f "$hk_probe"
fi
hk_section "end"
