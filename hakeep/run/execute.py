"""Execute a :class:`~hakeep.plan.steps.Plan`: install, validate, roll out host by host, prove the result.

The executor is generic: it runs each step's script through a :class:`~hakeep.hosts.remote.Transport`,
polls steps that wait (health gates) until they pass or time out, and on any failure of a host runs
that host's pre-computed restore steps and failure mark, then stops the rollout (pipx's
backup-and-restore transaction, per host). Hosts are independent during install and validation (run
in parallel) and strictly ordered during the rollout. Every script it runs comes from the plan.
Progress goes to a :class:`Progress` observer; results come back as the frozen dataclasses of
:mod:`.results`. No printing happens here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Protocol

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts import arp as arps
from hakeep.hosts.facts import HostFacts
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, RemoteCommandError, Transport
from hakeep.plan.steps import Action, HostPlan, Plan, Proof, Step
from hakeep.run.batch import run_batch
from hakeep.run.results import FinalCheck, HostOutcome, Outcome, StepStatus, ValidationOutcome, ValidationStatus
from hakeep.run.steprun import (
    BEST_EFFORT,
    STEP_TIMEOUT,
    GateError,
    Stopped,
    Stopper,
    run_segment,
    run_step,
    segments,
)

__all__ = ["GateError", "NoProgress", "Progress", "apply_host", "facts_check", "final_check", "install", "rollout",
           "run_step", "segments", "validate"]

class Progress(Protocol):
    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None: ...


class NoProgress:
    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None:
        del host, step, status, detail


def install(plan: Plan, transports: Mapping[str, Transport], progress: Progress) -> dict[str, HakeepError]:
    """Install missing packages on every host that needs them, in parallel; return the failures."""
    todo = [h for h in plan.hosts if h.install is not None]

    def one(name: str) -> None:
        step = plan.host(name).install
        if step is not None:
            progress.step(name, step, StepStatus.RUNNING)
            run_step(transports[name], step)
            progress.step(name, step, StepStatus.OK)

    out = parallel(one, [h.host for h in todo], workers=8)
    return {h: e for h, e in out.items() if isinstance(e, HakeepError)}


def validate(plan: Plan, transports: Mapping[str, Transport], progress: Progress) -> dict[str, ValidationOutcome]:
    """Check every host's new files with its own binaries in a private folder (parallel)."""
    todo = {h.host: h.validation for h in plan.hosts if h.validation is not None}

    def one(name: str) -> ValidationOutcome:
        validation = todo[name]
        t = transports[name]
        check = validation.check
        if getattr(t, "batches", False):  # one round trip: the folder, the uploads, then the check
            ran = run_batch(t, [*validation.prepare, check], [STEP_TIMEOUT] * len(validation.prepare) + [120.0])
            found: CommandResult | None = None
            for r in ran:
                if r.error is not None:
                    raise r.error
                if r.step is check:
                    found = r.result
                elif r.result is not None and not r.result.ok:
                    raise RemoteCommandError(t.host, r.result)
            if found is None:  # (run_batch says why a step went unreported: raised above)
                raise RemoteCommandError(t.host, CommandResult(check.describe, -1, b"", b""),
                                         reason="ended before the host reported it")
            res = found
        else:
            for step in validation.prepare:
                run_step(t, step)
            res = t.run(check.script, display=check.describe, check=False, timeout=120)
        output = res.text().strip()
        status = {0: ValidationStatus.OK, 3: ValidationStatus.NOT_INSTALLED,
                  1: ValidationStatus.REJECTED}.get(res.exit_code, ValidationStatus.ERROR)
        if status is ValidationStatus.ERROR:
            output = output or res.stderr.decode("utf-8", "replace").strip()
        progress.step(name, check, status, output)
        return ValidationOutcome(name, status, output)

    out = parallel(one, list(todo))
    return {h: (r if isinstance(r, ValidationOutcome) else ValidationOutcome(h, ValidationStatus.ERROR, r.message))
            for h, r in out.items()}


def rollout(plan: Plan, transports: Mapping[str, Transport], progress: Progress,
            settled: list[HostOutcome] | None = None) -> list[HostOutcome]:
    """Apply host by host in plan order; the first failure restores that host and stops the rollout.
    A plan for LBs that serve nothing yet (``plan.side_by_side``) applies them all at once.
    ``settled`` (the caller's list) gets each host's outcome as soon as it has one, so an interrupted
    run can still say which hosts were done."""
    if plan.side_by_side:
        return _side_by_side(plan, transports, progress, settled)
    outcomes: list[HostOutcome] = [] if settled is None else settled
    failed = False
    for hp in plan.hosts:
        if failed:
            outcomes.append(HostOutcome(hp.host, Outcome.SKIPPED, "not started: an earlier host failed"))
            continue
        if not hp.steps:
            outcomes.append(HostOutcome(hp.host, Outcome.UNCHANGED))
            continue
        outcome = apply_host(hp, transports[hp.host], progress)
        outcomes.append(outcome)
        failed = outcome.status is Outcome.FAILED
    return outcomes


