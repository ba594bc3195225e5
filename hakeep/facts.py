"""Facts: what is true on an LB host now, gathered in one remote script and parsed by pure functions.

``facts_script`` builds the one POSIX-sh script a host runs (privileged) to report everything the
planner needs: OS and package manager, haproxy/keepalived versions, the interface and its
addresses, every managed file (mode, owner, sha256, content), unit states, the VIP, sysctls,
firewalld and SELinux, listening sockets, the lock holder and the release history. It prints
``@@section`` blocks; ``parse_facts`` turns them into a frozen :class:`HostFacts`. Parsing is pure,
so it is tested from captured output (pyinfra's fact = command + parser).
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hakeep.errors import HakeepError

RELEASES_DIR = "/var/lib/hakeep/releases"
FACTS_VERSION = "1"
UNITS = ("haproxy", "keepalived")

_SCRIPT = r"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
echo "@@facts $FACTS_VERSION"
echo "@@id"; id -u
echo "@@os"; cat /etc/os-release 2>/dev/null
echo "@@pkgmgr"
for m in apt-get dnf yum; do if command -v "$m" >/dev/null 2>&1; then echo "$m"; break; fi; done
echo "@@tools"
for t in haproxy keepalived systemctl ss flock sha256sum base64 socat nc python3 \
         firewall-cmd getenforce setsebool; do
    p=$(command -v "$t" 2>/dev/null) && echo "$t=$p"
done
echo "@@versions"
command -v haproxy >/dev/null 2>&1 && echo "haproxy=$(haproxy -v 2>/dev/null | head -n1)"
command -v keepalived >/dev/null 2>&1 && echo "keepalived=$(keepalived -v 2>&1 | head -n1)"
echo "@@iface"
ip -o -4 addr show dev "$IFACE" 2>/dev/null || echo "missing"
echo "@@vip"
ip -o -4 addr show 2>/dev/null | awk -v vip="$VIP_IP" '{split($4, a, "/"); if (a[1] == vip) print $2}'
echo "@@vip_probe"
if ! ip -o -4 addr show 2>/dev/null | grep -q " $VIP_IP/"; then
    if command -v ping >/dev/null 2>&1; then
        if ping -c 1 -W 1 "$VIP_IP" >/dev/null 2>&1; then echo answers; else echo silent; fi
    else
        echo unknown
    fi
fi
extra=""
for f in /etc/haproxy/hakeep/*-ca.crt; do
    [ -f "$f" ] || continue
    case " $FILES " in *" $f "*) ;; *) extra="$extra $f" ;; esac
done
for f in $FILES $extra; do
    echo "@@file $f"
    if [ -f "$f" ]; then
        stat -c 'mode=%a owner=%U group=%G' "$f"
        echo "sha256=$(sha256sum "$f" | cut -d' ' -f1)"
        base64 "$f" | tr -d '\n'; echo
    else
        echo "absent"
    fi
done
for u in haproxy keepalived; do
    echo "@@unit $u"
    systemctl show -p LoadState -p ActiveState -p SubState -p UnitFileState -p MainPID \
        "$u.service" 2>/dev/null
done
echo "@@vrrp_state"
cat /run/hakeep/vrrp-state 2>/dev/null
echo "@@sysctl"
echo "net.ipv4.ip_nonlocal_bind=$(cat /proc/sys/net/ipv4/ip_nonlocal_bind 2>/dev/null)"
echo "@@firewalld"
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
echo "@@selinux"
if command -v getenforce >/dev/null 2>&1; then getenforce 2>/dev/null; else echo absent; fi
if command -v getsebool >/dev/null 2>&1; then getsebool haproxy_connect_any 2>/dev/null; fi
echo "@@listen"
ss -Hltnp 2>/dev/null || ss -ltnp 2>/dev/null
echo "@@haproxy_stat"
if [ -S /run/haproxy/admin.sock ]; then
    if command -v socat >/dev/null 2>&1; then
        echo "show stat" | socat -t 2 stdio unix-connect:/run/haproxy/admin.sock 2>/dev/null
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("/run/haproxy/admin.sock")
s.sendall(b"show stat\n")
b=b""
while True:
    d=s.recv(65536)
    if not d: break
    b+=d
sys.stdout.write(b.decode("utf-8","replace"))' 2>/dev/null
    fi
fi
echo "@@lock"
cat /run/hakeep.lock.owner 2>/dev/null
echo "@@releases"
if [ -d "$RELEASES" ]; then
    for d in "$RELEASES"/*/; do
        [ -f "$d/manifest.json" ] || continue
        id=$(basename "$d")
        echo "@@release $id"
        base64 "$d/manifest.json" | tr -d '\n'; echo
        if [ -d "$d/files" ]; then
            (cd "$d/files" && find . -type f) | while read -r f; do
                echo "@@release_file $id ${f#.}"
                stat -c 'mode=%a owner=%U group=%G' "$d/files/${f#./}"
                base64 "$d/files/${f#./}" | tr -d '\n'; echo
            done
        fi
    done
fi
echo "@@end"
"""


