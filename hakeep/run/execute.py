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
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts import arp as arps
from hakeep.hosts.facts import HostFacts
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, Transport
from hakeep.plan.steps import Action, HostPlan, Plan, Step
from hakeep.run.results import FinalCheck, HostOutcome, Outcome, StepStatus, ValidationOutcome, ValidationStatus

POLL_INTERVAL = 0.5
STEP_TIMEOUT = 300.0  # a step's deadline, kept by the host (hakeep.hosts.remote.bounded)
INSTALL_TIMEOUT = 600.0  # installing packages (downloads included); a cut install leaves no lock held


class Progress(Protocol):
    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None: ...


class NoProgress:
    def step(self, host: str, step: Step, status: StepStatus | ValidationStatus, detail: str = "") -> None:
        del host, step, status, detail


class GateError(HakeepError):
    """A waiting step did not pass in time."""


def run_step(t: Transport, step: Step, *, now: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> CommandResult:
    if step.wait <= 0:
        return t.run(step.script, display=step.describe, stdin=step.stdin,
                     timeout=INSTALL_TIMEOUT if step.action is Action.INSTALL else STEP_TIMEOUT)
    deadline = now() + step.wait
    while True:
        result = t.run(step.script, display=step.describe, stdin=step.stdin, check=False, timeout=30)
        if result.ok:
            return result
        if now() >= deadline:
            last = (result.text().strip() or result.stderr.decode("utf-8", "replace").strip())[-500:]
            raise GateError(f"{t.host}: {step.describe}: not satisfied after {step.wait:.0f}s: {last}",
                            hint=f"look at the host: journalctl -u haproxy -u keepalived on {t.host}")
        sleep(POLL_INTERVAL)


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
        for step in validation.prepare:
            run_step(t, step)
        check = validation.check
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


def rollout(plan: Plan, transports: Mapping[str, Transport], progress: Progress) -> list[HostOutcome]:
    """Apply host by host in plan order; the first failure restores that host and stops the rollout."""
    outcomes: list[HostOutcome] = []
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


BEST_EFFORT = (Action.RECORD, Action.PRUNE)  # after the gate passed: a failure here must not undo a healthy host


def apply_host(hp: HostPlan, t: Transport, progress: Progress) -> HostOutcome:
    start = time.monotonic()
    backed_up = settled = False  # settled: its last gate passed, the host is healthy on its new config
    last_gate = max((i for i, st in enumerate(hp.steps) if st.action is Action.GATE), default=len(hp.steps))
    notes: list[str] = []
    step = hp.steps[0] if hp.steps else None
    try:
        for i, step in enumerate(hp.steps):
            progress.step(hp.host, step, StepStatus.RUNNING)
            try:
                run_step(t, step)
            except HakeepError as exc:
                if step.action in BEST_EFFORT:
                    progress.step(hp.host, step, StepStatus.FAILED, exc.message)
                    notes.append(f"warning: {step.describe} failed: {exc.message.splitlines()[0]}")
                    continue
                progress.step(hp.host, step, StepStatus.FAILED, exc.message)
                restored = restore_host(hp, t, progress) if backed_up and not settled else True
                return HostOutcome(hp.host, Outcome.FAILED, exc.message, restored, time.monotonic() - start)
            backed_up = backed_up or step.action is Action.BACKUP
            settled = i >= last_gate
            progress.step(hp.host, step, StepStatus.OK)
            signals.test_pause(hp.host, step.action.value)
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP (at any moment), a bug: never leave the host half-applied
        if backed_up and not settled and step is not None:
            with signals.shielded():  # a second Ctrl-C (or SIGTERM) waits for the restore
                quiet = _Quiet(progress)  # output that cannot be written (a reader gone) must not stop it
                quiet.step(hp.host, step, StepStatus.FAILED, "interrupted: restoring this host")
                restore_host(hp, t, quiet, interrupted=True)
        raise
    return HostOutcome(hp.host, Outcome.CHANGED, "; ".join(notes), seconds=time.monotonic() - start)


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
    if not facts or not plan.ports or any(not f.vip_ports for f in facts.values()):
        return None
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
    (or, when the plan stops keepalived everywhere, until no LB holds it)."""
    start = time.monotonic()
    script = plan.proof.script
    names = list(transports)
    while True:
        res = parallel(lambda n: transports[n].run(script, display="where is the VIP", check=False,
                                                   timeout=30), names)
        holders = tuple(n for n, r in res.items() if isinstance(r, CommandResult) and "holder=" in r.text())
        vantage = [n for n in names if n not in holders] or names
        ports = dict.fromkeys(plan.ports, False)
        r = res.get(vantage[0])
        if isinstance(r, CommandResult):
            for line in r.text().splitlines():
                if line.startswith("port="):
                    port, _, state = line[5:].partition(":")
                    ports[int(port)] = state == "open"
        check = FinalCheck(holders, ports, time.monotonic() - start, plan.expect_vip,
                           outside_claims(plan, res))
        if check.ok or time.monotonic() - start > timeout:
            return check
        time.sleep(0.25)

