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
    case "$1" in *:*) hk_want="[$1]:$2" ;; *) hk_want="$1:$2" ;; esac  # ss writes IPv6 in brackets
    ss -ltn "sport = :$2" 2>/dev/null | awk -v want="$hk_want" '$4 == want { found = 1 } END { exit !found }'
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

# hk_keepalived_summary UNIT DATA LOCK: what keepalived (the service UNIT) runs, in its own words
# (hk_keepalived_dump of its main PID).
hk_keepalived_summary() {
    hk_main=$(systemctl show -p MainPID --value "$1.service" 2>/dev/null)
    [ -n "$hk_main" ] && [ "$hk_main" != 0 ] || return 1
    hk_keepalived_dump "$hk_main" "$2" "$3"
}

# hk_family PID: PID and its children, one a line.
hk_family() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pid="$1" '
        { s = $0; sub(/^[^ ]* \(.*\) /, "", s); split(s, f, " "); if ($1 == pid || f[2] == pid) print $1 }'
}

# hk_holds_open PID FILE: true while PID or a child of it has FILE (a path in its own namespace) open.
hk_holds_open() {
    for hk_p in $(hk_family "$1"); do
        # one find per process, not a readlink per descriptor (FILE has no glob characters)
        [ -n "$(find "/proc/$hk_p/fd" -mindepth 1 -maxdepth 1 -lname "$2" -print -quit 2>/dev/null)" ] && return 0
    done
    return 1
}

# hk_keepalived_dump PID DATA LOCK: keepalived's data dump, asked of its main process PID with the
# DATA signal, summed up by hk_keepalived_parse (never the password). keepalived writes DATA in its
# own mount namespace: it is read through /proc/PID/root, so a private /tmp does not hide it. Only a
# file that appears after the signal, as a regular file owned by keepalived's user with one link,
# once no keepalived process holds it open, counts; it is deleted after. One dump at a time (LOCK,
# flock): two would delete each other's file. Prints nothing when keepalived runs no VRRP instance.
# Returns 1 when no dump came within 3 s, 2 when DATA is taken by something that cannot be removed
# (a folder a local user made). keepalived logs two lines per dump ("Printing ... data ... on signal").
hk_keepalived_dump() {
    hk_sig=$(keepalived --signum=DATA 2>/dev/null) || hk_sig=USR1
    case "$hk_sig" in ''|*[!0-9]*) hk_sig=USR1 ;; esac  # keepalived before --signum: SIGUSR1
    hk_dir="/proc/$1/root${2%/*}"
    hk_dump="/proc/$1/root$2"
    hk_uid=$(stat -c %u "/proc/$1" 2>/dev/null) || return 1
    if [ -n "$3" ] && command -v flock >/dev/null 2>&1; then
        mkdir -p "${3%/*}" 2>/dev/null
        exec 8>"$3" && flock -w 10 8 || return 1
    fi
    rm -f "$hk_dump" "$hk_dir/keepalived_parent.data" "$hk_dir/keepalived_check.data" 2>/dev/null
    if [ -e "$hk_dump" ] || [ -L "$hk_dump" ]; then exec 8>&-; return 2; fi
    hk_t0=$(date +%s)
    kill "-$hk_sig" "$1" 2>/dev/null || { exec 8>&-; return 1; }
    hk_n=0
    until [ -f "$hk_dump" ] && [ ! -L "$hk_dump" ] && [ "$(stat -c '%u %h' "$hk_dump" 2>/dev/null)" = "$hk_uid 1" ] \
            && [ "$(stat -c %Y "$hk_dump" 2>/dev/null || echo 0)" -ge "$hk_t0" ] && ! hk_holds_open "$1" "$2"; do
        hk_n=$((hk_n + 1))
        if [ "$hk_n" -gt 70 ]; then exec 8>&-; return 1; fi
        if [ "$hk_n" -le 10 ]; then sleep 0.01; else sleep 0.05; fi  # it is there within ~10 ms, mostly
    done
    hk_keepalived_parse "$hk_dump"
    rm -f "$hk_dump" "$hk_dir/keepalived_parent.data" "$hk_dir/keepalived_check.data"
    exec 8>&-
    return 0
}

