"""Batched steps (hakeep.run.batch and the executor's use of it), run for real by this machine's
/bin/sh through a transport that runs scripts locally: nothing here touches a host or /run/hakeep."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hakeep.hosts.remote import CommandResult
from hakeep.plan.steps import Action, FailureMarks, HostPlan, Step
from hakeep.run.batch import batch_input, batch_script, parse_batch, run_batch
from hakeep.run.execute import NoProgress, apply_host, segments
from hakeep.run.results import Outcome


class LocalTransport:
    """Runs each script with this machine's /bin/sh; counts round trips."""

    batches = True

    def __init__(self, host: str = "lb1") -> None:
        self.host = host
        self.calls: list[str] = []

    def run(self, script: str, *, display: str | None = None, privileged: bool = True, stdin: bytes = b"",
            timeout: float = 300.0, check: bool = True, private: bool = False) -> CommandResult:
        del privileged, check, private
        self.calls.append(display or script)
        p = subprocess.run(["/bin/sh", "-c", script], input=stdin, capture_output=True, timeout=min(timeout, 60),
                           check=False)
        return CommandResult(display or "", p.returncode, p.stdout, p.stderr)


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


def host_plan(tmp_path: Path, gate: str) -> HostPlan:
    live, log = tmp_path / "live", tmp_path / "log"
    live.write_text("old\n")

    def s(action: Action, script: str, stdin: bytes = b"", wait: float = 0.0) -> Step:
        return Step(action, action.value, f"echo {action.value} >> {log}; {script}", stdin, wait)

    return HostPlan(
        host="lb1", holds_vip=False, packages=(), install=None, validation=None, changes=(),
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
