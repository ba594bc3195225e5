"""Degraded pairs on the lab, made for real: an LB powered off, its link cut, its sshd hung, the
two LBs partitioned (split brain), keepalived stopped on both (VIP lost), a master down; then
`deploy --limit` around a powered-off peer, the drill's refusal, each drill mode with a client
probe, and a link drill whose hakeep is SIGKILLed mid-drill.

Each test asserts the verdict, the exit code and the message, and that no host changed unless the
command was meant to change it; each undoes its fault in `finally` and waits until the pair is
healthy again. The inventory uses connect_timeout = 3 so that a dead LB costs 3 s, not 10.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import schemas
from tests.conftest import Lab
from tests.test_deploy_lab import PROBE, VIP, hakeep, holders, lab_doc, snapshot, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab

CONNECT_TIMEOUT = 3.0
HEALTHY, UNREACHABLE, DEGRADED, SPLIT_BRAIN, VIP_LOST = 0, 5, 6, 7, 8


@pytest.fixture(scope="module")
def inv(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory (3 masters, connect_timeout 3), deployed: a healthy pair, VIP on lb1."""
    doc = lab_doc(lab, masters=3)
    doc["ssh"]["connect_timeout"] = CONNECT_TIMEOUT
    path = write_inventory(tmp_path_factory.mktemp("faults"), doc)
    r = hakeep(lab, "deploy", str(path), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_healthy(lab, path)
    return path


def status(lab: Lab, inv: Path) -> tuple[int, dict[str, Any], float]:
    t0 = time.monotonic()
    r = hakeep(lab, "status", str(inv), "--json", timeout=60)
    took = time.monotonic() - t0
    assert r.returncode in (HEALTHY, UNREACHABLE, DEGRADED, SPLIT_BRAIN, VIP_LOST), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout), took


def wait_healthy(lab: Lab, inv: Path, timeout: float = 60) -> None:
    assert wait_for(lambda: status(lab, inv)[0] == HEALTHY, timeout, 1.0) is not None, status(lab, inv)[1]


@pytest.fixture
def healthy(lab: Lab, inv: Path) -> Iterator[Lab]:
    """A healthy pair before the test; after it, the test's fault undone and the pair healthy again."""
    wait_healthy(lab, inv)
    yield lab
    wait_healthy(lab, inv, timeout=90)


def host_row(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in doc["hosts"] if h["host"] == name)


def test_healthy_pair(healthy: Lab, inv: Path) -> None:
    code, doc, _ = status(healthy, inv)
    assert (code, doc["verdict"], doc["holders"]) == (HEALTHY, "healthy", ["lb1"])
    r = hakeep(healthy, "status", str(inv))
    assert r.returncode == HEALTHY
    assert "healthy: VIP 10.77.0.200 on lb1" in r.stdout


def test_lb_powered_off(healthy: Lab, inv: Path) -> None:
    lab = healthy
    before = snapshot(lab)["lb2"]
    lab.run_lab("poweroff", "lb1")
    try:
        assert wait_for(lambda: f" {VIP}/" in lab.ssh("lb2", "ip -o -4 addr").stdout, 15) is not None
        code, doc, took = status(lab, inv)
        assert (code, doc["verdict"], doc["holders"]) == (DEGRADED, "degraded", ["lb2"])
        row = host_row(doc, "lb1")
        assert (row["reachable"], row["reason"]) == (False, "timeout")
        assert "lb1 cannot be reached (timeout)" in doc["reasons"]
        assert took <= CONNECT_TIMEOUT + 2, f"status took {took:.1f}s with lb1 down"
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == UNREACHABLE, r.stdout + r.stderr
        assert re.search(r"error: lb1: .*\[timeout\]", r.stderr), r.stderr
        assert "1 of 2 LBs cannot be reached; nothing was changed" in r.stderr
        assert f"hakeep deploy {inv} --limit lb2" in r.stderr
        for command in ("diff", "releases"):
            r = hakeep(lab, command, str(inv))
            assert r.returncode == UNREACHABLE, r.stderr
            assert "--limit lb2" in r.stderr
        r = hakeep(lab, "releases", str(inv), "--limit", "lb2")
        assert r.returncode == 0, r.stderr
        assert "lb1 cannot be reached" in r.stderr
        after = snapshot(lab)["lb2"]
        assert after.split("MainPID")[0] == before.split("MainPID")[0]  # no managed file changed
    finally:
        lab.run_lab("poweron", "lb1")


