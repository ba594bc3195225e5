"""IPv6 on the lab (issue #18, part 3): an IPv6 VIP beside the IPv4 one, each its own VRRP instance
(the IPv6 one VRRPv3, spoken between the LBs' fd77:: addresses), a frontend on the IPv6 VIP with
IPv6 masters behind it, and "*" answering on both families. The VIP really moves (a drill, a power
cut) and TCP through it works from the control namespace; a host outside the inventory that takes
the IPv6 VIP is found by neighbour discovery (status: split brain). Real keepalived, real VRRP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import schemas
from tests.conftest import Lab
from tests.test_deploy_lab import hakeep, lab_doc, write_inventory
from tests.test_lab_smoke import wait_for
from tests.test_vips_lab import back_to_one_vip, connect

pytestmark = pytest.mark.lab

VIP4, VIP6 = "10.77.0.200", "fd77::200"
GET = """
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=3)
conn.request("GET", "/")
print(conn.getresponse().read().decode().strip())
"""


def dual_stack_doc(lab: Lab) -> dict[str, Any]:
    """The lab's inventory with a second VIP, fd77::200/64 (VRID 79): ingress-http binds it, with
    the masters' IPv6 addresses behind it; kube-apiserver binds "*" (both families)."""
    doc = lab_doc(lab)
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    # the first VIP named "vip": the same instance as the one-VIP form, so it does not move on deploy
    doc["vip"] = [{"name": "vip", "address": f"{VIP4}/24", "virtual_router_id": 77},
                  {"name": "api6", "address": f"{VIP6}/64", "virtual_router_id": 79}]
    for lb in doc["lb"]:
        lb["address6"] = "fd77::" + lb["address"].rsplit(".", 1)[1]
    ingress = doc["frontend"][1]
    ingress["bind"] = "vip:api6"
    for s in ingress["servers"]:
        s["address"] = "fd77::" + s["address"].rsplit(".", 1)[1]
    return doc


def on(lab: Lab, address: str, hosts: list[str] | None = None) -> list[str]:
    return [h for h in hosts or lab.lbs if f" {address}/" in lab.ssh(h, "ip -o addr show", check=False).stdout]


def get(lab: Lab, host: str, port: int) -> str:
    r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-c", GET, host, str(port)],
                       capture_output=True, text=True, timeout=30, check=False, env=lab.env())
    return r.stdout.strip() or r.stderr.strip()[-200:]


def status(lab: Lab, inv: Path) -> tuple[int, dict[str, Any]]:
    r = hakeep(lab, "status", str(inv), "--json")
    return r.returncode, json.loads(r.stdout)


def test_an_ipv6_vip_moves_and_carries_tcp(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, dual_stack_doc(lab))
    try:
        r = hakeep(lab, "deploy", str(inv), "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        # a new VIP comes up on the LB deployed first (lb2, without the first VIP) and moves to lb1, which
        # prefers it, once lb1 has it too: the proof may catch it on either
        assert re.search(rf"VIP api6 {VIP6} on lb[12]; through it: 6443:open 30080:open", r.stdout), r.stdout
        assert wait_for(lambda: (on(lab, VIP4), on(lab, VIP6)) == (["lb1"], ["lb1"]), 30, 0.5) is not None
        conf = lab.ssh("lb2", "cat /etc/keepalived/keepalived.conf").stdout
        six = conf[conf.index("vrrp_instance hklab-api6 {"):]
        assert "    version 3\n" in six
        assert "unicast_src_ip fd77::102\n" in six
        assert "auth_pass" not in six
        assert lab.ssh("lb2", "cat /proc/sys/net/ipv6/ip_nonlocal_bind").stdout.strip() == "1"
        # the VIP is deprecated on its holder: haproxy's own connections to the masters never leave from it
        assert "preferred_lft 0sec" in lab.ssh("lb1", f"ip -o addr show to {VIP6}").stdout

        # TCP through each VIP from the clients' namespace: "*" on both families, ingress on IPv6 only
        assert connect(lab, f"{VIP6}:6443", f"{VIP6}:30080", f"{VIP4}:6443", f"{VIP4}:30080") == {
            f"{VIP6}:6443": "open", f"{VIP6}:30080": "open", f"{VIP4}:6443": "open",
            f"{VIP4}:30080": "ConnectionRefusedError"}
        seen = {get(lab, VIP6, 30080) for _ in range(6)}
        assert seen == {"m1", "m2", "m3"}, seen  # round robin over the masters' IPv6 addresses

        code, doc = status(lab, inv)
        assert (code, doc["verdict"]) == (0, "healthy"), doc
        assert [(v["name"], v["vip"], v["holders"], v["verdict"]) for v in doc["vips"]] == [
            ("vip", VIP4, ["lb1"], "healthy"), ("api6", VIP6, ["lb1"], "healthy")]
        assert doc["vips"][1]["states"] == {"lb1": "MASTER", "lb2": "BACKUP"}

        # the drill moves each VIP and back, probing through it
        r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", sys.executable, "-m", "hakeep", "drill", str(inv),
                            "--probe", "--json"], capture_output=True, text=True, env=lab.env(), timeout=300,
                           check=False)
        drill = schemas.check(r.stdout, "drill")
        assert r.returncode == 0, r.stdout + r.stderr
        assert [(x["vip"], x["old_holder"], x["new_holder"], x["final_holder"]) for x in drill["rounds"]] == [
            ("vip", "lb1", "lb2", "lb1"), ("api6", "lb1", "lb2", "lb1")]
        for x in drill["rounds"]:
            print(f"VIP {x['vip']}: moved in {x['vip_moved_s']:.2f}s, {x['probe']['failed']} of "
                  f"{x['probe']['attempts']} connects failed")
            assert x["probe"]["attempts"] > 0
        assert wait_for(lambda: on(lab, VIP6) == ["lb1"], 30, 0.5) is not None

        # a power cut: the IPv6 VIP moves to lb2 and TCP through it works on
        lab.run_lab("poweroff", "lb1")
        try:
            assert wait_for(lambda: on(lab, VIP6, ["lb2"]) == ["lb2"], 15, 0.2) is not None  # (lb1 is off)
            assert get(lab, VIP6, 30080) in {"m1", "m2", "m3"}
            code, doc = status(lab, inv)
            assert (code, doc["verdict"]) == (6, "degraded"), doc
            assert [(v["name"], v["holders"]) for v in doc["vips"]] == [("vip", ["lb2"]), ("api6", ["lb2"])]
        finally:
            lab.run_lab("poweron", "lb1")
        assert wait_for(lambda: on(lab, VIP6) == ["lb1"], 60, 0.5) is not None

        # a host outside the inventory takes the IPv6 VIP too: neighbour discovery finds its MAC
        lab.ssh("m1", f"ip addr add {VIP6}/64 dev eth0 nodad")
        try:
            mac = lab.ssh("m1", "cat /sys/class/net/eth0/address").stdout.strip()
            code, doc = status(lab, inv)
            assert (code, doc["verdict"]) == (7, "split brain"), doc
            assert [v["verdict"] for v in doc["vips"]] == ["healthy", "split brain"]
            assert any(x.startswith(f"VIP api6 ({VIP6}): split brain outside the inventory") and f"MAC {mac}" in x
                       for x in doc["reasons"]), doc["reasons"]
        finally:
            lab.ssh("m1", f"ip addr del {VIP6}/64 dev eth0", check=False)
    finally:
        back_to_one_vip(lab, tmp_path, VIP6)
