"""A session with the LB hosts: connect to all, optionally lock all, gather facts once.

Commands that touch hosts (deploy, dry-run, rollback, diff, releases, status, drill) open one :class:`Session`:
one SSH connection per host for the whole run (in parallel), the remote deploy lock when the command
changes things, and the facts of every host gathered in one round trip each. Connection and lock
failures of all hosts are collected and reported together; then nothing has been changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import ipaddress
import os
import secrets as pysecrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from hakeep import signals
from hakeep.errors import HakeepError, UnreachableError, UsageError
from hakeep.hosts.childenv import SUDO_ENV
from hakeep.hosts.facts import HostFacts, facts_script, new_mark, parse_facts
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import Transport
from hakeep.inventory.model import Inventory, LoadBalancer
from hakeep.layout import LOCK_PATH
from hakeep.plan.members import dropped, matches
from hakeep.render.engine import managed_paths
from hakeep.render.secrets import secret_env_names

Connector = Callable[..., Mapping[str, "Transport | HakeepError"]]


class PreflightError(HakeepError):
    """Some hosts cannot be used; nothing was changed anywhere."""


class NotAsked(HakeepError):
    """An LB left out by ``status --limit``: not connected to, so nothing is known of it."""

    kind = "not asked (--limit)"


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
                if "\n" in value or "\r" in value or "\0" in value:
                    raise UsageError(f"the sudo password ({SUDO_ENV}) holds a line break or a NUL; sudo -S reads one "
                                     "line", hint="give the password alone, without a trailing newline")
                self._value = value
            return self._value

    def ask_now(self) -> None:
        """Prompt now, on a terminal, if no password is set (before a deadline starts ticking);
        without a terminal, a password that is needed is refused when it is asked for."""
        tty = self._interactive if self._interactive is not None else os.isatty(0)
        if not self._env.get(SUDO_ENV) and tty:
            with self._lock:
                if self._value is None:
                    self._value = getpass.getpass("sudo password for the LB hosts (empty if sudo needs none): ")

    def __repr__(self) -> str:
        return "SudoPassword(<hidden>)"


@dataclass
class Session:
    inv: Inventory
    transports: dict[str, Transport]  # the LBs reached
    facts: dict[str, HostFacts]  # of every LB reached
    unreachable: dict[str, HakeepError] = field(default_factory=dict)  # the LBs not reached, and why
    #: seconds spent per phase of the run (connect, lock, facts, install, validate, rollout, proof)
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time what runs inside as ``name`` (added up when a phase comes back)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - start, 3)

    def reasons(self) -> dict[str, str]:
        """The LBs not reached, and why in one word."""
        return {n: reason(e) for n, e in self.unreachable.items()}

    def recorded_host_keys(self) -> list[str]:
        """What --accept-new-host-keys wrote to known_hosts (to tell the user, as ssh does)."""
        return [k for t in self.transports.values() for k in getattr(t, "host_keys_recorded", ())]

    def close(self) -> None:
        """Stop whatever still runs on the hosts, release the locks, close the connections; a
        second Ctrl-C (or SIGTERM) waits until that is done."""
        def one(name: str) -> None:
            with contextlib.suppress(Exception):  # closing is best effort; the run's outcome stands
                self.transports[name].close()

        with signals.shielded():  # every host at once: each waits for its lock holder and SSH thread to end
            parallel(one, list(self.transports), workers=max(1, len(self.transports)))

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reason(err: HakeepError) -> str:
    """One word for why an LB was not reached (timeout, refused, auth, host key, ...)."""
    return str(getattr(err, "kind", "error"))


def open_session(
    inv: Inventory,
    *,
    lock: bool,
    command: str = "deploy",
    limit: Sequence[str] | None = None,
    tolerate_unreachable: bool = False,
    deadline_s: float | None = None,
    facts_timeout: float = 120.0,
    gather: bool = True,
    accept_new_host_keys: bool = False,
    sudo_password: Callable[[], str] | None = None,
    connect: Connector | None = None,
    only: Sequence[str] | None = None,
) -> Session:
    """Connect to every LB (parallel), lock the reachable ones when ``lock``, and gather their facts.

    An LB the command acts on (every LB, or those in ``limit``) that cannot be reached refuses the
    run with :class:`~hakeep.errors.UnreachableError`, naming each LB and why, with the ``--limit``
    that would work; nothing is changed. An unreachable LB outside ``limit`` is only recorded in
    :attr:`Session.unreachable` (the pair is degraded); with ``tolerate_unreachable`` (status) every
    unreachable LB is. ``deadline_s`` bounds the connecting, however many LBs are down. Without
    ``gather``, facts are left to the caller (status gathers them side by side with its probes).
    With ``only`` (status --limit), the other LBs are not even connected to: they are recorded as
    :class:`NotAsked`.
    """
    if connect is None:
        from hakeep.hosts.connecting import connect_all

        connect = connect_all
    started = time.monotonic()
    deadline = started + deadline_s if deadline_s is not None else None
    asked = [lb for lb in inv.lbs if only is None or lb.name in only]
    results = connect(asked, accept_new_host_keys=accept_new_host_keys,
                      sudo_password=sudo_password or SudoPassword(), deadline=deadline,
                      secret_env=secret_env_names(inv))
    transports = {n: r for n, r in results.items() if not isinstance(r, HakeepError)}
    failed: dict[str, HakeepError] = {n: r for n, r in results.items() if isinstance(r, HakeepError)}
    failed.update({lb.name: NotAsked(f"{lb.name}: not asked (--limit)") for lb in inv.lbs if lb not in asked})
    session = Session(inv, transports, {}, dict(failed), {"connect": round(time.monotonic() - started, 3)})
    try:
        usage = [e for e in failed.values() if isinstance(e, UsageError)]
        if usage:
            raise usage[0]
        needed = [lb.name for lb in inv.lbs if limit is None or lb.name in limit]
        if not tolerate_unreachable and any(n in failed for n in needed):
            raise _unreachable(inv, command, failed, [n for n in needed if n in transports])
        if lock:
            with session.phase("lock"):
                _lock(transports)
        if not gather:
            return session
        with session.phase("facts"):
            facts, errors = gather_facts(inv, transports, managed_paths(inv), timeout=facts_timeout)
        blocking = [e for n, e in errors.items() if n in needed]
        if blocking and not tolerate_unreachable:  # one outside --limit is only recorded, like an unreachable one
            raise _combine(blocking, "could not gather facts; nothing was changed")
        session.facts = facts
        session.unreachable.update(errors)
    except BaseException:
        session.close()
        raise
    return session


def join_leaving(session: Session, words: Sequence[str], *, lock: bool, accept_new_host_keys: bool = False,
                 connect: Connector | None = None) -> dict[str, HostFacts]:
    """Reach the LBs ``words`` name (deploy --decommission): members the hosts remember that the
    inventory dropped. Each is connected with the inventory's SSH settings, locked and asked for its
    facts like the others; its transport joins the session. A word naming no such member, or a
    member that cannot be reached, refuses the run (nothing changed; --forget is for the gone)."""
    if not words:
        return {}
    inv = session.inv
    gone = dropped(inv, session.facts)
    extra: list[LoadBalancer] = []
    for word in words:
        found = [m for m in gone if matches(m, word)]
        if not found:
            raise PreflightError(f"--decommission {word}: no LB the hosts remember is called that, or it is still "
                                 "in the inventory", hint="the names and addresses of dropped LBs are listed by a "
                                 "deploy without --decommission")
        m = found[0]
        v4 = next((a for a in (m.address, *m.also) if ":" not in a), None)
        if v4 is None:  # known only by an IPv6 VRRP address: hakeep reaches an LB over IPv4
            raise PreflightError(f"--decommission {word}: the hosts remember {m.label} only by its IPv6 address; "
                                 "hakeep reaches an LB at its IPv4 address",
                                 hint="give that LB's IPv4 address (or --forget this one if it is the same host)")
        template = inv.lbs[0]
        extra.append(dataclasses.replace(template, name=m.name or v4, address=ipaddress.IPv4Address(v4),
                                         priority=1, address6=None))
    if connect is None:
        from hakeep.hosts.connecting import connect_all

        connect = connect_all
    results = connect(extra, accept_new_host_keys=accept_new_host_keys, sudo_password=SudoPassword(),
                      secret_env=secret_env_names(inv))
    failed = {n: r for n, r in results.items() if isinstance(r, HakeepError)}
    transports = {n: r for n, r in results.items() if not isinstance(r, HakeepError)}
    session.transports.update(transports)
    if failed:
        raise PreflightError("\n".join(f"{e.message} [{reason(e)}]" for e in failed.values())
                             + "\nan LB to decommission cannot be reached; nothing was changed",
                             hint="if it is gone for good, use --forget instead of --decommission")
    if lock:
        _lock(transports)
    wider = dataclasses.replace(inv, lbs=(*inv.lbs, *extra))
    facts, errors = gather_facts(wider, transports, managed_paths(inv))
    if errors:
        raise _combine(list(errors.values()), "could not gather facts; nothing was changed")
    return facts


def _lock(transports: Mapping[str, Transport]) -> None:
    """Take hakeep's lock on every host at once; one held elsewhere refuses the run."""
    owner = f"{operator()} pid {os.getpid()} since {now_iso()}"
    locked = parallel(lambda n: transports[n].lock(LOCK_PATH, owner), list(transports))
    errs = [e for e in locked.values() if isinstance(e, HakeepError)]
    if errs:
        raise _combine(errs, "another deploy is running; nothing was changed")