def _side_by_side(plan: Plan, transports: Mapping[str, Transport], progress: Progress,
                  settled: list[HostOutcome] | None = None) -> list[HostOutcome]:
    """Every host at once, each behind its own gates, with its own restore when it fails (the
    others go on: none of them served anything before). Interrupted, each host still being applied
    has what it runs stopped and is restored by its worker (the signal waits for that), a settled
    host gets its release recorded, and then the interrupt goes on."""
    todo = [hp for hp in plan.hosts if hp.steps]
    stoppers = {hp.host: Stopper() for hp in todo}
    pool = ThreadPoolExecutor(max_workers=max(1, len(todo)), thread_name_prefix="hakeep-rollout")
    futures: dict[str, Future[HostOutcome]] = {}
    try:
        for hp in todo:
            futures[hp.host] = pool.submit(apply_host, hp, transports[hp.host], progress, stoppers[hp.host])
        done = {host: f.result() for host, f in futures.items()}
    except BaseException:
        with signals.shielded():
            for stopper in stoppers.values():
                stopper.event.set()  # a worker not started yet starts nothing
            pending = set(futures.values())
            while pending:  # again and again: a command a worker started just after a cancel is stopped too
                parallel(lambda h: stoppers[h].stop(transports[h]), list(stoppers), workers=len(stoppers))
                pending = futures_wait(pending, timeout=0.5).not_done
        pool.shutdown(wait=False)
        if settled is not None:  # the hosts that finished on their own (a stopped one raised)
            settled.extend(f.result() for f in futures.values() if f.done() and f.exception() is None)
        raise
    pool.shutdown()
    return [done.get(hp.host, HostOutcome(hp.host, Outcome.UNCHANGED)) for hp in plan.hosts]


def apply_host(hp: HostPlan, t: Transport, progress: Progress, stopper: Stopper | None = None) -> HostOutcome:
    """Apply one host's steps, restore it when one fails (or the run is interrupted) before it is
    settled. ``stopper``: the host is applied in a worker thread, and the main thread may stop it."""
    start = time.monotonic()
    backed_up = settled = False  # settled: its last gate passed, the host is healthy on its new config
    last_gate = max((i for i, st in enumerate(hp.steps) if st.action is Action.GATE), default=len(hp.steps))
    notes: list[str] = []
    step = hp.steps[0] if hp.steps else None
    done: set[int] = set()
    try:
        for segment in segments(hp, last_gate, batching=bool(getattr(t, "batches", False))):
            step = hp.steps[segment[0]]
            if stopper is not None and stopper.stopped and not settled:
                raise Stopped
            progress.step(hp.host, step, StepStatus.RUNNING)
            for n, (i, ran, error) in enumerate(run_segment(t, hp.steps, segment,
                                                            None if stopper is None else stopper.event)):
                step = ran
                if n:
                    progress.step(hp.host, step, StepStatus.RUNNING)
                if error is not None and stopper is not None and stopper.stopped and not settled:
                    raise Stopped  # stopped by the interrupt, not failed: restored as interrupted below
                if error is not None:
                    if step.action in BEST_EFFORT:
                        progress.step(hp.host, step, StepStatus.FAILED, error.message)
                        notes.append(f"warning: {step.describe} failed: {error.message.splitlines()[0]}")
                        done.add(i)
                        continue
                    progress.step(hp.host, step, StepStatus.FAILED, error.message)
                    if stopper is not None:
                        stopper.restoring()
                    restored = True
                    if backed_up and not settled:
                        with signals.shielded():  # (a signal before the shield holds: restored below)
                            backed_up = False  # restored here, to its end (a signal waits): never again below
                            restored = restore_host(hp, t, _Quiet(progress))
                    return HostOutcome(hp.host, Outcome.FAILED, error.message, restored, time.monotonic() - start)
                backed_up = backed_up or step.action is Action.BACKUP
                settled = i >= last_gate
                if settled and stopper is not None:
                    stopper.restoring()  # healthy on its new files: what is left (records) runs to its end
                done.add(i)
                progress.step(hp.host, step, StepStatus.OK)
                signals.test_pause(hp.host, step.action.value, None if stopper is None else stopper.event)
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP (at any moment), a bug: never leave the host half-applied
        if stopper is not None:
            stopper.restoring()
        _interrupted(hp, t, progress, step, restore=backed_up and not settled, settled=settled, done=done)
        raise
    return HostOutcome(hp.host, Outcome.CHANGED, "; ".join(notes), seconds=time.monotonic() - start)


