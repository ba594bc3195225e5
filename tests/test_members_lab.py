"""The set of LBs on the lab: a VIP claimed outside the inventory is seen, and a deploy that drops
an LB is refused until told what happened to it.

A master (m1) is given the VIP by hand: every LB asks its segment who answers ARP for the VIP,
and status calls the MAC that belongs to no LB of the inventory a split brain, with the address it
also has; a deploy's preflight refuses on it (exit 4). Then an inventory without lb2: the deploy
refuses (exit 4) naming lb2 and changes nothing; with ``--forget lb2`` while lb2 is powered off,
lb1 is rolled out alone, and when lb2 comes back with its keepalived, status reports the split
brain outside the inventory and a deploy refuses.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Lab
from tests.test_deploy_lab import VIP, hakeep, lab_doc, snapshot, under_probe, write_inventory
from tests.test_faults_lab import CONNECT_TIMEOUT, SPLIT_BRAIN, healthy, inv, status
from tests.test_lab_smoke import wait_for

pytestmark = pytest.mark.lab
__all__ = ["healthy", "inv"]  # the fixtures, shared with the faults tests

PREFLIGHT = 4


def test_a_vip_claimed_outside_the_inventory_is_a_split_brain(healthy: Lab, inv: Path) -> None:
    lab = healthy
    mac = lab.ssh("m1", "cat /sys/class/net/eth0/address").stdout.strip()
    try:
        lab.ssh("m1", f"ip addr add {VIP}/32 dev eth0")
        code, doc, _ = status(lab, inv)
        assert code == SPLIT_BRAIN, doc
        [why] = [r for r in doc["reasons"] if "outside the inventory" in r]
        assert f"MAC {mac} (10.77.0.11), seen from lb1, lb2; the VIP is on lb1" in why, why
        assert any(a["mac"] == mac for a in doc["arp"])
        # the deploy's preflight sees it too: refused (exit 4), nothing changed
        before = snapshot(lab)
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == PREFLIGHT, r.stdout + r.stderr
        assert f"split brain outside the inventory: a host that is no LB of this inventory answers ARP for the VIP " \
            f"{VIP} too: MAC {mac} (10.77.0.11), seen from lb1, lb2" in r.stdout + r.stderr, r.stdout + r.stderr
        assert snapshot(lab) == before
    finally:
        lab.ssh("m1", f"ip addr del {VIP}/32 dev eth0", check=False)
    assert wait_for(lambda: status(lab, inv)[0] == 0, 30, 1.0)


def test_replacing_lb2_by_a_reinstalled_host_with_a_new_key(healthy: Lab, inv: Path) -> None:
    """lb2 reinstalled (same name and address, bare, a new SSH host key): deploy refuses it as a
    changed host key (exit 5, nothing changed) and says how to go on; after `ssh-keygen -R` and
    --accept-new-host-keys the deploy installs and configures it; the pair is healthy again."""
    lab = healthy
    lab.reset("lb2", new_host_key=True)
    try:
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == 5, r.stdout + r.stderr
        assert "lb2: HOST KEY CHANGED for 10.77.0.102" in r.stderr
        assert f"ssh-keygen -R 10.77.0.102 -f {lab.known_hosts}" in r.stderr
        subprocess.run(["ssh-keygen", "-R", "10.77.0.102", "-f", str(lab.known_hosts)], capture_output=True,
                       check=True)
        r = hakeep(lab, "deploy", str(inv), "--yes", "--accept-new-host-keys")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "install" in r.stdout + r.stderr  # the bare host got its packages
        assert wait_for(lambda: status(lab, inv)[0] == 0, 60, 1.0)
    finally:
        lab.trust()
        hakeep(lab, "deploy", str(inv), "--yes")


@pytest.fixture(scope="module")
def lab3(lab: Lab) -> Iterator[Lab]:
    """The lab with three LBs (lb3 = 10.77.0.103) for the set-of-LBs tests; two again afterwards."""
    def restart(n: str) -> None:
        lab.down()
        os.environ["LAB_LBS"] = n
        try:
            lab.run_lab("up", timeout=900)
        finally:
            del os.environ["LAB_LBS"]
        lab.is_up = True
        hosts: dict[str, str] = json.loads(lab.state_file.read_text())["hosts"]
        lab.lbs = {h: a for h, a in hosts.items() if h.startswith("lb")}

    restart("3")
    yield lab
    restart("2")


def three_lb_doc(lab: Lab) -> dict[str, Any]:
    doc = lab_doc(lab, masters=3)
    doc["ssh"]["connect_timeout"] = CONNECT_TIMEOUT
    doc["lb"].append({"name": "lb3", "address": "10.77.0.103", "interface": "eth0", "priority": 99})
    return doc


class HolderSampler:
    """Which LBs carry the VIP, sampled every 100 ms from their network namespaces (no SSH)."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts, self.samples = hosts, []  # type: ignore[var-annotated]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            held = tuple(h for h in self.hosts if f" {VIP}/" in subprocess.run(
                ["ip", "-n", f"hklab-{h}", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                check=False).stdout)
            self.samples.append(held)
            time.sleep(0.1)

    def __enter__(self) -> HolderSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_adding_lb3_then_decommissioning_lb2_while_it_holds_the_vip(lab3: Lab, tmp_path: Path) -> None:
    """A pair lb1+lb2 (lb2 priority 102: the holder) gets lb3 (0 failed connections), then loses lb2
    with --decommission: keepalived stops on lb2 first, the VIP moves (the gate proves it answers
    from another LB), haproxy stops; lb1 and lb3 then list only each other. A client probe through
    the VIP sees 0 failed connections; the VIP is never on two LBs (sampled every 100 ms)."""
    lab = lab3
    doc = three_lb_doc(lab)
    for lb in doc["lb"]:
        if lb["name"] == "lb2":
            lb["priority"] = 102
    pair = copy.deepcopy(doc)
    pair["lb"] = [lb for lb in pair["lb"] if lb["name"] != "lb3"]
    for sub in ("pair", "three", "without"):
        (tmp_path / sub).mkdir()
    r = hakeep(lab, "deploy", str(write_inventory(tmp_path / "pair", pair)), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: f" {VIP}/" in lab.ssh("lb2", "ip -o -4 addr").stdout, 30, 0.5)
    r = under_probe(lab, "deploy", str(write_inventory(tmp_path / "three", doc)), "--yes")
    assert "lb3 joins the set of LBs" in r.stdout + r.stderr
    without = copy.deepcopy(doc)
    without["lb"] = [lb for lb in without["lb"] if lb["name"] != "lb2"]
    path = write_inventory(tmp_path / "without", without)
    with HolderSampler(["lb1", "lb2", "lb3"]) as sampler:
        r = under_probe(lab, "deploy", str(path), "--yes", "--decommission", "lb2")
    out = r.stdout + r.stderr
    assert "lb2 (10.77.0.102) leaves the set (--decommission)" in out, out
    moves = [s for i, s in enumerate(sampler.samples) if i == 0 or s != sampler.samples[i - 1]]
    print(f"decommission: {len(sampler.samples)} samples of the VIP's holders, in turn: {moves}")
    assert len(sampler.samples) > 20
    assert max(len(s) for s in sampler.samples) == 1, [s for s in sampler.samples if len(s) != 1]
    assert sampler.samples[0] == ("lb2",)
    assert sampler.samples[-1] == ("lb1",)
    units = lab.ssh("lb2", "systemctl is-active haproxy keepalived; systemctl is-enabled haproxy keepalived",
                    check=False).stdout.split()
    assert units == ["inactive", "inactive", "disabled", "disabled"], units
    assert "decommissioned" in lab.ssh("lb2", "cat /var/lib/hakeep/releases/*/manifest.json").stdout
    for host, peer in (("lb1", "10.77.0.103"), ("lb3", "10.77.0.101")):
        conf = lab.ssh(host, "cat /etc/keepalived/keepalived.conf").stdout
        assert "10.77.0.102" not in conf
        assert peer in conf
    assert status(lab, path)[0] == 0
    r = hakeep(lab, "deploy", str(path), "--yes")  # lb2 is no longer remembered: a plain deploy goes through
    assert r.returncode == 0, r.stdout + r.stderr


