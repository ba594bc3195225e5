"""Test doubles at hakeep's own seam: a FakeTransport that records scripts, and HostFacts builders."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hakeep.hosts.factlines import Listener
from hakeep.hosts.facts import FileFact, HostFacts, UnitFact, parse_facts
from hakeep.hosts.remote import CommandResult, RemoteCommandError

DATA = Path(__file__).parent / "data" / "facts"


MARK = "5eed"  # the section marker the captured outputs get (sh/facts.sh prints a random one per run)


def marked(text: str) -> str:
    """Facts output captured before the marker existed (``@@name``), as the script prints it now."""
    return "\n".join(f"@@{MARK} {line[2:]}" if line.startswith("@@") else line for line in text.splitlines()) + "\n"


def captured(name: str, host: str = "lb") -> HostFacts:
    """Facts parsed from output captured on a real lab host."""
    return parse_facts(host, marked((DATA / f"{name}.txt").read_text()), MARK)


def facts(host: str, address: str, **overrides: Any) -> HostFacts:
    """A healthy Debian LB with haproxy+keepalived installed and running, nothing deployed yet."""
    base = HostFacts(
        host=host, uid=0, os_id="debian", os_version="12", os_like=(), pkgmgr="apt-get",
        tools={t: f"/usr/bin/{t}" for t in ("haproxy", "keepalived", "systemctl", "ss", "flock")},
        versions={"haproxy": "2.6.12", "keepalived": "2.2.7"}, iface_present=True,
        iface_addresses=(f"{address}/24",), vip_on=(), vip_probe="silent", files={},
        units={u: UnitFact(u, True, "active", "enabled", 100) for u in ("haproxy", "keepalived")},
        vrrp_state="", sysctls={"net.ipv4.ip_nonlocal_bind": "0"}, firewalld="absent", firewalld_ports=(),
        firewalld_protocols=(), firewalld_zone="", selinux="absent", selinux_connect_any=None, listeners=(),
        backends={},
        lock_owner="", releases={},
    )
    return dataclasses.replace(base, **overrides)


def with_files(f: HostFacts, files: dict[str, tuple[bytes, int]]) -> HostFacts:
    import hashlib

    ff = {p: FileFact(p, True, mode, "root", "root", hashlib.sha256(c).hexdigest(), c)
          for p, (c, mode) in files.items()}
    return dataclasses.replace(f, files=ff)


def listening(*ports: tuple[int, str]) -> tuple[Listener, ...]:
    return tuple(Listener(p, "0.0.0.0", proc) for p, proc in ports)


Responder = Callable[[str, str], tuple[int, str]]  # (describe, script) -> (exit code, stdout)


class FakeTransport:
    """Records every script; answers 0/"" unless a responder says otherwise."""

    def __init__(self, host: str, responder: Responder | None = None) -> None:
        self.host = host
        self.calls: list[tuple[str, str, bytes]] = []
        self.responder = responder or (lambda describe, script: (0, ""))
        self.locked: str | None = None
        self.closed = False
        self.cancelled = False

    def run(self, script: str, *, display: str | None = None, privileged: bool = True,
            stdin: bytes = b"", timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        shown = display or script.splitlines()[0]
        self.calls.append((shown, script, stdin))
        code, out = self.responder(shown, script)
        result = CommandResult(shown, code, out.encode(), b"")
        if check and code != 0:
            raise RemoteCommandError(self.host, result, private=private)
        return result

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def lock(self, path: str, owner: str) -> None:
        self.locked = owner

    def unlock(self) -> None:
        self.locked = None

    def close(self) -> None:
        self.closed = True

    def described(self) -> list[str]:
        return [c[0] for c in self.calls]
