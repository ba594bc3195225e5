"""The seam between hakeep and a remote host: the ``Transport`` protocol, results and remote errors.

Planner, facts and executor code against :class:`Transport` only, so they can be tested with a fake
that records commands; the real SSH implementation lives in :mod:`.transport` and :mod:`.sshhosts`
(the only modules that import fabric/paramiko). This module also owns the pure shell pieces every
transport shares: how a script becomes a command line (``/bin/sh -c``, root, or sudo with or without
a password), what goes to its standard input, and the deploy-lock script (``sh/lock.sh``) -- all
quoted with :func:`shlex.quote`, so nothing reaches a remote shell unquoted and no secret ever
appears on a command line.
"""

from __future__ import annotations

import enum
import math
import re
import secrets
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hakeep.errors import HakeepError
from hakeep.hosts.scripts import compose

TAIL_LINES = 20
_DISPLAY_WIDTH = 80

# -v (hakeep.cli.output.verbose): called after every remote command a transport runs, with (host,
# the command's secret-free display name, seconds, exit code or None)
TRACE: Callable[[str, str, float, int | None], None] | None = None


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. ``command`` is the caller's display form, never a secret."""

    command: str
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        """Standard output as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", errors="replace")


def display_of(script: str, display: str | None = None) -> str:
    """The short form messages show for a command: ``display``, else the script's first line."""
    if display is not None:
        return display
    lines = script.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > _DISPLAY_WIDTH or len(lines) > 1:
        first = first[: _DISPLAY_WIDTH - 3].rstrip() + "..."
    return first


