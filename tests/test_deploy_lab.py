"""`hakeep deploy` on the lab, as a real user runs it (subprocess, the lab's ssh_config, real hosts).

The tests run in file order on the same two LBs: fresh hosts -> deploy -> failover drill -> no-op
re-deploy -> dry-run -> rolling change under load -> refused bad template -> sudo as `ops` ->
host keys -> lock. Every wait is bounded; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import schemas
from tests.conftest import Lab
from tests.test_lab_smoke import wait_for
from tests.tomlgen import dumps

pytestmark = pytest.mark.lab

VIP = "10.77.0.200"
MANAGED = ["/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf",
           "/etc/keepalived/hakeep-check-haproxy.sh", "/etc/keepalived/hakeep-notify.sh"]


def lab_doc(lab: Lab, masters: int = 3) -> dict[str, Any]:
    doc = tomllib.loads(lab.inventory.read_text())
    doc["ssh"]["config"] = str(lab.ssh_config)
    for fe in doc["frontend"]:
        if "ca_file" in fe:
            fe["ca_file"] = str(lab.ca_file)
        fe["servers"] = fe["servers"][:masters]
    return doc


def write_inventory(tmp: Path, doc: dict[str, Any], name: str = "inventory.toml") -> Path:
    path = tmp / name
    path.write_text(dumps(doc))
    return path


def hakeep(lab: Lab, *args: str, env: dict[str, str] | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``hakeep ARGS`` on the lab; a --json run's document is checked against its command's schema."""
    r = subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True,
                       env={**lab.env(), **(env or {})}, timeout=timeout, check=False)
    if "--json" in args:
        schemas.check(r.stdout, args[0], lines="--watch" in args)
    return r


def holders(lab: Lab) -> list[str]:
    return [h for h in lab.lbs if f" {VIP}/" in lab.ssh(h, "ip -o -4 addr show", check=False).stdout]


def snapshot(lab: Lab, hosts: Sequence[str] | None = None) -> dict[str, str]:
    """Hashes of the managed files and main PIDs of both units on every LB (or on ``hosts``)."""
    out = {}
    for h in lab.lbs if hosts is None else hosts:
        r = lab.ssh(h, "sha256sum " + " ".join(MANAGED) + " 2>&1; "
                    "systemctl show -p MainPID haproxy keepalived; ls /var/lib/hakeep/releases 2>&1", check=False)
        out[h] = r.stdout
    return out


@pytest.fixture(scope="module")
def fresh(lab: Lab) -> Lab:
    for host in lab.lbs:
        lab.reset(host)
    return lab


