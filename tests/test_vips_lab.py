"""Two VIPs on the lab (issue #18, part 2): each its own VRRP instance, preferring another LB
(active/active); a frontend bound to each; status and drill handle both; a split brain of the
second VIP alone is caught. Real keepalived, real VRRP, TCP through each VIP from the control
namespace (where clients are)."""

from __future__ import annotations

import json
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

API, INGRESS = "10.77.0.200", "10.77.0.201"
CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close(); print(target, "open")
    except OSError as e:
        print(target, type(e).__name__)
"""


def two_vip_doc(lab: Lab) -> dict[str, Any]:
    doc = lab_doc(lab)
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    doc["vip"] = [
        {"name": "api", "address": f"{API}/24", "virtual_router_id": 77, "priorities": {"lb1": 101, "lb2": 100}},
        {"name": "ingress", "address": f"{INGRESS}/24", "virtual_router_id": 78,
         "priorities": {"lb1": 100, "lb2": 101}},
    ]
    doc["frontend"][0]["bind"] = "vip"  # the first VIP: api
    doc["frontend"][1]["bind"] = "vip:ingress"
    return doc


def on(lab: Lab, address: str) -> list[str]:
    return [h for h in lab.lbs if f" {address}/" in lab.ssh(h, "ip -o -4 addr show", check=False).stdout]


def connect(lab: Lab, *targets: str) -> dict[str, str]:
    r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-c", CONNECT, *targets],
                       capture_output=True, text=True, timeout=30, check=True, env=lab.env())
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def test_two_vips_live_on_two_lbs_and_status_and_drill_handle_both(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, two_vip_doc(lab))
    try:
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"VIP ingress {INGRESS} on lb2; through it: 30080:open" in r.stdout
        assert wait_for(lambda: (on(lab, API), on(lab, INGRESS)) == (["lb1"], ["lb2"]), 30, 0.5) is not None
        conf = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
        assert "vrrp_instance hklab-api {" in conf
        assert "vrrp_instance hklab-ingress {" in conf
        # each frontend answers through its own VIP only
        assert connect(lab, f"{API}:6443", f"{INGRESS}:30080", f"{INGRESS}:6443", f"{API}:30080") == {
            f"{API}:6443": "open", f"{INGRESS}:30080": "open",
            f"{INGRESS}:6443": "ConnectionRefusedError", f"{API}:30080": "ConnectionRefusedError"}

        r = hakeep(lab, "status", str(inv), "--json")
        doc = json.loads(r.stdout)
        assert r.returncode == 0, r.stdout
        assert doc["verdict"] == "healthy"
        assert [(v["name"], v["vip"], v["holders"], v["verdict"]) for v in doc["vips"]] == [
            ("api", API, ["lb1"], "healthy"), ("ingress", INGRESS, ["lb2"], "healthy")]
        assert doc["vips"][1]["states"] == {"lb1": "BACKUP", "lb2": "MASTER"}
        text = hakeep(lab, "status", str(inv)).stdout
        assert f"healthy: VIP api {API} on lb1, VIP ingress {INGRESS} on lb2" in text

        r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                            "--probe", "--json"], capture_output=True, text=True, env=lab.env(), timeout=300,
                           check=False)
        drill = schemas.check(r.stdout, "drill")
        assert r.returncode == 0, r.stdout + r.stderr
        rounds = [(x["vip"], x["old_holder"], x["new_holder"], x["final_holder"]) for x in drill["rounds"]]
        assert rounds == [("api", "lb1", "lb2", "lb1"), ("ingress", "lb2", "lb1", "lb2")]
        for x in drill["rounds"]:
            print(f"VIP {x['vip']}: moved in {x['vip_moved_s']:.2f}s, {x['probe']['failed']} of "
                  f"{x['probe']['attempts']} connects failed")
        assert wait_for(lambda: (on(lab, API), on(lab, INGRESS)) == (["lb1"], ["lb2"]), 30, 0.5) is not None

        # a split brain of the second VIP alone: its address on lb1 too
        lab.ssh("lb1", f"ip addr add {INGRESS}/24 dev eth0")
        try:
            r = hakeep(lab, "status", str(inv), "--json")
            doc = json.loads(r.stdout)
            assert r.returncode == 7, r.stdout
            assert doc["verdict"] == "split brain"
            assert [v["verdict"] for v in doc["vips"]] == ["healthy", "split brain"]
            assert any(x.startswith(f"VIP ingress ({INGRESS}): the VIP is on lb1, lb2 at once") for x in doc["reasons"])
        finally:
            lab.ssh("lb1", f"ip addr del {INGRESS}/24 dev eth0", check=False)
    finally:
        back_to_one_vip(lab, tmp_path, INGRESS)


def back_to_one_vip(lab: Lab, tmp_path: Path, gone: str) -> None:
    """The lab's own inventory deployed again: the VIP on lb1, the address ``gone`` on no LB."""
    r = hakeep(lab, "deploy", write_inventory(tmp_path, lab_doc(lab), "one.toml").as_posix(), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_for(lambda: holders(lab) == ["lb1"], 30, 0.5) is not None
    assert on(lab, gone) == []
