"""Facts: what is true on an LB host now, gathered in one remote script and parsed by pure functions.

``facts_script`` fills in ``sh/facts.sh``, the one POSIX-sh script a host runs (privileged) to report
everything the planner needs: OS and package manager, haproxy/keepalived versions, the interface and its
addresses, every managed file (mode, owner, sha256, content), unit states, the VIP, sysctls,
firewalld and SELinux, listening sockets, the lock holder and the release history. It prints
``@@section`` blocks; ``parse_facts`` turns them into a frozen :class:`HostFacts`. Parsing is pure,
so it is tested from captured output (pyinfra's fact = command + parser).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hakeep.errors import HakeepError
from hakeep.hosts import keepalived
from hakeep.hosts.arp import ArpSeen, parse_arp
from hakeep.hosts.factlines import (
    Listener,
    parse_iface_addresses,
    parse_listeners,
    parse_sebool,
    parse_stat,
    parse_vip_ports,
)
from hakeep.hosts.scripts import compose
from hakeep.hosts.versions import parse_candidates, parse_services, parse_version
from hakeep.layout import (
    CA_DIR,
    HAPROXY_CFG,
    KEEPALIVED,
    KEEPALIVED_CONF,
    KEEPALIVED_DATA,
    KEEPALIVED_DUMP_LOCK,
    LOCK_PATH,
    PACKAGES,
    RELEASES_DIR,
    STATS_SOCKETS,
    UNIT_NAMES,
    VRRP_STATE_FILE,
)

FACTS_VERSION = "1"



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
    restarts: int = 0  # automatic restarts (systemd's Restart=) since it was last started by hand
    active_for_s: float | None = None  # since it last became active (None: not active, or unknown)

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading")


@dataclass(frozen=True)
class HostFacts:
    host: str
    uid: int
    os_id: str
    os_version: str
    os_like: tuple[str, ...]
    pkgmgr: str | None
    tools: dict[str, str]
    versions: dict[str, str]  # installed: package -> its version, as the program reports it
    iface_present: bool
    iface_addresses: tuple[str, ...]  # "10.0.0.5/24" on the inventory's interface
    vip_on: tuple[str, ...]  # interfaces carrying the VIP on this host (empty: not here)
    vip_probe: str  # "answers", "silent", "unknown", or "" when this host holds it
    files: dict[str, FileFact]
    units: dict[str, UnitFact]
    vrrp_state: str  # keepalived's VRRP state (its data dump; else the notify script's last record), "" if none
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
    # unit -> why it runs an older config than its file (a failed reload): the journal's line, or "?"
    # (haproxy); how the running VRRP instances differ from the file (keepalived)
    stale: dict[str, str] = field(default_factory=dict)
    # keepalived's own account of what it runs (hakeep.hosts.keepalived's summary lines); () when it
    # is not running; keepalived_answered is False when it is running but wrote no data dump
    keepalived_running: tuple[str, ...] = ()
    keepalived_answered: bool = True
    keepalived_dump_blocked: bool = False  # its dump's path is taken by something hakeep cannot remove
    vrrp_fault: str = ""  # an instance in FAULT: keepalived's journal line that says why ("" if none)
    # who answers ARP for the VIP on the inventory's interface, this LB's own MAC first (when asked)
    vip_arp: tuple[ArpSeen, ...] = ()
    lock_free: bool = True  # no run holds the deploy lock now
    vip_ports: dict[int, bool] = field(default_factory=dict)  # frontend port -> opens through the VIP from here
    # not installed: package -> the version its package manager would install (when it knows)
    candidates: dict[str, str] = field(default_factory=dict)
    # the services haproxy -vv lists ("prometheus-exporter", ...); None: haproxy not installed or not said
    haproxy_services: tuple[str, ...] | None = None
    extra_vip_on: dict[str, tuple[str, ...]] = field(default_factory=dict)  # another VIP -> interfaces here
    extra_vip_probe: dict[str, tuple[str, ...]] = field(default_factory=dict)  # another VIP -> its probe's lines
    vrrp_states: dict[str, str] = field(default_factory=dict)  # instance -> state, as keepalived reports it

    def for_vip(self, address: str, instance: str) -> HostFacts:
        """These facts as seen from one VIP: its holder, its instance's state, who answers ARP for it and
        whether it answers (its ports are tried by status and the deploy's proof, not here)."""
        if address not in self.extra_vip_on:  # the first VIP: its instance's state, whatever order keepalived says
            state = self.vrrp_states.get(instance)
            return self if not state or state == self.vrrp_state else replace(self, vrrp_state=state)
        probe = self.extra_vip_probe.get(address, ())
        return replace(self, vip_on=self.extra_vip_on[address], vip_ports={},
                       vip_probe=next((w for w in probe if w in ("answers", "silent")), ""),
                       vip_arp=tuple(sorted(parse_arp(self.host, "\n".join(probe)), key=lambda a: not a.own)),
                       vrrp_state=self.vrrp_states.get(instance, ""))

    @property
    def holds_vip(self) -> bool:
        return bool(self.vip_on)

    def installed(self, package: str) -> bool:
        return package in self.tools

    def unit_running(self, name: str) -> bool:
        u = self.units.get(name)
        return u is not None and u.running

    def file(self, path: str) -> FileFact:
        return self.files.get(path, FileFact(path, exists=False))


def facts_script(*, interface: str, vip_ip: str, files: Sequence[str], probe_vip: bool = True,
                 ports: Sequence[int] = (), extra_vips: Sequence[str] = ()) -> str:
    """The remote script (sh/facts.sh) with its variables; every value is shell-quoted. Without
    ``probe_vip`` it does not probe the VIP (ARP, ping, ``ports`` through it: up to 1 s, in the
    background, that status spends otherwise)."""
    for path in files:
        if not re.fullmatch(r"/[A-Za-z0-9_./-]+", path):
            raise ValueError(f"unsafe managed path {path!r}")
    return compose("facts.sh", FACTS_VERSION=FACTS_VERSION, IFACE=interface, VIP_IP=vip_ip, EXTRA_VIPS=extra_vips,
                   FILES=files,
                   CA_DIR=CA_DIR, UNITS=UNIT_NAMES, STATE_FILE=VRRP_STATE_FILE, STATS_SOCKET=STATS_SOCKETS,
                   LOCK_OWNER=LOCK_PATH + ".owner", RELEASES=RELEASES_DIR, PROBE_VIP=int(probe_vip), PORTS=ports,
                   HAPROXY_CONFIG=HAPROXY_CFG, VRRP_UNIT=KEEPALIVED.name, KA_DATA=KEEPALIVED_DATA,
                   KA_LOCK=KEEPALIVED_DUMP_LOCK, PACKAGES=PACKAGES)


class FactsError(HakeepError):
    pass


def _sections(text: str, mark: str) -> list[tuple[str, list[str]]]:
    """Only ``@@MARK name`` lines open sections."""
    if not re.fullmatch(r"[0-9a-f]+", mark):
        raise ValueError(f"bad facts marker {mark!r}")
    opener = f"@@{mark} "
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(opener):
            out.append((line[len(opener):], []))
        elif out:
            out[-1][1].append(line)
    return out


def new_mark() -> str:
    """A fresh section marker for one facts run (sent on the script's standard input)."""
    return secrets.token_hex(12)


def _kv(lines: Sequence[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def parse_facts(host: str, text: str, mark: str) -> HostFacts:
    """The facts script's output -> :class:`HostFacts`. ``mark``: the marker sent to the script;
    only lines with it open sections. Output that is incomplete or malformed is a
    :class:`FactsError` naming the host and the section, never a traceback, never the output."""
    sections = _sections(text, mark)
    if not sections or sections[0][0] != f"facts {FACTS_VERSION}" or sections[-1][0] != "end":
        # never echo the output itself: it carries file contents, keepalived.conf's password among them
        seen = ", ".join(name for name, _ in sections[-5:]) or "none"
        raise FactsError(f"{host}: the facts script returned incomplete output (last sections: {seen})",
                         hint="run it again; if it persists, check the host's shell and coreutils")
    names = [name for name, _ in sections]
    twice = sorted({n.split(" ", 1)[0] for n in names if names.count(n) > 1})
    if twice:
        raise FactsError(f"{host}: malformed facts: section {', '.join(twice)} appears twice",
                         hint="the host printed something hakeep did not ask for; look at its shell profile")
    try:
        return _parse(host, sections)
    except (ValueError, LookupError, TypeError, binascii.Error, UnicodeError) as exc:
        raise FactsError(f"{host}: malformed facts ({type(exc).__name__} while reading them)",
                         hint="run it again; if it persists, report it with the host's OS and versions") from None


def _parse(host: str, sections: Sequence[tuple[str, list[str]]]) -> HostFacts:
    simple: dict[str, list[str]] = {}
    files: dict[str, FileFact] = {}
    units: dict[str, UnitFact] = {}
    releases: dict[str, bytes] = {}
    release_files: dict[tuple[str, str], FileFact] = {}
    extra_vip_on: dict[str, tuple[str, ...]] = {}
    for name, lines in sections:
        kind, _, arg = name.partition(" ")
        if kind == "file":
            files[arg] = parse_file(arg, lines)
        elif kind == "unit":
            units[arg] = parse_unit(arg, lines)
        elif kind == "release":
            releases[arg] = base64.b64decode("".join(lines)) if lines else b""
        elif kind == "xvip":
            extra_vip_on[arg] = tuple(line.strip() for line in lines if line.strip())
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
    ka_lines = [line for line in simple.get("keepalived_running", []) if line.strip()]
    ka_running = tuple(line for line in ka_lines if not line.startswith("@"))
    notified = ((simple.get("vrrp_state") or [""])[0].split() or [""])[0]
    ka_states = list(keepalived.states(ka_running).values())
    stale = parse_stale(simple.get("stale", []))
    conf = files.get(KEEPALIVED_CONF)
    if "@answered" in ka_lines and conf is not None and conf.exists and conf.content is not None:
        diffs = keepalived.differences(keepalived.expected(conf.content.decode("utf-8", "replace")), ka_running)
        if diffs:
            stale["keepalived"] = "; ".join(diffs)
    return HostFacts(
        host=host,
        uid=int((simple.get("id") or ["-1"])[0] or -1),
        os_id=os_release.get("ID", ""),
        os_version=os_release.get("VERSION_ID", ""),
        os_like=tuple(os_release.get("ID_LIKE", "").split()),
        pkgmgr=next(iter(simple.get("pkgmgr", [])), "") or None,
        tools=_kv(simple.get("tools", [])),
        versions={k: parse_version(v) for k, v in _kv(simple.get("versions", [])).items()},
        candidates=parse_candidates(simple.get("candidates", [])),
        haproxy_services=parse_services(simple.get("haproxy_services", [])),
        extra_vip_on=extra_vip_on, vrrp_states=keepalived.states(ka_running),
        extra_vip_probe=_by_vip(simple.get("vip_probe", [])),
        iface_present=bool(iface_lines) and iface_lines != ["missing"],
        iface_addresses=parse_iface_addresses(iface_lines),
        vip_on=tuple(line.strip() for line in simple.get("vip", []) if line.strip()),
        vip_probe=next((w for w in (ln.strip() for ln in simple.get("vip_probe", []))
                        if w in ("answers", "silent", "unknown")), ""),
        vip_arp=tuple(sorted(parse_arp(host, "\n".join(simple.get("vip_probe", []))), key=lambda a: not a.own)),
        vip_ports=parse_vip_ports(simple.get("vip_probe", [])),
        files=files,
        units=units,
        vrrp_state=ka_states[0] if ka_states else notified,
        sysctls=_kv(simple.get("sysctl", [])),
        firewalld=(fw[0].strip() if fw else "absent") or "absent",
        firewalld_ports=tuple(fw_kv.get("ports", "").split()),
        firewalld_protocols=tuple(fw_kv.get("protocols", "").split()),
        firewalld_zone=fw_kv.get("zone", ""),
        selinux=(sel[0].strip() if sel else "absent") or "absent",
        selinux_connect_any=parse_sebool(sel[1:]),
        listeners=parse_listeners(simple.get("listen", [])),
        backends=parse_stat(simple.get("haproxy_stat", [])),
        lock_owner="\n".join(simple.get("lock", [])).strip(),
        lock_free=simple.get("lock_state", ["free"])[:1] != ["held"],
        stale=stale,
        keepalived_running=ka_running,
        keepalived_answered="@unanswered" not in ka_lines and "@blocked" not in ka_lines,
        keepalived_dump_blocked="@blocked" in ka_lines,
        vrrp_fault=next((line[len("@why="):].strip() for line in ka_lines if line.startswith("@why=")), ""),
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


def parse_stale(lines: Sequence[str]) -> dict[str, str]:
    """``unit=journal line`` (then ``unit=?``): the first word said for each unit."""
    out: dict[str, str] = {}
    for line in lines:
        unit, sep, why = line.partition("=")
        if sep and unit not in out:
            out[unit] = why.strip()
    return out


def parse_unit(name: str, lines: Sequence[str]) -> UnitFact:
    kv = _kv(lines)
    pid, restarts = kv.get("MainPID", "0"), kv.get("NRestarts", "0")
    since, now = kv.get("ActiveEnterTimestampMonotonic", ""), kv.get("Now", "")
    active_for = None
    if kv.get("ActiveState") == "active" and since.isdigit() and now.isdigit() and 0 < int(since) <= int(now):
        active_for = round((int(now) - int(since)) / 1e6, 1)
    return UnitFact(name=name, loaded=kv.get("LoadState") == "loaded", active=kv.get("ActiveState", ""),
                    enabled=kv.get("UnitFileState", ""), main_pid=int(pid) if pid.isdigit() else 0,
                    restarts=int(restarts) if restarts.isdigit() else 0, active_for_s=active_for)


def _by_vip(lines: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The other VIPs' probe lines (``xvip=ADDRESS rest``), each VIP's without its prefix."""
    out: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("xvip="):
            address, _, rest = line[5:].partition(" ")
            out.setdefault(address, []).append(rest.strip())
    return {a: tuple(v) for a, v in out.items()}
