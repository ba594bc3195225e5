"""What operators bring from other tools (#16), as a user meets it: a closed pipe, output in pipes
and CI logs, a change without a terminal. The pipe tests run hakeep as a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hakeep.cli import output, views
from hakeep.cli.commands.common import confirm
from hakeep.plan.releases import parse_manifest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventory.example.toml"


def piped(command: str) -> subprocess.CompletedProcess[str]:
    """``hakeep …`` with its stdout read by ``head -c 1``, which then goes away."""
    env = {**os.environ, "HAKEEP_VRRP_PASS": "pipe-pw"}
    return subprocess.run(["bash", "-c", f"{sys.executable} -m hakeep {command} | head -c 1 >/dev/null; "
                           "echo \"rc=${PIPESTATUS[0]}\" >&2"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=False)


@pytest.mark.parametrize("command", [f"render {EXAMPLE}", f"render {EXAMPLE} --show-secrets", f"validate {EXAMPLE}"])
def test_a_closed_pipe_is_a_quiet_exit_0(command: str) -> None:
    done = piped(command)
    assert done.stderr.strip().endswith("rc=0"), done.stderr
    assert "Traceback" not in done.stderr
    assert "Broken pipe" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_tables_in_a_pipe_are_as_wide_as_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    rid = "20261127T053012Z-4f2a9c"
    release = parse_manifest(rid, (f'{{"id": "{rid}", "seq": 7, "kind": "deploy", "status": "complete", '
                                   '"time": "2026-11-27T05:30:12Z", "operator": "someone-with-a-long-name@build-'
                                   'agent-17.example.internal", "files": [], "deployed": []}').encode())
    stream = io.StringIO()  # not a terminal
    console = output._Console(file=stream, soft_wrap=True, highlight=False, width=output._width(stream))
    console.print(views.releases_table("loadbalance-left", [release], rid))
    text = stream.getvalue()
    assert rid in text
    assert "someone-with-a-long-name@build-agent-17.example.internal" in text
    assert "…" not in text


def test_columns_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert output._width(io.StringIO()) is None  # rich reads COLUMNS itself


def test_a_change_without_a_terminal_needs_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal, even if it says yes
    plan = SimpleNamespace(drift=(), kind="deploy")
    assert confirm(SimpleNamespace(yes=False), plan) is False  # type: ignore[arg-type]
    assert confirm(SimpleNamespace(yes=True), plan) is True  # type: ignore[arg-type]