# hk_keepalived_parse FILE: keepalived data dump FILE summed up, one line per VRRP instance:
#   NAME state=S router=R vrid=N priority=N interface=I src=A advert=MS vips=A/P,... peers=A,...
# (router: the global router_id; vips and peers always there, maybe empty; lists sorted, a host
# prefix /32 or /128 left out: the format of hakeep.hosts.keepalived).
hk_keepalived_parse() {
    awk '
        function sorted(s,   n, a, i, j, t, out) {
            n = split(s, a, " ")
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j - 1]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") a[i]
            return out
        }
        function put(k, v) { return v == "" ? "" : " " k "=" v }
        function emit() {
            if (name != "") print name put("state", st) put("router", router) put("vrid", vrid) put("priority", prio) put("interface", ifc) \
                put("src", src) put("advert", adv) " vips=" sorted(vips) " peers=" sorted(peers)
            name = ""
        }
        /^------< / { emit(); topo = ($0 ~ /VRRP Topology/); next }
        /^ Router ID = / { router = $4 }
        !topo { next }
        /^ VRRP Instance = / { emit(); name = $4; st = vrid = prio = ifc = src = adv = vips = peers = list = ""; next }
        name == "" { next }
        { ind = match($0, /[^ ]/) }
        list != "" && ind > lind { if ($1 ~ /^[0-9a-fA-F:.]+(\/[0-9]+)?$/) { a = $1; sub(/\/(32|128)$/, "", a); if (list == "vip") vips = vips " " a; else peers = peers " " a }; next }
        { list = "" }
        /^ *State = / && st == "" { st = $3 }
        /^ *Virtual Router ID = / { vrid = $5 }
        /^ *Priority = / { prio = $3 }
        /^ *Interface = / && ifc == "" { ifc = $3; if ($0 ~ /, vmac on /) ifc = $(NF); sub(/,$/, "", ifc) }
        /^ *Using src_ip = / { src = $4 }
        /^ *Advert interval = / { adv = ($5 ~ /^milli/) ? $4 : $4 * 1000 }
        /^ *Virtual IP( \([0-9]+\))? *[:=]/ { list = "vip"; lind = ind }
        /^ *Unicast Peer/ { list = "peer"; lind = ind }
        END { emit() }' "$1"
}

# hk_check_keepalived UNIT DATA LOCK EXPECT: a gate's check of keepalived from its own account
# (hk_keepalived_summary UNIT DATA LOCK), judged by hk_judge_keepalived against EXPECT.
hk_check_keepalived() {
    hk_running=$(hk_keepalived_summary "$1" "$2" "$3")
    case $? in
        0) ;;
        2) hk_states=""; hk_fail "keepalived:dump-path-blocked"; return ;;
        *) hk_states=""; hk_fail "keepalived:no-data-dump"; return ;;
    esac
    hk_judge_keepalived "$hk_running" "$4"
}

# hk_judge_keepalived SUMMARY EXPECT: every VRRP instance of SUMMARY in MASTER or BACKUP, and (EXPECT
# non-empty) running what EXPECT says its file holds: one line per instance, "NAME key=value ...",
# each pair found in that instance's summary, no instance more or less. Leaves the instances' states
# in hk_states.
hk_states=""
hk_judge_keepalived() {
    hk_states=$(printf '%s\n' "$1" | awk 'NF { s = "none"; for (i = 2; i <= NF; i++) if ($i ~ /^state=/) s = substr($i, 7); print s }')
    for hk_state in $hk_states; do
        case "$hk_state" in MASTER|BACKUP) ;; *) hk_fail "vrrp:$hk_state" ;; esac
    done
    [ -n "$2" ] || return 0
    printf '%s\n' "$1" | awk -v expect="$2" '
        NF { run[$1] = " " $0 " "; nrun++ }
        END {
            n = split(expect, lines, "\n")
            for (i = 1; i <= n; i++) {
                if (split(lines[i], f, " ") == 0) continue
                nexp++
                if (!(f[1] in run)) exit 1
                for (j = 2; j in f; j++) if (index(run[f[1]], " " f[j] " ") == 0) exit 1
            }
            exit nexp != nrun
        }' || hk_fail "keepalived:runs-an-older-config-than-its-file"
}

