"""Every ``--json`` document against its JSON Schema in ``hakeep/schemas/`` (#16): validate and render
run for real; deploy/rollback/diff/status/releases/drill documents are built from typed results
(and run for real on the lab: tests/test_deploy_lab.py checks each one it reads); errors, usage
errors and status runs that reach no LB (loopback only) print a document too. The schemas are
checked to reject what they should, so a vacuous schema fails here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hakeep.cli import jsondoc
from hakeep.cli.main import build_parser
from hakeep.errors import HakeepError
from hakeep.ops.drill import DrillResult, Mode
from hakeep.ops.probe import ProbeResult
from hakeep.ops.status import HERE, PortProbe, judge
from hakeep.plan.releases import History
from hakeep.run.results import FinalCheck, HostOutcome, Outcome, ValidationOutcome, ValidationStatus
from tests import schemas
from tests.fakes import facts
from tests.fixtures import EXAMPLE, base_doc, load, write
from tests.test_degraded import HOLDER, down, probes, up
from tests.test_plan import L, R, deployed, plan_for
from tests.test_releases import host_with_history

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HAKEEP_VRRP_PASS": "json-pw"}


def hakeep(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env or ENV, timeout=timeout, check=False)


def json_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name for name, p in sub.choices.items() if any("--json" in a.option_strings for a in p._actions)}


def envelope(command: str, body: dict[str, Any] | None, code: int = 0, error: HakeepError | None = None) -> Any:
    return json.loads(jsondoc.dump(jsondoc.envelope(command, body, error, code)))


# --- the schemas themselves -------------------------------------------------------------------

def test_every_json_command_has_its_schema_and_every_schema_a_command() -> None:
    files = {p.name.removesuffix(".schema.json") for p in schemas.SCHEMAS.glob("*.schema.json")}
    assert json_commands() == files - {"common"}
    assert json_commands() >= {"validate", "render", "deploy", "rollback", "diff", "status", "releases", "drill"}


@pytest.mark.parametrize("name", sorted(p.name.removesuffix(".schema.json") for p in schemas.SCHEMAS.glob("*.json")))
def test_each_schema_is_a_valid_draft_2020_12_schema_with_its_id(name: str) -> None:
    s = schemas.schema(name)
    Draft202012Validator.check_schema(s)
    assert s["$id"] == f"urn:hakeep:schema:{name}"
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_schema_version_is_the_one_hakeep_prints() -> None:
    env = schemas.schema("common")["$defs"]["envelope"]
    assert env["properties"]["schema_version"] == {"const": jsondoc.SCHEMA_VERSION,
                                                   "description": "bumped when a change would break a reader"}


def test_the_schemas_reject_what_they_should() -> None:
    good = json.loads(hakeep("validate", str(EXAMPLE), "--json").stdout)
    assert schemas.errors(good, "validate") == []
    bad: list[tuple[str, dict[str, Any]]] = [
        ("an unknown top-level field", {**good, "surprise": 1}),
        ("a body field missing without an error", {k: v for k, v in good.items() if k != "valid"}),
        ("a wrong type", {**good, "valid": "yes"}),
        ("another command's name", {**good, "command": "render"}),
        ("another schema version", {**good, "schema_version": 2}),
        ("no error field", {k: v for k, v in good.items() if k != "error"}),
        ("a partial body with an error", {"schema_version": 1, "command": "validate", "exit_code": 2, "valid": False,
                                          "error": {"message": "x", "hint": None, "problems": []}}),
        ("an unknown field in a problem", {**good, "problems": [{**good["problems"][0], "line": 3}]}),
        ("an unknown severity", {**good, "problems": [{**good["problems"][0], "severity": "info"}]}),
    ]
    for what, doc in bad:
        assert schemas.errors(doc, "validate"), f"the validate schema accepts {what}"
    status = envelope("status", jsondoc.status_doc(judge("10.0.0.10", [HOLDER, up("lb2")], probes("lb2"), (6443,))))
    assert schemas.errors(status, "status") == []
    pidless = {k: v for k, v in status["hosts"][0].items() if k != "haproxy_pid"}
    for what, doc in [("a host without its pid", {**status, "hosts": [pidless]}),
                      ("an unknown verdict", {**status, "verdict": "fine"}),
                      ("a port out of range", {**status, "probes": [{"vantage": "here", "port": 0, "result": "x"}]})]:
        assert schemas.errors(doc, "status"), f"the status schema accepts {what}"


# --- validate and render, for real ------------------------------------------------------------

def test_validate_json_on_a_valid_inventory_lists_the_inventory_and_its_warnings() -> None:
    r = hakeep("validate", str(EXAMPLE), "--json")
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == doc["exit_code"] == 0
    assert doc["valid"] is True
    assert doc["error"] is None
    assert [lb["name"] for lb in doc["inventory"]["lbs"]] == ["loadbalance-left", "loadbalance-right"]
    assert {p["path"] for p in doc["problems"]} >= {"lb", "frontend[0].check"}
    assert {p["severity"] for p in doc["problems"]} == {"warning"}
    assert "json-pw" not in r.stdout + r.stderr


def test_validate_json_on_an_invalid_inventory_is_a_document_with_every_problem(tmp_path: Path) -> None:
    doc_in = base_doc()
    doc_in["lb"][1]["priority"] = 300
    doc_in["cluster"]["virtual_router_id"] = 0
    r = hakeep("validate", str(write(tmp_path, doc_in)), "--json")
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == doc["exit_code"] == 2
    assert doc["valid"] is False
    assert doc["inventory"] is None
    paths = {p["path"] for p in doc["problems"]}
    assert {"lb[1].priority", "cluster.virtual_router_id"} <= paths
    assert {p["path"] for p in doc["error"]["problems"]} == paths
    assert "lb[1].priority" in r.stderr  # the person reading the log sees them too


def test_validate_json_on_a_toml_syntax_error_and_a_missing_file(tmp_path: Path) -> None:
    r = hakeep("validate", str(write(tmp_path, "[cluster\nname = 1\n")), "--json")
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == 2
    assert "TOML syntax error" in doc["error"]["problems"][0]["message"]
    r = hakeep("validate", str(tmp_path / "nowhere.toml"), "--json")
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == 2
    assert "no such file" in doc["error"]["message"]
    assert doc["inventory"] is None


def test_validate_json_on_a_missing_password_variable_is_not_valid_unless_offline() -> None:
    env = {k: v for k, v in ENV.items() if k != "HAKEEP_VRRP_PASS"}
    r = hakeep("validate", str(EXAMPLE), "--json", env=env)
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == 2
    assert doc["valid"] is False
    assert "HAKEEP_VRRP_PASS" in doc["error"]["message"]
    assert doc["inventory"]["cluster"] == "devops"  # the file itself was read
    r = hakeep("validate", str(EXAMPLE), "--json", "--offline", env=env)
    doc = schemas.check(r.stdout, "validate")
    assert r.returncode == 0
    assert doc["valid"] is True
    assert doc["offline"] is True


def test_render_json_prints_every_file_masked_or_shows_secrets_when_asked(tmp_path: Path) -> None:
    r = hakeep("render", str(EXAMPLE), "--json")
    doc = schemas.check(r.stdout, "render")
    assert r.returncode == 0
    assert doc["output"] is None
    files = {(h["host"], f["path"]): f for h in doc["hosts"] for f in h["files"]}
    conf = files[("loadbalance-left", "/etc/keepalived/keepalived.conf")]
    assert conf["mode"] == "0600"
    assert "********" in conf["content"]
    assert "json-pw" not in r.stdout
    assert conf["written"] is None
    shown = schemas.check(hakeep("render", str(EXAMPLE), "--json", "--show-secrets").stdout, "render")
    assert "json-pw" in next(f["content"] for h in shown["hosts"] for f in h["files"] if f["mode"] == "0600")


def test_render_json_with_output_names_each_file_written_and_keeps_secrets_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = hakeep("render", str(EXAMPLE), "--json", "-o", str(out))
    doc = schemas.check(r.stdout, "render")
    assert r.returncode == 0
    assert doc["output"] == str(out)
    for h in doc["hosts"]:
        for f in h["files"]:
            assert f["written"] == str(out / h["host"] / f["path"].lstrip("/"))
            assert Path(f["written"]).is_file()
    assert "json-pw" not in r.stdout
    assert "json-pw" in (out / "loadbalance-left/etc/keepalived/keepalived.conf").read_text()


@pytest.mark.parametrize("command", sorted(json_commands()))
def test_a_usage_error_with_json_is_a_json_error_document(command: str) -> None:
    r = hakeep(command, str(EXAMPLE), "--json", "--no-such-option")
    doc = schemas.check(r.stdout, command)
    assert r.returncode == doc["exit_code"] == 2
    assert doc["error"]["message"] == "unrecognized arguments: --no-such-option"
    assert f"usage: hakeep {command}" in r.stderr


@pytest.mark.parametrize("command", sorted(json_commands() - {"validate", "render"}))
def test_an_inventory_error_with_json_is_a_json_error_document(command: str, tmp_path: Path) -> None:
    doc_in = base_doc()
    del doc_in["lb"][0]["interface"]
    r = hakeep(command, str(write(tmp_path, doc_in)), "--json")
    doc = schemas.check(r.stdout, command)
    assert r.returncode == doc["exit_code"] == 2
    assert doc["error"]["problems"][0]["path"] == "lb[0].interface"


# --- status and deploy with no LB reachable: in a network namespace of their own ------------------
# (`unshare -n`: only a down loopback, no route; every connect fails at once, nothing leaves the machine)

def isolated(*args: str) -> list[str]:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("unshare -n does not work here (CI runs as root)")
        pytest.skip("needs unshare -n (root)")
    return ["unshare", "-n", "--", sys.executable, "-m", "hakeep", *args]


def unreachable_inventory(tmp_path: Path) -> Path:
    doc = base_doc()
    doc["ssh"] = {"user": "root", "config": "/dev/null", "connect_timeout": 2}
    return write(tmp_path, doc)


def run_isolated(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(isolated(*args), capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60, check=False)


def test_status_json_with_no_lb_reached_is_its_document(tmp_path: Path) -> None:
    inv = unreachable_inventory(tmp_path)
    r = run_isolated("status", str(inv), "--json")
    doc = schemas.check(r.stdout, "status")
    assert r.returncode == doc["exit_code"] == 5
    assert doc["verdict"] == "unreachable"
    assert {h["reason"] for h in doc["hosts"]} == {"no route"}
    assert {p["result"] for p in doc["probes"]} == {"unreachable from here"}
    r = run_isolated("status", str(inv), "--json", "--limit", "loadbalance-r*")
    doc = schemas.check(r.stdout, "status")
    assert [h["reason"] for h in doc["hosts"]] == ["not asked (--limit)", "no route"]
    assert doc["reasons"][0].startswith("loadbalance-left not asked (--limit): the verdict cannot vouch for it")


def test_deploy_json_with_an_lb_unreachable_is_an_error_document(tmp_path: Path) -> None:
    r = run_isolated("deploy", str(unreachable_inventory(tmp_path)), "--json", "--dry-run")
    doc = schemas.check(r.stdout, "deploy")
    assert r.returncode == doc["exit_code"] == 5
    assert "cannot be reached" in doc["error"]["message"]


def test_status_watch_json_is_json_lines_until_ctrl_c_and_a_last_error_line_on_sigterm(tmp_path: Path) -> None:
    inv = unreachable_inventory(tmp_path)
    for sig, code in ((signal.SIGINT, 5), (signal.SIGTERM, 143)):
        proc = subprocess.Popen(isolated("status", str(inv), "--json", "--watch", "0.5"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one whole document per line, as each refresh ends
        time.sleep(0.7)
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
        docs = schemas.check(first + rest, "status", lines=True)
        assert len(docs) >= 2 if sig is signal.SIGTERM else len(docs) >= 1
        assert proc.returncode == code
        assert all(d["verdict"] == "unreachable" for d in docs if d["error"] is None)
        if sig is signal.SIGTERM:
            assert docs[-1]["error"]["message"] == "interrupted (SIGTERM)"
            assert docs[-1]["exit_code"] == 143
        else:
            assert all(d["error"] is None for d in docs)


# --- documents built from typed results ---------------------------------------------------------

def test_plan_documents_of_deploy_diff_and_rollback(tmp_path: Path) -> None:
    inv = load(tmp_path, base_doc())
    fresh = plan_for(inv, facts(*L), facts(*R))
    assert fresh.changed
    validations = {h.host: ValidationOutcome(h.host, ValidationStatus.OK, "") for h in fresh.hosts}
    for command in ("deploy", "diff"):
        schemas.check(json.dumps(envelope(command, jsondoc.plan_doc(fresh, validations=validations, dry_run=True),
                                          3)), command)
    outcomes = [HostOutcome(L[0], Outcome.CHANGED, seconds=1.5),
                HostOutcome(R[0], Outcome.FAILED, "gate: haproxy not active", restored=True, seconds=3.25)]
    final = FinalCheck((L[0],), {6443: True, 30080: False}, 0.4, outside=("52:54:00:aa:bb:cc (10.220.62.99)",))
    doc = schemas.check(json.dumps(envelope("deploy", jsondoc.plan_doc(fresh, outcomes, final,
                                                                        timings={"connect": 0.1}), 1)), "deploy")
    assert doc["vip"]["ports"] == {"6443": True, "30080": False}
    same = plan_for(inv, deployed(inv, *L), deployed(inv, *R))
    schemas.check(json.dumps(envelope("deploy", jsondoc.plan_doc(same, [HostOutcome(L[0], Outcome.UNCHANGED)]))),
                  "deploy")
    refused = envelope("deploy", jsondoc.plan_doc(fresh), 4, HakeepError("aborted: nothing was changed", hint="--yes"))
    assert schemas.errors(refused, "deploy") == []
    assert schemas.errors({**refused, "kind": "rollback"}, "deploy")  # a deploy's plan is a deploy's
    assert schemas.errors(refused, "rollback")


def test_status_documents_of_every_verdict() -> None:
    from tests.test_degraded import CASES

    for _, hosts, seen, verdict, _ in CASES:
        pair = judge("10.220.62.31", hosts, [*seen, PortProbe(HERE, 6443, "refused")], (6443, 30080))
        doc = schemas.check(json.dumps(envelope("status", jsondoc.status_doc(pair), 0)), "status")
        assert doc["verdict"] == verdict.value


def test_releases_and_drill_documents() -> None:
    histories = {L[0]: History.of(host_with_history(*L, b"# v2\n"))}
    doc = schemas.check(json.dumps(envelope("releases", jsondoc.releases_doc(histories, {R[0]: "timeout"}))),
                        "releases")
    assert doc["unreachable"] == [{"host": R[0], "reason": "timeout"}]
    assert {r["status"] for r in doc["hosts"][0]["releases"]} >= {"complete", "corrupt"}
    pair = judge("10.220.62.31", [HOLDER, up("lb2")], probes("lb2"), (6443, 30080))
    rounds = [DrillResult(1, Mode.STOP, "lb1", "lb2", 1.05, 1.1, 2.0, 3.1, "lb1", 3.0, ProbeResult(120, 2, 1.2)),
              DrillResult(2, Mode.STOP, "lb1", None, None, None, None, None, None, 3.0)]
    doc = schemas.check(json.dumps(envelope("drill", jsondoc.drill_doc("stop", pair, rounds, rounds=2, finished=True),
                                            1)), "drill")
    assert [r["ok"] for r in doc["rounds"]] == [True, False]
    assert doc["ok"] is False
    refused = jsondoc.drill_doc("crash", judge("10.220.62.31", [down("lb1"), up("lb2")], [], (6443,)), [], rounds=1)
    doc = schemas.check(json.dumps(envelope("drill", refused, 6, HakeepError("drill refused: degraded"))), "drill")
    assert doc["ok"] is False
    assert doc["status"]["verdict"] == "VIP lost"
    schemas.check(json.dumps(envelope("drill", jsondoc.drill_doc("link", None, [], rounds=1), 5, HakeepError("x"))),
                  "drill")
    # the haproxy and master modes' own fields; the status's notes
    noted = dataclasses.replace(pair, notes=("lb1: keepalived restarted by systemd 1x since it was last started by "
                                             "hand, active for 12s (a crash? journalctl -u keepalived)",))
    rounds = [DrillResult(1, Mode.HAPROXY_CRASH, "lb1", "lb2", 0.7, 0.8, 0.4, 3.7, "lb1", 3.0,
                          ProbeResult(200, 3, 0.68, 0, 0.64), unit_back_s=1.1, auto_restarted=True)]
    doc = schemas.check(json.dumps(envelope("drill", jsondoc.drill_doc("haproxy-crash", noted, rounds, rounds=1,
                                                                       finished=True), 0)), "drill")
    assert (doc["rounds"][0]["auto_restarted"], doc["status"]["notes"][0][:4]) == (True, "lb1:")
    watched = [DrillResult(1, Mode.MASTER_UNHEALTHY, "lb1", None, None, None, None, None, "lb1", 3.0,
                           ProbeResult(400, 0, 0.05, 15, 1.03), master="m2", out_s=1.15, back_s=6.9)]
    doc = schemas.check(json.dumps(envelope("drill", jsondoc.drill_doc("master-unhealthy", pair, watched, rounds=1,
                                                                       finished=True), 0)), "drill")
    assert doc["ok"] is True
    assert doc["rounds"][0]["probe"]["errors"] == 15
    bad = json.loads(json.dumps(envelope("drill", jsondoc.drill_doc("master-unhealthy", pair, watched, rounds=1), 0)))
    bad["rounds"][0]["out_s"] = -0.3
    assert schemas.errors(bad, "drill")


def test_a_watch_whose_reader_went_away_ends(tmp_path: Path) -> None:
    """``status --watch --json | head -1``: a watch prints for its reader only; once it is gone, it ends.
    (Without --json a watch in a pipe prints only VIP moves as they happen, and ends at the next.)"""
    argv = " ".join(shlex.quote(a) for a in isolated("status", str(unreachable_inventory(tmp_path)), "--json",
                                                     "--watch", "0.2"))
    done = subprocess.run(["bash", "-c", f"{argv} | head -1; echo \"rc=${{PIPESTATUS[0]}}\" >&2"],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60, check=False)
    assert len(done.stdout.splitlines()) == 1, done.stdout + done.stderr
    schemas.check(done.stdout, "status", lines=True)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("rc=5"), done.stderr  # its own code: the last verdict (unreachable)