def test_lb_link_cut(healthy: Lab, inv: Path) -> None:
    lab = healthy
    before = snapshot(lab)["lb1"]
    lab.run_lab("cut", "lb2")
    try:  # if lb2 held the VIP, lb1 takes it over within 3 adverts
        assert wait_for(lambda: status(lab, inv)[1]["holders"] == ["lb1"], 15, 0.5) is not None
        code, doc, took = status(lab, inv)
        assert (code, doc["verdict"], doc["holders"]) == (DEGRADED, "degraded", ["lb1"])
        assert host_row(doc, "lb2")["reachable"] is False
        assert took <= CONNECT_TIMEOUT + 2
        assert snapshot(lab)["lb1"] == before  # status changed nothing: files, main PIDs, releases
    finally:
        lab.run_lab("heal", "lb2")


def test_sshd_hung(healthy: Lab, inv: Path) -> None:
    lab = healthy
    before = snapshot(lab, ["lb1"])
    lab.run_lab("hang", "lb2")
    try:
        code, doc, took = status(lab, inv)
        assert (code, doc["verdict"]) == (DEGRADED, "degraded")
        assert host_row(doc, "lb2")["reason"] == "timeout"
        assert took <= CONNECT_TIMEOUT + 2, f"status took {took:.1f}s with lb2's sshd hung"
        assert snapshot(lab, ["lb1"]) == before  # (never ssh to the hung lb2 itself: its banner never comes)
    finally:
        lab.run_lab("unhang", "lb2")


def test_partition_is_split_brain(healthy: Lab, inv: Path) -> None:
    lab = healthy
    before = snapshot(lab)
    lab.run_lab("partition", "lb1", "lb2")
    try:
        assert wait_for(lambda: status(lab, inv)[0] == SPLIT_BRAIN, 20, 0.5) is not None
        _, doc, _ = status(lab, inv)
        assert sorted(doc["holders"]) == ["lb1", "lb2"]
        assert any("at once" in str(r) for r in doc["reasons"])
        r = hakeep(lab, "status", str(inv))
        assert r.returncode == SPLIT_BRAIN
        assert "split brain: VIP 10.77.0.200 on lb1, lb2" in r.stdout
        assert snapshot(lab) == before
    finally:
        lab.run_lab("unpartition", "lb1", "lb2")


def test_keepalived_stopped_on_both_is_vip_lost(healthy: Lab, inv: Path) -> None:
    lab = healthy
    try:
        for h in lab.lbs:
            lab.ssh(h, "systemctl stop keepalived")
        code, doc, _ = status(lab, inv)
        assert (code, doc["verdict"], doc["holders"]) == (VIP_LOST, "VIP lost", [])
        assert "no LB holds the VIP and it does not answer" in doc["reasons"]
    finally:
        for h in lab.lbs:
            lab.ssh(h, "systemctl start keepalived")


def test_a_master_down_is_degraded_naming_the_server(healthy: Lab, inv: Path) -> None:
    lab = healthy
    before = snapshot(lab)
    lab.master("m2", "stop")
    try:
        def down() -> bool:
            code, doc, _ = status(lab, inv)
            return code == DEGRADED and any("m2" in str(r) for r in doc["reasons"])
        assert wait_for(down, 40, 1.0) is not None, status(lab, inv)[1]
        assert snapshot(lab) == before
    finally:
        lab.master("m2", "start")


