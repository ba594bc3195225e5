"""Interrupted runs on the lab: the real ``hakeep deploy`` is sent SIGTERM or SIGHUP at the moment
it has replaced haproxy.cfg on lb2 (the first LB; the test hook HAKEEP_TEST_PAUSE=lb2:commit holds
it there), and ``hakeep drill`` at the moment it stopped keepalived on the VIP holder. Afterwards:
lb2's files are byte-identical to before and haproxy runs them, the lock is free, no command of the
run is left on the host, the release is marked interrupted, the VIP is on exactly one LB, and the
exit code is 143 (SIGTERM) or 129 (SIGHUP). Before this, SIGTERM left lb2 with the new file while
haproxy ran the old one.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hakeep.hosts import commands
from tests.conftest import Lab
from tests.test_deploy_lab import holders, snapshot
from tests.test_faults_lab import healthy, inv
from tests.test_reload_lab import custom_templates

pytestmark = pytest.mark.lab
__all__ = ["healthy", "inv"]

CODES = {signal.SIGTERM: 143, signal.SIGHUP: 129}


def run_until_paused(lab: Lab, hook: str, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start hakeep with the test hook; return once it says it paused (its stderr lines so far)."""
    proc = subprocess.Popen([sys.executable, "-m", "hakeep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**lab.env(), "HAKEEP_TEST_PAUSE": hook})
    seen: list[str] = []
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "test hook: paused" in line:
            return proc, seen
    proc.kill()
    pytest.fail(f"hakeep never paused at {hook}: {''.join(seen)}")


def lock_free(lab: Lab, host: str) -> bool:
    return lab.ssh(host, "flock -n /run/hakeep.lock true", check=False).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_just_after_haproxy_cfg_was_replaced_restores_lb2(healthy: Lab, inv: Path, tmp_path: Path,
                                                                   sig: signal.Signals) -> None:
    lab = healthy
    templates = custom_templates(tmp_path, "haproxy.cfg.j2", "defaults\n", f"# signal test {sig.name}\ndefaults\n")
    before = snapshot(lab)
    proc, _ = run_until_paused(lab, "lb2:commit", "deploy", str(inv), "--yes", "--templates", str(templates))
    assert "signal test" in lab.ssh("lb2", "cat /etc/haproxy/haproxy.cfg").stdout  # paused: the new file is live
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == CODES[sig], out + err
    assert f"interrupted ({sig.name})" in err, err  # stderr is a pipe here: kept after SIGHUP too
    assert "Traceback" not in err
    after = snapshot(lab)
    assert after["lb2"].split("MainPID")[0] == before["lb2"].split("MainPID")[0]  # the old files, byte for byte
    assert after["lb1"] == before["lb1"]  # the VIP holder: never touched
    gate = commands.host_gate([6443, 30080], {})
    assert lab.ssh("lb2", "sh -s", input=gate, check=False).stdout.strip() == "ok"  # haproxy runs the old file
    assert all(lock_free(lab, h) for h in lab.lbs)
    assert lab.ssh("lb2", "ls -A /run/hakeep/steps 2>/dev/null", check=False).stdout.strip() == ""
    manifests = lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
    assert '"status": "interrupted"' in manifests
    assert holders(lab) == ["lb1"]
    listed = subprocess.run([sys.executable, "-m", "hakeep", "releases", str(inv), "--json"], capture_output=True,
                            text=True, env=lab.env(), timeout=60, check=False)
    assert "interrupted" in listed.stdout, listed.stdout + listed.stderr
    json.loads(listed.stdout)


def test_sigterm_during_a_drill_brings_keepalived_back_on_the_holder(healthy: Lab, inv: Path) -> None:
    lab = healthy
    proc, _ = run_until_paused(lab, "lb1:fault", "drill", str(inv))
    assert lab.ssh("lb1", "systemctl is-active keepalived", check=False).stdout.strip() != "active"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert lab.ssh("lb1", "systemctl is-active keepalived", check=False).stdout.strip() == "active"
    assert all(lock_free(lab, h) for h in lab.lbs)
    assert len(holders(lab)) == 1
