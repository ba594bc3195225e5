"""How hakeep stops when told to: SIGINT (Ctrl-C), SIGTERM (a cancelled CI job) and SIGHUP (a closed
terminal) all become :class:`Interrupted` in the main thread, so the same restore path runs for each:
the host being changed is restored and re-checked, the lock released, and the command exits with
130, 143 or 129 (:mod:`hakeep.cli.exitcodes`).

While :func:`shielded` is active (a restore, stopping a remote command), a further signal is only
noted: the work that makes the hosts safe again is never cut short by the next Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_state = threading.local()
_noted: list[int] = []


class Interrupted(KeyboardInterrupt):
    """A signal asked hakeep to stop. A KeyboardInterrupt, so every ``except KeyboardInterrupt``
    (and every ``except BaseException`` restore path) treats SIGTERM and SIGHUP as Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _handler(signum: int, frame: FrameType | None) -> None:
    del frame
    if signum == signal.SIGHUP:
        _detach_terminal()
    if getattr(_state, "depth", 0) > 0:
        _noted.append(signum)
        return
    raise Interrupted(signum)


def _detach_terminal() -> None:
    """After a hang-up, writes to the terminal fail (EIO): point the terminal's stdout/stderr at
    /dev/null so the restore that follows is not broken by its own progress lines. Files and
    pipes (a CI log, nohup) keep their output."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if os.isatty(fd):
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP off (noted, not raised) for the block. In another thread than
    the main one, signals never arrive anyway."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def noted() -> tuple[int, ...]:
    """The signals that arrived while shielded (the newest last)."""
    return tuple(_noted)