# hk_some_instance_in STATE: true when hk_check_keepalived saw a VRRP instance in STATE.
hk_some_instance_in() { case " $hk_states " in *" $1 "*) return 0 ;; esac; return 1; }

# hk_haproxy_failure: from haproxy's journal on stdin, why its last load failed: the last specific
# ALERT before "Loading failure!" (not the generic "Some protocols failed"/"Fatal errors found"),
# else the last alert-like line; nothing if none.
hk_haproxy_failure() {
    awk '
        /ALERT|Loading failure|failed to start/ { last = $0 }
        /\[ALERT\]/ && !/Some protocols failed|Fatal errors found/ { alert = $0 }
        /Loading failure/ { why = alert != "" ? alert : $0; alert = "" }
        END { if (why != "") print why; else if (last != "") print last }'
}

# hk_fault_reason: from keepalived's journal on stdin, why an instance last entered FAULT: the last
# "entering FAULT state" line that gives a reason, else the last such line.
hk_fault_reason() {
    awk 'tolower($0) ~ /entering fault state/ { last = $0; if ($0 ~ /state *\(|due to/ && $0 !~ /\(init\)/) why = $0 }
         END { if (why != "") print why; else if (last != "") print last }'
}

# hk_arp_claimants IFACE IP: the MAC addresses that answer an ARP probe for IP on IFACE within 0.2 s
# (RFC 5227 probes, sender 0.0.0.0: no neighbour's cache changes), one a line; this host's own
# answer is never among them. python3's raw socket where python3 exists, else iputils' arping;
# "unknown" when neither does. An IPv6 address: the same with neighbour discovery, a duplicate
# address detection probe (RFC 4862: a solicitation from ::, to IP's solicited-node group, which
# every holder answers to all nodes, no cache changed), python3 only. Both are sent and read on a
# packet socket, so this host's own stack never answers them.
hk_arp_claimants() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import socket, struct, sys, time
iface, text = sys.argv[1], sys.argv[2]
six = ":" in text
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD if six else 0x0806))
s.bind((iface, 0))
mac = s.getsockname()[4]
if six:
    ip = socket.inet_pton(socket.AF_INET6, text)
    group = bytes.fromhex("ff0200000000000000000001ff") + ip[13:]
    ns = struct.pack("!BBH4x", 135, 0, 0) + ip
    pseudo = bytes(16) + group + struct.pack("!I3xB", len(ns), 58) + ns
    total = sum(struct.unpack("!%dH" % (len(pseudo) // 2), pseudo))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    ns = ns[:2] + struct.pack("!H", ~total & 0xFFFF) + ns[4:]
    header = struct.pack("!IHBB", 6 << 28, len(ns), 58, 255) + bytes(16) + group
    probe = b"\x33\x33" + group[12:] + mac + b"\x86\xdd" + header + ns
    def answer(f):  # a neighbour advertisement for ip: its sender
        ok = len(f) >= 78 and f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136 and f[62:78] == ip
        return f[6:12] if ok else None
else:
    ip = socket.inet_aton(text)
    probe = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + bytes(10) + ip
    def answer(f):  # an ARP reply for ip: its sender
        ok = len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" and f[28:32] == ip
        return f[22:28] if ok else None
seen = set()
end = time.monotonic() + 0.2
for _ in range(2):
    s.send(probe)
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        who = answer(s.recv(256))
    except OSError:
        break
    if who:
        seen.add(who.hex(":"))
for m in sorted(seen):
    print(m)' "$1" "$2" 2>/dev/null || echo unknown
    elif command -v arping >/dev/null 2>&1 && [ "${2#*:}" = "$2" ]; then
        arping -D -c 2 -w 1 -I "$1" "$2" 2>/dev/null | sed -n 's/.*\[\([0-9A-Fa-f:]*\)\].*/\1/p' \
            | tr 'A-F' 'a-f' | sort -u
    else
        echo unknown
    fi
}

# hk_vip_arp IFACE IP: "mac=M" (this host's MAC on IFACE), then for each other MAC answering ARP
# for IP there "arp=M ip=A" (A: an address this host's neighbour table has for M, else -), or
# "arp=unknown" when this host cannot probe.
hk_vip_arp() {
    echo "mac=$(cat "/sys/class/net/$1/address" 2>/dev/null)"
    for m in $(hk_arp_claimants "$1" "$2"); do
        if [ "$m" = unknown ]; then echo "arp=unknown"; continue; fi
        case "$2" in *:*) hk_fam=-6 ;; *) hk_fam=-4 ;; esac  # an address of the VIP's family
        a=$(ip "$hk_fam" neigh show dev "$1" 2>/dev/null | grep -iv '^fe80:' | awk -v m="$m" -v vip="$2" \
            'tolower($3) == m && $1 != vip { print $1; exit }')
        echo "arp=$m ip=${a:--}"
    done
}

