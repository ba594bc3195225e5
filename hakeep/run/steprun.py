"""Running a host's steps: one step alone, or consecutive steps as one batch (:mod:`.batch`).

:func:`run_step` runs one step through a transport (a waiting step, a health gate, polled over the
network until it passes or its time is up); :func:`segments` groups a host's steps into round trips
and :func:`run_segment` runs one, turning each step's report into its error or None, so the
executor (:mod:`.execute`) handles a step of a batch exactly as one sent alone. :class:`Stopper` is
how the main thread stops a host applied in a worker thread (a side-by-side rollout) without ever
cutting its restore short.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts.remote import DEADLINE_MARK, CommandResult, RemoteCommandError, Transport
from hakeep.plan.steps import Action, HostPlan, Step
from hakeep.run.batch import Ran, run_batch, step_deadline

POLL_INTERVAL = 0.5
STEP_TIMEOUT = 300.0  # a step's deadline, kept by the host (hakeep.hosts.remote.bounded)
INSTALL_TIMEOUT = 600.0  # installing packages (downloads included); a cut install leaves no lock held


BEST_EFFORT = (Action.RECORD, Action.PRUNE)  # after the gate passed: a failure here must not undo a healthy host


class GateError(HakeepError):
    """A waiting step did not pass in time."""


def timeout_of(step: Step) -> float:
    return INSTALL_TIMEOUT if step.action is Action.INSTALL else STEP_TIMEOUT


class Stopped(Exception):  # not an error: the run was interrupted in the main thread
    """Raised in a worker of a side-by-side rollout when the run was interrupted."""


def run_step(t: Transport, step: Step, *, now: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep, stop: threading.Event | None = None) -> CommandResult:
    """Run one step; a waiting step is tried until it passes or its time is up (``stop``: set when
    a side-by-side run was interrupted: a waiting step gives up at once)."""
    if step.wait <= 0:
        return t.run(step.script, display=step.describe, stdin=step.stdin, timeout=timeout_of(step))
    deadline = now() + step.wait
    while True:
        result = t.run(step.script, display=step.describe, stdin=step.stdin, check=False, timeout=30)
        if result.ok:
            return result
        if stop is not None and stop.is_set():
            raise Stopped
        if now() >= deadline:
            raise gate_error(t.host, step, result)
        sleep(POLL_INTERVAL)


def gate_error(host: str, step: Step, result: CommandResult) -> GateError:
    last = (result.text().strip() or result.stderr.decode("utf-8", "replace").strip())[-500:]
    return GateError(f"{host}: {step.describe}: not satisfied after {step.wait:.0f}s: {last}",
                     hint=f"look at the host: journalctl -u haproxy -u keepalived on {host}")


class Stopper:
    """How the main thread stops a host applied in a worker (side by side) when the run is
    interrupted: :meth:`stop` cancels what the host runs only while it is being applied, never once
    its worker has begun restoring it (:meth:`restoring`) or it is settled: a restore or a
    release record is never cut short."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._guard = threading.Lock()
        self._applying = True

    def stop(self, t: Transport) -> None:
        with self._guard:
            self.event.set()
            if self._applying:
                with contextlib.suppress(Exception):
                    t.cancel()

    def restoring(self) -> None:
        """The worker stops applying (to restore, or because the host is settled): no cancel after this."""
        with self._guard:
            self._applying = False

    @property
    def stopped(self) -> bool:
        return self.event.is_set()


def segments(hp: HostPlan, last_gate: int, *, batching: bool) -> list[list[int]]:
    """The host's steps (indices) grouped into round trips. A backup runs alone (whether it ran
    decides a restore); so do installs and the best-effort steps after the last gate; a batch ends
    with the last gate (the host is settled there) and with the step a test hook pauses after."""
    if not batching:
        return [[i] for i in range(len(hp.steps))]
    pause = signals.test_pause_target(hp.host)
    out: list[list[int]] = []
    current: list[int] = []
    for i, st in enumerate(hp.steps):
        if st.action in (*BEST_EFFORT, Action.INSTALL, Action.BACKUP):
            out += [current, [i]] if current else [[i]]
            current = []
            continue
        current.append(i)
        if i == last_gate or st.action.value == pause:
            out.append(current)
            current = []
    return [*out, current] if current else out


def run_segment(t: Transport, steps: tuple[Step, ...], segment: list[int],
                stop: threading.Event | None = None) -> list[tuple[int, Step, HakeepError | None]]:
    """Run one segment: each step's index, the step and its error (None: it passed), up to the
    first that failed (a step the host did not report, its batch cut off, fails with what cut it)."""
    if len(segment) == 1:
        i = segment[0]
        try:
            run_step(t, steps[i], stop=stop)
        except HakeepError as exc:
            return [(i, steps[i], exc)]
        return [(i, steps[i], None)]
    chosen = [steps[i] for i in segment]
    ran = run_batch(t, chosen, [step_deadline(s, timeout_of(s)) for s in chosen])
    return [(i, r.step, _error_of(t.host, r)) for i, r in zip(segment, ran, strict=False)]


def _error_of(host: str, r: Ran) -> HakeepError | None:
    result = r.result
    if r.error is not None or result is None:
        return r.error or HakeepError(f"{host}: `{r.step.describe}` was not reported")
    if result.ok:
        return None
    if r.step.wait > 0:
        return gate_error(host, r.step, result)
    timed_out = result.exit_code in (124, 137) and DEADLINE_MARK.encode() in result.stderr
    return RemoteCommandError(host, result, reason=(f"timed out after {timeout_of(r.step):g}s (stopped on the host)"
                                                    if timed_out else None))
