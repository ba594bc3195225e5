"""Every way a ``--json`` deploy, rollback or drill can end prints one document that keeps its schema
(#16): refused without --yes, install failed, validation refused (dry-run too), interrupted in the
rollout (with the hosts already done), a bug (a traceback, and still a document), a drill refused
or failed after a good round (never ``ok``). ``hakeep.cli.main.main`` runs in-process with the host
side faked at the command's seams; nothing connects anywhere."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakeep import signals
from hakeep.cli.commands import common, deploy
from hakeep.cli.main import main
from hakeep.errors import HakeepError
from hakeep.ops import drill as drill_ops
from hakeep.ops import status as status_ops
from hakeep.ops.drill import DrillRefused, DrillResult, Mode
from hakeep.plan.releases import parse_manifest
from hakeep.run import session as session_mod
from hakeep.run.results import FinalCheck, HostOutcome, Outcome, ValidationOutcome, ValidationStatus
from tests import schemas
from tests.fakes import facts
from tests.fixtures import base_doc, load, write
from tests.test_plan import L, R, plan_for


@pytest.fixture
def run_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """main(argv) in this process -> (exit code, the one document it printed, checked)."""
    monkeypatch.setattr(signals, "install", lambda: None)  # pytest keeps its own handlers
    monkeypatch.setenv("HAKEEP_VRRP_PASS", "json-pw")

    def run(*argv: str) -> tuple[int, dict[str, Any]]:
        code = main(list(argv))
        out = capsys.readouterr().out
        doc: dict[str, Any] = schemas.check(out, argv[0])
        assert doc["exit_code"] == code
        assert "json-pw" not in out
        return code, doc
    return run


class FakeSession:
    def __init__(self) -> None:
        self.transports: dict[str, object] = {}
        self.facts: dict[str, object] = {}
        self.timings = {"connect": 0.1}

    def recorded_host_keys(self) -> list[str]:
        return []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        yield


class Quiet:
    def stop(self) -> None: ...
    def start(self) -> None: ...
    def message(self, text: str) -> None: ...


@pytest.fixture
def deploy_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``hakeep deploy`` of a fresh pair's plan, with install/validate/rollout/final_check replaced."""
    inv = load(tmp_path, base_doc())
    plan = plan_for(inv, facts(*L), facts(*R))
    ok = {h.host: ValidationOutcome(h.host, ValidationStatus.OK, "") for h in plan.hosts}
    defaults = {"install": lambda *a: {}, "validate": lambda *a: ok,
                "rollout": lambda *a: [HostOutcome(h.host, Outcome.CHANGED, seconds=1.0) for h in plan.hosts],
                "final_check": lambda *a: FinalCheck((L[0],), {6443: True, 30080: True}, 0.2)}

    def setup(**seams: Any) -> str:
        for name, fake in {**defaults, **seams}.items():
            monkeypatch.setattr(common, name, fake)
        monkeypatch.setattr(deploy, "run", lambda args: common.apply(args, plan, FakeSession(), Quiet()))  # type: ignore[arg-type]
        return str(write(tmp_path, base_doc(), "deploy.toml"))
    return setup


def rejected(plan: Any, *a: Any) -> dict[str, ValidationOutcome]:
    return {h.host: ValidationOutcome(h.host, ValidationStatus.REJECTED, "[ALERT] bad line") for h in plan.hosts}


def test_a_deploy_that_succeeds(run_json: Any, deploy_with: Any) -> None:
    code, doc = run_json("deploy", deploy_with(), "--json", "--yes")
    assert code == 0
    assert doc["error"] is None
    assert [o["status"] for o in doc["outcomes"]] == ["changed", "changed"]
    assert doc["vip"]["ok"] is True


def test_without_yes_and_a_terminal_the_document_has_the_plan_and_the_refusal(run_json: Any, deploy_with: Any) -> None:
    code, doc = run_json("deploy", deploy_with(), "--json")
    assert code == 4
    assert doc["error"]["message"] == "aborted: nothing was changed"
    assert "--yes" in doc["error"]["hint"]
    assert doc["changed"] is True
    assert "outcomes" not in doc


def test_a_failed_install_is_the_plan_and_the_error(run_json: Any, deploy_with: Any) -> None:
    code, doc = run_json("deploy", deploy_with(install=lambda *a: {L[0]: HakeepError("apt-get failed")}),
                         "--json", "--yes")
    assert code == 1
    assert "package installation failed" in doc["error"]["message"]
    assert doc["hosts"]


@pytest.mark.parametrize("dry", [False, True])
def test_a_validation_refusal_is_an_error_dry_run_or_not(run_json: Any, deploy_with: Any, dry: bool) -> None:
    code, doc = run_json("deploy", deploy_with(validate=rejected), "--json", "--dry-run" if dry else "--yes")
    assert code == 4
    assert "rejected the new configs" in doc["error"]["message"]
    assert {h["validation"] for h in doc["hosts"]} == {"rejected"}


