"""Batched steps (hakeep.run.batch and the executor's use of it), run for real by this machine's
/bin/sh through a transport that runs scripts locally: nothing here touches a host or /run/hakeep."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from hakeep import signals
from hakeep.hosts.remote import CommandResult
from hakeep.plan.releases import ReleaseKind
from hakeep.plan.steps import Action, FailureMarks, HostPlan, Plan, Proof, Step
from hakeep.run.batch import batch_input, batch_script, parse_batch, run_batch
from hakeep.run.execute import NoProgress, apply_host, rollout, segments
from hakeep.run.results import Outcome


class LocalTransport:
    """Runs each script with this machine's /bin/sh; counts round trips; cancel() kills what runs."""

    batches = True

    def __init__(self, host: str = "lb1") -> None:
        self.host = host
        self.calls: list[str] = []
        self.running: list[subprocess.Popen[bytes]] = []

    def run(self, script: str, *, display: str | None = None, privileged: bool = True, stdin: bytes = b"",
            timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        del privileged, check, private
        self.calls.append(display or script)
        p = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.running.append(p)
        out, err = p.communicate(stdin, timeout=min(timeout, 60))
        self.running.remove(p)
        return CommandResult(display or "", p.returncode, out, err)

    def cancel(self) -> bool:
        for p in list(self.running):
            os.killpg(p.pid, signal.SIGKILL)
        return True

    def lock(self, path: str, owner: str) -> None:
        del path, owner

    def unlock(self) -> None:
        pass

    def close(self) -> None:
        pass


def step(script: str, action: Action = Action.STAGE, stdin: bytes = b"", wait: float = 0.0) -> Step:
    return Step(action, f"{action.value}: {script[:30]}", script, stdin, wait)


def test_each_step_gets_its_own_input_and_reports_its_own_output(tmp_path: Path) -> None:
    forged = "@@00 step 1 0 0 0\n"  # output cannot forge a frame: the marker is random
    steps = [step("cat", stdin=b"first\n"), step("cat; printf 'no newline'", stdin=b"sec\x00ond\n"),
             step(f"printf '{forged}'; echo to-stderr >&2"), step("cat", stdin=b"\xff" * 3000)]
    ran, whole = run_batch(LocalTransport(), steps, base=str(tmp_path))
    assert whole.exit_code == 0
    assert [r.result.stdout for r in ran] == [b"first\n", b"sec\x00ond\nno newline", forged.encode(), b"\xff" * 3000]
    assert ran[2].result.stderr == b"to-stderr\n"
    assert [r.result.command for r in ran] == [s.describe for s in steps]
    assert list(tmp_path.iterdir()) == []  # its working folder is gone


def test_a_failing_step_stops_the_batch(tmp_path: Path) -> None:
    mark = tmp_path / "after"
    steps = [step("echo ok"), step("echo why >&2; exit 3"), step(f"touch {mark}")]
    t = LocalTransport()
    ran, _ = run_batch(t, steps, base=str(tmp_path / "b"))
    assert [(r.result.exit_code, r.result.stderr) for r in ran] == [(0, b""), (3, b"why\n")]
    assert not mark.exists()
    assert len(t.calls) == 1


def test_a_waiting_step_is_polled_on_the_host(tmp_path: Path) -> None:
    tries = tmp_path / "tries"
    gate = f'echo x >> {tries}; [ "$(wc -l < {tries})" -ge 3 ]'
    t = LocalTransport()
    ran, _ = run_batch(t, [step("true"), step(gate, Action.GATE, wait=10)], base=str(tmp_path / "b"))
    assert [r.result.exit_code for r in ran] == [0, 0]
    assert tries.read_text().count("x") == 3
    assert len(t.calls) == 1  # three tries, one round trip


def test_a_cut_off_report_ends_the_list() -> None:
    steps = [step("a"), step("b")]
    out = b"@@ab step 0 0 2 0\nhi@@ab step 1 0 9 0\nshort"
    assert [r.result.stdout for r in parse_batch(steps, out, "ab")] == [b"hi"]
    assert parse_batch(steps, b"@@ab step 1 0 0 0\n", "ab") == []  # out of order
    assert parse_batch(steps, b"@@cd step 0 0 0 0\n", "ab") == []  # another marker
    script = batch_script([*steps, step("c'd", stdin=b"xyz", wait=2.5)], "/x")
    assert "\nBASE=/x\nSTEPS='YQ== Yg== Yydk'\nLENGTHS='0 0 3'\nWAITS='0 0 3'\n" in script
    assert batch_input([step("a", stdin=b"1"), step("b", stdin=b"22")], "ab") == b"ab\n122"


def host_plan(tmp_path: Path, gate: str, host: str = "lb1") -> HostPlan:
    live, log = tmp_path / "live", tmp_path / "log"
    live.write_text("old\n")

    def s(action: Action, script: str, stdin: bytes = b"", wait: float = 0.0) -> Step:
        return Step(action, action.value, f"echo {action.value} >> {log}; {script}", stdin, wait)

    return HostPlan(
        host=host, holds_vip=False, packages=(), install=None, validation=None, changes=(),
        steps=(s(Action.BACKUP, f"cp {live} {tmp_path}/saved"), s(Action.STAGE, f"cat > {live}.new", b"new\n"),
               s(Action.COMMIT, f"mv {live}.new {live}"), s(Action.SERVICE, "true"),
               s(Action.GATE, gate, wait=1), s(Action.RECORD, "true")),
        restore=(s(Action.RESTORE, f"cp {tmp_path}/saved {live}"),),
        on_failure=FailureMarks(*(s(Action.RECORD, f"echo {m} > {tmp_path}/mark") for m in ("restored", "failed",
                                                                                              "interrupted"))),
        release_dir="/x",
    )


@pytest.mark.parametrize(("gate", "outcome", "content"), [("true", Outcome.CHANGED, "new\n"),
                                                          ("echo down; false", Outcome.FAILED, "old\n")])
def test_a_host_in_batches_keeps_its_gates_and_restore(tmp_path: Path, gate: str, outcome: Outcome,
                                                       content: str) -> None:
    hp = host_plan(tmp_path, gate)
    t = LocalTransport()
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
        assert "lb1: gate: not satisfied after 1s: down" in result.detail
        assert (tmp_path / "mark").read_text() == "restored\n"


def test_segments_end_where_they_must(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hp = host_plan(tmp_path, "true")
    assert segments(hp, 4, batching=False) == [[0], [1], [2], [3], [4], [5]]
    assert segments(hp, 4, batching=True) == [[0], [1, 2, 3, 4], [5]]
    monkeypatch.setenv("HAKEEP_TEST_PAUSE", "lb1:commit")
    assert segments(hp, 4, batching=True) == [[0], [1, 2], [3, 4], [5]]
    monkeypatch.setenv("HAKEEP_TEST_PAUSE", "lb2:commit")
    assert segments(hp, 4, batching=True) == [[0], [1, 2, 3, 4], [5]]


def side_by_side(tmp_path: Path, gates: dict[str, str]) -> Plan:
    hosts = []
    for host, gate in gates.items():
        (tmp_path / host).mkdir()
        hosts.append(host_plan(tmp_path / host, gate, host))
    return Plan("r1", ReleaseKind.DEPLOY, tuple(hosts), Proof("10.0.0.1", (6443,), True, "true"), (), (), parallel=True)


def test_lbs_that_serve_nothing_yet_are_applied_side_by_side(tmp_path: Path) -> None:
    # lb1's gate passes only once lb2 has made its backup: one after the other, it could not
    plan = side_by_side(tmp_path, {"lb1": f"test -e {tmp_path}/lb2/saved", "lb2": "echo down; false"})
    ts = {h: LocalTransport(h) for h in ("lb1", "lb2")}
    outcomes = rollout(plan, ts, NoProgress())
    assert [(o.host, o.status) for o in outcomes] == [("lb1", Outcome.CHANGED), ("lb2", Outcome.FAILED)]
    assert (tmp_path / "lb1" / "live").read_text() == "new\n"
    assert (tmp_path / "lb2" / "live").read_text() == "old\n"  # restored; lb1 went on regardless
    assert (tmp_path / "lb2" / "mark").read_text() == "restored\n"


def test_an_interrupt_during_a_side_by_side_rollout_restores_every_host(tmp_path: Path) -> None:
    plan = side_by_side(tmp_path, {"lb1": "false", "lb2": "false"})  # the gates never pass
    plan = Plan(plan.release_id, plan.kind, tuple(dataclasses_replace_wait(hp, 20) for hp in plan.hosts), plan.proof,
                (), (), parallel=True)
    ts = {h: LocalTransport(h) for h in ("lb1", "lb2")}
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    signals.install()
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(signals.Interrupted):
            rollout(plan, ts, NoProgress())
    finally:
        timer.cancel()
        for s, h in saved.items():
            signal.signal(s, h)
    for name in ("lb1", "lb2"):
        assert (tmp_path / name / "live").read_text() == "old\n"
        assert (tmp_path / name / "mark").read_text() == "interrupted\n"
        assert (tmp_path / name / "log").read_text().split()[-2:] == ["restore", "record"]


def dataclasses_replace_wait(hp: HostPlan, wait: float) -> HostPlan:
    import dataclasses

    steps = tuple(dataclasses.replace(s, wait=wait) if s.action is Action.GATE else s for s in hp.steps)
    return dataclasses.replace(hp, steps=steps)
