"""How hakeep stops when told to: SIGINT (Ctrl-C), SIGTERM (a cancelled CI job) and SIGHUP (a closed
terminal) all become :class:`Interrupted` in the main thread, so the same restore path runs for each:
the host being changed is restored and re-checked, the lock released, and the command exits with
130, 143 or 129 (:mod:`hakeep.cli.exitcodes`).

While :func:`shielded` is active (a restore, stopping a remote command, closing the session), a
signal is held until the block ends: the work that makes the hosts safe again is never cut short by
the next Ctrl-C, and a signal that came meanwhile is acted on after it. :func:`test_pause` is the
test hook that lets lab tests send a signal at a chosen step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_state = threading.local()
_held: list[int] = []  # signals that arrived while shielded, not yet acted on
_stopping = False  # an Interrupted was raised: hakeep is already on its way out

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
        _held.append(signum)
        return
    _raise(signum)


def _raise(signum: int) -> None:
    global _stopping
    _stopping = True
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
    global _stopping
    if threading.current_thread() is not threading.main_thread():
        return
    _stopping = False
    _held.clear()
    for sig in HANDLED:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP off for the block (in another thread than the main one, signals
    never arrive anyway). A signal held this way is acted on when the main thread's outermost shield
    ends (never in a worker's): raised then, unless hakeep is already stopping for an earlier one (a
    restore after Ctrl-C)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
    if _state.depth == 0 and _held and threading.current_thread() is threading.main_thread():
        signum = _held[0]
        _held.clear()
        if not _stopping:
            _raise(signum)


TEST_PAUSE = "HAKEEP_TEST_PAUSE"  # "HOST:WHAT": the test hook below
TEST_PAUSE_SECONDS = 60.0


def test_pause_target(host: str) -> str | None:
    """The step (action) the test hook pauses after on ``host``, if any (a batch ends there)."""
    target, _, what = os.environ.get(TEST_PAUSE, "").partition(":")
    return what if target == host and what else None


def test_pause(host: str, what: str, until: threading.Event | None) -> None:
    """A test hook (README, "Test hooks"): with HAKEEP_TEST_PAUSE=HOST:WHAT in the environment, the
    run pauses for up to a minute right after step WHAT (an action: commit, service, gate, ...; or
    drill's "fault") on HOST, having said so on stderr, so a test can send a signal at that moment."""
    if os.environ.get(TEST_PAUSE) != f"{host}:{what}":
        return
    with contextlib.suppress(OSError):
        os.write(2, f"hakeep: test hook: paused after {what} on {host}\n".encode())
    if until is not None:  # a worker thread (a side-by-side rollout): the run may be stopped meanwhile
        until.wait(TEST_PAUSE_SECONDS)
    else:
        time.sleep(TEST_PAUSE_SECONDS)