@pytest.fixture(scope="module")
def v1(fresh: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory with two masters; the rolling-change test adds the third."""
    return write_inventory(tmp_path_factory.mktemp("v1"), lab_doc(fresh, masters=2))


def test_first_deploy_on_bare_hosts(fresh: Lab, v1: Path) -> None:
    lab = fresh
    t0 = time.monotonic()
    r = hakeep(lab, "deploy", str(v1), "--yes")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"first deploy: {took:.1f}s")
    assert "Traceback" not in r.stderr
    for host in lab.lbs:
        state = lab.ssh(host, "systemctl is-active haproxy keepalived; systemctl is-enabled haproxy keepalived").stdout
        assert state.split() == ["active", "active", "enabled", "enabled"], (host, state)
        mode = lab.ssh(host, "stat -c '%a %U' /etc/keepalived/keepalived.conf /etc/keepalived/hakeep-check-haproxy.sh")
        assert mode.stdout.split() == ["600", "root", "755", "root"]
        releases = lab.ssh(host, "ls /var/lib/hakeep/releases").stdout.split()
        assert len(releases) == 1
        manifest = json.loads(lab.ssh(host, f"cat /var/lib/hakeep/releases/{releases[0]}/manifest.json").stdout)
        assert manifest["status"] == "complete"
        assert manifest["packages_installed"] == ["haproxy", "keepalived"]
        stock = lab.ssh(host, f"grep -c 'Managed by hakeep' /var/lib/hakeep/releases/{releases[0]}"
                        "/files/etc/haproxy/haproxy.cfg", check=False)
        assert stock.stdout.strip() == "0", "the backup holds Debian's stock haproxy.cfg"
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None, holders(lab)
    assert "VIP on" in r.stdout


def test_tcp_through_the_vip_reaches_the_masters_in_turn(fresh: Lab) -> None:
    seen = set()
    for _ in range(6):
        r = fresh.ctl(["curl", "-sS", "--max-time", "3", f"http://{VIP}:30080/"])
        seen.add(r.stdout.strip())
    assert seen == {"m1", "m2"}
    r = fresh.ctl(["curl", "-sS", "--max-time", "3", "--cacert", str(fresh.ca_file), f"https://{VIP}:6443/readyz"])
    assert r.stdout.strip() in {"m1", "m2"}


def test_recipe_failover_drill_moves_the_vip_within_3s(fresh: Lab) -> None:
    lab = fresh
    [holder] = holders(lab)
    other = next(h for h in lab.lbs if h != holder)
    try:
        t0 = time.monotonic()
        lab.ssh(holder, "systemctl stop keepalived")
        moved = wait_for(lambda: holders(lab) == [other], 10, interval=0.05)
        assert moved is not None, holders(lab)
        took = time.monotonic() - t0
        print(f"failover: VIP on {other} {took:.2f}s after `systemctl stop keepalived` on {holder}")
        assert took < 3.0
        assert fresh.ctl(["curl", "-sS", "--max-time", "3", f"http://{VIP}:30080/"]).stdout.strip() in {"m1", "m2"}
    finally:
        lab.ssh(holder, "systemctl start keepalived")
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None


def test_hakeep_drill_times_the_failover(fresh: Lab, v1: Path) -> None:
    lab = fresh
    # the drill starts from the LB that preempts the VIP (lb1): the recipe drill before may leave it on lb2
    # for a fail-back still under way, which the drill waits for
    assert wait_for(lambda: holders(lab) == ["lb1"], 15) is not None
    before = holders(lab)
    r = hakeep(lab, "drill", str(v1), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    [doc] = json.loads(r.stdout)["rounds"]  # one round
    print(f"hakeep drill: VIP moved in {doc['vip_moved_s']:.2f}s, frontends in {doc['frontends_s']:.2f}s")
    assert doc["old_holder"] == before[0]
    assert doc["new_holder"] != before[0]
    assert doc["vip_moved_s"] < 3.0
    assert doc["frontends_s"] >= doc["vip_moved_s"]
    assert wait_for(lambda: len(holders(lab)) == 1, 15) is not None
    for host in lab.lbs:
        assert lab.ssh(host, "systemctl is-active keepalived").stdout.strip() == "active"


def test_status_tells_where_the_vip_is_and_what_is_down(fresh: Lab, v1: Path) -> None:
    lab = fresh
    assert wait_for(lambda: hakeep(lab, "status", str(v1)).returncode == 0, 20) is not None
    r = hakeep(lab, "status", str(v1), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["holders"] == holders(lab)
    by_host = {h["host"]: h for h in doc["hosts"]}
    [holder] = doc["holders"]
    assert by_host[holder]["vrrp_state"] == "MASTER"
    other = next(h for h in lab.lbs if h != holder)
    assert by_host[other]["vrrp_state"] == "BACKUP"
    assert all(h["servers_up"] == h["servers_total"] == 4 for h in doc["hosts"])  # 2 masters x 2 frontends
    lab.ssh(other, "systemctl stop keepalived")
    try:
        r = hakeep(lab, "status", str(v1), "--json")
        assert r.returncode == 6  # degraded: the VIP is served, a unit is down
        doc = json.loads(r.stdout)
        assert doc["verdict"] == "degraded"
        assert f"{other}: keepalived inactive" in doc["reasons"]
        assert {h["host"]: h["keepalived"] for h in doc["hosts"]}[other] == "inactive"
    finally:
        lab.ssh(other, "systemctl start keepalived")
    assert wait_for(lambda: hakeep(lab, "status", str(v1)).returncode == 0, 20) is not None


def test_second_deploy_changes_nothing(fresh: Lab, v1: Path) -> None:
    before = snapshot(fresh)
    t0 = time.monotonic()
    r = hakeep(fresh, "deploy", str(v1), "--yes")
    print(f"no-op re-deploy: {time.monotonic() - t0:.1f}s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no changes" in r.stdout
    assert snapshot(fresh) == before


def test_dry_run_shows_the_diff_and_changes_nothing(fresh: Lab, v1: Path, tmp_path: Path) -> None:
    doc = lab_doc(fresh, masters=2)
    doc["frontend"][1]["balance"] = "leastconn"
    path = write_inventory(tmp_path, doc)
    before = snapshot(fresh)
    r = hakeep(fresh, "deploy", str(path), "--dry-run")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "-    balance roundrobin" in r.stdout
    assert "+    balance leastconn" in r.stdout
    assert "accepted by the host's haproxy -c and keepalived -t" in r.stdout
    assert fresh.vrrp_pass not in r.stdout
    assert snapshot(fresh) == before
    for host in fresh.lbs:
        left = fresh.ssh(host, "ls /run/hakeep").stdout.split()
        assert "vrrp-state" in left
        assert not [e for e in left if e.startswith("check-")], left  # the validation folder removed
    r = hakeep(fresh, "deploy", str(v1), "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["changed"] is False


def test_without_a_terminal_deploy_and_rollback_need_yes(fresh: Lab, v1: Path, tmp_path: Path) -> None:
    """As Terraform's apply without -auto-approve: a pipeline must say it means it (exit 4, nothing changed)."""
    doc = lab_doc(fresh, masters=2)
    doc["frontend"][1]["balance"] = "leastconn"
    path = write_inventory(tmp_path, doc)
    before = snapshot(fresh)
    env = {k: v for k, v in fresh.env().items() if k != "CI"}  # no terminal is what refuses, not CI=true
    for args in (("deploy", str(path)), ("rollback", str(v1), "--json")):
        r = subprocess.run([sys.executable, "-m", "hakeep", *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=env, timeout=120, check=False)
        assert r.returncode == 4, r.stdout + r.stderr
        assert "error: aborted: nothing was changed" in r.stderr
        assert "no terminal to ask on" in r.stderr
        assert "run again with --yes" in r.stderr
        assert "[y/N]" not in r.stderr  # nobody was asked
        if "--json" in args:
            refused = schemas.check(r.stdout, args[0])
            assert refused["error"]["message"] == "aborted: nothing was changed"
            assert refused["changed"] is True  # the plan it would have run
            assert refused["kind"] == "rollback"
        assert snapshot(fresh) == before


PROBE = r"""
import socket, sys, threading, time
ok = fail = 0
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
deadline = time.monotonic() + 300
errors = []
while not stop.is_set() and time.monotonic() < deadline:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = s.recv(1024)
        s.close()
        if b" 200 " in data:
            ok += 1
        else:
            fail += 1; errors.append(repr(data[:60]))
    except OSError as e:
        fail += 1; errors.append(repr(e))
    time.sleep(0.02)
print(ok, fail, errors[:5])
"""


def under_probe(lab: Lab, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run hakeep while a probe in the control namespace connects through the VIP non-stop; assert
    the run succeeded and not one connection failed."""
    probe = subprocess.Popen(["ip", "netns", "exec", "hklab-ctl", "python3", "-c", PROBE, VIP, "30080"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # let the probe make its first connections before hakeep starts
        r = hakeep(lab, *args, env=env)
    finally:
        out, _ = probe.communicate(input="", timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    ok, fail, _errors = out.split(" ", 2)
    assert int(ok) > 20, out
    assert int(fail) == 0, f"failed connections through the VIP during `hakeep {args[0]}`: {out}"
    print(f"probe through the VIP during `hakeep {' '.join(args[:1])}`: {ok} connections, {fail} failed")
    return r


def test_adding_a_master_reloads_haproxy_only_with_zero_failed_connections(fresh: Lab, tmp_path: Path) -> None:
    lab = fresh
    path = write_inventory(tmp_path, lab_doc(lab, masters=3))
    ka_pids = {h: lab.ssh(h, "systemctl show -p MainPID --value keepalived").stdout.strip() for h in lab.lbs}
    r = under_probe(lab, "deploy", str(path), "--yes")
    assert "reload (or start) haproxy" in r.stdout
    assert "reload (or start) keepalived" not in r.stdout
    for h in lab.lbs:
        assert lab.ssh(h, "systemctl show -p MainPID --value keepalived").stdout.strip() == ka_pids[h]
    seen = {lab.ctl(["curl", "-sS", "--max-time", "3", f"http://{VIP}:30080/"]).stdout.strip() for _ in range(6)}
    assert seen == {"m1", "m2", "m3"}


def test_invalid_template_is_refused_before_any_change(fresh: Lab, tmp_path: Path) -> None:
    lab = fresh
    path = write_inventory(tmp_path, lab_doc(lab, masters=2))
    templates = tmp_path / "tpl"
    templates.mkdir()
    good = (Path(__file__).parent.parent / "templates" / "haproxy.cfg.j2").read_text()
    (templates / "haproxy.cfg.j2").write_text(good.replace("    balance {{ fe.balance }}", "    balance nonsense"))
    before = snapshot(lab)
    r = hakeep(lab, "deploy", str(path), "--yes", "--templates", str(templates))
    assert r.returncode == 4, r.stdout + r.stderr
    assert "rejected the new config" in r.stdout + r.stderr
    assert "no configuration was changed" in r.stderr
    assert snapshot(lab) == before


def test_deploy_as_ops_with_sudo_password(fresh: Lab, tmp_path: Path) -> None:
    lab = fresh
    doc = lab_doc(lab, masters=2)  # back to two masters: a real change, made through sudo
    doc["ssh"].update(user="ops", sudo=True)
    path = write_inventory(tmp_path, doc)
    r = hakeep(lab, "deploy", str(path), "--yes", env={"HAKEEP_SUDO_PASSWORD": lab.ops_password})
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.ops_password not in r.stdout + r.stderr
    for h in lab.lbs:
        cfg = lab.ssh(h, "grep -c 'server m3' /etc/haproxy/haproxy.cfg", check=False).stdout.strip()
        assert cfg == "0"
    r = hakeep(lab, "deploy", str(path), "--yes", env={"HAKEEP_SUDO_PASSWORD": "wrong-password"})
    assert r.returncode != 0
    assert "sudo" in r.stderr
    assert "wrong-password" not in r.stdout + r.stderr


def test_unknown_host_key_is_refused_without_the_flag(fresh: Lab, tmp_path: Path) -> None:
    lab = fresh
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(lab.ssh_config.read_text().replace(str(lab.known_hosts), str(known)))
    assert str(known) in config.read_text()
    doc = lab_doc(lab, masters=2)
    doc["ssh"]["config"] = str(config)
    path = write_inventory(tmp_path, doc)
    r = hakeep(lab, "deploy", str(path), "--dry-run")
    assert r.returncode == 5, r.stdout + r.stderr  # cannot be reached (why: host key); nothing changed
    assert "[host key]" in r.stderr
    assert "SHA256:" in r.stderr
    assert "--accept-new-host-keys" in r.stderr
    assert known.read_text() == ""
    r = hakeep(lab, "deploy", str(path), "--dry-run", "--accept-new-host-keys")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(known.read_text().splitlines()) == len(lab.lbs)
    r = hakeep(lab, "deploy", str(path), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr


def test_concurrent_deploy_fails_at_once_on_the_lock(fresh: Lab, tmp_path: Path) -> None:
    lab = fresh
    path = write_inventory(tmp_path, lab_doc(lab, masters=2))
    holder = subprocess.Popen(["ssh", "-F", str(lab.ssh_config), "lb1",
                               "exec 9>>/run/hakeep.lock; flock -n 9 && echo 'someone@else pid 1' "
                               "> /run/hakeep.lock.owner && echo held && cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        r = hakeep(lab, "deploy", str(path), "--yes")
        assert time.monotonic() - t0 < 30
        assert r.returncode != 0
        assert "lock" in r.stderr
        assert "someone@else" in r.stderr
    finally:
        holder.communicate(input="", timeout=30)
    r = hakeep(lab, "deploy", str(path), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr

