"""The SSH transport: with :mod:`.sshhosts`, :mod:`.connecting` and :mod:`.channel`, the only modules
that import paramiko.

It owns the one SSH connection per host (opened by :mod:`.connecting`) and reuses it for every
command: each runs as root (directly, or through sudo), under a deadline the host keeps itself
(:func:`~hakeep.hosts.remote.bounded`), and is stopped there, every process of it, when hakeep gives
up on it or is interrupted. It holds the remote deploy lock, closes every hop and reaps any
ProxyCommand, and turns every network and SSH failure into a :class:`~hakeep.errors.HakeepError`. The
shapes of the remote commands (quoting, sudo wrapping, the lock script) are pure and live in
:mod:`hakeep.hosts.remote`.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

import paramiko

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts import remote
from hakeep.hosts.channel import collect, feed, read_lock_answer
from hakeep.hosts.remote import (
    DEADLINE_MARK,
    HEARTBEAT,
    HEARTBEAT_EVERY,
    KILL_AFTER,
    LOCK_ACQUIRED,
    LOCK_BUSY,
    LOCK_HEARTBEAT_TIMEOUT,
    STEPS_DIR,
    CommandResult,
    ConnectError,
    LockedError,
    Privilege,
    RemoteCommandError,
    bounded,
    display_of,
    lock_script,
    privileged_stdin,
    shell_command,
    stop_script,
    wrap_privileged,
)
from hakeep.hosts.sshhosts import failure_reason

__all__ = ["SSHTransport"]

# paramiko logs (with tracebacks) from its own threads when a host drops; hakeep reports failures
# itself, so keep that off the console whatever logging the CLI sets up.
for _name in ("paramiko", "fabric", "invoke"):
    _log = logging.getLogger(_name)
    _log.addHandler(logging.NullHandler())
    _log.propagate = False

_PROBE_TIMEOUT = 30.0
_LOCK_TIMEOUT = 30.0
_ANSWER_MARGIN = 10.0  # beyond a command's own deadline on the host (and its SIGKILL) before hakeep gives up
_STOP_TIMEOUT = 10.0
_LOST_HINT = ("check the host and the network, then re-run; the host drops hakeep's lock and stops its commands "
              f"{LOCK_HEARTBEAT_TIMEOUT}s after the last heartbeat")
_ALIVE_EVERY = 5.0
_ALIVE_COUNT = 3


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

    steps_dir = STEPS_DIR  # where running commands note their process group (tests point it elsewhere)
    batches = True  # runs several steps in one round trip (hakeep.run.batch)

    def __init__(self, name: str, cxn: Any) -> None:
        self.host = name
        self._cxn = cxn
        self.address = f"{cxn.host}:{cxn.port}"
        self.user: str = cxn.user
        self.privilege = Privilege.USER
        self._password: _Secret | None = None
        self._inflight: set[str] = set()  # tokens of the commands running now (remote.bounded)
        self._guard = threading.Lock()
        self._session = secrets.token_hex(4)  # every token starts with it: the lock holder stops them
        self.alive_every, self.alive_count = _alive_settings(cxn)
        self._closing = threading.Event()
        self.dead = False  # the host stopped answering keepalives: the connection was closed
        self._shut = False  # close() began: no new command starts
        self._lock_chan: paramiko.Channel | None = None
        self._lock_path: str | None = None
        #: "name type key SHA256:... in FILE" for each host key this connect recorded (to report)
        self.host_keys_recorded: tuple[str, ...] = ()
        threading.Thread(target=self._watch, daemon=True, name=f"hakeep-alive-{name}").start()

    def __repr__(self) -> str:
        return (f"<SSHTransport {self.host} {self.user}@{self.address} "
                f"privilege={self.privilege.value}>")

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running commands ---------------------------------------------------------------------

    def run(self, script: str, *, display: str | None = None, privileged: bool = True,
            stdin: bytes = b"", timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        shown = display_of(script, display)
        if self._shut:
            raise ConnectError(f"{self.host}: the connection is closing; `{shown}` was not started", hint=_LOST_HINT)
        lock = self._lock_chan
        if lock is not None and (lock.closed or lock.exit_status_ready()):
            raise ConnectError(f"{self.host}: lost the deploy lock {self._lock_path} (the host let go of it: no "
                               f"heartbeat for {LOCK_HEARTBEAT_TIMEOUT}s); `{shown}` was not started", hint=_LOST_HINT)
        token = self._session + secrets.token_hex(8)
        script = bounded(script, timeout, token, self.steps_dir)
        if privileged:
            command = wrap_privileged(script, self.privilege)
            data = privileged_stdin(self.privilege, self._secret(), stdin)
        else:
            command, data = shell_command(script), stdin
        with self._guard:
            self._inflight.add(token)
        started, code = time.monotonic(), None
        try:
            result = self._exec(command, shown, data, timeout=timeout, check=check, token=token, private=private)
            code = result.exit_code
            return result
        except RemoteCommandError as exc:
            code = exc.result.exit_code
            raise
        finally:
            with self._guard:
                self._inflight.discard(token)
            if remote.TRACE is not None:  # -v: each remote command, by its secret-free display name
                with contextlib.suppress(Exception):  # a trace never changes a step's result
                    remote.TRACE(self.host, shown, time.monotonic() - started, code)

    def _secret(self) -> str | None:
        return self._password.reveal() if self._password is not None else None

    def _exec(self, command: str, shown: str, data: bytes, *, timeout: float, check: bool, token: str,
              private: bool) -> CommandResult:
        chan: paramiko.Channel | None = None
        try:
            chan = self._open(command, shown)
            writer = threading.Thread(target=feed, args=(chan, data, True), daemon=True)
            writer.start()
            # the host stops the command at ``timeout`` (SIGKILL KILL_AFTER s later): wait that long
            # and a margin for its answer
            out, err, finished = collect(chan, time.monotonic() + timeout + KILL_AFTER + _ANSWER_MARGIN)
            code = chan.recv_exit_status() if finished else -1
        except BaseException:  # interrupted (even while it started): it must be dead before anything else runs
            self._stop([token])
            raise
        finally:
            if chan is not None:
                chan.close()
        result = CommandResult(shown, code, out, err)
        if not finished:
            stopped = self._stop([token])
            raise RemoteCommandError(
                self.host, result, private=private,
                reason=f"gave no answer within {timeout + KILL_AFTER + _ANSWER_MARGIN:g}s",
                hint="the host or the network hangs; " + (
                    "hakeep stopped the command there" if stopped else
                    f"the host stops the command itself {timeout:g}s after it started"))
        if code in (124, 137) and DEADLINE_MARK.encode() in err:
            raise RemoteCommandError(self.host, result, private=private,
                                     reason=f"timed out after {timeout:g}s (stopped on the host)",
                                     hint="look at the host: what made the command hang?")
        if code == -1:
            try:
                self._check_alive(shown)
            except ConnectError as exc:
                exc.result = result
                raise
            if check:
                raise RemoteCommandError(self.host, result, private=private,
                                         reason="ended without an exit status (killed by a signal?)")
        if check and code != 0:
            raise RemoteCommandError(self.host, result, private=private)
        return result

    def _stop(self, tokens: Sequence[str]) -> bool:
        """Stop these commands on the host, every process of each (SIGTERM, then SIGKILL), over a
        channel of their own; True once the host says none is left. Signals wait meanwhile."""
        if not tokens:
            return True
        with signals.shielded():
            try:
                script = stop_script(tokens, steps_dir=self.steps_dir)
                chan = self._open(wrap_privileged(script, self.privilege), "stop the command")
            except HakeepError:
                return False  # the connection is gone: the host's own deadline stops them
            try:
                feed(chan, privileged_stdin(self.privilege, self._secret(), b""), True)
                _, _, finished = collect(chan, time.monotonic() + _STOP_TIMEOUT)
                return finished and chan.recv_exit_status() == 0
            finally:
                chan.close()

    def _watch(self) -> None:
        """Every HEARTBEAT_EVERY s a heartbeat to the lock holder (it lets go after
        LOCK_HEARTBEAT_TIMEOUT s without one); and ServerAlive, as OpenSSH does it: every
        ``alive_every`` s a keepalive the server must answer, ``alive_count`` unanswered in a row and
        the connection is closed, so every command waiting on it ends at once instead of hanging."""
        asked: threading.Event | None = None  # the last keepalive's answer
        asked_at = time.monotonic()
        missed = 0
        while not self._closing.wait(min(self.alive_every, HEARTBEAT_EVERY)):
            transport = getattr(self._cxn, "transport", None)
            if transport is None or not transport.is_active():
                return
            lock = self._lock_chan
            if lock is not None:
                with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                    lock.sendall(HEARTBEAT)
            if time.monotonic() - asked_at < self.alive_every - 0.01:
                continue
            if asked is not None:
                missed = 0 if asked.is_set() else missed + 1
                if missed >= self.alive_count:
                    self.dead = True
                    with contextlib.suppress(Exception):
                        transport.close()
                    return
            asked, asked_at = threading.Event(), time.monotonic()

            def ask(t: paramiko.Transport = transport, done: threading.Event = asked) -> None:
                with contextlib.suppress(Exception):
                    t.global_request("keepalive@openssh.com", wait=True)
                    done.set()

            threading.Thread(target=ask, daemon=True, name=f"hakeep-keepalive-{self.host}").start()

    def cancel(self) -> bool:
        """Stop every command still running on the host for this connection (see :meth:`_stop`)."""
        with self._guard:
            tokens = sorted(self._inflight)
        return self._stop(tokens)

    def _open(self, command: str, shown: str) -> paramiko.Channel:
        """A session channel on the shared connection with ``command`` started on it."""
        transport = self._cxn.transport
        try:
            if transport is None or not transport.is_active():
                raise EOFError("the connection is closed")
            chan: paramiko.Channel = transport.open_session(timeout=_PROBE_TIMEOUT)
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            why = self._silence() if self.dead else failure_reason(exc)
            raise ConnectError(f"{self.host}: connection lost before `{shown}`: {why}", hint=_LOST_HINT) from None
        return chan

    def _silence(self) -> str:
        return f"the host answered no keepalive for {self.alive_every * self.alive_count:g}s"

    def _check_alive(self, shown: str) -> None:
        transport = self._cxn.transport
        if transport is None or not transport.is_active():
            why = self._silence() if self.dead else "connection lost"
            raise ConnectError(f"{self.host}: {why} while running `{shown}`", hint=_LOST_HINT)

    # --- the deploy lock ----------------------------------------------------------------------

    def lock(self, path: str, owner: str) -> None:
        if self._lock_chan is not None:
            raise RuntimeError(f"{self.host}: already holding {self._lock_path}")
        shown = f"lock {path}"
        script = lock_script(path, owner, session=self._session, steps_dir=self.steps_dir)
        chan = self._open(wrap_privileged(script, self.privilege), shown)
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
            holder = out.decode(errors="replace").split("\n", 1)[1].strip()
            raise LockedError(self.host, path, holder)
        code = chan.exit_status if chan.exit_status_ready() else -1
        result = CommandResult(shown, code, out, err)
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
        self._shut = True
        try:
            if not self.dead:  # (the keepalives still run meanwhile: a host that hangs is given up)
                self.cancel()  # nothing hakeep started may outlive its lock
            self.unlock()
        finally:
            self._closing.set()
            _close_connection(self._cxn)


def _alive_settings(cxn: Any) -> tuple[float, int]:
    """ServerAliveInterval and ServerAliveCountMax: 5 s and 3 (a host that stops answering is given
    up after 15 s, before its lock holder lets go at LOCK_HEARTBEAT_TIMEOUT), or tighter ones from
    ssh_config; looser ones are capped there, so hakeep never goes on without its lock."""
    config = getattr(cxn, "ssh_config", None) or {}
    every, count = str(config.get("serveraliveinterval", "")), str(config.get("serveralivecountmax", ""))
    return (min(float(every), _ALIVE_EVERY) if every.isdigit() and int(every) > 0 else _ALIVE_EVERY,
            min(int(count), _ALIVE_COUNT) if count.isdigit() and int(count) > 0 else _ALIVE_COUNT)


def _close_connection(cxn: Any) -> None:
    """Close the connection (and gateways); reap a ProxyCommand process so none is left behind."""
    hop = cxn
    while hop is not None and not isinstance(hop, str | bool):
        transport = hop.client.get_transport()
        sock = getattr(transport, "sock", None)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            hop.client.close()  # not hop.close(): that skips a half-open client (failed host key)
        if isinstance(sock, paramiko.ProxyCommand):
            if transport is not None and transport is not threading.current_thread():
                transport.join(timeout=5)  # its thread signals the ProxyCommand too: let it finish first
            with contextlib.suppress(Exception):  # best effort: close() has killed it
                sock.process.wait(timeout=5)
        # (a plain socket's SSH thread, a daemon, notices the close within its 0.1 s poll: not waited for)
        hop = hop.gateway