@dataclass(frozen=True)
class FileFact:
    path: str
    exists: bool
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    sha256: str | None = None
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class UnitFact:
    name: str
    loaded: bool
    active: str  # ActiveState: active, inactive, failed, activating, reloading, ...
    enabled: str  # UnitFileState: enabled, disabled, static, "" when not installed
    main_pid: int

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading")


@dataclass(frozen=True)
class Listener:
    port: int
    address: str
    process: str  # e.g. "haproxy", or "" when ss could not tell


@dataclass(frozen=True)
class HostFacts:
    host: str
    uid: int
    os_id: str
    os_version: str
    os_like: tuple[str, ...]
    pkgmgr: str | None
    tools: dict[str, str]
    versions: dict[str, str]
    iface_present: bool
    iface_addresses: tuple[str, ...]  # "10.0.0.5/24" on the inventory's interface
    vip_on: tuple[str, ...]  # interfaces carrying the VIP on this host (empty: not here)
    vip_probe: str  # "answers", "silent", "unknown", or "" when this host holds it
    files: dict[str, FileFact]
    units: dict[str, UnitFact]
    vrrp_state: str  # last state keepalived reported through the notify script, "" if none
    sysctls: dict[str, str]
    firewalld: str  # "running", "not running", "absent"
    firewalld_ports: tuple[str, ...]  # "6443/tcp", ... open in the interface's zone (when running)
    firewalld_protocols: tuple[str, ...]
    firewalld_zone: str  # the interface's zone ("" when firewalld is not running)
    selinux: str  # "Enforcing", "Permissive", "Disabled", "absent"
    selinux_connect_any: bool | None
    listeners: tuple[Listener, ...]
    backends: dict[str, dict[str, str]]  # haproxy backend -> {server: status} from the stats socket
    lock_owner: str
    releases: dict[str, bytes]  # release id -> manifest.json bytes
    # (release id, path) -> the backed-up file (mode and owner as saved)
    release_files: dict[tuple[str, str], FileFact] = field(default_factory=dict, repr=False)

    @property
    def holds_vip(self) -> bool:
        return bool(self.vip_on)

    def installed(self, package: str) -> bool:
        return package in self.tools

    def file(self, path: str) -> FileFact:
        return self.files.get(path, FileFact(path, exists=False))


def facts_script(*, interface: str, vip_ip: str, files: Iterable[str]) -> str:
    """The remote script; every value is shell-quoted into a variable assignment."""
    assigns = {
        "FACTS_VERSION": FACTS_VERSION, "IFACE": interface, "VIP_IP": vip_ip,
        "FILES": " ".join(files), "RELEASES": RELEASES_DIR,
    }
    for path in files:
        if not re.fullmatch(r"/[A-Za-z0-9_./-]+", path):
            raise ValueError(f"unsafe managed path {path!r}")
    head = "\n".join(f"{k}={shlex.quote(v)}" for k, v in assigns.items())
    return head + "\n" + _SCRIPT


class FactsError(HakeepError):
    pass