def _unreachable(inv: Inventory, command: str, failed: Mapping[str, HakeepError],
                 reachable: Sequence[str]) -> UnreachableError:
    lines = [f"{e.message} [{reason(e)}]" for e in failed.values()]
    lines.append(f"{len(failed)} of {len(inv.lbs)} LBs cannot be reached; nothing was changed")
    hint = "; ".join(sorted({e.hint for e in failed.values() if e.hint})) or None
    if reachable:
        limits = " ".join(f"--limit {n}" for n in reachable)
        hint = (f"to act on the reachable LBs only: hakeep {command} {shlex.quote(str(inv.path))} {limits}"
                + (f" ({hint})" if hint else ""))
    return UnreachableError("\n".join(lines), hint=hint, hosts={n: reason(e) for n, e in failed.items()})


def gather_facts(inv: Inventory, transports: Mapping[str, Transport], paths: Sequence[str] | None = None, *,
                 timeout: float = 120.0, probe_vip: bool = True) -> tuple[dict[str, HostFacts], dict[str, HakeepError]]:
    """Every reached LB's facts, in one round trip each; and the LBs whose facts could not be read."""
    paths = managed_paths(inv) if paths is None else paths

    def one(name: str) -> HostFacts:
        lb = inv.lb(name)
        script = facts_script(interface=lb.interface, vip_ip=str(inv.cluster.vip.ip), files=paths,
                              ports=sorted({fe.port for fe in inv.frontends
                                     if not inv.extra_vips or inv.serves(inv.vips[0], fe)}),
                              probe_vip=probe_vip, extra_vips=[str(v.address.ip) for v in inv.extra_vips])
        mark = new_mark()  # on stdin: no host-printed text can open a section
        res = transports[name].run(script, display="gather facts", timeout=timeout, check=False, private=True,
                                   stdin=f"{mark}\n".encode())
        if not res.ok:  # no output tail in the message: facts carry file contents (and passwords)
            raise HakeepError(f"{name}: gathering facts failed (exit code {res.exit_code})",
                              hint="check that the login works and the user can become root on the host")
        return parse_facts(name, res.text(), mark)

    out = parallel(one, list(transports))
    return ({n: f for n, f in out.items() if isinstance(f, HostFacts)},
            {n: e for n, e in out.items() if isinstance(e, HakeepError)})


