"""`hakeep rollback`, releases and drift on the lab (subprocess, real hosts), in file order:

v1 -> v2 -> rollback (probe through the VIP: 0 failed connections) -> rollback of the rollback ->
dry-run changes nothing -> drift shown and confirmed -> a v2 whose haproxy cannot start on the first
host: that host is automatically back on v1, the other untouched, the VIP kept -> SIGKILL between
upload and reload, then a converging deploy -> rollback --to the first release: stock state back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Lab
from tests.test_deploy_lab import hakeep, holders, lab_doc, snapshot, under_probe, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab

CFG = "/etc/haproxy/haproxy.cfg"


def releases(lab: Lab, inv: Path) -> list[dict[str, Any]]:
    r = hakeep(lab, "releases", str(inv), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc: list[dict[str, Any]] = json.loads(r.stdout)["hosts"]
    return doc


def masters_in_cfg(lab: Lab, host: str) -> set[str]:
    text = lab.ssh(host, f"cat {CFG}").stdout
    return {line.split()[1] for line in text.splitlines() if line.strip().startswith("server ")}


@pytest.fixture(scope="module")
def inventories(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for host in lab.lbs:
        lab.reset(host)
    base = tmp_path_factory.mktemp("rollback")
    out = {}
    for name, masters in (("v1", 2), ("v2", 3)):
        d = base / name
        d.mkdir()
        out[name] = write_inventory(d, lab_doc(lab, masters=masters))
    return out


def test_v1_then_v2_then_rollback_under_load(lab: Lab, inventories: dict[str, Path]) -> None:
    for name in ("v1", "v2"):
        r = hakeep(lab, "deploy", str(inventories[name]), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
    for host in lab.lbs:
        assert masters_in_cfg(lab, host) == {"m1", "m2", "m3"}
    before = releases(lab, inventories["v1"])
    assert all(len(h["releases"]) == 2 for h in before)

    under_probe(lab, "rollback", str(inventories["v1"]), "--yes")
    for host in lab.lbs:
        assert masters_in_cfg(lab, host) == {"m1", "m2"}
        assert lab.ssh(host, "systemctl is-active haproxy keepalived").stdout.split() == ["active", "active"]
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None
    after = releases(lab, inventories["v1"])
    for h in after:
        assert len(h["releases"]) == 3
        newest = h["releases"][-1]
        assert newest["kind"] == "rollback"
        assert newest["status"] == "complete"
        assert h["live"] == newest["id"]
        assert newest["rolls_back"] == h["releases"][1]["id"]
    # the deploy of v1 is now a no-op again: the rollback restored exactly v1's bytes
    r = hakeep(lab, "deploy", str(inventories["v1"]), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr


def test_rollback_of_the_rollback_and_dry_run_changes_nothing(lab: Lab, inventories: dict[str, Path]) -> None:
    before = snapshot(lab)
    r = hakeep(lab, "rollback", str(inventories["v1"]), "--dry-run")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "+    server m3 10.77.0.13:30080" in r.stdout
    assert snapshot(lab) == before
    r = hakeep(lab, "rollback", str(inventories["v1"]), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    for host in lab.lbs:
        assert masters_in_cfg(lab, host) == {"m1", "m2", "m3"}
    r = hakeep(lab, "deploy", str(inventories["v2"]), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr


def test_drift_is_shown_and_needs_confirmation(lab: Lab, inventories: dict[str, Path]) -> None:
    host = next(iter(lab.lbs))
    lab.ssh(host, f"echo '# hotfix by hand' >> {CFG}")
    r = hakeep(lab, "diff", str(inventories["v2"]))
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"drift: {CFG} was edited on the host since release" in r.stdout
    assert "-# hotfix by hand" in r.stdout
    r = hakeep(lab, "releases", str(inventories["v2"]))
    assert f"drift: {CFG} edited on the host" in r.stdout
    r = hakeep(lab, "deploy", str(inventories["v2"]))  # no TTY, no --yes: refused
    assert r.returncode == 4, r.stdout + r.stderr
    assert "hotfix" in lab.ssh(host, f"cat {CFG}").stdout
    r = hakeep(lab, "deploy", str(inventories["v2"]), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hotfix" not in lab.ssh(host, f"cat {CFG}").stdout
    assert hakeep(lab, "diff", str(inventories["v2"])).returncode == 0


def test_failed_gate_rolls_the_host_back_automatically(lab: Lab, inventories: dict[str, Path],
                                                       tmp_path: Path) -> None:
    [holder] = holders(lab)
    first = next(h for h in lab.lbs if h != holder)
    doc = lab_doc(lab, masters=3)
    # passes haproxy -c and preflight (an LB carries the address), but haproxy on the first host,
    # which does not have the VIP holder's address, cannot bind it
    doc["frontend"].append({"name": "extra", "port": 8443, "bind": lab.lbs[holder],
                            "servers": [{"name": "m1", "address": "10.77.0.11", "port": 30080}]})
    bad = write_inventory(tmp_path, doc)
    before = snapshot(lab)
    r = hakeep(lab, "deploy", str(bad), "--yes")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed (restored)" in r.stdout
    after = snapshot(lab)
    assert after[holder] == before[holder], "the VIP holder must stay untouched"
    cfg_before = before[first].split("\n")[0]
    assert after[first].split("\n")[0] == cfg_before, "haproxy.cfg must be back to v2's"
    assert lab.ssh(first, "systemctl is-active haproxy keepalived").stdout.split() == ["active", "active"]
    assert holders(lab) == [holder]
    rel = next(h for h in releases(lab, inventories["v2"]) if h["host"] == first)
    assert rel["releases"][-1]["status"] == "failed-restored"
    assert rel["live"] != rel["releases"][-1]["id"]


def test_sigkill_between_upload_and_reload_then_converge(lab: Lab, inventories: dict[str, Path]) -> None:
    # the first host's steps go in one batch up to its gate: the test hook ends the batch (and
    # pauses) right after the upload, so the kill lands between upload and commit
    [holder] = holders(lab)
    first = next(h for h in lab.lbs if h != holder)
    env = {**lab.env(), "PYTHONUNBUFFERED": "1", "HAKEEP_TEST_PAUSE": f"{first}:stage"}
    proc = subprocess.Popen([sys.executable, "-m", "hakeep", "deploy", str(inventories["v1"]), "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    killed = False
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if f"test hook: paused after stage on {first}" in line:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        if time.monotonic() > deadline:
            break
    proc.wait(timeout=30)
    assert killed, "never saw the pause after the upload"
    staged = [h for h in lab.lbs if lab.ssh(h, f"test -e {CFG}.hakeep-new", check=False).returncode == 0]
    assert staged == [first], "the kill should land between upload and commit"
    r = hakeep(lab, "deploy", str(inventories["v1"]), "--yes")  # the lock died with the killed run
    assert r.returncode == 0, r.stdout + r.stderr
    for host in lab.lbs:
        assert masters_in_cfg(lab, host) == {"m1", "m2"}
        assert lab.ssh(host, f"test -e {CFG}.hakeep-new", check=False).returncode != 0
    for h in releases(lab, inventories["v1"]):
        statuses = [x["status"] for x in h["releases"]]
        assert "corrupt" not in statuses
        assert statuses[-1] == "complete"
    assert hakeep(lab, "deploy", str(inventories["v1"]), "--dry-run").returncode == 0


def test_rollback_to_the_first_release_restores_the_stock_state(lab: Lab, inventories: dict[str, Path]) -> None:
    first = {h["host"]: h["releases"][0]["id"] for h in releases(lab, inventories["v1"])}
    assert len(set(first.values())) == 1, first
    r = hakeep(lab, "rollback", str(inventories["v1"]), "--to", next(iter(first.values())), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    for host in lab.lbs:
        assert "Managed by hakeep" not in lab.ssh(host, f"cat {CFG}").stdout
        assert lab.ssh(host, "test -e /etc/keepalived/keepalived.conf", check=False).returncode != 0
        state = lab.ssh(host, "systemctl is-active haproxy keepalived", check=False).stdout.split()
        assert state == ["inactive", "inactive"], state
    assert holders(lab) == []
    r = hakeep(lab, "deploy", str(inventories["v1"]), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None
