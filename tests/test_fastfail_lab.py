"""Fast failure detection on the lab, as clients see it (issue #19), each fault made for real:

- haproxy stopped on the VIP holder: the VIP on the peer within 1.5 s, clients' connects failing
  for at most 1.5 s (keepalived tracks haproxy's unit state, written by systemd: no polling);
- haproxy SIGKILLed with its workers: systemd's restart and the failover both timed, never the VIP
  on two LBs;
- keepalived SIGKILLed: its main process (its VRRP child, told by the kernel, still says goodbye)
  or all its processes (silent: the peer waits out its master-down interval): the VIP on the peer,
  keepalived active again (systemd's Restart=) within RestartSec + 2 s, `status` says it restarted;
- a master whose /readyz answers 500: at most 3 s of 500s through the VIP (counted), back in
  rotation once healthy;
- a master restarted the way kube-apiserver restarts (unready 5 s while still serving, then gone,
  then back): not one failed request through the VIP.

The drill (`--probe`, `--mode master-unhealthy`) measures, from the lab's control namespace where
clients are; a sampler reads every LB's addresses every 50 ms (the network namespaces, no SSH) to
prove the VIP was never on two LBs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import schemas
from tests.conftest import Lab
from tests.test_deploy_lab import VIP, hakeep, holders, lab_doc, write_inventory
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab

HAPROXY_RESTART_SEC = 1.0  # the drop-ins' RestartSec
KEEPALIVED_RESTART_SEC = 5.0  # 3 x advert_int + 2: once the peer has taken over


@pytest.fixture(scope="module")
def inv(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory (3 masters), deployed: a healthy pair, VIP on lb1."""
    path = write_inventory(tmp_path_factory.mktemp("fastfail"), lab_doc(lab, masters=3))
    r = hakeep(lab, "deploy", str(path), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None
    return path


@pytest.fixture
def healthy(lab: Lab, inv: Path) -> Iterator[Lab]:
    """Each test starts from (and leaves) a healthy pair with the VIP on lb1, every master healthy."""
    yield lab
    for m in ("m1", "m2", "m3"):
        lab.run_lab("master", m, "healthy")
    for h in lab.lbs:
        lab.ssh(h, "systemctl start haproxy keepalived", check=False)
    assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None
    assert wait_for(lambda: hakeep(lab, "status", str(inv)).returncode == 0, 60, 1.0) is not None


class Sampler:
    """Which LBs carry the VIP, every 50 ms, read in their network namespaces (no SSH in the way)."""

    def __init__(self, lab: Lab) -> None:
        self.lbs = lab.lbs
        self.samples: list[tuple[str, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = []
            for h in self.lbs:
                out = subprocess.run(["ip", "-n", f"hklab-{h}", "-o", "-4", "addr", "show"], capture_output=True,
                                     text=True, check=False).stdout
                if f" {VIP}/" in out:
                    now.append(h)
            self.samples.append(tuple(now))
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def doubled(self) -> list[tuple[str, ...]]:
        return [s for s in self.samples if len(s) > 1]


def drill(lab: Lab, inv: Path, *args: str) -> dict[str, Any]:
    """One drill round run where clients are (the control namespace), with a client probe; its result."""
    r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                        "--probe", "--json", *args], capture_output=True, text=True, env=lab.env(), timeout=180,
                       check=False)
    assert "Traceback" not in r.stderr
    doc = schemas.check(r.stdout, "drill")
    assert r.returncode == 0, r.stdout + r.stderr
    assert doc["ok"] is True
    result: dict[str, Any] = doc["rounds"][-1]
    return result


def test_haproxy_stopped_on_the_holder_moves_the_vip_within_1_5s(healthy: Lab, inv: Path) -> None:
    with Sampler(healthy) as sampler:
        r = drill(healthy, inv, "--mode", "haproxy-stop", "--max-seconds", "1.5")
    assert (r["old_holder"], r["new_holder"], r["final_holder"]) == ("lb1", "lb2", "lb1")
    assert r["vip_moved_s"] <= 1.5
    probe = r["probe"]
    assert probe["attempts"] > 50
    assert probe["bad_span_s"] <= 1.5, probe  # client connects failing for at most 1.5 s
    assert probe["longest_gap_s"] <= 1.5, probe
    assert r["unit_back_s"] is not None  # hakeep started it again
    assert sampler.doubled == [], sampler.doubled
    assert ("lb2",) in sampler.samples
    print(f"haproxy-stop: VIP moved {r['vip_moved_s']:.2f}s; client {probe['failed']}/{probe['attempts']} "
          f"connects failed over {probe['bad_span_s']:.2f}s, longest gap {probe['longest_gap_s']:.2f}s; "
          f"fail-back {r['failback_s']}s")


def test_haproxy_sigkilled_on_the_holder_is_restarted_and_the_vip_is_never_on_two_lbs(healthy: Lab,
                                                                                      inv: Path) -> None:
    before = int(healthy.ssh("lb1", "systemctl show -p NRestarts --value haproxy").stdout)
    with Sampler(healthy) as sampler:
        r = drill(healthy, inv, "--mode", "haproxy-crash", "--max-seconds", "1.5")
    assert (r["old_holder"], r["new_holder"], r["final_holder"]) == ("lb1", "lb2", "lb1")
    assert r["vip_moved_s"] <= 1.5
    # systemd restarted it (Restart=on-failure, RestartSec=1s), long before the host's backstop timer
    assert r["unit_back_s"] is not None, r
    assert r["unit_back_s"] <= HAPROXY_RESTART_SEC + 2, r
    assert r["auto_restarted"] is True
    assert int(healthy.ssh("lb1", "systemctl show -p NRestarts --value haproxy").stdout) == before + 1
    assert sampler.doubled == [], sampler.doubled
    probe = r["probe"]
    print(f"haproxy-crash: VIP moved {r['vip_moved_s']:.2f}s, haproxy restarted by systemd after "
          f"{r['unit_back_s']:.2f}s; client {probe['failed']}/{probe['attempts']} connects failed over "
          f"{probe['bad_span_s']:.2f}s; fail-back {r['failback_s']}s after")


def test_a_haproxy_restart_on_the_holder_keeps_the_vip(healthy: Lab, inv: Path) -> None:
    """A restart (a package upgrade) is back within a fraction of a second: not marked as haproxy down,
    so the VIP does not move away and back (nor leave both LBs when both restart at once)."""
    since = healthy.ssh("lb1", "date +%s").stdout.strip()
    with Sampler(healthy) as sampler:
        healthy.ssh("lb1", "systemctl restart haproxy")
        time.sleep(2.5)
    assert set(sampler.samples) == {("lb1",)}, sampler.samples
    assert healthy.ssh("lb1", "cat /run/hakeep/haproxy-down").stdout.strip() == "0"
    journal = healthy.ssh("lb1", f"journalctl -u keepalived --since @{since} --no-pager -o cat").stdout
    assert "FAULT" not in journal, journal


def test_keepalived_main_process_sigkilled_on_the_holder_comes_back_by_itself(healthy: Lab, inv: Path) -> None:
    lab = healthy
    with Sampler(lab) as sampler:
        t0 = time.monotonic()
        lab.ssh("lb1", "kill -KILL $(systemctl show -p MainPID --value keepalived)")
        moved = wait_for(lambda: ("lb2",) in sampler.samples, 5, 0.02)
        moved_s = time.monotonic() - t0
        back = wait_for(lambda: lab.ssh("lb1", "systemctl is-active keepalived", check=False).returncode == 0,
                        10, 0.05)
        back_s = time.monotonic() - t0
        assert wait_for(lambda: holders(lab) == ["lb1"], 20, 0.2) is not None  # it takes the VIP back
    assert moved is not None, "the VIP never reached lb2"
    assert back is not None, "keepalived never came back"
    # systemd's own clock: the crash (it left active) -> active again
    times = dict(line.split("=", 1) for line in lab.ssh(
        "lb1", "systemctl show -p ActiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic keepalived"
    ).stdout.split())
    restarted_s = (int(times["ActiveEnterTimestampMonotonic"]) - int(times["ActiveExitTimestampMonotonic"])) / 1e6
    assert 0 < restarted_s <= KEEPALIVED_RESTART_SEC + 2, restarted_s
    assert sampler.doubled == [], sampler.doubled
    r = hakeep(lab, "status", str(inv), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    lb1 = next(h for h in doc["hosts"] if h["host"] == "lb1")
    assert any(x.startswith("keepalived restarted by systemd") for x in lb1["restarts"]), lb1
    assert any(n.startswith("lb1: keepalived restarted by systemd") for n in doc["notes"]), doc["notes"]
    text = hakeep(lab, "status", str(inv)).stdout
    assert "note: lb1: keepalived restarted by systemd" in text
    print(f"keepalived SIGKILL: VIP on lb2 after {moved_s:.2f}s, keepalived active again after {restarted_s:.2f}s "
          f"(systemd's clock; {back_s:.2f}s seen over SSH)")


def test_keepalived_sigkilled_whole_on_the_holder_keeps_clients_served(healthy: Lab, inv: Path) -> None:
    """Every keepalived process SIGKILLed: no goodbye, the VIP stays on the old holder (its haproxy
    still serves) until the peer's master-down timer; systemd starts keepalived only after that."""
    with Sampler(healthy) as sampler:
        r = drill(healthy, inv, "--mode", "crash", "--max-seconds", "4")
    assert (r["old_holder"], r["new_holder"], r["final_holder"]) == ("lb1", "lb2", "lb1")
    assert r["auto_restarted"] is True
    assert KEEPALIVED_RESTART_SEC <= r["unit_back_s"] <= KEEPALIVED_RESTART_SEC + 2, r
    probe = r["probe"]
    assert probe["bad_span_s"] <= 1.5, probe
    assert ("lb2",) in sampler.samples
    print(f"keepalived SIGKILL (all processes): VIP on lb2 after {r['vip_moved_s']:.2f}s, keepalived back after "
          f"{r['unit_back_s']:.2f}s (systemd); client {probe['failed']}/{probe['attempts']} connects failed over "
          f"{probe['bad_span_s']:.2f}s")


def watch(lab: Lab, inv: Path, tmp: Path, *args: str) -> subprocess.Popen[str]:
    """drill --mode master-unhealthy in the control namespace, once it is watching (its stderr says so)."""
    err = tmp / "drill.err"
    proc = subprocess.Popen(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                             "--mode", "master-unhealthy", "--master", "m2", "--observe-seconds", "60", "--json",
                             *args], stdout=subprocess.PIPE, stderr=err.open("w"), text=True, env=lab.env())
    if wait_for(lambda: "watching m2" in err.read_text(), 30, 0.1) is None:
        proc.kill()
        pytest.fail(f"the drill never started watching: {err.read_text()}")
    time.sleep(1.0)  # the probe runs
    return proc


def watched(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    doc = schemas.check(out, "drill")
    assert proc.returncode == 0, out
    result: dict[str, Any] = doc["rounds"][0]
    return result


def test_an_unhealthy_master_is_out_of_rotation_within_3s(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    proc = watch(healthy, inv, tmp_path)
    try:
        healthy.run_lab("master", "m2", "unhealthy")
        time.sleep(6)
        healthy.run_lab("master", "m2", "healthy")
    finally:
        r = watched(proc)
    probe = r["probe"]
    assert (r["master"], r["old_holder"]) == ("m2", "lb1")
    assert probe["errors"] > 0  # 500s from m2 before haproxy took it out: counted
    assert probe["failed"] == 0
    assert probe["bad_span_s"] <= 3.0, probe
    assert r["out_s"] is not None
    assert r["out_s"] <= 3.0
    assert r["back_s"] is not None  # back in rotation once healthy, within the watch
    print(f"m2 unhealthy: {probe['errors']} of {probe['attempts']} requests got a 500, over "
          f"{probe['bad_span_s']:.2f}s; out of rotation {r['out_s']:.2f}s after the first; back "
          f"{r['back_s']:.2f}s after it left (6 s unhealthy)")


def test_a_graceful_master_restart_fails_no_request(healthy: Lab, inv: Path, tmp_path: Path) -> None:
    proc = watch(healthy, inv, tmp_path, "--path", "/version")
    try:
        healthy.run_lab("master", "m2", "restart", "5")  # unready 5 s while serving, then gone, then back
    finally:
        r = watched(proc)
    probe = r["probe"]
    assert probe["attempts"] > 100
    assert (probe["failed"], probe["errors"]) == (0, 0), probe
    assert r["back_s"] is not None
    print(f"m2 graceful restart: 0 of {probe['attempts']} requests failed; m2 back in rotation "
          f"{r['back_s']:.2f}s after it left")
