"""IPv6 (issue #18, part 3): an IPv6 VIP as its own VRRPv3 instance spoken from each LB's
``address6``, IPv6 servers and binds, and frontends on "*" listening on both families.

Validation and rendering here (the strict checks of bad IPv6 input are tests/test_validation.py's
cases); every release's ``haproxy -c``/``keepalived -t`` on the result is tests/test_binaries.py's;
the VIP moving and TCP through it on the lab is tests/test_ipv6_lab.py's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hakeep.errors import InventoryError
from hakeep.hosts import commands
from hakeep.hosts.factlines import parse_iface_addresses
from hakeep.plan.targets import host_settings
from hakeep.render.engine import hostport, render_all
from hakeep.render.files import Secrets
from tests.fakes import facts
from tests.fixtures import base_doc, load
from tests.test_vips import LEFT, RIGHT, instance

V6_NET = "fd00:62::"


def dual_stack() -> dict[str, Any]:
    """api: the IPv4 VIP (preferring the left LB), api6: an IPv6 one (preferring the right LB);
    kube-apiserver binds "*", ingress binds the IPv6 VIP only and balances IPv6 masters."""
    doc = base_doc()
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    doc["vip"] = [
        {"name": "api", "address": "10.220.62.31/24", "virtual_router_id": 60},
        {"name": "api6", "address": f"{V6_NET}31/64", "virtual_router_id": 61,
         "priorities": {LEFT: 100, RIGHT: 101}},
    ]
    doc["lb"][0]["address6"] = f"{V6_NET}32"
    doc["lb"][1]["address6"] = f"{V6_NET}33"
    doc["frontend"][1]["bind"] = "vip:api6"
    doc["frontend"][1]["stick"] = "source"
    doc["frontend"][1]["balance"] = "leastconn"
    for i, s in enumerate(doc["frontend"][1]["servers"]):
        s["address"] = f"{V6_NET}{21 + i}"
    return doc


def files(tmp_path: Path, doc: dict[str, Any], lb: str = LEFT) -> tuple[str, str]:
    host = render_all(load(tmp_path, doc), Secrets(auth_pass="pw"))[lb]
    return (host.file("/etc/haproxy/haproxy.cfg").content.decode(),
            host.file("/etc/keepalived/keepalived.conf").content.decode())


def test_an_ipv6_vip_is_a_vrrpv3_instance_spoken_from_address6(tmp_path: Path) -> None:
    for lb, own, peer, prio in ((LEFT, "32", "33", 100), (RIGHT, "33", "32", 101)):
        _, conf = files(tmp_path, dual_stack(), lb)
        v6 = instance(conf, "devops-api6")
        assert "    version 3\n" in v6
        assert "authentication {" not in v6
        assert "auth_pass" not in v6
        assert f"    unicast_src_ip {V6_NET}{own}\n" in v6
        assert f"    unicast_peer {{\n        {V6_NET}{peer}\n    }}" in v6
        assert f"        {V6_NET}31/64 dev ens192 preferred_lft 0\n" in v6
        assert f"    priority {prio}\n" in v6
        v4 = instance(conf, "devops-api")  # the IPv4 VIP's instance as before: VRRPv2 with its password
        assert "version" not in v4
        assert "        auth_pass pw\n" in v4
        assert f"    unicast_src_ip 10.220.62.{own}\n" in v4


def test_haproxy_binds_and_reaches_ipv6(tmp_path: Path) -> None:
    inv = load(tmp_path, dual_stack())
    assert [fe.bind for fe in inv.frontends] == ["*", f"{V6_NET}31"]
    assert inv.has_ipv6
    assert inv.needs_nonlocal_bind(6)
    assert not inv.needs_nonlocal_bind(4)
    cfg, _ = files(tmp_path, dual_stack())
    assert "    bind [::]:6443 v4v6\n" in cfg  # "*" with an IPv6 VIP: both families, one socket
    assert f"    bind [{V6_NET}31]:30080\n" in cfg
    assert f"    server devops-master-01 [{V6_NET}21]:30080 check" in cfg
    ingress = cfg[cfg.index("backend be_ingress-nginx"):]
    assert "    stick-table type ipv6 size" in ingress  # IPv6 clients: an IPv6 table
    assert "    server devops-master-01 10.220.62.21:6443 check" in cfg  # IPv4 servers as before


def test_an_ipv4_only_inventory_renders_as_before(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frontend"][1]["stick"] = "source"
    doc["frontend"][1]["balance"] = "leastconn"
    cfg, conf = files(tmp_path, doc)
    assert "    bind *:6443\n" in cfg
    assert "v4v6" not in cfg
    assert "[" not in cfg
    assert "stick-table type ip size" in cfg
    assert "version 3" not in conf
    assert "preferred_lft" not in conf


def test_hostport() -> None:
    assert hostport("*", 80) == "*:80"
    assert hostport("*", 80, dual=True) == "[::]:80 v4v6"
    assert hostport("10.0.0.1", 80) == "10.0.0.1:80"
    assert hostport("fd00::1", 80) == "[fd00::1]:80"
    assert hostport("::1", 8404, dual=True) == "[::1]:8404"
    assert hostport("master-1.example", 6443) == "master-1.example:6443"


def test_addresses_are_kept_canonical(tmp_path: Path) -> None:
    doc = dual_stack()
    doc["vip"][1]["address"] = "FD00:62:0::31/64"
    doc["lb"][0]["address6"] = "fd00:0062::32"
    doc["frontend"][0]["bind"] = "FD00:62::0:31"
    doc["frontend"][0]["servers"][0]["address"] = "FD00:62:0:0::21"
    inv = load(tmp_path, doc)
    assert str(inv.vip("api6").address) == f"{V6_NET}31/64"
    assert str(inv.lbs[0].address6) == f"{V6_NET}32"
    assert inv.frontends[0].bind == f"{V6_NET}31"  # so serves() and the nonlocal-bind check match it
    assert inv.frontends[0].servers[0].address == f"{V6_NET}21"
    assert inv.serves(inv.vip("api6"), inv.frontends[0])
    assert not inv.serves(inv.vip("api"), inv.frontends[0])


def test_an_ipv6_vip_needs_address6_on_every_lb(tmp_path: Path) -> None:
    doc = dual_stack()
    del doc["lb"][1]["address6"]
    with pytest.raises(InventoryError) as info:
        load(tmp_path, doc)
    assert ("lb[1].address6: is required: the VIP api6 (vip[1].address) is IPv6, and loadbalance-right speaks "
            "VRRP for it from its own IPv6 address on ens192") in str(info.value)


def test_the_sysctl_step_sets_ipv6_nonlocal_bind(tmp_path: Path) -> None:
    inv = load(tmp_path, dual_stack())
    f = facts("lb", "10.220.62.32", sysctls={"net.ipv4.ip_nonlocal_bind": "1", "net.ipv6.ip_nonlocal_bind": "0"})
    steps = [s for s in host_settings(inv, f) if s.action.value == "sysctl"]
    assert [s.describe for s in steps] == ["set net.ipv6.ip_nonlocal_bind = 1 (haproxy binds the VIP)"]
    done = facts("lb", "10.220.62.32", sysctls={"net.ipv6.ip_nonlocal_bind": "1"})
    assert not [s for s in host_settings(inv, done) if s.action.value == "sysctl"]
    script = commands.sysctl_nonlocal_bind([4, 6])
    assert "sysctl -q -w net.ipv4.ip_nonlocal_bind=1" in script
    assert "sysctl -q -w net.ipv6.ip_nonlocal_bind=1" in script
    assert "'net.ipv6.ip_nonlocal_bind = 1'" in script


def test_the_interface_addresses_read_both_families_but_link_local() -> None:
    lines = ["2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever",
             "2: eth0    inet6 fd00::5/64 scope global nodad \\       valid_lft forever",
             "2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever"]
    assert parse_iface_addresses(lines) == ("10.0.0.5/24", "fd00::5/64")


def test_a_restored_config_is_read_back_with_its_ipv6_binds() -> None:
    """A rollback proves each VIP with the ports its restored haproxy.cfg binds: "[::]" is every
    address, a bracketed IPv6 address is that VIP (not "[fd00:" and a port of 31)."""
    from hakeep.layout import HAPROXY_CFG
    from hakeep.plan.targets import restored_binds, restored_ports
    from hakeep.render.files import ManagedFile

    text = (b"frontend a\n    bind [::]:6443 v4v6\nfrontend b\n    bind [fd00:62::31]:30080\n"
            b"frontend c\n    bind 10.0.0.1:81\nfrontend d\n    bind :::83 v4v6\nfrontend e\n    bind fd00::5:84\n"
            b"frontend hakeep-stats\n    bind [::1]:8404\n")
    mf = ManagedFile(HAPROXY_CFG, text, 0o644, shown=text)
    assert restored_binds([mf]) == {("*", 6443), (f"{V6_NET}31", 30080), ("10.0.0.1", 81), ("*", 83),
                                    ("fd00::5", 84)}
    assert restored_ports([mf]) == (81, 83, 84, 6443, 30080)


def ipv6_only() -> dict[str, Any]:
    doc = dual_stack()
    doc["vip"] = doc["vip"][1:]
    doc["frontend"][1]["bind"] = "vip"
    del doc["cluster"]["auth_pass_env"]
    return doc


def test_an_ipv6_only_pair_needs_no_vrrp_password(tmp_path: Path) -> None:
    from hakeep.inventory.lint import lint
    from hakeep.render.secrets import resolve_secrets

    inv = load(tmp_path, ipv6_only())
    assert inv.cluster.auth_pass_env is None
    assert all(p.path != "cluster.auth_pass_env" for p in lint(inv))
    secrets = resolve_secrets(inv, env={})
    conf = render_all(inv, secrets)[LEFT].file("/etc/keepalived/keepalived.conf").content.decode()
    assert "authentication {" not in conf
    assert conf.count("    version 3\n") == 1
    doc = ipv6_only()
    doc["cluster"]["auth_pass_env"] = "HAKEEP_VRRP_PASS"
    assert [(p.path, p.message) for p in lint(load(tmp_path, doc)) if p.path.startswith("cluster.auth")] == [
        ("cluster.auth_pass_env", "unused: every VIP is IPv6, and VRRPv3 has no password")]
    doc = dual_stack()  # an IPv4 VIP beside: the password is required as ever
    del doc["cluster"]["auth_pass_env"]
    with pytest.raises(InventoryError, match=r"cluster.auth_pass_env: is required"):
        load(tmp_path, doc)


def test_members_are_remembered_by_address6_too(tmp_path: Path) -> None:
    """An LB dropped from a dual-stack pair is remembered at both addresses (the IPv6 instance names
    it by its address6) and named once; dropping the IPv6 VIP (and the address6 keys with it) drops
    no LB: each still carries that address on its interface."""
    import dataclasses

    from tests.test_plan import deployed, plan_members

    doc = dual_stack()
    doc["lb"].append({"name": "third", "address": "10.220.62.34", "address6": f"{V6_NET}34", "interface": "ens192",
                      "priority": 99})
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    big = load(tmp_path / "big", doc)
    doc["lb"].pop()
    small = load(tmp_path / "small", doc)
    from tests.test_plan import RID

    ours = ("10.220.62.32/24", f"{V6_NET}32/64"), ("10.220.62.33/24", f"{V6_NET}33/64")
    record = json.dumps({"id": RID, "seq": 1, "status": "complete", "members": {"third": "10.220.62.34"},
                         "members6": {"third": f"{V6_NET}34"}}).encode()
    left, right = (dataclasses.replace(deployed(big, name, addr), iface_addresses=have, releases={RID: record})
                   for (name, addr), have in zip(((LEFT, "10.220.62.32"), (RIGHT, "10.220.62.33")), ours, strict=True))
    plan = plan_members(small, {LEFT: left, RIGHT: right})
    [err] = [e for e in plan.errors if "no longer in the inventory" in e]  # one LB, named once
    assert err.startswith("third (10.220.62.34) is no longer in the inventory")
    plan = plan_members(small, {LEFT: left, RIGHT: right}, forget=["third"])
    assert not plan.errors, plan.errors
    manifest = json.loads(next(s.stdin for s in plan.host(LEFT).steps if s.action == "backup") or b"{}")
    assert manifest["forgotten"] == ["10.220.62.34", f"{V6_NET}34"]
    assert manifest["members6"] == {LEFT: f"{V6_NET}32", RIGHT: f"{V6_NET}33"}

    v4 = base_doc()  # the IPv6 VIP dropped again: both LBs stay, nobody is "no longer in the inventory"
    (tmp_path / "v4").mkdir()
    left, right = (dataclasses.replace(deployed(small, name, addr), iface_addresses=have)
                   for (name, addr), have in zip(((LEFT, "10.220.62.32"), (RIGHT, "10.220.62.33")), ours, strict=True))
    plan = plan_members(load(tmp_path / "v4", v4), {LEFT: left, RIGHT: right})
    assert not [e for e in plan.errors if "no longer in the inventory" in e], plan.errors


NEIGHBOURS = r"""
set -e
ip link set lo up
ip link add probe0 type veth peer name holder0
ip link set probe0 up && ip link set holder0 up
ip addr add fd99::1/64 dev probe0 nodad && ip addr add 192.0.2.1/24 dev probe0
ip addr add fd99::200/64 dev holder0 nodad preferred_lft 0 && ip addr add 192.0.2.200/24 dev holder0
. "$LIB"
echo "holder=$(ip -o link show holder0 | sed 's|.*link/ether \([^ ]*\).*|\1|')"  # (/sys is the machine's)
for a in fd99::200 fd99::201 192.0.2.200 192.0.2.201; do echo "$a=$(hk_arp_claimants probe0 "$a" | tr '\n' ' ')"; done
"""


@pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",  # under CI: fails without root
                    reason="needs root (a network namespace of its own: unshare -n)")
def test_who_answers_an_ipv6_vip_is_found_by_neighbour_discovery() -> None:
    """hk_arp_claimants on a veth pair in a throwaway network namespace: the holder's MAC answers
    for its IPv6 (a DAD probe: neighbour discovery) and IPv4 (ARP) address, nobody for a free one."""
    import subprocess

    from hakeep.hosts.scripts import source

    r = subprocess.run(["unshare", "-n", "sh", "-c", NEIGHBOURS.replace('. "$LIB"', source("lib.sh"))],
                       capture_output=True, text=True, timeout=30, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       check=False)
    assert r.returncode == 0, r.stderr
    seen = dict(line.split("=", 1) for line in r.stdout.splitlines())
    holder = seen["holder"]
    assert (seen["fd99::200"], seen["192.0.2.200"]) == (f"{holder} ", f"{holder} ")
    assert (seen["fd99::201"], seen["192.0.2.201"]) == ("", "")


LINK_DRILL = r"""
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
ip link add eth0 type veth peer name peer0
ip link set eth0 up && ip link set peer0 up
ip addr add fd99::5/64 dev eth0 nodad
echo "before=$(cat /proc/sys/net/ipv6/conf/eth0/keep_addr_on_down)"
sh /run/drill.sh
ip link set dev eth0 down  # what the detached shell does
echo "down=$(ip -o addr show dev eth0 | grep -c fd99::5 || true)"
sh /run/hakeep/drill-link-up.sh  # what the timer runs
echo "after=$(cat /proc/sys/net/ipv6/conf/eth0/keep_addr_on_down)"
echo "up=$(ip -o addr show dev eth0 | grep -c fd99::5 || true)"
"""


@pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",  # under CI: fails without root
                    reason="needs root (network and mount namespaces of its own)")
def test_a_link_drill_keeps_the_lbs_ipv6_address(tmp_path: Path) -> None:
    """Linux drops an interface's IPv6 addresses when it goes down: the link drill sets
    keep_addr_on_down for its duration (and puts the old value back), so address6 survives."""
    import subprocess

    drill = "\n".join(line for line in commands.link_down_for("eth0", 3, "hk-test").splitlines()
                      if not line.startswith(("systemctl ", "systemd-run ", "setsid ")))  # no timer: run by hand
    (tmp_path / "drill.sh").write_text(drill)
    script = LINK_DRILL.replace("sh /run/drill.sh", f"sh {tmp_path / 'drill.sh'}")
    r = subprocess.run(["unshare", "-n", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert seen == {"before": "0", "down": "1", "after": "0", "up": "1"}


def test_review_findings_ipv6_input_and_membership(tmp_path: Path) -> None:
    """IPv4-compatible (::a.b.c.d) and site-local addresses are refused; an IPv4 and an IPv6 VIP may
    share a VRID (RFC 5798: apart); --forget matches any spelling of an address; an LB whose
    address6 changed is not "dropped"."""
    from hakeep.plan.members import Member, matches

    for bad in ("::10.220.62.31", "fec0::5"):
        doc = dual_stack()
        doc["frontend"][0]["servers"][0]["address"] = bad
        with pytest.raises(InventoryError, match="reserved or deprecated"):
            load(tmp_path, doc)
    doc = dual_stack()
    doc["vip"][1]["virtual_router_id"] = 60  # the IPv4 VIP's too
    assert load(tmp_path, doc).vip("api6").virtual_router_id == 60
    m = Member("10.220.62.34", "third", (LEFT,), also=(f"{V6_NET}34",))
    assert matches(m, "FD00:62:0::34")
    assert matches(m, "third")
    assert not matches(m, "fd00:62::35")
