"""Degraded pairs without a lab: the status verdict table, sessions with unreachable LBs (a fake
connector at the transport seam), and the planner around an LB left out. The same situations made
for real are in tests/test_faults_lab.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hakeep.errors import HakeepError, UnreachableError, UsageError
from hakeep.hosts.arp import ArpSeen
from hakeep.hosts.remote import ConnectError, Transport, connect_kind
from hakeep.inventory.model import Inventory, LoadBalancer
from hakeep.layout import CHECK_ROOT
from hakeep.ops.status import HERE, HostStatus, PortProbe, Verdict, judge
from hakeep.plan.planner import build_plan
from hakeep.plan.steps import Plan
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from hakeep.run.session import open_session
from tests.fakes import FakeTransport, facts
from tests.fixtures import base_doc, load

L, R = ("loadbalance-left", "10.220.62.32"), ("loadbalance-right", "10.220.62.33")
VIP = "10.220.62.31"
PORTS = (6443, 30080)


def up(name: str, **kw: Any) -> HostStatus:
    base = HostStatus(host=name, address="10.0.0.1", reachable=True, vrrp_state="BACKUP", haproxy="active",
                      haproxy_pid=1, keepalived="active", keepalived_pid=2, servers_up=3, servers_total=3)
    return dataclasses.replace(base, **kw)


def down(name: str, reason: str = "timeout") -> HostStatus:
    return HostStatus(host=name, address="10.0.0.2", reachable=False, reason=reason)


def probes(vantage: str, state: str = "open") -> list[PortProbe]:
    return [PortProbe(vantage, p, state) for p in PORTS]


HOLDER = up("lb1", holds_vip=True, vrrp_state="MASTER")

CASES: list[tuple[str, list[HostStatus], list[PortProbe], Verdict, str]] = [
    ("healthy", [HOLDER, up("lb2")], probes("lb2"), Verdict.HEALTHY, ""),
    ("one LB down", [down("lb1"), up("lb2", holds_vip=True, vrrp_state="MASTER")], probes("lb2"),
     Verdict.DEGRADED, "lb1 cannot be reached (timeout)"),
    ("none reached", [down("lb1", "refused"), down("lb2", "host key")], [], Verdict.UNREACHABLE,
     "lb2 cannot be reached (host key)"),
    ("split brain", [HOLDER, up("lb2", holds_vip=True, vrrp_state="MASTER")], probes("lb1") + probes("lb2"),
     Verdict.SPLIT_BRAIN, "at once"),
    ("no holder, silent", [up("lb1"), up("lb2")], probes("lb1", "closed"), Verdict.VIP_LOST,
     "no LB holds the VIP and it does not answer"),
    ("held, not answering", [HOLDER, up("lb2")], probes("lb2", "closed"), Verdict.VIP_LOST,
     "does not answer on port 6443, 30080"),
    ("the holder's own open port proves little", [HOLDER, up("lb2")], probes("lb1") + probes("lb2", "closed"),
     Verdict.VIP_LOST, "does not answer"),
    ("held by the LB we cannot reach", [up("lb1"), down("lb2")], probes("lb1"), Verdict.DEGRADED,
     "probably lb2 holds it"),
    ("a unit down", [HOLDER, up("lb2", keepalived="inactive", keepalived_pid=0)], probes("lb2"),
     Verdict.DEGRADED, "lb2: keepalived inactive"),
    ("a backend server down", [dataclasses.replace(HOLDER, servers_up=2, servers_down=("be/m2",)), up("lb2")],
     probes("lb2"), Verdict.DEGRADED, "backend server(s) not UP: be/m2"),
    ("drift", [dataclasses.replace(HOLDER, drift=("/etc/haproxy/haproxy.cfg",)), up("lb2")], probes("lb2"),
     Verdict.DEGRADED, "edited since its live release"),
    ("a peer in FAULT", [HOLDER, up("lb2", vrrp_state="FAULT")], probes("lb2"), Verdict.DEGRADED,
     "VRRP state FAULT"),
    ("a peer in FAULT, with keepalived's reason", [HOLDER, up("lb2", vrrp_state="FAULT", vrrp_fault="(vi): entering "
     "FAULT state (src address not configured)")], probes("lb2"), Verdict.DEGRADED,
     "lb2: VRRP state FAULT, not BACKUP: (vi): entering FAULT state (src address not configured)"),
    ("a failed reload", [HOLDER, up("lb2", stale=("haproxy: [ALERT] (590) : Loading failure!",))], probes("lb2"),
     Verdict.DEGRADED, "lb2: haproxy runs an older config than its file (a reload failed, or none was done): "
     "[ALERT] (590) : Loading"),
    ("keepalived not reloaded", [HOLDER, up("lb2", stale=("keepalived: vip: priority 100 running, 99 in the file",))],
     probes("lb2"), Verdict.DEGRADED, "lb2: keepalived runs an older config than its file (a reload failed, or none "
     "was done): vip: priority 100 running, 99 in the file"),
    ("keepalived does not answer", [HOLDER, up("lb2", keepalived_answered=False)], probes("lb2"),
     Verdict.DEGRADED, "lb2: keepalived did not answer when asked what it runs"),
    ("not reachable from here is not a failure", [HOLDER, up("lb2")],
     probes("lb2") + probes(HERE, "unreachable from here"), Verdict.HEALTHY, ""),
    ("not reachable from here, and silent from the peer", [HOLDER, up("lb2")],
     probes("lb2", "closed") + probes(HERE, "unreachable from here"), Verdict.VIP_LOST, "does not answer"),
    ("open from here proves it, whatever a firewalled peer says", [HOLDER, up("lb2")],
     probes("lb2", "closed") + probes(HERE), Verdict.HEALTHY, ""),
    ("the holder alone: its own probe counts", [HOLDER, down("lb2")], probes("lb1"), Verdict.DEGRADED,
     "lb2 cannot be reached"),
]


@pytest.mark.parametrize(("hosts", "seen", "verdict", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdicts(hosts: list[HostStatus], seen: list[PortProbe], verdict: Verdict, reason: str) -> None:
    pair = judge(VIP, hosts, seen, PORTS)
    assert pair.verdict is verdict, pair.reasons
    if reason:
        assert any(reason in r for r in pair.reasons), pair.reasons
    else:
        assert pair.reasons == ()


@pytest.mark.parametrize(("why", "kind"), [
    ("connection refused", "refused"), ("timed out after 3s", "timeout"), ("no existing session", "timeout"),
    ("Error reading SSH protocol banner", "timeout"), ("no route to host", "no route"),
    ("the connection was closed by the other side", "closed"), ("something else", "error")])
def test_connect_failures_have_a_kind(why: str, kind: str) -> None:
    assert connect_kind(why) == kind


# --- sessions with unreachable LBs ---------------------------------------------------------------

@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return load(tmp_path, base_doc())


FACTS_OUT = {L[0]: "", R[0]: ""}


def connector(down_hosts: Mapping[str, HakeepError]) -> Any:
    opened: dict[str, FakeTransport] = {}

    def connect(lbs: Sequence[LoadBalancer], **kw: object) -> dict[str, Transport | HakeepError]:
        out: dict[str, Transport | HakeepError] = {}
        for lb in lbs:
            if lb.name in down_hosts:
                out[lb.name] = down_hosts[lb.name]
            else:
                opened[lb.name] = FakeTransport(lb.name, lambda d, s: (1, ""))  # facts fail: never reached
                out[lb.name] = opened[lb.name]
        return out

    connect.opened = opened  # type: ignore[attr-defined]
    return connect


def test_an_unreachable_lb_refuses_with_the_limit_that_works(inv: Inventory) -> None:
    gone = ConnectError(f"{L[0]}: cannot connect to {L[1]}:22: timed out", kind="timeout")
    connect = connector({L[0]: gone})
    with pytest.raises(UnreachableError) as info:
        open_session(inv, lock=True, command="deploy", connect=connect)
    assert info.value.hosts == {L[0]: "timeout"}
    assert "[timeout]" in info.value.message
    assert "1 of 2 LBs cannot be reached; nothing was changed" in info.value.message
    assert info.value.hint is not None
    assert f"--limit {R[0]}" in info.value.hint
    reached = connect.opened[R[0]]
    assert reached.locked is None  # refused before any lock was taken
    assert reached.closed


def test_limit_to_the_unreachable_lb_is_refused_too(inv: Inventory) -> None:
    gone = ConnectError(f"{L[0]}: refused", kind="refused")
    with pytest.raises(UnreachableError):
        open_session(inv, lock=False, limit=[L[0]], connect=connector({L[0]: gone}))


def test_a_usage_error_while_connecting_stays_a_usage_error(inv: Inventory) -> None:
    with pytest.raises(UsageError, match="sudo needs a password"):
        open_session(inv, lock=False, connect=connector({L[0]: UsageError("sudo needs a password")}))


def test_facts_that_fail_are_recorded_when_tolerated(inv: Inventory) -> None:
    gone = ConnectError(f"{L[0]}: timed out", kind="timeout")
    session = open_session(inv, lock=False, tolerate_unreachable=True, connect=connector({L[0]: gone}))
    assert set(session.unreachable) == {L[0], R[0]}  # R was reached, but its facts failed
    assert session.reasons()[L[0]] == "timeout"
    assert session.facts == {}


# --- the planner around an LB left out -----------------------------------------------------------

def plan(inv: Inventory, fs: dict[str, Any], **kw: Any) -> Plan:
    secrets = Secrets(auth_pass="pw123")
    return build_plan(inv, fs, render_all(inv, secrets), render_all(inv, secrets, root=CHECK_ROOT + "x"),
                      release_id="x", now="t", operator="op", **kw)


def gate(p: Plan, host: str) -> str:
    return next(s.script for s in p.host(host).steps if s.action == "gate")


def test_a_holder_without_a_standby_peer_must_keep_the_vip(inv: Inventory) -> None:
    left = facts(*L, vip_on=("ens192",), vrrp_state="MASTER")
    p = plan(inv, {L[0]: left}, limit=[L[0]], unreachable={R[0]: "timeout"})
    assert [h.host for h in p.hosts] == [L[0]]
    assert f"HOLD_VIP={VIP}" in gate(p, L[0])
    assert any(f"the pair is degraded: {R[0]} (timeout) cannot be reached" in w for w in p.warnings)
    assert any("no other LB stands by" in w for w in p.warnings)
    assert p.errors == ()


def test_a_holder_with_a_standby_peer_may_hand_the_vip_over(inv: Inventory) -> None:
    left = facts(*L, vip_on=("ens192",), vrrp_state="MASTER")
    right = facts(*R, vrrp_state="BACKUP")
    p = plan(inv, {L[0]: left, R[0]: right})
    assert "HOLD_VIP=''" in gate(p, L[0])
    assert not any("stands by" in w for w in p.warnings)
    limited = plan(inv, {L[0]: left, R[0]: right}, limit=[L[0]])  # left out, but keepalived runs there
    assert "HOLD_VIP=''" in gate(limited, L[0])


@pytest.mark.parametrize("peer", [
    {"units": {}},  # keepalived not even installed (a rebuilt LB): it is deployed first, then stands by
    {"vip_on": ("ens192",), "vrrp_state": "MASTER"},  # split brain: both are deployed, both may hand over
])
def test_a_peer_in_the_same_run_stands_by(inv: Inventory, peer: dict[str, Any]) -> None:
    left = facts(*L, vip_on=("ens192",), vrrp_state="MASTER")
    p = plan(inv, {L[0]: left, R[0]: facts(*R, **peer)})
    assert "HOLD_VIP=''" in gate(p, L[0])


def test_a_peer_left_out_with_keepalived_stopped_does_not_stand_by(inv: Inventory) -> None:
    left = facts(*L, vip_on=("ens192",), vrrp_state="MASTER")
    right = facts(*R)
    right = dataclasses.replace(right, units={**right.units, "keepalived": dataclasses.replace(
        right.units["keepalived"], active="inactive", main_pid=0)})
    p = plan(inv, {L[0]: left, R[0]: right}, limit=[L[0]])
    assert f"HOLD_VIP={VIP}" in gate(p, L[0])


def test_a_vip_answering_from_an_unreachable_lb_is_a_warning_not_a_refusal(inv: Inventory) -> None:
    right = facts(*R, vip_probe="answers")
    p = plan(inv, {R[0]: right}, limit=[R[0]], unreachable={L[0]: "no route"})
    assert p.errors == ()
    assert any(f"maybe {L[0]} does" in w for w in p.warnings)
    alone = plan(inv, {L[0]: facts(*L, vip_probe="answers"), R[0]: right})
    assert any("another host uses this address" in e for e in alone.errors)


def test_a_bind_address_no_lb_carries_is_refused_before_any_change(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frontend"][1]["bind"] = "10.220.62.250"
    inv = load(tmp_path, doc)
    p = plan(inv, {L[0]: facts(*L), R[0]: facts(*R)})
    assert any("binds 10.220.62.250, an address no LB carries" in e for e in p.errors), p.errors
    doc["frontend"][1]["bind"] = R[1]  # an LB's own address: not refused here (the gate checks it)
    assert plan(load(tmp_path, doc), {L[0]: facts(*L), R[0]: facts(*R)}).errors == ()


def test_the_stale_section_keeps_the_journal_line() -> None:
    from hakeep.hosts.facts import parse_stale

    assert parse_stale(["haproxy=[ALERT] (590) : Loading failure!", "haproxy=?"]) == {
        "haproxy": "[ALERT] (590) : Loading failure!"}
    assert parse_stale(["haproxy=?"]) == {"haproxy": "?"}
    assert parse_stale([]) == {}


LB1_MAC, LB2_MAC, OTHER = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:99"
OWN = [ArpSeen("lb1", LB1_MAC, own=True), ArpSeen("lb2", LB2_MAC, own=True)]

ARP_CASES = [
    ("only the holder answers", [HOLDER, up("lb2")], [*OWN, ArpSeen("lb2", LB1_MAC, "10.0.0.1")], Verdict.HEALTHY, ""),
    ("a host outside the inventory answers too", [HOLDER, up("lb2")],
     [*OWN, ArpSeen("lb2", LB1_MAC, "10.0.0.1"), ArpSeen("lb2", OTHER, "10.0.0.11"), ArpSeen("lb1", OTHER, "-")],
     Verdict.SPLIT_BRAIN, f"split brain outside the inventory: a host that is no LB of this inventory answers for "
     f"the VIP too: MAC {OTHER} (10.0.0.11), seen from lb1, lb2; the VIP is on lb1"),
    ("it is the unreachable LB, by its address", [up("lb1"), down("lb2")],
     [OWN[0], ArpSeen("lb1", OTHER, "10.0.0.2")], Verdict.DEGRADED, "probably lb2 holds it"),
    ("an unknown MAC while an LB is unreachable is not called outside", [up("lb1"), down("lb2")],
     [OWN[0], ArpSeen("lb1", OTHER, "-")], Verdict.DEGRADED, "probably lb2 holds it"),
    ("an LB that cannot probe", [HOLDER, up("lb2")], [*OWN, ArpSeen("lb2", "unknown")], Verdict.HEALTHY, ""),
]


@pytest.mark.parametrize(("hosts", "arp", "verdict", "reason"), [c[1:] for c in ARP_CASES],
                         ids=[c[0] for c in ARP_CASES])
def test_a_vip_claimed_outside_the_inventory(hosts: list[HostStatus], arp: list[ArpSeen], verdict: Verdict,
                                             reason: str) -> None:
    seen = probes("lb2") + probes("lb1") if any(h.host == "lb2" and h.reachable for h in hosts) else probes("lb1")
    pair = judge(VIP, [dataclasses.replace(h, address=f"10.0.0.{i}") for i, h in enumerate(hosts, 1)], seen, PORTS,
                 arp)
    assert pair.verdict is verdict, pair.reasons
    if reason:
        assert any(reason in r for r in pair.reasons), pair.reasons
    else:
        assert pair.reasons == ()


def test_deploy_preflight_refuses_a_vip_claimed_outside_the_inventory(inv: Inventory) -> None:
    """The facts carry each LB's ARP view; an answer from a MAC no reached LB owns refuses the deploy
    before any change, unless it may be an unreachable LB's (its address, or none known)."""
    left = facts(*L, vip_on=("ens192",), vip_probe="", vip_arp=(ArpSeen(L[0], LB1_MAC, own=True),))
    right = facts(*R, vip_arp=(ArpSeen(R[0], LB2_MAC, own=True), ArpSeen(R[0], LB1_MAC, L[1])))
    assert plan(inv, {L[0]: left, R[0]: right}).errors == ()
    intruder = dataclasses.replace(right, vip_arp=(*right.vip_arp, ArpSeen(R[0], OTHER, "10.220.62.40")))
    errors = plan(inv, {L[0]: left, R[0]: intruder}).errors
    assert errors == (f"split brain outside the inventory: a host that is no LB of this inventory answers ARP for the "
                      f"VIP {VIP} too: MAC {OTHER} (10.220.62.40), seen from {R[0]}; take the VIP off that host (ip "
                      "addr del, or stop its keepalived) or, if it is an LB of this set, name it in the inventory",)
    # lb-left unreachable: an answer from its address, or from an unknown one, may be it
    for ip in (L[1], "-"):
        seen = dataclasses.replace(right, vip_arp=(ArpSeen(R[0], LB2_MAC, own=True), ArpSeen(R[0], OTHER, ip)))
        assert plan(inv, {R[0]: seen}, limit=[R[0]], unreachable={L[0]: "no route"}).errors == ()
    elsewhere = dataclasses.replace(right, vip_arp=(ArpSeen(R[0], LB2_MAC, own=True),
                                                    ArpSeen(R[0], OTHER, "10.220.62.40")))
    assert plan(inv, {R[0]: elsewhere}, limit=[R[0]], unreachable={L[0]: "no route"}).errors != ()


def test_the_facts_vip_probe_section_carries_ping_and_arp_in_any_order() -> None:
    from hakeep.hosts.facts import parse_facts
    from tests.fakes import DATA, MARK, marked

    captured = (DATA / "debian12-bare.txt").read_text()
    assert "@@vip_probe\nsilent\n" in captured
    f = parse_facts("lb2", marked(captured.replace("@@vip_probe\nsilent\n", "@@vip_probe\narp=02:00:00:00:00:99 "
                                                   "ip=10.0.0.11\nsilent\nmac=02:00:00:00:00:02\n")), MARK)
    assert f.vip_probe == "silent"
    assert f.vip_arp == (ArpSeen("lb2", "02:00:00:00:00:02", own=True),
                         ArpSeen("lb2", "02:00:00:00:00:99", "10.0.0.11"))


def test_every_verdict_has_its_colour() -> None:
    from hakeep.cli.views import _VERDICT_STYLE

    assert set(_VERDICT_STYLE) == {v.value for v in Verdict}
