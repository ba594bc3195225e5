"""A session with the LB hosts: connect to all, optionally lock all, gather facts once.

Commands that touch hosts (deploy, dry-run, rollback, diff, releases, status, drill) open one :class:`Session`:
one SSH connection per host for the whole run (in parallel), the remote deploy lock when the command
changes things, and the facts of every host gathered in one round trip each. Connection and lock
failures of all hosts are collected and reported together; then nothing has been changed.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets as pysecrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hakeep.errors import HakeepError, UsageError
from hakeep.hosts.facts import HostFacts, facts_script, parse_facts
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import Transport
from hakeep.inventory.model import Inventory
from hakeep.layout import LOCK_PATH
from hakeep.render.engine import managed_paths

SUDO_ENV = "HAKEEP_SUDO_PASSWORD"

Connector = Callable[..., Mapping[str, "Transport | HakeepError"]]


class PreflightError(HakeepError):
    """Some hosts cannot be used; nothing was changed anywhere."""


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def new_release_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + pysecrets.token_hex(3)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SudoPassword:
    """One sudo password for the whole run: from $HAKEEP_SUDO_PASSWORD, else one prompt on the TTY."""

    def __init__(self, env: Mapping[str, str] | None = None, interactive: bool | None = None) -> None:
        self._env = os.environ if env is None else env
        self._interactive = interactive
        self._lock = threading.Lock()
        self._value: str | None = None

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                value = self._env.get(SUDO_ENV)
                if not value:
                    tty = self._interactive if self._interactive is not None else os.isatty(0)
                    if not tty:
                        raise UsageError(f"sudo needs a password: set {SUDO_ENV} or run from a terminal")
                    value = getpass.getpass("sudo password for the LB hosts: ")
                self._value = value
            return self._value

    def __repr__(self) -> str:
        return "SudoPassword(<hidden>)"


@dataclass
class Session:
    inv: Inventory
    transports: dict[str, Transport]
    facts: dict[str, HostFacts]

    def recorded_host_keys(self) -> list[str]:
        """What --accept-new-host-keys wrote to known_hosts (to tell the user, as ssh does)."""
        return [k for t in self.transports.values() for k in getattr(t, "host_keys_recorded", ())]

    def close(self) -> None:
        for t in self.transports.values():
            with contextlib.suppress(Exception):  # closing is best effort; the run's outcome stands
                t.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    inv: Inventory,
    *,
    lock: bool,
    accept_new_host_keys: bool = False,
    sudo_password: Callable[[], str] | None = None,
    connect: Connector | None = None,
) -> Session:
    """Connect to every LB (parallel), lock them when ``lock``, and gather their facts."""
    if connect is None:
        from hakeep.hosts.transport import connect_all

        connect = connect_all
    results = connect(inv.lbs, accept_new_host_keys=accept_new_host_keys,
                      sudo_password=sudo_password or SudoPassword())
    transports = {n: r for n, r in results.items() if not isinstance(r, HakeepError)}
    failures = [r for r in results.values() if isinstance(r, HakeepError)]
    session = Session(inv, transports, {})
    try:
        if failures:
            raise _combine(failures, "cannot reach every LB; nothing was changed")
        if lock:
            owner = f"{operator()} pid {os.getpid()} since {now_iso()}"
            locked = parallel(lambda n: transports[n].lock(LOCK_PATH, owner), list(transports))
            errs = [e for e in locked.values() if isinstance(e, HakeepError)]
            if errs:
                raise _combine(errs, "another deploy is running; nothing was changed")
        session.facts = gather_facts(inv, transports, managed_paths(inv))
    except BaseException:
        session.close()
        raise
    return session


def gather_facts(inv: Inventory, transports: Mapping[str, Transport], paths: Sequence[str]) -> dict[str, HostFacts]:
    def one(name: str) -> HostFacts:
        lb = inv.lb(name)
        script = facts_script(interface=lb.interface, vip_ip=str(inv.cluster.vip.ip), files=paths)
        res = transports[name].run(script, display="gather facts", timeout=120, check=False)
        if not res.ok:  # no output tail in the message: facts carry file contents (and passwords)
            raise HakeepError(f"{name}: gathering facts failed (exit code {res.exit_code})",
                              hint="check that the login works and the user can become root on the host")
        return parse_facts(name, res.text())

    out = parallel(one, [lb.name for lb in inv.lbs])
    errs = [e for e in out.values() if isinstance(e, HakeepError)]
    if errs:
        raise _combine(errs, "could not gather facts; nothing was changed")
    return {n: f for n, f in out.items() if isinstance(f, HostFacts)}


def _combine(errors: Sequence[HakeepError], summary: str) -> PreflightError:
    lines = [e.message for e in errors]
    hints = sorted({e.hint for e in errors if e.hint})
    return PreflightError("\n".join([*lines, summary]), hint="; ".join(hints) or None)