def test_dropping_lb2_is_refused_then_forgotten_and_its_return_is_seen(lab3: Lab, tmp_path: Path) -> None:
    """lb1, lb2, lb3 deployed; an inventory without lb2 is refused (exit 4, nothing changed); with
    lb2 powered off and --forget lb2, lb1 and lb3 list only each other; when lb2 comes back, its
    keepalived (still the old config) takes the VIP too, and status says: split brain outside the
    inventory, with lb2's MAC and address."""
    lab = lab3
    doc = three_lb_doc(lab)
    (tmp_path / "full").mkdir()
    (tmp_path / "alone").mkdir()
    full = write_inventory(tmp_path / "full", doc)
    r = hakeep(lab, "deploy", str(full), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    alone = copy.deepcopy(doc)
    alone["lb"] = [lb for lb in alone["lb"] if lb["name"] != "lb2"]
    path = write_inventory(tmp_path / "alone", alone)
    before = snapshot(lab)
    r = hakeep(lab, "deploy", str(path), "--yes")
    out = r.stdout + r.stderr
    assert r.returncode == PREFLIGHT, out
    assert "lb2 (10.77.0.102) is no longer in the inventory, but is still a member for lb1, lb3" in out, out
    assert "--forget lb2" in out
    assert snapshot(lab) == before  # nothing changed
    lab.run_lab("poweroff", "lb2")
    try:
        r = hakeep(lab, "deploy", str(path), "--yes", "--forget", "lb2")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "leaves the set without being reached" in r.stdout + r.stderr
        for host, peer in (("lb1", "10.77.0.103"), ("lb3", "10.77.0.101")):
            conf = lab.ssh(host, "cat /etc/keepalived/keepalived.conf").stdout
            assert "10.77.0.102" not in conf
            assert peer in conf
        assert status(lab, path)[0] == 0
        lab.run_lab("poweron", "lb2")
        mac = lab.ssh("lb2", "cat /sys/class/net/eth0/address").stdout.strip()
        assert wait_for(lambda: status(lab, path)[0] == SPLIT_BRAIN, 60, 1.0), status(lab, path)[1]
        _, seen, _ = status(lab, path)
        [why] = [r for r in seen["reasons"] if "outside the inventory" in r]
        assert f"MAC {mac} (10.77.0.102)" in why, why
        r = hakeep(lab, "deploy", str(path), "--yes")  # and a deploy refuses until it is dealt with
        assert r.returncode == PREFLIGHT, r.stdout + r.stderr
        assert f"MAC {mac} (10.77.0.102)" in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        lab.run_lab("poweron", "lb2", check=False)
        lab.ssh("lb2", "systemctl stop keepalived", check=False)