def test_an_interrupt_in_the_rollout_still_names_the_hosts_done(run_json: Any, deploy_with: Any) -> None:
    def first_then_sigterm(plan: Any, transports: Any, progress: Any, settled: list[HostOutcome]) -> None:
        settled.append(HostOutcome(plan.hosts[0].host, Outcome.CHANGED, seconds=2.0))
        raise signals.Interrupted(signal.SIGTERM)

    code, doc = run_json("deploy", deploy_with(rollout=first_then_sigterm), "--json", "--yes")
    assert code == 143
    assert doc["error"]["message"] == "interrupted (SIGTERM)"
    assert [(o["host"], o["status"]) for o in doc["outcomes"]] == [(doc["hosts"][0]["host"], "changed")]


def test_a_bug_still_prints_a_document_before_its_traceback(deploy_with: Any, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(signals, "install", lambda: None)
    monkeypatch.setenv("HAKEEP_VRRP_PASS", "json-pw")

    def bug(*a: Any) -> None:
        raise RuntimeError("a bug")

    inv = deploy_with(rollout=bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["deploy", inv, "--json", "--yes"])
    doc = schemas.check(capsys.readouterr().out, "deploy")
    assert doc["exit_code"] == 1
    assert doc["error"]["message"] == "internal error: RuntimeError: a bug"


# --- drill --------------------------------------------------------------------------------------

@pytest.fixture
def drill_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``hakeep drill`` on a healthy pair (faked survey and session); each round from ``rounds``."""
    names = [lb["name"] for lb in base_doc()["lb"]]
    up = status_ops.HostStatus(names[0], "10.220.62.32", True, holds_vip=True, vrrp_state="MASTER",
                               haproxy="active", keepalived="active")
    healthy = status_ops.judge(
        "10.220.62.31", [up, dataclasses.replace(up, host=names[1], address="10.220.62.33", holds_vip=False,
                                                 vrrp_state="BACKUP")],
        [status_ops.PortProbe(v, p, "open") for v in (status_ops.HERE, names[1]) for p in (6443, 30080)], (6443, 30080))
    assert healthy.verdict.value == "healthy"

    class Session:
        def __init__(self) -> None:
            self.transports = {n: argparse.Namespace(address=a) for n, a in zip(names, ("10.220.62.32", "10.220.62.33"),
                                                                                 strict=True)}
            self.facts = {n: argparse.Namespace(iface_addresses=()) for n in names}

        def __enter__(self) -> Session:
            return self

        def __exit__(self, *a: object) -> None: ...

    def setup(*rounds: DrillResult | BaseException) -> str:
        todo = iter(rounds)

        def one(*a: Any, **k: Any) -> DrillResult:
            step = next(todo)
            if isinstance(step, BaseException):
                raise step
            return step
        monkeypatch.setattr(session_mod, "open_session", lambda *a, **k: Session())
        monkeypatch.setattr(status_ops, "survey", lambda *a, **k: healthy)
        monkeypatch.setattr(drill_ops, "run_drill", one)
        monkeypatch.setattr(drill_ops, "where", lambda *a, **k: {names[0]: "holder=ens192", names[1]: ""})
        return str(write(tmp_path, base_doc(), "drill.toml"))
    return setup, DrillResult(1, Mode.STOP, names[0], names[1], 1.0, 1.1, 2.0, 3.0, names[0], 3.0)


def test_a_drill_whose_every_round_passed_is_ok(run_json: Any, drill_with: Any) -> None:
    setup, good = drill_with
    code, doc = run_json("drill", setup(good, good), "--json", "--rounds", "2")
    assert code == 0
    assert doc["ok"] is True
    assert len(doc["rounds"]) == doc["rounds_asked"] == 2
    assert doc["status"]["verdict"] == "healthy"


# a refusal after a round is no longer "nothing was changed": the drill failed (exit 1)
@pytest.mark.parametrize(("second", "code"), [(DrillRefused("the VIP is on 2 LBs"), 1),
                                                (HakeepError("systemctl stop failed"), 1),
                                                (signals.Interrupted(signal.SIGTERM), 143)])
def test_a_drill_ended_after_a_good_round_is_not_ok(run_json: Any, drill_with: Any, second: BaseException,
                                                     code: int) -> None:
    setup, good = drill_with
    got, doc = run_json("drill", setup(good, second), "--json", "--rounds", "3")
    assert got == code
    assert doc["ok"] is False
    assert [r["ok"] for r in doc["rounds"]] == [True]
    assert doc["error"] is not None


# --- the edges of the document --------------------------------------------------------------------

def test_a_manifest_with_a_strange_rolls_back_keeps_the_releases_schema() -> None:
    rel = parse_manifest("20261101T000000Z-aaaaaa", json.dumps({"status": "complete", "rolls_back": 7,
                                                                 "packages_installed": [1, "haproxy"]}).encode())
    assert rel.rolls_back is None
    assert rel.packages_installed == ("haproxy",)


def test_no_document_from_commands_without_json_and_no_abbreviated_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["init", "--json"], ["completion", "bash", "--json"], ["--json"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert capsys.readouterr().out == "", argv
    with pytest.raises(SystemExit):
        main(["validate", "x.toml", "--js"])  # an abbreviation is not --json (nor any other option)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unrecognized arguments: --js" in captured.err
