"""Several steps of one host in one round trip, each still reported, checked and timed on its own.

A rollout step costs an SSH round trip, and a health gate polled over the network costs one per try
and reacts only every half second. :func:`run_batch` sends consecutive steps of one host as one
script: the host runs them in order, each with its own standard input (all of them travel
together, each cut out by its length), polls a waiting step (a gate) itself every 0.1 s until it
passes or its time is up, stops at the first step that fails, and reports each step that ran --
its exit code, standard output and error -- framed by a random marker sent on standard input (no
output a step prints can forge a frame). The executor turns each report back into a result or an
error exactly as if the step had run alone; where batches end (after a backup, after the last
gate, around best-effort steps) is its choice (:mod:`.execute`).
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from hakeep.hosts.remote import CommandResult, Transport
from hakeep.hosts.scripts import compose
from hakeep.plan.steps import Step

STEP_DEADLINE = 300.0  # a step that does not wait: as when it runs alone
BATCH_DIR = "/run/hakeep"  # where a batch keeps its input and each step's output meanwhile (0700)

@dataclass(frozen=True)
class Ran:
    """One step of a batch that ran: its result (a waiting step's: of its last try)."""

    step: Step
    result: CommandResult


def batch_script(steps: Sequence[Step], base: str = BATCH_DIR) -> str:
    """The script that runs ``steps`` in order on a host (sh/batch.sh; its stdin: the marker line,
    then every step's stdin one after the other)."""
    return compose("batch.sh", BASE=base,
                   STEPS=[base64.b64encode(s.script.encode()).decode() for s in steps],
                   LENGTHS=[len(s.stdin) for s in steps],
                   WAITS=[math.ceil(s.wait) if s.wait > 0 else 0 for s in steps])


def batch_input(steps: Sequence[Step], mark: str) -> bytes:
    return mark.encode() + b"\n" + b"".join(s.stdin for s in steps)


def deadline(steps: Sequence[Step]) -> float:
    """The batch's deadline on the host: each step's own, added up."""
    return sum(s.wait + 30.0 if s.wait > 0 else STEP_DEADLINE for s in steps)


def parse_batch(steps: Sequence[Step], out: bytes, mark: str) -> list[Ran]:
    """The steps that ran, in order, from the batch's output (a cut-off report ends the list)."""
    ran: list[Ran] = []
    head = f"@@{mark} step ".encode()
    pos = 0
    while pos < len(out) and out.startswith(head, pos):
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


def run_batch(t: Transport, steps: Sequence[Step], base: str = BATCH_DIR) -> tuple[list[Ran], CommandResult]:
    """Run ``steps`` on ``t`` in one round trip: the steps that ran (the last one failed when it did
    not exit 0), and the batch's own result (for a batch cut off before its last report)."""
    mark = secrets.token_hex(16)
    shown = f"{steps[0].describe} (and {len(steps) - 1} more steps)"
    res = t.run(batch_script(steps, base), display=shown, stdin=batch_input(steps, mark),
                timeout=deadline(steps), check=False)
    return parse_batch(steps, res.stdout, mark), res
