# shellcheck shell=sh
# Snippets shared by hakeep's remote scripts. hakeep.hosts.scripts.compose() puts this file after
# the variable assignments and before the script's own body; it defines functions only.

# hk_fail TOKEN: record one thing a gate found wrong; hk_report prints them (or "ok") and exits.
fail=""
hk_fail() { fail="$fail $1"; }
hk_report() {
    if [ -n "$fail" ]; then echo "${fail# }"; exit 1; fi
    echo ok
}

# hk_unit_active UNIT: true while UNIT.service is active.
hk_unit_active() { systemctl is-active --quiet "$1.service"; }

# hk_listening PORT: true when something listens on TCP PORT.
hk_listening() { ss -ltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }

# hk_listening_on ADDRESS PORT: true when something listens on exactly ADDRESS:PORT.
hk_listening_on() {
    ss -ltn "sport = :$2" 2>/dev/null | awk -v want="$1:$2" '$4 == want { found = 1 } END { exit !found }'
}

# hk_runs_file UNIT FILE: true when the newest process of UNIT (its main PID, or a child of it:
# haproxy's workers) started after FILE was last written, i.e. it loaded FILE as it is now. A
# reload that failed leaves only processes older than the file.
hk_runs_file() {
    hk_main=$(systemctl show -p MainPID --value "$1.service" 2>/dev/null)
    [ -n "$hk_main" ] && [ "$hk_main" != 0 ] || return 1
    hk_mtime=$(date -r "$2" +%s.%N 2>/dev/null) || return 1
    hk_hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
    # the boot time to 10 ms (now - uptime): /proc/stat's btime is rounded down to the second
    hk_boot=$(awk -v now="$(date +%s.%N)" '{ printf "%.3f", now - $1 }' /proc/uptime)
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pid="$hk_main" -v mtime="$hk_mtime" -v hz="$hk_hz" \
        -v boot="$hk_boot" '
        { s = $0; sub(/^[^ ]* \(.*\) /, "", s); split(s, f, " ")
          if (($1 == pid || f[2] == pid) && f[20] + 0 > newest) newest = f[20] + 0 }
        END { exit !(newest > 0 && boot + newest / hz > mtime) }'
}

# hk_vrrp_state FILE: the VRRP state keepalived last reported through the notify script ("" if none).
hk_vrrp_state() { cut -d' ' -f1 "$1" 2>/dev/null || true; }

# hk_check_vrrp FILE: a gate's check that keepalived settled in MASTER or BACKUP.
hk_check_vrrp() {
    hk_state=$(hk_vrrp_state "$1")
    case "$hk_state" in MASTER|BACKUP) ;; *) hk_fail "vrrp:${hk_state:-unknown}" ;; esac
}

# hk_vip_interfaces IP: the interfaces that carry IPv4 address IP on this host, one a line.
hk_vip_interfaces() {
    ip -o -4 addr show 2>/dev/null | awk -v vip="$1" '{split($4, a, "/"); if (a[1] == vip) print $2}'
}

# hk_stat_reader: true when this host can read haproxy's stats socket (socat, or python3).
hk_stat_reader() { command -v socat >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; }

# hk_show_stat SOCKET: haproxy's `show stat` CSV from its admin socket (2 s timeout).
hk_show_stat() {
    if command -v socat >/dev/null 2>&1; then
        echo "show stat" | socat -t 2 stdio "unix-connect:$1" 2>/dev/null
    else
        python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
b = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    b += d
sys.stdout.write(b.decode("utf-8", "replace"))' "$1" 2>/dev/null
    fi
}
