"""The SSH transport: with :mod:`.sshhosts` and :mod:`.channel`, the only modules that import paramiko.

It owns the one SSH connection per host, opened from what :mod:`hakeep.hosts.sshhosts` builds (ssh_config,
ProxyCommand/ProxyJump, known_hosts and the host-key policy live there) and reused for every command,
becoming root (directly, or through sudo with or without a password that never leaves memory except
on sudo's stdin), the remote deploy lock, closing every hop and reaping any ProxyCommand, and turning
every network, SSH and sudo failure into a :class:`~hakeep.errors.HakeepError` with a hint. The
shapes of the remote commands (quoting, sudo wrapping, the lock script) are pure and live in
:mod:`hakeep.hosts.remote`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paramiko

from hakeep.errors import HakeepError
from hakeep.hosts.channel import collect, feed, read_lock_answer
from hakeep.hosts.remote import (
    LOCK_ACQUIRED,
    LOCK_BUSY,
    SUDO_PROBE,
    SUDO_STDIN_PROBE,
    CommandResult,
    ConnectError,
    LockedError,
    Privilege,
    RemoteCommandError,
    SudoError,
    Transport,
    connect_kind,
    display_of,
    lock_script,
    privileged_stdin,
    shell_command,
    wrap_privileged,
)
from hakeep.hosts.sshhosts import config_label, connection, failure_reason
from hakeep.inventory.model import LoadBalancer

__all__ = ["SSHTransport", "connect", "connect_all"]

# paramiko logs (with tracebacks) from its own threads when a host drops; hakeep reports failures
# itself, so keep that off the console whatever logging the CLI sets up.
for _name in ("paramiko", "fabric", "invoke"):
    _log = logging.getLogger(_name)
    _log.addHandler(logging.NullHandler())
    _log.propagate = False

_PROBE_TIMEOUT = 30.0
_LOCK_TIMEOUT = 30.0


class _Secret:
    """A password that never shows itself in a repr, a str or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class SSHTransport:
    """One open SSH connection to one LB (see :class:`hakeep.hosts.remote.Transport`)."""

    def __init__(self, name: str, cxn: Any) -> None:
        self.host = name
        self._cxn = cxn
        self.address = f"{cxn.host}:{cxn.port}"
        self.user: str = cxn.user
        self.privilege = Privilege.USER
        self._password: _Secret | None = None
        self._lock_chan: paramiko.Channel | None = None
        self._lock_path: str | None = None
        #: "name type key SHA256:... in FILE" for each host key this connect recorded (to report)
        self.host_keys_recorded: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"<SSHTransport {self.host} {self.user}@{self.address} "
                f"privilege={self.privilege.value}>")

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running commands ---------------------------------------------------------------------

    def run(self, script: str, *, display: str | None = None, privileged: bool = True,
            stdin: bytes = b"", timeout: float = 300.0, check: bool = True) -> CommandResult:
        shown = display_of(script, display)
        if privileged:
            command = wrap_privileged(script, self.privilege)
            data = privileged_stdin(self.privilege, self._secret(), stdin)
        else:
            command, data = shell_command(script), stdin
        return self._exec(command, shown, data, timeout=timeout, check=check)

    def _secret(self) -> str | None:
        return self._password.reveal() if self._password is not None else None

    def _exec(self, command: str, shown: str, data: bytes, *, timeout: float,
              check: bool) -> CommandResult:
        chan = self._open(command, shown)
        try:
            writer = threading.Thread(target=feed, args=(chan, data, True), daemon=True)
            writer.start()
            out, err, finished = collect(chan, time.monotonic() + timeout)
            code = chan.recv_exit_status() if finished else -1
        finally:
            chan.close()
        result = CommandResult(shown, code, self._scrub(out), self._scrub(err))
        if not finished:
            raise RemoteCommandError(
                self.host, result, reason=f"timed out after {timeout:g}s",
                hint="the command did not finish in time; look at the host (it may still be running)")
        if code == -1:
            self._check_alive(shown)
            if check:
                raise RemoteCommandError(self.host, result,
                                         reason="ended without an exit status (killed by a signal?)")
        if check and code != 0:
            raise RemoteCommandError(self.host, result)
        return result

    def _open(self, command: str, shown: str) -> paramiko.Channel:
        """A session channel on the shared connection with ``command`` started on it."""
        transport = self._cxn.transport
        try:
            if transport is None or not transport.is_active():
                raise EOFError("the connection is closed")
            chan: paramiko.Channel = transport.open_session(timeout=_PROBE_TIMEOUT)
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectError(f"{self.host}: connection lost before `{shown}`: {failure_reason(exc)}",
                               hint="check the host and the network, then re-run") from None
        return chan

    def _check_alive(self, shown: str) -> None:
        transport = self._cxn.transport
        if transport is None or not transport.is_active():
            raise ConnectError(f"{self.host}: connection lost while running `{shown}`",
                               hint="check the host and the network, then re-run")

    def _scrub(self, data: bytes) -> bytes:
        """Output can never carry the sudo password back (e.g. if sudo unexpectedly didn't read it)."""
        secret = self._secret()
        if secret:
            data = data.replace(secret.encode(), b"<hidden>")
        return data

    # --- the deploy lock ----------------------------------------------------------------------

    def lock(self, path: str, owner: str) -> None:
        if self._lock_chan is not None:
            raise RuntimeError(f"{self.host}: already holding {self._lock_path}")
        shown = f"lock {path}"
        chan = self._open(wrap_privileged(lock_script(path, owner), self.privilege), shown)
        try:
            # stdin stays open: the lock lives until it reaches EOF (unlock, close, or our death)
            feed(chan, privileged_stdin(self.privilege, self._secret(), b""), eof=False)
            out, err, state = read_lock_answer(chan, time.monotonic() + _LOCK_TIMEOUT)
        except BaseException:
            chan.close()
            raise
        if state == LOCK_ACQUIRED:
            self._lock_chan, self._lock_path = chan, path
            return
        chan.close()
        if state == LOCK_BUSY:
            holder = self._scrub(out).decode(errors="replace").split("\n", 1)[1].strip()
            raise LockedError(self.host, path, holder)
        code = chan.exit_status if chan.exit_status_ready() else -1
        result = CommandResult(shown, code, self._scrub(out), self._scrub(err))
        raise RemoteCommandError(self.host, result, reason="could not take the lock" if code != -1
                                 else f"gave no answer within {_LOCK_TIMEOUT:g}s",
                                 hint="flock (util-linux) must be installed on the host")

    def unlock(self) -> None:
        chan, self._lock_chan, self._lock_path = self._lock_chan, None, None
        if chan is None:
            return
        try:
            chan.shutdown_write()
            chan.status_event.wait(10.0)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the connection is gone: so is the lock
        finally:
            chan.close()

    def close(self) -> None:
        try:
            self.unlock()
        finally:
            _close_connection(self._cxn)


