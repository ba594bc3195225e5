"""Reading and writing one paramiko channel with deadlines: a command's input, output and exit.

Used by :mod:`.transport` only. Every wait is bounded by a deadline (``time.monotonic()``); a
command that does not finish in time is reported as such, never waited for forever.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable

import paramiko

from hakeep.hosts.remote import LOCK_ACQUIRED, LOCK_BUSY


def feed(chan: paramiko.Channel, data: bytes, eof: bool) -> None:
    """Send ``data`` to the command's stdin, then EOF when ``eof``."""
    try:
        if data:
            chan.sendall(data)
        if eof:
            chan.shutdown_write()
    except (paramiko.SSHException, EOFError, OSError):
        pass  # the command stopped reading, or the channel closed: its exit status tells


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(65536)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)


def _read(chan: paramiko.Channel, deadline: float,
          enough: Callable[[bytes], bool]) -> tuple[bytes, bytes, bool | None]:
    """Read stdout/stderr until ``enough(stdout)`` (None), the command exits (True: exit status
    received) or the deadline passes (False)."""
    out, err = bytearray(), bytearray()
    while True:
        _drain(chan, out, err)
        if enough(bytes(out)):
            return bytes(out), bytes(err), None
        remaining = deadline - time.monotonic()
        if chan.eof_received or chan.closed:
            done = chan.status_event.wait(max(remaining, 0))
            _drain(chan, out, err)
            return bytes(out), bytes(err), done
        if remaining <= 0:
            return bytes(out), bytes(err), False
        select.select([chan], [], [], min(remaining, 1.0))


def collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, bool]:
    """Read stdout/stderr until the command exits (True) or the deadline passes (False)."""
    out, err, done = _read(chan, deadline, lambda _: False)
    return out, err, bool(done)


def _first_line(out: bytes) -> str:
    return out.split(b"\n", 1)[0].decode(errors="replace")


def read_lock_answer(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, str | None]:
    """The lock script's answer: LOCK_ACQUIRED (it holds the lock and waits), LOCK_BUSY, or None."""
    out, err, ended = _read(chan, deadline, lambda o: b"\n" in o and _first_line(o) == LOCK_ACQUIRED)
    if ended is None:
        return out, err, LOCK_ACQUIRED
    return out, err, LOCK_BUSY if _first_line(out) == LOCK_BUSY else None
