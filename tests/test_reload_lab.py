"""Reloads that do not take, on the lab: the gate proves each unit runs the new file, or restores.

haproxy: a config `haproxy -c` accepts but whose reload fails (a bind to an address the LB lacks)
leaves the old worker serving; keepalived: a config `keepalived -t` accepts that keepalived refuses
at run time (a unicast_src_ip the LB lacks: the instance enters FAULT). In both the gate fails on
the first LB, that LB is restored (file and running config both the old ones, by the same proof),
the rollout stops and the VIP holder is never touched, exit 1. `status` names a reload that failed,
and a keepalived that was never told about its edited file, with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hakeep.hosts import commands, keepalived
from tests.conftest import Lab
from tests.test_deploy_lab import VIP, hakeep, snapshot
from tests.test_faults_lab import DEGRADED, healthy, host_row, inv, status
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab
__all__ = ["healthy", "inv"]  # the fixtures, shared with the faults tests

TEMPLATES = Path(__file__).parent.parent / "templates"


def custom_templates(tmp_path: Path, name: str, line: str, replacement: str) -> Path:
    """--templates DIR holding the shipped template ``name`` with ``line`` replaced."""
    folder = tmp_path / "templates"
    folder.mkdir()
    source = (TEMPLATES / name).read_text()
    assert line in source
    (folder / name).write_text(source.replace(line, replacement))
    return folder


def summary(lab: Lab, host: str) -> list[str]:
    """keepalived's own account on ``host`` (its data dump, summed up by the gate's own function)."""
    from hakeep.hosts.scripts import source
    from hakeep.layout import KEEPALIVED_DATA

    r = lab.ssh(host, "sh -s", input=source("lib.sh") + f"hk_keepalived_summary keepalived {KEEPALIVED_DATA}\n")
    return r.stdout.splitlines()


def deploy_fails_on_lb2_and_restores_it(lab: Lab, inv: Path, templates: Path, token: str) -> None:
    """A deploy with ``templates`` fails lb2's gate (``token`` in its detail), lb2 is restored (its
    old files back), lb1 (the VIP holder) is skipped and untouched, exit 1."""
    before = snapshot(lab)
    r = hakeep(lab, "deploy", str(inv), "--yes", "--json", "--templates", str(templates))
    assert r.returncode == 1, r.stdout + r.stderr
    outcomes = {o["host"]: o for o in json.loads(r.stdout)["outcomes"]}
    assert (outcomes["lb2"]["status"], outcomes["lb2"]["restored"]) == ("failed", True)
    assert token in outcomes["lb2"]["detail"]
    assert outcomes["lb1"]["status"] == "skipped"
    after = snapshot(lab)
    assert after["lb1"] == before["lb1"]  # the VIP holder: files, PIDs, releases untouched
    assert after["lb2"].split("MainPID")[0] == before["lb2"].split("MainPID")[0]  # lb2's old files back
    assert "failed-restored" in lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
    assert f" {VIP}/" in lab.ssh("lb1", "ip -o -4 addr").stdout


def test_a_reload_haproxy_refuses_fails_the_gate_and_the_lb_is_restored(healthy: Lab, inv: Path,
                                                                         tmp_path: Path) -> None:
    """haproxy -c accepts a bind to an address the LB does not have; the reload then fails ("Loading
    failure!") and the old worker goes on with the old config. The gate sees it (its newest process
    is older than the file), lb2 (first, not the VIP holder) is restored, lb1 is never touched."""
    lab = healthy
    templates = custom_templates(tmp_path, "haproxy.cfg.j2", "    bind {{ fe.bind | hostport(fe.port, has_ipv6) }}",
                                 "    bind {{ ('10.77.0.250' if fe.port == 30080 else fe.bind) | hostport(fe.port) }}")
    deploy_fails_on_lb2_and_restores_it(lab, inv, templates, "haproxy:runs-an-older-config-than-its-file")
    assert "Loading failure" in lab.ssh("lb2", "journalctl -u haproxy --since -2min --no-pager").stdout
    # the same proof as the gate's: lb2's haproxy runs its (restored) file again
    proof = commands.host_gate([6443, 30080], {})
    assert lab.ssh("lb2", "sh -s", input=proof, check=False).stdout.strip() == "ok"


def test_status_names_a_reload_that_failed(healthy: Lab, inv: Path) -> None:
    """Made by hand: haproxy.cfg edited to bind an address lb2 lacks, then reloaded. systemd says
    "Reloaded", the old worker serves the old config: status says so, with the journal's line."""
    lab = healthy
    saved = lab.ssh("lb2", "cat /etc/haproxy/haproxy.cfg").stdout
    assert "bind *:30080" in saved
    try:
        lab.ssh("lb2", "sed -i 's/bind \\*:30080/bind 10.77.0.250:30080/' /etc/haproxy/haproxy.cfg && "
                "systemctl reload haproxy", check=False)
        code, doc, _ = status(lab, inv)
        assert code == DEGRADED, doc
        [stale] = [r for r in doc["reasons"] if "runs an older config than its file" in r]
        assert stale.startswith("lb2: haproxy runs an older config than its file (a reload failed, or none was done): ")
        assert "ALERT" in stale or "Loading failure" in stale, stale  # the journal's own words
        assert host_row(doc, "lb2")["stale"]
    finally:
        lab.ssh("lb2", "cat > /etc/haproxy/haproxy.cfg && systemctl reload haproxy", input=saved)


