"""Parsers of single facts sections (sh/facts.sh's output): interface addresses, listening sockets,
haproxy's backend states, SELinux booleans, ports through the VIP. Pure; :mod:`.facts` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    port: int
    address: str
    process: str  # e.g. "haproxy", or "" when ss could not tell



def parse_iface_addresses(lines: Sequence[str]) -> tuple[str, ...]:
    """The interface's addresses ("10.0.0.5/24", "fd00::5/64") from ``ip -o addr show dev IFACE``:
    IPv4, and IPv6 but its link-local ones (every interface has one; no inventory names it)."""
    out = []
    for line in lines:
        parts = line.split()
        if "tentative" in parts or "dadfailed" in parts:  # not usable (yet, or at all: a duplicate)
            continue
        for family in ("inet", "inet6"):
            if family in parts and parts.index(family) + 1 < len(parts):
                cidr = parts[parts.index(family) + 1]
                if not cidr.lower().startswith("fe80:"):
                    out.append(cidr)
    return tuple(out)


SYSTEM_DIRS = ("/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/", "/usr/lib/", "/usr/libexec/", "/usr/local/sbin/",
               "/usr/local/bin/")


def program(exe: str) -> str:
    """A listener's program as preflight names it: the file name of a program installed in a
    system folder (only root writes there), else its whole path (``/tmp/haproxy`` is not haproxy);
    "" when unknown."""
    if exe in ("", "-"):
        return ""
    return exe.rsplit("/", 1)[-1] if exe.startswith(SYSTEM_DIRS) else exe


def parse_listeners(lines: Sequence[str]) -> tuple[Listener, ...]:
    """``ADDRESS:PORT EXE`` lines (sh/facts.sh) -> listeners; anything else is skipped."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        addr, _, port = parts[0].rpartition(":")
        if not port.isdigit() or not addr:
            continue
        out.append(Listener(port=int(port), address=addr.strip("[]"), process=program(parts[1])))
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


def parse_sebool(lines: Sequence[str]) -> bool | None:
    for line in lines:
        if line.startswith("haproxy_connect_any"):
            return line.rstrip().endswith("on")
    return None


def parse_vip_ports(lines: Sequence[str]) -> dict[int, bool]:
    """``port=N:open|closed`` lines: each frontend port, tried through the VIP from this host."""
    out: dict[int, bool] = {}
    for line in lines:
        port, sep, state = line.strip().removeprefix("port=").partition(":")
        if line.strip().startswith("port=") and sep and port.isdigit() and state in ("open", "closed"):
            out[int(port)] = state == "open"
    return out