# --- connecting ---------------------------------------------------------------------------------


def connect(lb: LoadBalancer, *, accept_new_host_keys: bool = False,
            sudo_password: Callable[[], str] | None = None) -> Transport:
    """Open the one SSH connection to ``lb`` and settle how to become root on it."""
    cxn, checkers = connection(lb, accept_new_host_keys)
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
                sudo_password: Callable[[], str] | None = None,
                deadline: float | None = None) -> dict[str, Transport | HakeepError]:
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
            outcome = connect(lb, accept_new_host_keys=accept_new_host_keys, sudo_password=sudo_password)
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
    keepalive = cxn.ssh_config.get("serveraliveinterval")
    if keepalive and keepalive.isdigit() and cxn.transport is not None:
        cxn.transport.set_keepalive(int(keepalive))


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


def _close_connection(cxn: Any) -> None:
    """Close the connection (and gateways); reap a ProxyCommand process so none is left behind."""
    hop = cxn
    while hop is not None and not isinstance(hop, str | bool):
        transport = hop.client.get_transport()
        sock = getattr(transport, "sock", None)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            hop.client.close()  # not hop.close(): that skips a half-open client (failed host key)
        if transport is not None and transport is not threading.current_thread():
            transport.join(timeout=5)  # its thread signals the ProxyCommand too: let it finish first
        if isinstance(sock, paramiko.ProxyCommand):
            with contextlib.suppress(Exception):  # best effort: close() has killed it
                sock.process.wait(timeout=5)
        hop = hop.gateway