def test_a_keepalived_change_refused_at_run_time_fails_the_gate_and_the_lb_is_restored(
        healthy: Lab, inv: Path, tmp_path: Path) -> None:
    """keepalived -t accepts a unicast_src_ip the LB does not have (it checks interfaces, not
    addresses); at run time keepalived cannot bind it and puts the instance in FAULT. The gate asks
    keepalived itself (its data dump), sees FAULT, and lb2 is restored to its old file, which
    keepalived is proven to run again; lb1 (the VIP holder) is never touched."""
    lab = healthy
    templates = custom_templates(tmp_path, "keepalived.conf.j2", "    unicast_src_ip {{ lb.vrrp_address(v) }}",
                                 "    unicast_src_ip {{ '10.77.0.250' if lb.name == 'lb2' else lb.vrrp_address(v) }}")
    old_conf = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
    # the premise: keepalived -t on lb2 accepts the file hakeep is about to deploy
    bad = old_conf.replace("unicast_src_ip 10.77.0.102", "unicast_src_ip 10.77.0.250")
    assert bad != old_conf
    r = lab.ssh("lb2", "cat > /tmp/hk-premise.conf && keepalived -t -f /tmp/hk-premise.conf; echo rc=$?; "
                "rm -f /tmp/hk-premise.conf", input=bad)
    assert r.stdout.strip().endswith("rc=0"), r.stdout + r.stderr
    deploy_fails_on_lb2_and_restores_it(lab, inv, templates, "vrrp:FAULT")
    journal = lab.ssh("lb2", "journalctl -u keepalived --since -3min --no-pager").stdout
    assert "src address not configured" in journal  # keepalived's own words for the refusal
    # the same proof as the re-check's: keepalived runs the restored file, in BACKUP
    assert keepalived.differences(keepalived.expected(old_conf), summary(lab, "lb2")) == []
    assert keepalived.states(summary(lab, "lb2")) == {"hklab-vip": "BACKUP"}
    assert "failed-restored" in lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
    assert f" {VIP}/" in lab.ssh("lb1", "ip -o -4 addr").stdout