def tail(data: bytes, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of some output, as text."""
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else ""


class RemoteCommandError(HakeepError):
    """A remote command failed (non-zero exit, or timed out: ``exit_code == -1``)."""

    def __init__(self, host: str, result: CommandResult, *, reason: str | None = None,
                 hint: str | None = None, private: bool = False) -> None:
        self.host = host
        self.command = result.command
        self.exit_code = result.exit_code
        self.result = result
        # ``private``: the output carries file contents (facts): never shown, at any verbosity
        self.stdout_tail = "" if private else tail(result.stdout)
        self.stderr_tail = tail(result.stderr)
        what = reason or f"exited with code {result.exit_code}"
        parts = [f"{host}: `{result.command}` {what}"]
        for name, text in (("stdout", self.stdout_tail), ("stderr", self.stderr_tail)):
            if text:
                body = "\n".join("    " + line for line in text.splitlines())
                parts.append(f"  {name} (last {TAIL_LINES} lines at most):\n{body}")
        super().__init__("\n".join(parts), hint)


class ConnectError(HakeepError):
    """The host could not be reached, or we could not log in (or become root) on it.

    ``kind`` says why in one word a table can show: timeout, refused, no route, closed, auth,
    host key, sudo, config or error.
    """

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "error") -> None:
        super().__init__(message, hint)
        self.kind = kind
        #: when the connection was lost while a command ran: what it had printed until then (never
        #: shown in the message; a batch reads its steps' reports from it)
        self.result: CommandResult | None = None


def connect_kind(reason: str) -> str:
    """The one-word kind of a connection failure, from its human reason."""
    text = reason.lower()
    for needle, kind in (("refused", "refused"), ("timed out", "timeout"), ("timeout", "timeout"),
                         ("banner", "timeout"), ("no route", "no route"), ("unreachable", "no route"),
                         ("closed", "closed"), ("no existing session", "timeout")):
        if needle in text:
            return kind
    return "error"


class HostKeyError(ConnectError):
    """The host's SSH key is not in known_hosts, or differs from the one recorded there."""

    def __init__(self, message: str, hint: str, *, host: str, key_type: str, fingerprint: str,
                 changed: bool) -> None:
        super().__init__(message, hint, kind="host key")
        self.host = host
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.changed = changed


class SudoError(ConnectError):
    """sudo is configured for the host but cannot be used (e.g. the password was rejected)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, kind="sudo")


class LockedError(HakeepError):
    """Another hakeep run holds the host's deploy lock."""

    def __init__(self, host: str, path: str, owner: str) -> None:
        self.host = host
        self.path = path
        self.owner = owner
        super().__init__(
            f"{host}: deploy lock {path} is held by {owner or 'an unknown owner'}",
            hint="another hakeep run is deploying to this host; wait for it to finish "
                 "(a run that dies releases the lock when its SSH connection closes)",
        )


class Transport(Protocol):
    """One open connection to one LB host, reused for every command of a session."""

    host: str  # the LB's inventory name, for messages

    def run(self, script: str, *, display: str | None = None, privileged: bool = True,
            stdin: bytes = b"", timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        """Run ``script`` with ``/bin/sh -c`` (as root when ``privileged``), feeding ``stdin`` then EOF,
        under a deadline of ``timeout`` s kept by the host (:func:`bounded`): when it passes, or
        the run is interrupted, the command is stopped there, every process of it, before this returns.

        Raises :class:`RemoteCommandError` on a non-zero exit when ``check``, and always on timeout;
        with ``private``, its message never shows the command's output.
        """
        ...

    def cancel(self) -> bool:
        """Stop every command this transport still runs on the host; True once none is left."""
        ...

    def lock(self, path: str, owner: str) -> None:
        """Hold ``flock`` on ``path`` until :meth:`unlock`/:meth:`close`, or raise :class:`LockedError`."""
        ...

    def unlock(self) -> None: ...

    def close(self) -> None: ...


# --- how commands are shaped (pure; shared by every transport and unit-tested directly) ---------


class Privilege(enum.Enum):
    """How a privileged command becomes root on a host."""

    ROOT = "root"  # we logged in as root
    USER = "user"  # no sudo configured: run as the login user (preflight checks `id -u`)
    SUDO = "sudo"  # passwordless sudo: `sudo -n`
    SUDO_STDIN = "sudo-stdin"  # sudo -S, the password first on stdin

    def __repr__(self) -> str:
        return f"Privilege.{self.name}"


def shell_command(script: str) -> str:
    """The command line that runs ``script`` with ``/bin/sh -c``."""
    return "/bin/sh -c " + shlex.quote(script)


STEPS_DIR = "/run/hakeep/steps"  # one file per running command: its process group (to stop it)
KILL_AFTER = 5  # seconds between SIGTERM and SIGKILL when a command outlives its deadline
DEADLINE_MARK = "hakeep: stopped on the host at its deadline"


def bounded(script: str, seconds: float, token: str, steps_dir: str = STEPS_DIR) -> str:
    """``script`` under a deadline kept by the host itself: coreutils ``timeout`` runs it in a
    process group of its own, sends SIGTERM to the whole group after ``seconds`` and SIGKILL
    ``KILL_AFTER`` s later; the group's id goes to ``steps_dir/token`` meanwhile, so
    :func:`stop_script` can stop it sooner (a run that gives up or is interrupted). Exits with the
    script's code; at the deadline (124 or 137 once the time is up), with ``DEADLINE_MARK`` on
    stderr. A host without ``timeout`` runs the script unbounded."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", token):
        raise ValueError(f"bad step token {token!r}")
    secs = max(1, math.ceil(seconds))
    d, f = shlex.quote(steps_dir), shlex.quote(f"{steps_dir}/{token}")
    # the group is noted first, then a stop asked for meanwhile is honoured: a stop either finds the
    # group or leaves the mark (hk_stop_groups) before the script starts
    # (a batch of steps, sh/batch.sh, adds each step's own group to the file and keeps its working
    # folder at the file's name + ".d": removed here, or by the stop)
    inner = shlex.quote(f'echo "$PPID" > {f} 2>/dev/null\n[ ! -e {f}.stop ] || exit 143\n'
                        f'hk_step_file={f}\n{script}')
    return (f"mkdir -p -m 700 {d} 2>/dev/null\nhk_step={inner}\nhk_t0=$(date +%s)\n"
            "if command -v timeout >/dev/null 2>&1; then\n"
            f'    timeout -k {KILL_AFTER} {secs} /bin/sh -c "$hk_step"; rc=$?\n'
            f'    if {{ [ $rc -eq 124 ] || [ $rc -eq 137 ]; }} && [ $(($(date +%s) - hk_t0)) -ge {secs} ]; then\n'
            f"        echo '{DEADLINE_MARK} ({secs}s)' >&2\n"
            # a batch's step runs in a group of its own, beyond timeout's reach: stopped here
            f'        hk_g=$(cat {f}.step 2>/dev/null); case "$hk_g" in ""|*[!0-9]*|0|1) ;; '
            '*) kill -KILL "-$hk_g" 2>/dev/null ;; esac\n'
            "    fi\n"
            'else\n    /bin/sh -c "$hk_step"; rc=$?\nfi\n'
            f"rm -rf {f} {f}.stop {f}.step {f}.d\nexit $rc")


def stop_script(tokens: Sequence[str], steps_dir: str = STEPS_DIR) -> str:
    """Stop the commands started by :func:`bounded` with these tokens, each with every process of
    its group (sh/stop.sh): exits 0 once none of them is left (or none ran)."""
    for token in tokens:
        if not re.fullmatch(r"[0-9a-f]{8,64}", token):
            raise ValueError(f"bad step token {token!r}")
    return compose("stop.sh", FILES=[f"{steps_dir}/{t}" for t in tokens])


def wrap_privileged(script: str, mode: Privilege) -> str:
    """The command line that runs ``script`` as root in ``mode`` (never carries a password)."""
    if mode is Privilege.SUDO:
        return "sudo -n -- " + shell_command(script)
    if mode is Privilege.SUDO_STDIN:
        return "sudo -k -S -p '' -- " + shell_command(_PAST_FENCE + script)
    return shell_command(script)


# With ``sudo -S`` the password line goes first on stdin, then this fence (random, so it is never
# the password). sudo reads the password line when it asks for one (byte by byte, never further);
# the script, as root, first reads up to the fence: so when sudo did not ask (a NOPASSWD rule for
# this command), the password is read and dropped there, and never reaches the script's input, a
# file it writes or any output: nothing has to be scrubbed from output afterwards.
_FENCE = "hakeep-sudo-fence-" + secrets.token_hex(16)
_PAST_FENCE = (f'while IFS= read -r hk_line && [ "$hk_line" != {_FENCE} ]; do :; done; '
               f'[ "$hk_line" = {_FENCE} ] || {{ echo "hakeep: no fence after the sudo password on stdin" >&2; '
               'exit 125; }; unset hk_line\n')  # fail safe: never run on an input the loop ate


def privileged_stdin(mode: Privilege, password: str | None, stdin: bytes) -> bytes:
    """What to send to a privileged command: with ``sudo -S`` the password line and the fence first."""
    if mode is Privilege.SUDO_STDIN:
        if password is None:
            raise ValueError("sudo -S needs a password")
        if "\n" in password or "\r" in password:
            raise ValueError("a sudo password is one line")
        return password.encode() + b"\n" + _FENCE.encode() + b"\n" + stdin
    return stdin


SUDO_PROBE = "sudo -n true"
SUDO_STDIN_PROBE = "sudo -k -S -p '' true"

LOCK_ACQUIRED = "hakeep-lock: acquired"
LOCK_BUSY = "hakeep-lock: busy"
LOCK_BUSY_EXIT = 75

HEARTBEAT_EVERY = 5.0  # seconds between the heartbeats hakeep sends to a lock holder
LOCK_HEARTBEAT_TIMEOUT = 20  # a holder that heard none for this long lets go (sh/lock.sh)
HEARTBEAT = b"."


def lock_script(path: str, owner: str, *, session: str = "", steps_dir: str = STEPS_DIR,
                heartbeat: int = LOCK_HEARTBEAT_TIMEOUT) -> str:
    """Take ``flock -n`` on ``path`` and hold it until standard input reaches EOF or no heartbeat
    came for ``heartbeat`` s; then stop the session's commands still running (sh/lock.sh)."""
    if session and not re.fullmatch(r"[0-9a-f]{8,64}", session):
        raise ValueError(f"bad session {session!r}")
    return compose("lock.sh", LOCK=path, OWNER=owner, BUSY=LOCK_BUSY, BUSY_EXIT=LOCK_BUSY_EXIT,
                   ACQUIRED=LOCK_ACQUIRED, HEARTBEAT=heartbeat, STEPS=steps_dir,
                   SESSION=session or "-none-")