def _combine(errors: Sequence[HakeepError], summary: str) -> PreflightError:
    lines = [e.message for e in errors]
    hints = sorted({e.hint for e in errors if e.hint})
    return PreflightError("\n".join([*lines, summary]), hint="; ".join(hints) or None)


def connect_hosts(lbs: Sequence[LoadBalancer], *, accept_new_host_keys: bool = False,
                  connect: Connector | None = None) -> dict[str, Transport]:
    """Connect to these LBs (no inventory yet: ``hakeep import``); every one must answer, else
    :class:`~hakeep.errors.UnreachableError` naming each and why (the others are closed)."""
    if connect is None:
        from hakeep.hosts.connecting import connect_all

        connect = connect_all
    results = connect(lbs, accept_new_host_keys=accept_new_host_keys, sudo_password=SudoPassword(),
                      deadline=time.monotonic() + max(lb.ssh.connect_timeout for lb in lbs) + 5)
    failed = {n: r for n, r in results.items() if isinstance(r, HakeepError)}
    transports = {n: r for n, r in results.items() if not isinstance(r, HakeepError)}
    if failed:
        for t in transports.values():
            with contextlib.suppress(Exception):
                t.close()
        usage = [e for e in failed.values() if isinstance(e, UsageError)]
        if usage:
            raise usage[0]
        raise UnreachableError("\n".join(e.message for e in failed.values()) + "\nnothing was read: every LB of "
                               "the pair is needed", hint=next(iter(failed.values())).hint,
                               hosts={n: reason(e) for n, e in failed.items()})
    return transports