def _sections(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("@@"):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def _kv(lines: Sequence[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def parse_facts(host: str, text: str) -> HostFacts:
    sections = _sections(text)
    if not sections or sections[0][0] != f"facts {FACTS_VERSION}" or sections[-1][0] != "end":
        # never echo the output itself: it carries file contents, keepalived.conf's password among them
        seen = ", ".join(name for name, _ in sections[-5:]) or "none"
        raise FactsError(f"{host}: the facts script returned incomplete output (last sections: {seen})",
                         hint="run it again; if it persists, check the host's shell and coreutils")
    simple: dict[str, list[str]] = {}
    files: dict[str, FileFact] = {}
    units: dict[str, UnitFact] = {}
    releases: dict[str, bytes] = {}
    release_files: dict[tuple[str, str], FileFact] = {}
    for name, lines in sections:
        kind, _, arg = name.partition(" ")
        if kind == "file":
            files[arg] = parse_file(arg, lines)
        elif kind == "unit":
            units[arg] = parse_unit(arg, lines)
        elif kind == "release":
            releases[arg] = base64.b64decode("".join(lines)) if lines else b""
        elif kind == "release_file":
            rid, _, path = arg.partition(" ")
            release_files[(rid, path)] = parse_backup(path, lines)
        else:
            simple[kind] = lines
    os_release = _kv(simple.get("os", []))
    iface_lines = simple.get("iface", [])
    sel = simple.get("selinux", ["absent"])
    fw = simple.get("firewalld", ["absent"])
    fw_kv = _kv(fw[1:])
    return HostFacts(
        host=host,
        uid=int((simple.get("id") or ["-1"])[0] or -1),
        os_id=os_release.get("ID", ""),
        os_version=os_release.get("VERSION_ID", ""),
        os_like=tuple(os_release.get("ID_LIKE", "").split()),
        pkgmgr=next(iter(simple.get("pkgmgr", [])), "") or None,
        tools=_kv(simple.get("tools", [])),
        versions={k: parse_version(v) for k, v in _kv(simple.get("versions", [])).items()},
        iface_present=bool(iface_lines) and iface_lines != ["missing"],
        iface_addresses=parse_iface_addresses(iface_lines),
        vip_on=tuple(line.strip() for line in simple.get("vip", []) if line.strip()),
        vip_probe=(simple.get("vip_probe") or [""])[0].strip(),
        files=files,
        units=units,
        vrrp_state=((simple.get("vrrp_state") or [""])[0].split() or [""])[0],
        sysctls=_kv(simple.get("sysctl", [])),
        firewalld=(fw[0].strip() if fw else "absent") or "absent",
        firewalld_ports=tuple(fw_kv.get("ports", "").split()),
        firewalld_protocols=tuple(fw_kv.get("protocols", "").split()),
        firewalld_zone=fw_kv.get("zone", ""),
        selinux=(sel[0].strip() if sel else "absent") or "absent",
        selinux_connect_any=_sebool(sel[1:]),
        listeners=parse_listeners(simple.get("listen", [])),
        backends=parse_stat(simple.get("haproxy_stat", [])),
        lock_owner="\n".join(simple.get("lock", [])).strip(),
        releases=releases,
        release_files=release_files,
    )


def parse_file(path: str, lines: Sequence[str]) -> FileFact:
    if not lines or lines[0].strip() == "absent":
        return FileFact(path, exists=False)
    meta = dict(part.split("=", 1) for part in lines[0].split() if "=" in part)
    sha = _kv(lines[1:2]).get("sha256")
    content = base64.b64decode("".join(lines[2:])) if len(lines) > 2 else b""
    return FileFact(path, exists=True, mode=int(meta.get("mode", "0"), 8), owner=meta.get("owner"),
                    group=meta.get("group"), sha256=sha, content=content)


def parse_backup(path: str, lines: Sequence[str]) -> FileFact:
    meta = dict(part.split("=", 1) for part in (lines[0].split() if lines else []) if "=" in part)
    content = base64.b64decode("".join(lines[1:])) if len(lines) > 1 else b""
    mode = meta.get("mode")
    return FileFact(path, exists=True, mode=int(mode, 8) if mode else None, owner=meta.get("owner"),
                    group=meta.get("group"), content=content)


def parse_unit(name: str, lines: Sequence[str]) -> UnitFact:
    kv = _kv(lines)
    pid = kv.get("MainPID", "0")
    return UnitFact(name=name, loaded=kv.get("LoadState") == "loaded", active=kv.get("ActiveState", ""),
                    enabled=kv.get("UnitFileState", ""), main_pid=int(pid) if pid.isdigit() else 0)


_VERSION_RE = re.compile(r"(?:version|v)\s*(\d+(?:\.\d+)+[^\s]*)", re.IGNORECASE)


def parse_version(banner: str) -> str:
    """``HAProxy version 2.6.12-1+deb12u4 ...`` -> ``2.6.12-1+deb12u4``; ``Keepalived v2.2.7`` -> ``2.2.7``."""
    m = _VERSION_RE.search(banner)
    return m.group(1) if m else banner.strip()


def parse_iface_addresses(lines: Sequence[str]) -> tuple[str, ...]:
    out = []
    for line in lines:
        parts = line.split()
        if "inet" in parts:
            out.append(parts[parts.index("inet") + 1])
    return tuple(out)


_LISTEN_PROC_RE = re.compile(r'users:\(\("([^"]+)"')


def parse_listeners(lines: Sequence[str]) -> tuple[Listener, ...]:
    """``ss -Hltnp`` lines -> listeners (the header line of old ss versions is skipped)."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) < 4 or parts[0] == "State":
            continue
        local = parts[3]
        addr, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        m = _LISTEN_PROC_RE.search(line)
        out.append(Listener(port=int(port), address=addr.strip("[]"), process=m.group(1) if m else ""))
    return tuple(out)


def parse_stat(lines: Sequence[str]) -> dict[str, dict[str, str]]:
    """haproxy ``show stat`` CSV -> {backend: {server: status}} (FRONTEND/BACKEND rows skip)."""
    out: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in lines:
        if line.startswith("# "):
            header = line[2:].split(",")
            continue
        if not header or not line.strip():
            continue
        row = dict(zip(header, line.split(","), strict=False))
        px, sv = row.get("pxname", ""), row.get("svname", "")
        if sv in ("FRONTEND", "BACKEND") or not px:
            continue
        out.setdefault(px, {})[sv] = row.get("status", "")
    return out


def _sebool(lines: Sequence[str]) -> bool | None:
    for line in lines:
        if line.startswith("haproxy_connect_any"):
            return line.rstrip().endswith("on")
    return None