# hk_stop_groups FILE...: stop the commands hakeep started under a deadline (hakeep.hosts.remote.bounded
# notes each one's process group in a file): SIGTERM to every process of each group, SIGKILL 3 s
# later to what is left; the files are removed, a FILE.stop mark left for a command not started yet
# (it sees the mark and does not start; it removes it). False if a group outlived SIGKILL.
hk_stop_groups() {
    hk_groups=''
    for f in "$@"; do
        case "$f" in *.stop|*.d|*.step) continue ;; esac
        : > "$f.stop" 2>/dev/null  # a command not started yet sees it and does not start
        [ -f "$f" ] || continue
        # the command's group, then that of the step a batch runs (hakeep.run.batch)
        for gf in "$f" "$f.step"; do
            [ -f "$gf" ] || continue
            g=$(cat "$gf" 2>/dev/null)
            case "$g" in ""|*[!0-9]*|0|1) continue ;; esac
            hk_groups="$hk_groups $g"
        done
    done
    # every group read first, then signalled: the TERM ends the batch, whose end removes its .step file
    for g in $hk_groups; do kill -TERM "-$g" 2>/dev/null; done
    i=0; while hk_groups_alive && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    for g in $hk_groups; do kill -KILL "-$g" 2>/dev/null; done
    i=0; while hk_groups_alive && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
    for f in "$@"; do rm -rf "$f" "$f.step" "$f.d"; done  # a batch's step and working folder too
    ! hk_groups_alive
}

hk_groups_alive() {
    for g in $hk_groups; do kill -0 "-$g" 2>/dev/null && return 0; done
    return 1
}

# hk_port_open ADDRESS PORT TIMEOUT: true when a TCP connection to ADDRESS:PORT opens within TIMEOUT s.
hk_port_open() {
    if command -v bash >/dev/null 2>&1; then
        timeout "$3" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
    else
        hk_w=$3; case "$hk_w" in *.*) hk_w=1 ;; esac  # nc takes whole seconds
        nc -z -w "$hk_w" "$1" "$2" 2>/dev/null
    fi
}

# hk_vip_interfaces IP: the interfaces that carry address IP (IPv4, or IPv6 as `ip` writes it: the
# canonical form hakeep sends) on this host, one a line.
hk_vip_interfaces() {
    ip -o addr show 2>/dev/null | awk -v vip="$1" '{split($4, a, "/"); if (a[1] == vip) print $2}'
}

# hk_stat_reader: true when this host can read haproxy's stats socket (socat, or python3).
hk_stat_reader() { command -v socat >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; }

# hk_show_stats "SOCKET...": `show stat` from the first of these admin sockets that answers (the
# config may name any of them: one left by an older config does not answer).
hk_show_stats() {
    for hk_s in $1; do
        [ -S "$hk_s" ] && hk_show_stat "$hk_s" && return 0
    done
    return 1
}

# hk_any_socket "PATH...": true when one of the paths is a socket.
hk_any_socket() {
    for hk_s in $1; do [ -S "$hk_s" ] && return 0; done
    return 1
}

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
