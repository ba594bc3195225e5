"""Connecting to the LBs: one SSH connection per host, opened from what :mod:`.sshhosts` builds,
all hosts at once with a deadline (an abandoned connect never holds up the run), settling how to
become root (directly, or through sudo with or without a password that never leaves memory except
on sudo's stdin), and every network, SSH and sudo failure turned into a
:class:`~hakeep.errors.HakeepError` with a hint. Imports paramiko, like :mod:`.transport`.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paramiko

from hakeep.errors import HakeepError
from hakeep.hosts.remote import (
    SUDO_PROBE,
    SUDO_STDIN_PROBE,
    ConnectError,
    Privilege,
    SudoError,
    Transport,
    connect_kind,
    privileged_stdin,
)
from hakeep.hosts.sshhosts import config_label, connection, failure_reason
from hakeep.hosts.transport import _PROBE_TIMEOUT, SSHTransport, _close_connection, _Secret
from hakeep.inventory.model import LoadBalancer

__all__ = ["connect", "connect_all"]


def connect(lb: LoadBalancer, *, accept_new_host_keys: bool = False,
            sudo_password: Callable[[], str] | None = None, secret_env: Sequence[str] = ()) -> Transport:
    """Open the one SSH connection to ``lb`` and settle how to become root on it. No local process
    this starts (ProxyCommand, ``Match exec``) gets HAKEEP_SUDO_PASSWORD or a variable ``secret_env``
    names (the inventory's password variables)."""
    cxn, checkers = connection(lb, accept_new_host_keys, secret_env)
    try:
        _open(lb, cxn)
        session = SSHTransport(lb.name, cxn)
        session.host_keys_recorded = tuple(c.recorded for c in checkers if c.recorded)
        _settle_privilege(lb, session, sudo_password)
    except BaseException:
        _close_connection(cxn)
        raise
    return session


def connect_all(lbs: Sequence[LoadBalancer], *, accept_new_host_keys: bool = False,
                sudo_password: Callable[[], str] | None = None, deadline: float | None = None,
                secret_env: Sequence[str] = ()) -> dict[str, Transport | HakeepError]:
    """Connect to every LB at once; each one's transport or error, in inventory order.

    With ``deadline`` (a ``time.monotonic()`` value), a host that has not answered by then is
    reported as timed out: the run goes on without it, and a connection that opens later is closed
    at once. Connections open in daemon threads, so an abandoned one never holds up the exit.
    """
    results: dict[str, Transport | BaseException] = {}
    abandoned: set[str] = set()
    guard = threading.Lock()

    def one(lb: LoadBalancer) -> None:
        outcome: Transport | BaseException
        try:
            outcome = connect(lb, accept_new_host_keys=accept_new_host_keys, sudo_password=sudo_password,
                              secret_env=secret_env)
        except BaseException as exc:  # this host's outcome; a bug is re-raised below
            outcome = exc
        with guard:
            if lb.name not in abandoned:
                results[lb.name] = outcome
                return
        if not isinstance(outcome, BaseException):
            outcome.close()  # too late: the run went on without this host

    threads = [threading.Thread(target=one, args=(lb,), daemon=True, name=f"hakeep-connect-{lb.name}")
               for lb in lbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with guard:
        for lb in lbs:
            if lb.name not in results:
                abandoned.add(lb.name)
                results[lb.name] = ConnectError(
                    f"{lb.name}: no SSH answer from {lb.address} within {lb.ssh.connect_timeout:g}s",
                    hint="the host may be down or cut off, or its sshd hung", kind="timeout")
    outcomes: dict[str, Transport | HakeepError] = {}
    bug: BaseException | None = None
    for lb in lbs:
        r = results[lb.name]
        if isinstance(r, HakeepError) or not isinstance(r, BaseException):
            outcomes[lb.name] = r
        else:
            bug = bug or r
    if bug is not None:  # a bug, not a host problem: close what opened, re-raise
        for r in outcomes.values():
            if not isinstance(r, HakeepError):
                r.close()
        raise bug
    return outcomes


def _open(lb: LoadBalancer, cxn: Any) -> None:
    where = f"{cxn.host}:{cxn.port}"
    via = ""
    if isinstance(cxn.gateway, str):
        via = f" (through ProxyCommand {cxn.gateway})"
    elif cxn.gateway:
        via = f" (through ProxyJump {cxn.gateway.user}@{cxn.gateway.host}:{cxn.gateway.port})"
    config = config_label(lb.ssh.config)
    try:
        cxn.open()
        _no_delay(cxn)
    except HakeepError:
        raise
    except paramiko.AuthenticationException as exc:
        raise ConnectError(
            f"{lb.name}: cannot log in to {where} as {cxn.user}: {failure_reason(exc)}",
            hint="check the user and identity_file in the inventory (or User/IdentityFile in "
                 f"{config}), that ssh-agent holds the key, and the host's authorized_keys", kind="auth") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        why = _proxy_failure(cxn) or failure_reason(exc, cxn.connect_timeout)
        raise ConnectError(
            f"{lb.name}: cannot connect to {where}{via}: {why}",
            hint=f"check the address, the port and any firewall on the way, or {config}",
            kind=connect_kind(why)) from None


def _no_delay(cxn: Any) -> None:
    """Send small writes at once (TCP_NODELAY, as OpenSSH does), on this hop and every ProxyJump hop
    before it: with Nagle's algorithm a command's stdin and its EOF waited for the peer's delayed
    ACK, ~40 ms each time (an upload took 90 ms instead of 10 on the lab)."""
    while cxn is not None and not isinstance(cxn, str):
        transport = cxn.client.get_transport() if getattr(cxn, "client", None) is not None else None
        sock = getattr(transport, "sock", None)
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cxn = getattr(cxn, "gateway", None)


def _settle_privilege(lb: LoadBalancer, session: SSHTransport,
                      sudo_password: Callable[[], str] | None) -> None:
    if session.user == "root":
        session.privilege = Privilege.ROOT
        return
    if not lb.ssh.sudo:
        session.privilege = Privilege.USER
        return
    probe = session.run(SUDO_PROBE, privileged=False, timeout=_PROBE_TIMEOUT, check=False)
    if probe.ok:
        session.privilege = Privilege.SUDO
        return
    if probe.exit_code == 127:
        raise SudoError(f"{lb.name}: sudo = true in the inventory, but sudo is not installed",
                        hint="install sudo on the host, or log in as root")
    if sudo_password is None:
        raise SudoError(f"{lb.name}: sudo asks {session.user} for a password and none was given",
                        hint="give the sudo password (prompt or HAKEEP_SUDO_PASSWORD), or allow "
                             f"{session.user} passwordless sudo (NOPASSWD)")
    session._password = _Secret(sudo_password())
    session.privilege = Privilege.SUDO_STDIN
    check = session.run(SUDO_STDIN_PROBE, display="sudo -S true", privileged=False,
                        stdin=privileged_stdin(Privilege.SUDO_STDIN, session._secret(), b""),
                        timeout=_PROBE_TIMEOUT, check=False)
    if not check.ok:
        said = check.stderr.decode(errors="replace").strip().splitlines()
        raise SudoError(f"sudo password rejected on {lb.name} (user {session.user})",
                        hint=f"sudo said: {said[-1]}" if said else
                        "check the password, and that the user may use sudo")


def _proxy_failure(cxn: Any) -> str | None:
    """Why the ProxyCommand died (exit code, its last stderr line), or None if it did not."""
    sock = getattr(cxn.client.get_transport(), "sock", None)
    if not isinstance(sock, paramiko.ProxyCommand):
        return None
    _close_connection(cxn)  # stops paramiko's thread (which signals the proxy) and reaps it
    proc = sock.process
    if proc.returncode is None or proc.returncode < 0:  # still running, or killed by our close
        return None
    said = b""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        stderr: Any = proc.stderr
        os.set_blocking(stderr.fileno(), False)
        said = stderr.read(4096) or b""
    last = said.decode(errors="replace").strip().splitlines()
    return f"the ProxyCommand exited with code {proc.returncode}" + (f": {last[-1]}" if last else "")


