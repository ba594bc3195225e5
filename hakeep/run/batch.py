"""Several steps of one host in one round trip, each still reported, checked and timed on its own.

A rollout step costs an SSH round trip, and a health gate polled over the network costs one per try.
:func:`run_batch` sends consecutive steps of one host as one script (sh/batch.sh): the host runs
them in order, each with its own standard input (all of them travel together, each cut out by its
length) and its own deadline (stopped there, every process of it, as when it runs alone), polls a
waiting step (a gate) itself every 0.1 s until it passes or its time is up by the clock, stops at
the first step that fails, and reports each step that ran -- its exit code, standard output and
error -- framed by a random marker sent on standard input (no output a step prints can forge a
frame). :func:`run_batch` turns each report back into a result exactly as if the step had run
alone, and pins a failure of the batch itself (a deadline, a lost connection) on the first step
the host did not report; where batches end (after a backup, after the last gate, around best-effort
steps) is the executor's choice (:mod:`.execute`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from hakeep.errors import HakeepError
from hakeep.hosts.remote import DEADLINE_MARK, KILL_AFTER, CommandResult, ConnectError, RemoteCommandError, Transport
from hakeep.hosts.scripts import compose
from hakeep.plan.steps import Step

TRY_DEADLINE = 30.0  # one try of a waiting step (as when it is polled over the network)


@dataclass(frozen=True)
class Ran:
    """One step of a batch: its result (a waiting step's: of its last try), or why it has none
    (``error``: the batch ended before the host reported it)."""

    step: Step
    result: CommandResult | None
    error: HakeepError | None = None


def step_deadline(step: Step, alone: float) -> float:
    """How long one run of ``step`` may take on the host (``alone``: its deadline when it runs alone)."""
    return TRY_DEADLINE if step.wait > 0 else alone


def batch_script(steps: Sequence[Step], deadlines: Sequence[float]) -> str:
    """The script that runs ``steps`` in order on a host (sh/batch.sh; its stdin: the marker line,
    then every step's script and stdin one after the other)."""
    return compose("batch.sh", SCRIPTS=[len(s.script.encode()) for s in steps], LENGTHS=[len(s.stdin) for s in steps],
                   WAITS=[math.ceil(s.wait) if s.wait > 0 else 0 for s in steps],
                   DEADLINES=[max(1, math.ceil(d)) for d in deadlines], KILL_AFTER=KILL_AFTER,
                   DEADLINE_MARK=DEADLINE_MARK)


def batch_input(steps: Sequence[Step], mark: str) -> bytes:
    return mark.encode() + b"\n" + b"".join(s.script.encode() + s.stdin for s in steps)


def batch_deadline(steps: Sequence[Step], deadlines: Sequence[float]) -> float:
    """The batch's own deadline: every step's, added up (a waiting step's: its wait and one try)."""
    return sum(s.wait + d if s.wait > 0 else d for s, d in zip(steps, deadlines, strict=True)) + 5.0 * len(steps)


def parse_batch(steps: Sequence[Step], out: bytes, mark: str) -> list[Ran]:
    """The steps the host reported, in order, from the batch's output (whatever precedes the first
    frame is skipped; a cut-off or malformed report ends the list)."""
    ran: list[Ran] = []
    head = f"@@{mark} step ".encode()
    pos = out.find(head)
    while 0 <= pos < len(out) and out.startswith(head, pos):
        end = out.find(b"\n", pos)
        if end < 0:
            break
        words = out[pos + len(head):end].split()
        if len(words) != 4 or not all(w.isdigit() for w in words):
            break
        index, code, n_out, n_err = (int(w) for w in words)
        if index != len(ran) or index >= len(steps) or end + 1 + n_out + n_err > len(out):
            break
        body = out[end + 1:end + 1 + n_out + n_err]
        step = steps[index]
        ran.append(Ran(step, CommandResult(step.describe, code, body[:n_out], body[n_out:])))
        pos = end + 1 + n_out + n_err
    return ran


def run_batch(t: Transport, steps: Sequence[Step], deadlines: Sequence[float]) -> list[Ran]:
    """Run ``steps`` on ``t`` in one round trip. Every step the host reported, then -- when the
    batch ended before the last step was reported, and not because a reported step failed -- the
    first unreported one with the error that ended it (a deadline, a lost connection, the batch's
    own failure): the caller reports and handles it as that step's failure."""
    mark = secrets.token_hex(16)
    shown = f"{steps[0].describe} (and {len(steps) - 1} more steps)" if len(steps) > 1 else steps[0].describe
    error: HakeepError | None = None
    try:
        whole = t.run(batch_script(steps, deadlines), display=shown, stdin=batch_input(steps, mark),
                      timeout=batch_deadline(steps, deadlines), check=False)
    except RemoteCommandError as exc:  # no answer in time: what the host reported until then still counts
        whole, error = exc.result, exc
    except ConnectError as exc:  # the connection was lost: so does what came before, if anything
        if exc.result is None:  # not even started: nothing is known of this batch's steps
            return [Ran(steps[0], None, exc)]
        whole, error = exc.result, exc
    except HakeepError as exc:
        return [Ran(steps[0], None, exc)]
    ran = parse_batch(steps, whole.stdout, mark)
    if len(ran) < len(steps) and (not ran or ran[-1].result is None or ran[-1].result.ok):
        missing = steps[len(ran)]
        if error is None:
            cut = CommandResult(missing.describe, whole.exit_code, b"", whole.stderr)
            error = RemoteCommandError(t.host, cut, reason="ended before the host reported it (its batch "
                                       f"exited with code {whole.exit_code})")
        ran.append(Ran(missing, None, error))
    return ran
