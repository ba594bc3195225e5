"""Preemption control on the lab (issue #18, part 1): with ``preempt = false`` the VIP stays on the
LB that took it over when the old holder comes back (the drill reports no fail-back); with
``preempt_delay`` the old holder takes it back only after the delay. Real keepalived, real VRRP,
measured by `hakeep drill` from where clients are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import schemas
from tests.conftest import Lab
from tests.test_deploy_lab import hakeep, holders, lab_doc, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab


def deploy(lab: Lab, tmp: Path, **cluster: Any) -> Path:
    doc = lab_doc(lab)
    doc["cluster"].update(cluster)
    path = write_inventory(tmp, doc)
    r = hakeep(lab, "deploy", str(path), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    return path


def drill(lab: Lab, inv: Path) -> dict[str, Any]:
    r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                        "--probe", "--json"], capture_output=True, text=True, env=lab.env(), timeout=180, check=False)
    assert "Traceback" not in r.stderr
    doc = schemas.check(r.stdout, "drill")
    assert r.returncode == 0, r.stdout + r.stderr
    result: dict[str, Any] = doc["rounds"][0]
    return result


def test_without_preemption_the_vip_stays_where_it_went(lab: Lab, tmp_path: Path) -> None:
    try:
        inv = deploy(lab, tmp_path, preempt=False)
        conf = lab.ssh("lb1", "cat /etc/keepalived/keepalived.conf").stdout
        assert "    nopreempt\n" in conf
        assert wait_for(lambda: len(holders(lab)) == 1, 20, 0.5) is not None
        first = holders(lab)[0]
        other = "lb2" if first == "lb1" else "lb1"
        r = drill(lab, inv)
        assert (r["old_holder"], r["new_holder"]) == (first, other)
        assert r["recovered_s"] is not None  # the old holder is back, in BACKUP
        assert r["failback_s"] is None  # it did not take the VIP back
        assert r["final_holder"] == other
        assert holders(lab) == [other]
        assert hakeep(lab, "status", str(inv)).returncode == 0  # healthy with the VIP on the other LB
        r = drill(lab, inv)  # and back the other way: the drill starts from where the VIP is
        assert (r["old_holder"], r["new_holder"], r["final_holder"]) == (other, first, first)
        print(f"preempt = false: VIP moved in {r['vip_moved_s']:.2f}s, no fail-back")
    finally:
        deploy(lab, tmp_path)  # preempting again
        assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None


def test_with_a_preempt_delay_the_old_holder_takes_the_vip_back_after_it(lab: Lab, tmp_path: Path) -> None:
    try:
        inv = deploy(lab, tmp_path, preempt_delay=5)
        assert "    preempt_delay 5\n" in lab.ssh("lb1", "cat /etc/keepalived/keepalived.conf").stdout
        assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None
        r = drill(lab, inv)
        assert (r["old_holder"], r["new_holder"], r["final_holder"]) == ("lb1", "lb2", "lb1")
        assert r["failback_s"] is not None
        assert r["failback_s"] >= 5.0, r  # not before the delay
        print(f"preempt_delay 5: fail-back after {r['failback_s']:.2f}s")
    finally:
        deploy(lab, tmp_path)
        assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None