def _interrupted(hp: HostPlan, t: Transport, progress: Progress, step: Step | None, *, restore: bool,
                 settled: bool, done: set[int]) -> None:
    """A host's rollout was cut short: restore it (``restore``: it was changed and is not settled),
    or, settled, record its release as complete, as it is. A further signal waits meanwhile."""
    if step is not None and restore:
        with signals.shielded():  # a second Ctrl-C (or SIGTERM) waits for the restore
            quiet = _Quiet(progress)  # output that cannot be written (a reader gone) must not stop it
            quiet.step(hp.host, step, StepStatus.FAILED, "interrupted: restoring this host")
            restore_host(hp, t, quiet, interrupted=True)
    elif settled:
        with signals.shielded(), contextlib.suppress(HakeepError):
            for i, st in enumerate(hp.steps):
                if i not in done and st.action is Action.RECORD:
                    run_step(t, st)


class _Quiet:
    """A Progress whose output errors are dropped (a closed pipe, a lost terminal)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None:
        with contextlib.suppress(OSError):
            self.progress.step(host, step, status, detail)


def restore_host(hp: HostPlan, t: Transport, progress: Progress, *, interrupted: bool = False) -> bool:
    """Best effort: run every restore step even if one fails; True when all succeeded. The release
    is then marked failed-restored (interrupted, after a signal) or, if a step failed, failed."""
    ok = True
    for step in hp.restore:
        progress.step(hp.host, step, StepStatus.RUNNING)
        try:
            run_step(t, step)
        except HakeepError as exc:
            ok = False
            progress.step(hp.host, step, StepStatus.FAILED, exc.message)
        else:
            progress.step(hp.host, step, StepStatus.OK)
    mark = (hp.on_failure.interrupted if interrupted else hp.on_failure.restored) if ok else hp.on_failure.not_restored
    try:
        run_step(t, mark)
    except HakeepError:
        ok = False
    return ok


def facts_check(plan: Plan, facts: Mapping[str, HostFacts]) -> FinalCheck | None:
    """The proof as the facts this run began with show it (under its lock, a moment ago): for a run
    that changes nothing, no second look is needed when they prove it already. None when they
    cannot (no ports were tried through the VIP) or do not (then :func:`final_check` waits)."""
    if not facts or not plan.ports or any(not f.vip_ports for f in facts.values()) or plan.extra_proofs:
        return None  # (the facts try no port through the other VIPs)
    holders = tuple(n for n, f in facts.items() if f.holds_vip)
    vantage = next((n for n in facts if n not in holders), next(iter(facts)))
    ports = {p: facts[vantage].vip_ports.get(p, False) for p in plan.ports}
    leaving = {hp.host for hp in plan.hosts if hp.leaving}
    claims = arps.outside([a for f in facts.values() for a in f.vip_arp], members=set(facts) - leaving)
    outside = tuple(f"{m} ({ip})" if ip != "-" else m for m, (ip, _) in sorted(claims.items()))
    check = FinalCheck(holders, ports, 0.0, plan.expect_vip, outside)
    return check if check.ok else None


def outside_claims(plan: Plan, res: Mapping[str, CommandResult | HakeepError]) -> tuple[str, ...]:
    """MACs answering ARP for the VIP that are none of the set's LBs (an LB leaving the set counts as
    outside), as "MAC (address)"."""
    leaving = {hp.host for hp in plan.hosts if hp.leaving}
    arp = [a for n, r in res.items() if isinstance(r, CommandResult) for a in arps.parse_arp(n, r.text())]
    claims = arps.outside(arp, members=set(res) - leaving)
    return tuple(f"{m} ({ip})" if ip != "-" else m for m, (ip, _) in sorted(claims.items()))


def final_check(plan: Plan, transports: Mapping[str, Transport], *, timeout: float = 30.0) -> FinalCheck:
    """Wait (bounded) until exactly one LB holds the VIP and the VIP answers on every frontend port
    (or, when the plan stops keepalived everywhere, until no LB holds it); then the same for every
    other VIP, each within what is left of ``timeout``."""
    start = time.monotonic()
    first = _check_vip(plan, plan.proof, transports, start + timeout)
    others = tuple((name, p.vip, _check_vip(plan, p, transports, start + timeout)) for name, p in plan.extra_proofs)
    return dataclasses.replace(first, others=others, seconds=time.monotonic() - start)


def _check_vip(plan: Plan, proof: Proof, transports: Mapping[str, Transport], deadline: float) -> FinalCheck:
    start = time.monotonic()
    script = proof.script
    names = list(transports)
    while True:
        res = parallel(lambda n: transports[n].run(script, display="where is the VIP", check=False,
                                                   timeout=30), names)
        holders = tuple(n for n, r in res.items() if isinstance(r, CommandResult) and "holder=" in r.text())
        vantage = [n for n in names if n not in holders] or names
        ports = dict.fromkeys(proof.ports, False)
        r = res.get(vantage[0])
        if isinstance(r, CommandResult):
            for line in r.text().splitlines():
                if line.startswith("port="):
                    port, _, state = line[5:].partition(":")
                    ports[int(port)] = state == "open"
        check = FinalCheck(holders, ports, time.monotonic() - start, proof.expect_vip,
                           outside_claims(plan, res))
        if check.ok or time.monotonic() > deadline:
            return check
        time.sleep(0.25)