def test_deploy_limit_with_the_peer_powered_off_keeps_the_vip(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    lab = healthy
    doc = lab_doc(lab, masters=2)  # a change to both configs: one master fewer, lb1's priority up
    doc["ssh"]["connect_timeout"] = CONNECT_TIMEOUT
    doc["lb"][0]["priority"] = 105
    changed = write_inventory(tmp_path, doc)
    lab.run_lab("poweroff", "lb2")
    assert wait_for(lambda: f" {VIP}/" in lab.ssh("lb1", "ip -o -4 addr").stdout, 15) is not None
    state_before = lab.ssh("lb1", "cat /run/hakeep/vrrp-state").stdout  # "MASTER prio epoch-of-the-change"
    probe = subprocess.Popen(["ip", "netns", "exec", "hklab-ctl", "python3", "-c", PROBE, VIP, "30080"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        r = hakeep(lab, "deploy", str(changed), "--limit", "lb1", "--yes")
        out, _ = probe.communicate(input="", timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "the pair is degraded: lb2 (timeout) cannot be reached" in r.stdout + r.stderr
        assert "no other LB stands by" in r.stdout + r.stderr
        assert f" {VIP}/" in lab.ssh("lb1", "ip -o -4 addr").stdout
        ok, fail, _errors = out.split(" ", 2)
        assert int(ok) > 20, out
        assert int(fail) == 0, f"failed connections through the VIP: {out}"
        assert "server m3" not in lab.ssh("lb1", "cat /etc/haproxy/haproxy.cfg").stdout
        assert "priority 105" in lab.ssh("lb1", "cat /etc/keepalived/keepalived.conf").stdout
        assert "reload (or start) keepalived" in r.stdout
        # the notify script records every VRRP transition: lb1 never left MASTER
        assert lab.ssh("lb1", "cat /run/hakeep/vrrp-state").stdout == state_before
    finally:
        if probe.poll() is None:
            probe.communicate(input="", timeout=30)
        lab.run_lab("poweron", "lb2")
        r = hakeep(lab, "deploy", str(inv), "--yes")  # converge both on the module's inventory again
        assert r.returncode == 0, r.stdout + r.stderr


def test_drill_is_refused_on_a_degraded_pair(healthy: Lab, inv: Path) -> None:
    lab = healthy
    lab.ssh("lb2", "systemctl stop keepalived")
    before = snapshot(lab)
    try:
        r = hakeep(lab, "drill", str(inv))
        assert r.returncode == DEGRADED, r.stdout + r.stderr
        assert "drill refused: the pair is degraded" in r.stderr
        assert "lb2: keepalived inactive" in r.stdout
        assert snapshot(lab) == before  # nothing stopped, started or written
    finally:
        lab.ssh("lb2", "systemctl start keepalived")


def drill_in_ctl(lab: Lab, inv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """hakeep drill run where clients are: inside the lab's control namespace, where the VIP answers."""
    return subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                           "--probe", "--json", *args], capture_output=True, text=True, env=lab.env(),
                          timeout=180, check=False)


def test_a_link_drill_that_would_cut_hakeeps_own_path_is_refused(healthy: Lab, inv: Path) -> None:
    before = snapshot(healthy)
    r = drill_in_ctl(healthy, inv, "--mode", "link")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "drill refused: --mode link: hakeep reaches lb1 at 10.77.0.101, on eth0" in r.stderr
    assert "--allow-ssh-loss" in r.stderr
    assert snapshot(healthy) == before


@pytest.mark.parametrize(("mode", "limit", "rounds"), [("stop", 1.5, 2), ("crash", 4.0, 1), ("link", 4.0, 1)])
def test_each_drill_mode_with_a_client_probe(healthy: Lab, inv: Path, mode: str, limit: float, rounds: int) -> None:
    extra = ("--allow-ssh-loss",) if mode == "link" else ()
    r = drill_in_ctl(healthy, inv, "--mode", mode, "--max-seconds", str(limit), "--rounds", str(rounds), *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    results = schemas.check(r.stdout, "drill")["rounds"]
    assert [x["round"] for x in results] == list(range(1, rounds + 1))
    result = results[-1]
    assert (result["mode"], result["old_holder"], result["new_holder"]) == (mode, "lb1", "lb2")
    assert result["vip_moved_s"] <= limit
    assert result["probe"]["attempts"] > 20
    assert result["recovered_s"] is not None
    assert result["final_holder"] == "lb1"
    assert result["failback_s"] is not None  # lb1 has the higher priority: it takes the VIP back
    assert result["recovered_s"] <= result["failback_s"]  # BACKUP reported first, then MASTER again
    print(f"drill --mode {mode}: VIP moved {result['vip_moved_s']:.2f}s, frontends {result['frontends_s']:.2f}s, "
          f"client {result['probe']['failed']}/{result['probe']['attempts']} failed, gap "
          f"{result['probe']['longest_gap_s']:.2f}s, old holder back {result['recovered_s']:.2f}s, "
          f"fail-back {result['failback_s']:.2f}s")


def test_link_comes_back_when_the_drill_is_killed(healthy: Lab, inv: Path) -> None:
    lab = healthy
    proc = subprocess.Popen(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                             "--mode", "link", "--allow-ssh-loss", "--link-seconds", "6"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=lab.env())
    try:
        def link(state: str) -> bool:
            out = subprocess.run(["ip", "-n", "hklab-lb1", "-o", "link", "show", "eth0"], capture_output=True,
                                 text=True, check=False).stdout
            return f"state {state}" in out
        assert wait_for(lambda: link("DOWN"), 30, 0.1) is not None, "the drill never took lb1's link down"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_for(lambda: link("UP"), 15, 0.2) is not None, "lb1's link stayed down after the drill died"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        subprocess.run(["ip", "-n", "hklab-lb1", "link", "set", "eth0", "up"], check=False)  # never leave it down


def test_status_watch_prints_each_vip_move(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    lab = healthy
    log = tmp_path / "watch.out"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hakeep", "status", str(inv), "--watch", "1"], stdout=out,
                                stderr=subprocess.STDOUT, env=lab.env())
    try:
        time.sleep(2.5)  # at least one round seen
        assert proc.poll() is None, log.read_text()
        # the VIP on lb1 (an earlier test may leave it on lb2 for a moment: it comes back by priority)
        assert wait_for(lambda: holders(lab) == ["lb1"], 20, 0.5) is not None
        time.sleep(1.5)  # a round has seen it there
        start = len(log.read_text())
        lab.ssh("lb1", "systemctl stop keepalived")
        assert wait_for(lambda: "-> lb2" in log.read_text()[start:], 20, 0.5) is not None, log.read_text()
        start = len(log.read_text())
        lab.ssh("lb1", "systemctl start keepalived")
        assert wait_for(lambda: "-> lb1" in log.read_text()[start:], 20, 0.5) is not None, log.read_text()
    finally:
        lab.ssh("lb1", "systemctl start keepalived", check=False)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        finally:
            if proc.poll() is None:  # never leave it polling the lab
                proc.kill()
                proc.wait(10)
    text = log.read_text()
    # lb1 -> lb2, or through "no LB" when a refresh fell into the handover's gap; degraded (lb1's
    # keepalived is stopped) at once, or after a refresh that caught lb2 before it answered
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* VIP 10\.77\.0\.200"
    moved = re.search(stamp + r": (lb1|no LB) -> lb2 \((degraded|VIP lost)\)$", text, re.M)
    assert moved, text
    if moved.group(2) != "degraded":
        assert re.search(stamp + r" on lb2: VIP lost -> degraded$", text, re.M), text
    assert "Traceback" not in text
    assert code == HEALTHY, text  # the last round's verdict
    assert "healthy: VIP 10.77.0.200 on lb1" in text  # the last table, left in the log


def test_reset_and_the_inverses_undo_every_fault(healthy: Lab, inv: Path) -> None:
    """It resets lb2 (a bare host again), then deploys it back."""
    lab = healthy
    lab.run_lab("partition", "lb1", "lb2")
    lab.run_lab("hang", "lb2")
    lab.run_lab("cut", "lb2")
    assert "faults:" in lab.run_lab("status").stdout
    lab.reset("lb2")
    rules = subprocess.run(["ip", "-n", "hklab-lb1", "rule"], capture_output=True, text=True, check=True).stdout
    assert "ipproto" not in rules  # lb1's half of the partition went with lb2's reset
    assert "lookup local" in rules.splitlines()[0]  # the local table first again
    assert "faults:" not in lab.run_lab("status").stdout
    assert lab.ssh("lb2", "hostname").stdout.strip() == "lb2"  # its sshd answers: no hang, no cut
    r = hakeep(lab, "deploy", str(inv), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
