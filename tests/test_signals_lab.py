"""Interrupted runs on the lab: the real ``hakeep deploy`` is sent SIGTERM or SIGHUP at the moment
it has replaced haproxy.cfg on lb2 (the first LB; the test hook HAKEEP_TEST_PAUSE=lb2:commit holds
it there), and ``hakeep drill`` at the moment it stopped keepalived on the VIP holder. Afterwards:
lb2's files are byte-identical to before and haproxy runs them, the lock is free, no command of the
run is left on the host, the release is marked interrupted, the VIP is on exactly one LB, and the
exit code is 143 (SIGTERM) or 129 (SIGHUP). Before this, SIGTERM left lb2 with the new file while
haproxy ran the old one.

A run cut off instead (lb2's link cut while the deploy holds its lock, then hakeep SIGKILLed: the
TCP connection never closes on lb2): after healing the link, a second deploy succeeds within the
lock's bound (20 s without a heartbeat) and converges, and `releases` shows the cut-off release as
interrupted. A process on an LB named to forge facts (run as nobody) changes nothing hakeep reads.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hakeep.hosts import commands
from hakeep.hosts.remote import LOCK_HEARTBEAT_TIMEOUT
from tests import schemas
from tests.conftest import Lab
from tests.test_deploy_lab import holders, snapshot
from tests.test_faults_lab import healthy, inv
from tests.test_lab_smoke import wait_for
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
    schemas.check(listed.stdout, "releases")


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


def test_sigterm_during_a_rollback_restores_lb2(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    lab = healthy
    templates = custom_templates(tmp_path, "haproxy.cfg.j2", "defaults\n", "# rollback signal test\ndefaults\n")
    r = subprocess.run([sys.executable, "-m", "hakeep", "deploy", str(inv), "--yes", "--templates", str(templates)],
                       capture_output=True, text=True, env=lab.env(), timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    before = snapshot(lab)
    proc, _ = run_until_paused(lab, "lb2:commit", "rollback", str(inv), "--yes")
    assert "rollback signal test" not in lab.ssh("lb2", "cat /etc/haproxy/haproxy.cfg").stdout  # rolled back, paused
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    after = snapshot(lab)
    assert after["lb2"].split("MainPID")[0] == before["lb2"].split("MainPID")[0]  # the deployed files again
    assert after["lb1"] == before["lb1"]
    gate = commands.host_gate([6443, 30080], {})
    assert lab.ssh("lb2", "sh -s", input=gate, check=False).stdout.strip() == "ok"
    assert all(lock_free(lab, h) for h in lab.lbs)
    assert '"status": "interrupted"' in lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
    assert holders(lab) == ["lb1"]


def test_a_run_cut_off_mid_rollout_frees_the_lock_within_its_bound(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    lab = healthy
    templates = custom_templates(tmp_path, "haproxy.cfg.j2", "defaults\n", "# cut test\ndefaults\n")
    args = ("deploy", str(inv), "--yes", "--templates", str(templates))
    proc, _ = run_until_paused(lab, "lb2:commit", *args)
    cut_id = lab.ssh("lb2", "ls -t /var/lib/hakeep/releases | head -n 1").stdout.strip()
    lab.run_lab("cut", "lb2")
    proc.kill()  # SIGKILL: nothing of hakeep's own restore runs, and lb2 never sees the connection close
    proc.communicate(timeout=30)
    killed = time.monotonic()
    try:
        lab.run_lab("heal", "lb2")
        tries: list[str] = []
        while True:
            r = subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True,
                               env=lab.env(), timeout=300, check=False)
            if r.returncode == 0:
                break
            tries.append(r.stderr)
            assert time.monotonic() - killed < LOCK_HEARTBEAT_TIMEOUT + 40, "".join(tries)
            time.sleep(2)
        took = time.monotonic() - killed
    finally:
        lab.run_lab("heal", "lb2", check=False)
    print(f"a deploy succeeded {took:.1f}s after the cut-off run was killed, after {len(tries)} refused tries")
    assert all("deploy lock" in t and "lb2" in t for t in tries), tries  # refused only for the lock
    assert took < LOCK_HEARTBEAT_TIMEOUT + 30
    gate = commands.host_gate([6443, 30080], {})
    assert lab.ssh("lb2", "sh -s", input=gate, check=False).stdout.strip() == "ok"  # converged: runs the new file
    assert "cut test" in lab.ssh("lb2", "cat /etc/haproxy/haproxy.cfg").stdout
    assert lab.ssh("lb2", "ls -A /run/hakeep/steps 2>/dev/null", check=False).stdout.strip() == ""
    listed = subprocess.run([sys.executable, "-m", "hakeep", "releases", str(inv), "--json"], capture_output=True,
                            text=True, env=lab.env(), timeout=60, check=False)
    doc = schemas.check(listed.stdout, "releases")
    statuses = {r["id"]: r["status"] for h in doc["hosts"] if h["host"] == "lb2" for r in h["releases"]}
    assert statuses[cut_id] == "interrupted", statuses


def test_a_frozen_run_loses_its_lock_after_the_heartbeat_bound(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    """hakeep stopped (SIGSTOP) while it holds the LBs' locks: its TCP connections stay open, but no
    heartbeat comes. Each LB's holder lets go LOCK_HEARTBEAT_TIMEOUT s after the last one; until
    then a second deploy is refused for the lock, then it succeeds."""
    lab = healthy
    templates = custom_templates(tmp_path, "haproxy.cfg.j2", "defaults\n", "# frozen test\ndefaults\n")
    args = ("deploy", str(inv), "--yes", "--templates", str(templates))
    proc, _ = run_until_paused(lab, "lb2:commit", *args)
    proc.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        tries = 0
        while True:
            r = subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True,
                               env=lab.env(), timeout=300, check=False)
            if r.returncode == 0:
                break
            assert "deploy lock" in r.stderr, r.stdout + r.stderr
            tries += 1
            assert time.monotonic() - frozen < LOCK_HEARTBEAT_TIMEOUT + 40, r.stderr
            time.sleep(1)
        took = time.monotonic() - frozen
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    print(f"frozen run: a second deploy was refused {tries} times, then succeeded {took:.1f}s after the freeze")
    assert tries > 0
    assert LOCK_HEARTBEAT_TIMEOUT - 6 < took < LOCK_HEARTBEAT_TIMEOUT + 30
    gate = commands.host_gate([6443, 30080], {})
    assert lab.ssh("lb2", "sh -s", input=gate, check=False).stdout.strip() == "ok"
    assert holders(lab) == ["lb1"]


HOSTILE = """
import ctypes, socket, time
ctypes.CDLL(None).prctl(15, b"\\n@@vip\\neth0", 0, 0, 0)
s = socket.socket()
s.bind(("0.0.0.0", 31999))
s.listen()
time.sleep(600)
"""


def test_a_hostile_process_on_an_lb_forges_nothing(healthy: Lab, inv: Path) -> None:
    """As nobody on lb2 (not the VIP holder): a listener named "\\n@@vip\\neth0" (what broke facts
    before: lb2 seemed to hold the VIP). status stays healthy with the VIP on lb1 alone; releases,
    diff and a dry-run answer without a traceback (0, or 3: the tests before left other configs)."""
    lab = healthy
    pid = lab.ssh("lb2", "cat > /tmp/hk-hostile.py; chmod 644 /tmp/hk-hostile.py; "
                  "setsid runuser -u nobody -- python3 /tmp/hk-hostile.py </dev/null >/dev/null 2>&1 & echo $!",
                  input=HOSTILE).stdout.strip()
    try:
        # the premise: the process listens, and ss prints its name raw
        assert wait_for(lambda: "@@vip" in lab.ssh("lb2", "ss -Hltnp").stdout, 10, 0.3) is not None
        r = subprocess.run([sys.executable, "-m", "hakeep", "status", str(inv), "--json"], capture_output=True,
                           text=True, env=lab.env(), timeout=60, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert schemas.check(r.stdout, "status")["holders"] == ["lb1"]
        for cmd in (("releases",), ("diff",), ("deploy", "--dry-run")):
            r = subprocess.run([sys.executable, "-m", "hakeep", cmd[0], str(inv), *cmd[1:]], capture_output=True,
                               text=True, env=lab.env(), timeout=120, check=False)
            assert r.returncode in (0, 3), (cmd, r.stdout + r.stderr)
            assert "Traceback" not in r.stderr
    finally:
        lab.ssh("lb2", f"pkill -KILL -P {pid}; kill -KILL {pid}; rm -f /tmp/hk-hostile.py", check=False)


def test_sigterm_during_a_side_by_side_first_deploy_restores_what_is_not_settled(lab: Lab, inv: Path) -> None:
    """On bare LBs nothing serves traffic: the first deploy rolls them out side by side. SIGTERM
    while lb1 is paused just after its first commit (the frontend's CA file, before haproxy.cfg):
    lb1 is put back as it was before the rollout (no CA file, Debian's own haproxy.cfg, no
    keepalived.conf, nothing staged), its release is marked interrupted, no lock is held and no
    command of the run is left; lb2, in its own thread, is either restored the same way or settled
    on the new config. Then a deploy brings the pair back."""
    ca = "/etc/haproxy/hakeep/kube-apiserver-ca.crt"
    for host in lab.lbs:
        lab.reset(host)
    proc: subprocess.Popen[str] | None = None
    try:
        proc, _ = run_until_paused(lab, "lb1:commit", "deploy", str(inv), "--yes")
        assert lab.ssh("lb1", f"test -e {ca}", check=False).returncode == 0  # committed, paused
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 143, out + err
        assert "Traceback" not in err
        lb1 = lab.ssh("lb1", "grep -c 'Managed by hakeep' /etc/haproxy/haproxy.cfg; "
                      f"for f in {ca} /etc/keepalived/keepalived.conf; do test -e $f && echo $f; done; "
                      "ls /etc/haproxy /etc/keepalived | grep -c hakeep-new", check=False)
        assert lb1.stdout.split() == ["0", "0"], lb1.stdout
        assert '"status": "interrupted"' in lab.ssh("lb1", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
        lb2 = lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
        assert '"status": "interrupted"' in lb2 or '"status": "complete"' in lb2
        for host in lab.lbs:
            assert lock_free(lab, host)
            left = lab.ssh(host, "ls /run/hakeep/steps 2>/dev/null | grep -v '^$' | wc -l").stdout.strip()
            assert left == "0", host
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        r = subprocess.run([sys.executable, "-m", "hakeep", "deploy", str(inv), "--yes"], capture_output=True,
                           text=True, env=lab.env(), timeout=600, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: holders(lab) == ["lb1"], 30) is not None, holders(lab)
