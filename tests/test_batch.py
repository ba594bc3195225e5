"""Batched steps (hakeep.run.batch and the executor's use of it), run for real by this machine's
/bin/sh through a transport that runs scripts locally, each under the real deadline wrapper
(hakeep.hosts.remote.bounded) and stopped by the real stop script: nothing here touches a host or
/run/hakeep (the steps folder is a temp folder)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hakeep import signals
from hakeep.errors import HakeepError
from hakeep.hosts.remote import CommandResult, ConnectError, RemoteCommandError, bounded, stop_script
from hakeep.plan.releases import ReleaseKind
from hakeep.plan.steps import Action, FailureMarks, HostPlan, Plan, Proof, Step
from hakeep.run.batch import batch_input, batch_script, parse_batch, run_batch
from hakeep.run.execute import NoProgress, apply_host, rollout, segments
from hakeep.run.results import Outcome
from hakeep.run.steprun import Stopped, run_step


class LocalTransport:
    """Runs each script with this machine's /bin/sh under ``bounded`` (steps noted in ``steps``);
    counts round trips; ``cancel()`` stops what runs with the real stop script."""

    batches = True

    def __init__(self, steps: Path, host: str = "lb1") -> None:
        self.host = host
        self.steps = steps
        self.calls: list[str] = []
        self.tokens: set[str] = set()

    def run(self, script: str, *, display: str | None = None, privileged: bool = True, stdin: bytes = b"",
            timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        del privileged, private
        self.calls.append(display or script)
        token = secrets.token_hex(8)
        self.tokens.add(token)
        p = subprocess.Popen(["/bin/sh", "-c", bounded(script, timeout, token, str(self.steps))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(stdin, timeout=min(timeout, 60) + 10)
        except BaseException:  # as SSHTransport: an interrupted command is stopped before anything else
            self.cancel()
            p.communicate(timeout=30)
            raise
        finally:
            self.tokens.discard(token)
        result = CommandResult(display or "", p.returncode, out, err)
        if check and not result.ok:
            raise RemoteCommandError(self.host, result)
        return result

    def cancel(self) -> bool:
        tokens = list(self.tokens)
        return not tokens or subprocess.run(["/bin/sh", "-c", stop_script(tokens, str(self.steps))],
                                            check=False, timeout=30).returncode == 0

    def lock(self, path: str, owner: str) -> None:
        del path, owner

    def unlock(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def steps_dir(tmp_path: Path) -> Path:
    d = tmp_path / "steps"
    d.mkdir()
    return d


def step(script: str, action: Action = Action.STAGE, stdin: bytes = b"", wait: float = 0.0) -> Step:
    return Step(action, f"{action.value}: {script[:30]}", script, stdin, wait)


def deadlines(steps: list[Step], alone: float = 300.0) -> list[float]:
    return [30.0 if s.wait > 0 else alone for s in steps]


def test_each_step_gets_its_own_input_and_reports_its_own_output(steps_dir: Path) -> None:
    forged = "@@00 step 1 0 0 0\n"  # output cannot forge a frame: the marker is random
    steps = [step("cat", stdin=b"first\n"), step("cat; printf 'no newline'", stdin=b"sec\x00ond\n"),
             step(f"printf '{forged}'; echo to-stderr >&2"), step("cat", stdin=b"\xff" * 3000)]
    t = LocalTransport(steps_dir)
    ran = run_batch(t, steps, deadlines(steps))
    assert [r.result.stdout for r in ran if r.result] == [b"first\n", b"sec\x00ond\nno newline", forged.encode(),
                                                          b"\xff" * 3000]
    assert ran[2].result is not None
    assert ran[2].result.stderr == b"to-stderr\n"
    assert [r.result.command for r in ran if r.result] == [s.describe for s in steps]
    assert len(t.calls) == 1
    assert list(steps_dir.iterdir()) == []  # its step file and working folder are gone


def test_a_failing_step_stops_the_batch(steps_dir: Path, tmp_path: Path) -> None:
    mark = tmp_path / "after"
    steps = [step("echo ok"), step("echo why >&2; exit 3"), step(f"touch {mark}")]
    ran = run_batch(LocalTransport(steps_dir), steps, deadlines(steps))
    assert [(r.result.exit_code, r.result.stderr) for r in ran if r.result] == [(0, b""), (3, b"why\n")]
    assert len(ran) == 2  # a reported failure: nothing is pinned on the step after it
    assert not mark.exists()


def test_a_waiting_step_is_polled_on_the_host_by_the_clock(steps_dir: Path, tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    gate = f'echo x >> {tries}; [ "$(wc -l < {tries})" -ge 3 ]'
    t = LocalTransport(steps_dir)
    steps = [step("true"), step(gate, Action.GATE, wait=10)]
    ran = run_batch(t, steps, deadlines(steps))
    assert [r.result.exit_code for r in ran if r.result] == [0, 0]
    assert tries.read_text().count("x") == 3
    assert len(t.calls) == 1  # three tries, one round trip
    tries.unlink()
    steps = [step(f"echo x >> {tries}; echo down; false", Action.GATE, wait=1)]
    ran = run_batch(t, steps, deadlines(steps))
    assert ran[0].result is not None
    assert ran[0].result.exit_code == 1
    assert ran[0].result.stdout == b"down\n"
    assert tries.read_text().count("x") >= 5  # tried every 0.1 s for (at least) its second, then given up


def test_a_step_that_outlives_its_deadline_is_stopped_with_its_children(steps_dir: Path, tmp_path: Path) -> None:
    late, after = tmp_path / "late", tmp_path / "after"
    steps = [step("true"), step(f"(sleep 2; touch {late}) & sleep 2; touch {late}"), step(f"touch {after}")]
    ran = run_batch(LocalTransport(steps_dir), steps, [300.0, 1.0, 300.0])
    assert [r.result.exit_code for r in ran if r.result] == [0, 124]
    assert ran[1].result is not None
    assert b"stopped on the host at its deadline (1s)" in ran[1].result.stderr
    time.sleep(2.5)
    assert not late.exists()
    assert not after.exists()


def test_the_executor_reports_a_deadline_as_such(steps_dir: Path, tmp_path: Path) -> None:
    hp = host_plan(tmp_path, "true")
    slow = dataclasses.replace(hp.steps[2], script="sleep 30")
    hp = dataclasses.replace(hp, steps=(*hp.steps[:2], slow, *hp.steps[3:]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("hakeep.run.steprun.STEP_TIMEOUT", 1.0)
        out = apply_host(hp, LocalTransport(steps_dir), NoProgress())
    assert out.status is Outcome.FAILED
    assert out.restored
    assert "timed out after 1s (stopped on the host)" in out.detail
    assert (tmp_path / "live").read_text() == "old\n"


def test_a_report_is_found_after_noise_and_a_cut_off_one_ends_the_list() -> None:
    steps = [step("a"), step("b")]
    out = b"sudo: noise\n@@ab step 0 0 2 0\nhi@@ab step 1 0 9 0\nshort"
    assert [r.result.stdout for r in parse_batch(steps, out, "ab") if r.result] == [b"hi"]
    assert parse_batch(steps, b"@@ab step 1 0 0 0\n", "ab") == []  # out of order
    assert parse_batch(steps, b"@@cd step 0 0 0 0\n", "ab") == []  # another marker
    script = batch_script([*steps, step("c'd", stdin=b"xyz", wait=2.5)], [300.0, 300.0, 30.0])
    assert "\nSCRIPTS='1 1 3'\nLENGTHS='0 0 3'\nWAITS='0 0 3'\nDEADLINES='300 300 30'\n" in script
    assert batch_input([step("a", stdin=b"1"), step("b", stdin=b"22")], "ab") == b"ab\na1b22"


class Breaks(LocalTransport):
    """Runs a batch for real, then fails as the transport would: ``error`` decides how."""

    def __init__(self, steps: Path, error: str) -> None:
        super().__init__(steps)
        self.error = error

    def run(self, script: str, **kw: object) -> CommandResult:
        result = super().run(script, **kw)  # type: ignore[arg-type]
        if "more steps" not in str(kw.get("display", "")):
            return result
        # the host reported two steps, then the answer stopped
        cut = dataclasses.replace(result, stdout=result.stdout[:result.stdout.index(
            b"@@", result.stdout.index(b"@@", 1) + 1)], exit_code=-1)
        if self.error == "timeout":
            raise RemoteCommandError(self.host, cut, reason="gave no answer within 9s")
        lost = ConnectError(f"{self.host}: the host answered no keepalive for 15s", kind="closed")
        if self.error == "connection":  # lost while the batch ran: what came before counts
            lost.result = cut
        raise lost


@pytest.mark.parametrize("error", ["timeout", "connection", "connection before any output"])
def test_a_transport_failure_in_a_batch_is_the_failure_of_the_step_in_flight(
        steps_dir: Path, tmp_path: Path, error: str) -> None:
    hp = host_plan(tmp_path, "true")
    t = Breaks(steps_dir, error)
    seen: list[tuple[str, str]] = []

    class Recorder(NoProgress):
        def step(self, host: str, st: Step, status: object, detail: str = "") -> None:
            seen.append((st.action.value, str(status)))

    out = apply_host(hp, t, Recorder())
    assert out.status is Outcome.FAILED
    assert out.restored  # the restore ran (alone: not a batch), and so did the mark
    assert (tmp_path / "live").read_text() == "old\n"
    assert (tmp_path / "mark").read_text() == "restored\n"
    failed = [a for a, s in seen if s == "failed"]
    # the batch ran stage..gate; its report is lost with the connection, or kept up to where it was cut
    assert failed == (["stage"] if error == "connection before any output" else ["service"]), seen
    if failed == ["service"]:
        assert [a for a, s in seen if s == "ok"][:3] == ["backup", "stage", "commit"]
    assert ("gave no answer" if error == "timeout" else "keepalive") in out.detail


def host_plan(tmp_path: Path, gate: str, host: str = "lb1") -> HostPlan:
    live, log = tmp_path / "live", tmp_path / "log"
    live.write_text("old\n")

    def s(action: Action, script: str, stdin: bytes = b"", wait: float = 0.0) -> Step:
        return Step(action, f"{action.value} batch", f"echo {action.value} >> {log}; {script}", stdin, wait)

    return HostPlan(
        host=host, holds_vip=False, packages=(), install=None, validation=None, changes=(),
        steps=(s(Action.BACKUP, f"cp {live} {tmp_path}/saved"), s(Action.STAGE, f"cat > {live}.new", b"new\n"),
               s(Action.COMMIT, f"mv {live}.new {live}"), s(Action.SERVICE, "true"),
               s(Action.GATE, gate, wait=1), s(Action.RECORD, f"echo complete > {tmp_path}/release")),
        restore=(Step(Action.RESTORE, "restore", f"echo restore >> {log}; cp {tmp_path}/saved {live}"),),
        on_failure=FailureMarks(*(Step(Action.RECORD, "mark", f"echo record >> {log}; echo {m} > {tmp_path}/mark")
                                  for m in ("restored", "failed", "interrupted"))),
        release_dir="/x",
    )


@pytest.mark.parametrize(("gate", "outcome", "content"), [("true", Outcome.CHANGED, "new\n"),
                                                          ("echo down; false", Outcome.FAILED, "old\n")])
def test_a_host_in_batches_keeps_its_gates_and_restore(steps_dir: Path, tmp_path: Path, gate: str, outcome: Outcome,
                                                       content: str) -> None:
    hp = host_plan(tmp_path, gate)
    t = LocalTransport(steps_dir)
    result = apply_host(hp, t, NoProgress())
    assert result.status is outcome
    assert (tmp_path / "live").read_text() == content
    log = (tmp_path / "log").read_text().split()
    if outcome is Outcome.CHANGED:
        assert log == ["backup", "stage", "commit", "service", "gate", "record"]
        assert len(t.calls) == 3  # backup; stage..gate; record
    else:
        assert log[:4] == ["backup", "stage", "commit", "service"]
        assert set(log[4:-2]) == {"gate"}  # polled for its second, then the restore and the mark
        assert len(log[4:-2]) >= 5
        assert log[-2:] == ["restore", "record"]
        assert "lb1: gate batch: not satisfied after 1s: down" in result.detail
        assert (tmp_path / "mark").read_text() == "restored\n"
    assert list(steps_dir.iterdir()) == []


def test_segments_end_where_they_must(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hp = host_plan(tmp_path, "true")
    assert segments(hp, 4, batching=False) == [[0], [1], [2], [3], [4], [5]]
    assert segments(hp, 4, batching=True) == [[0], [1, 2, 3, 4], [5]]
    monkeypatch.setenv("HAKEEP_TEST_PAUSE", "lb1:commit")
    assert segments(hp, 4, batching=True) == [[0], [1, 2], [3, 4], [5]]
    monkeypatch.setenv("HAKEEP_TEST_PAUSE", "lb2:commit")
    assert segments(hp, 4, batching=True) == [[0], [1, 2, 3, 4], [5]]


@contextlib.contextmanager
def signal_after(seconds: float, signum: int = signal.SIGTERM):  # type: ignore[no-untyped-def]
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    signals.install()
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signum))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        for s, h in saved.items():
            signal.signal(s, h)


def test_an_interrupt_during_a_batch_stops_its_step_and_restores_the_host(steps_dir: Path, tmp_path: Path) -> None:
    hp = host_plan(tmp_path, "true")
    child = tmp_path / "child"
    slow = dataclasses.replace(hp.steps[3], script=f"(sleep 3; touch {child}) & sleep 30")
    hp = dataclasses.replace(hp, steps=(*hp.steps[:3], slow, *hp.steps[4:]))

    t = LocalTransport(steps_dir)
    with signal_after(1.0), pytest.raises(signals.Interrupted):
        apply_host(hp, t, NoProgress())
    assert (tmp_path / "live").read_text() == "old\n"  # committed in the batch, restored after
    assert (tmp_path / "mark").read_text() == "interrupted\n"
    time.sleep(3)
    assert not child.exists()  # the step's own process group was stopped too
    assert list(steps_dir.iterdir()) == []


def test_an_interrupt_after_the_last_gate_records_the_release(steps_dir: Path, tmp_path: Path) -> None:
    hp = host_plan(tmp_path, "true")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(signals, "test_pause", lambda host, what, until: os.kill(os.getpid(), signal.SIGTERM)
                   if what == "gate" else None)
        with signal_after(60), pytest.raises(signals.Interrupted):
            apply_host(hp, LocalTransport(steps_dir), NoProgress())
    assert (tmp_path / "live").read_text() == "new\n"  # healthy on its new files: kept
    assert (tmp_path / "release").read_text() == "complete\n"
    assert not (tmp_path / "mark").exists()


def test_a_missing_report_is_an_error_of_its_own() -> None:
    class Silent:
        host = "lb1"
        batches = True

        def run(self, script: str, **kw: object) -> CommandResult:
            del script, kw
            return CommandResult("x", 0, b"", b"")

    ran = run_batch(Silent(), [step("a"), step("b")], [300.0, 300.0])  # type: ignore[arg-type]
    assert len(ran) == 1
    assert ran[0].result is None
    assert isinstance(ran[0].error, HakeepError)
    assert "ended before the host reported it" in ran[0].error.message


# --- side by side (a first deploy: no LB serves anything yet) ----------------------------------


def side_by_side(tmp_path: Path, gates: dict[str, str], wait: float = 1.0) -> Plan:
    hosts = []
    for host, gate in gates.items():
        (tmp_path / host).mkdir()
        hp = host_plan(tmp_path / host, gate, host)
        steps = tuple(dataclasses.replace(s, wait=wait) if s.action is Action.GATE else s for s in hp.steps)
        hosts.append(dataclasses.replace(hp, steps=steps))
    return Plan("r1", ReleaseKind.DEPLOY, tuple(hosts), Proof("10.0.0.1", (6443,), True, "true"), (), (),
                side_by_side=True)


def test_lbs_that_serve_nothing_yet_are_applied_side_by_side(steps_dir: Path, tmp_path: Path) -> None:
    # lb1's gate passes only once lb2 has made its backup: one after the other, it could not
    plan = side_by_side(tmp_path, {"lb1": f"test -e {tmp_path}/lb2/saved", "lb2": "echo down; false"})
    ts = {h: LocalTransport(steps_dir, h) for h in ("lb1", "lb2")}
    outcomes = rollout(plan, ts, NoProgress())
    assert [(o.host, o.status) for o in outcomes] == [("lb1", Outcome.CHANGED), ("lb2", Outcome.FAILED)]
    assert (tmp_path / "lb1" / "live").read_text() == "new\n"
    assert (tmp_path / "lb1" / "release").read_text() == "complete\n"
    assert (tmp_path / "lb2" / "live").read_text() == "old\n"  # restored; lb1 went on regardless
    assert (tmp_path / "lb2" / "mark").read_text() == "restored\n"


def test_an_interrupt_during_a_side_by_side_rollout_restores_every_host_unhurried(steps_dir: Path,
                                                                                tmp_path: Path) -> None:
    # lb1's gate never passes (it is still waiting when the signal comes, at 1 s); lb2's fails at once
    # and its restore takes 2 s: the interrupt must not cut that restore short, only stop lb1's gate
    plan = side_by_side(tmp_path, {"lb1": "false", "lb2": "exit 1"}, wait=20)
    lb2 = plan.hosts[1]
    slow = Step(Action.RESTORE, "restore", f"echo restore >> {tmp_path}/lb2/log; sleep 2; "
                f"cp {tmp_path}/lb2/saved {tmp_path}/lb2/live")
    lb2 = dataclasses.replace(lb2, steps=tuple(dataclasses.replace(s, wait=0.0) if s.action is Action.GATE else s
                                               for s in lb2.steps), restore=(slow,))  # fails at once
    plan = dataclasses.replace(plan, hosts=(plan.hosts[0], lb2))
    ts = {h: LocalTransport(steps_dir, h) for h in ("lb1", "lb2")}
    with signal_after(1.0), pytest.raises(signals.Interrupted):
        rollout(plan, ts, NoProgress())
    assert (tmp_path / "lb1" / "live").read_text() == "old\n"
    assert (tmp_path / "lb1" / "mark").read_text() == "interrupted\n"
    assert (tmp_path / "lb1" / "log").read_text().split()[-2:] == ["restore", "record"]
    assert (tmp_path / "lb2" / "live").read_text() == "old\n"  # its restore ran to its end
    assert (tmp_path / "lb2" / "mark").read_text() == "restored\n"  # it failed on its own, before the signal
    assert list(steps_dir.iterdir()) == []


def test_a_host_settled_when_a_side_by_side_rollout_is_interrupted_keeps_its_change(
        steps_dir: Path, tmp_path: Path) -> None:
    plan = side_by_side(tmp_path, {"lb1": "true", "lb2": "false"}, wait=20)
    ts = {h: LocalTransport(steps_dir, h) for h in ("lb1", "lb2")}
    with signal_after(2.0), pytest.raises(signals.Interrupted):
        rollout(plan, ts, NoProgress())
    assert (tmp_path / "lb1" / "live").read_text() == "new\n"
    assert (tmp_path / "lb1" / "release").read_text() == "complete\n"
    assert not (tmp_path / "lb1" / "mark").exists()
    assert (tmp_path / "lb2" / "live").read_text() == "old\n"
    assert (tmp_path / "lb2" / "mark").read_text() == "interrupted\n"


def test_a_batch_cut_short_on_its_input_runs_nothing_of_what_is_missing(steps_dir: Path, tmp_path: Path) -> None:
    # hakeep died (or the link dropped) in the middle of sending the batch: half an upload is never
    # written over anything, half a script never runs, a missing gate never "passes"
    target, after = tmp_path / "target", tmp_path / "after"
    steps = [step("true"), step(f"cat > {target}", stdin=b"x" * 5000), step(f"touch {after}")]
    data = batch_input(steps, "ab")
    script = bounded(batch_script(steps, [300.0] * 3), 60, secrets.token_hex(8), str(steps_dir))
    r = subprocess.run(["/bin/sh", "-c", script], input=data[:len(data) - 4000], capture_output=True, check=False)
    assert r.returncode == 92
    assert [x.result.exit_code for x in parse_batch(steps, r.stdout, "ab") if x.result] == [0]
    assert not target.exists()
    assert not after.exists()
    assert list(steps_dir.iterdir()) == []


def test_the_batch_deadline_stops_the_step_it_runs(steps_dir: Path, tmp_path: Path) -> None:
    late = tmp_path / "late"
    steps = [step(f"sleep 3; touch {late}")]
    script = bounded(batch_script(steps, [30.0]), 1, secrets.token_hex(8), str(steps_dir))
    r = subprocess.run(["/bin/sh", "-c", script], input=batch_input(steps, "ab"), capture_output=True, check=False,
                       timeout=30)
    assert r.returncode in (124, 137)
    time.sleep(3)
    assert not late.exists()
    assert list(steps_dir.iterdir()) == []


def test_a_gate_polled_over_the_network_gives_up_when_the_run_is_stopped(steps_dir: Path) -> None:
    t = LocalTransport(steps_dir)
    t.batches = False
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    start = time.monotonic()
    with pytest.raises(Stopped):
        run_step(t, step("false", Action.GATE, wait=30), stop=stop)
    assert time.monotonic() - start < 10  # not the gate's 30 s