def test_status_names_a_keepalived_that_does_not_run_its_file(healthy: Lab, inv: Path) -> None:
    """Made by hand: lb2's keepalived.conf gets a new priority, and keepalived is not reloaded. Its
    notify record still says BACKUP, and the file is valid; only keepalived's own account shows that
    it runs something else. status says so (degraded), naming the setting; after a reload it is
    healthy again."""
    lab = healthy
    saved = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
    assert "priority 100" in saved
    try:
        lab.ssh("lb2", "sed -i 's/priority 100/priority 99/' /etc/keepalived/keepalived.conf")
        code, doc, _ = status(lab, inv)
        assert code == DEGRADED, doc
        [stale] = [r for r in doc["reasons"] if "runs an older config than its file" in r]
        assert stale == ("lb2: keepalived runs an older config than its file (a reload failed, or none was done): "
                         "hklab-vip: priority 100 running, 99 in the file")
        assert host_row(doc, "lb2")["stale"]
        # the gate's proof says the same
        proof = commands.units_gate({"keepalived": True}, keepalived.expected(saved.replace("priority 100",
                                                                                           "priority 99")))
        r = lab.ssh("lb2", "sh -s", input=proof, check=False)
        assert (r.returncode, r.stdout.strip()) == (1, "keepalived:runs-an-older-config-than-its-file")
        lab.ssh("lb2", "systemctl reload keepalived")
        assert wait_for(lambda: lab.ssh("lb2", "sh -s", input=proof, check=False).returncode == 0, 10, 0.5)
    finally:
        lab.ssh("lb2", "cat > /etc/keepalived/keepalived.conf && systemctl reload keepalived", input=saved)


def test_status_says_why_keepalived_refused_its_file(healthy: Lab, inv: Path) -> None:
    """Made by hand: lb2's unicast_src_ip set to an address lb2 lacks, then reloaded. keepalived
    loads it and puts the instance in FAULT; status says so with keepalived's own reason."""
    lab = healthy
    saved = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
    assert "unicast_src_ip 10.77.0.102" in saved
    try:
        lab.ssh("lb2", "sed -i 's/unicast_src_ip 10.77.0.102/unicast_src_ip 10.77.0.250/' "
                "/etc/keepalived/keepalived.conf && systemctl reload keepalived")
        assert wait_for(lambda: keepalived.states(summary(lab, "lb2")) == {"hklab-vip": "FAULT"}, 10, 0.5)
        code, doc, _ = status(lab, inv)
        assert code == DEGRADED, doc
        assert "lb2: VRRP state FAULT, not BACKUP: (hklab-vip): entering FAULT state (src address not configured)" \
            in doc["reasons"], doc["reasons"]
        assert not [r for r in doc["reasons"] if "older config" in r]  # it runs its file: the file is the fault
    finally:
        lab.ssh("lb2", "cat > /etc/keepalived/keepalived.conf && systemctl reload keepalived", input=saved)


def test_deploy_reloads_a_keepalived_whose_file_is_right_but_not_loaded(healthy: Lab, inv: Path) -> None:
    """lb2's keepalived is made to run priority 99 (edit, reload), then its file is put back without
    a reload: the file matches the live release, yet keepalived runs something else. A deploy has no
    file to change but reloads keepalived and proves it; status is healthy after."""
    lab = healthy
    saved = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
    try:
        lab.ssh("lb2", "sed -i 's/priority 100/priority 99/' /etc/keepalived/keepalived.conf && "
                "systemctl reload keepalived")
        assert wait_for(lambda: "priority=99" in " ".join(summary(lab, "lb2")), 10, 0.5)
        lab.ssh("lb2", "cat > /etc/keepalived/keepalived.conf", input=saved)
        code, doc, _ = status(lab, inv)
        assert code == DEGRADED, doc
        assert any("keepalived runs an older config" in r and "priority 99 running, 100 in the file" in r
                   for r in doc["reasons"]), doc["reasons"]
        r = hakeep(lab, "deploy", str(inv), "--yes", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        outcomes = {o["host"]: o for o in json.loads(r.stdout)["outcomes"]}
        assert outcomes["lb2"]["status"] == "changed", outcomes
        assert "priority=100" in " ".join(summary(lab, "lb2"))
        assert status(lab, inv)[0] == 0
    finally:
        lab.ssh("lb2", "cat > /etc/keepalived/keepalived.conf && systemctl reload keepalived", input=saved)
