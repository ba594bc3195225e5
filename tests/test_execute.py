"""The executor against a FakeTransport: order, gates, restore-on-failure, validation outcomes."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from hakeep.inventory.model import Inventory
from hakeep.plan.steps import Action, Plan, Step
from hakeep.run.execute import GateError, NoProgress, final_check, rollout, run_step, validate
from tests.fakes import FakeTransport, facts
from tests.fixtures import base_doc, load
from tests.test_plan import L, R, plan_for


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return load(tmp_path, base_doc())


def fresh_plan(inv: Inventory) -> Plan:
    return plan_for(inv, facts(*L), facts(*R, vip_on=("ens192",)))


def test_rollout_runs_every_step_in_order_holder_last(inv: Inventory) -> None:
    plan = fresh_plan(inv)
    ts = {n: FakeTransport(n) for n in (L[0], R[0])}
    outcomes = rollout(plan, ts, NoProgress())
    assert [(o.host, o.status) for o in outcomes] == [(L[0], "changed"), (R[0], "changed")]
    for name, t in ts.items():
        assert t.described() == [s.describe for s in plan.host(name).steps]
    # content travels on stdin, never in the script
    stage = next(c for c in ts[L[0]].calls if c[0].startswith("upload /etc/keepalived/keepalived.conf"))
    assert b"auth_pass pw123" in stage[2]
    assert "pw123" not in stage[1]


def test_failed_gate_restores_the_host_and_stops_the_rollout(inv: Inventory) -> None:
    plan = fresh_plan(inv)

    def broken_gate(describe: str, script: str) -> tuple[int, str]:
        return (1, "port-6443:not-listening") if describe.startswith("health gate") else (0, "")

    first = FakeTransport(L[0], broken_gate)
    second = FakeTransport(R[0])
    # the same plan with a 0.01 s gate, so the unit test does not wait 30 s
    hp = plan.host(L[0])
    steps = [dataclasses.replace(st, wait=0.01) if st.action == "gate" else st for st in hp.steps]
    gate = next(i for i, st in enumerate(steps) if st.action == "gate")
    quick = dataclasses.replace(hp, steps=tuple(steps))
    plan = dataclasses.replace(plan, hosts=tuple(quick if h.host == L[0] else h for h in plan.hosts))
    outcomes = rollout(plan, {L[0]: first, R[0]: second}, NoProgress())
    assert outcomes[0].status == "failed"
    assert outcomes[0].restored is True
    assert "port-6443:not-listening" in outcomes[0].detail
    assert outcomes[1].status == "skipped"
    assert second.calls == []
    ran = first.described()
    restore = [s.describe for s in plan.host(L[0]).restore]
    assert ran[-len(restore) - 1:-1] == restore
    assert ran[-1] == "mark the release failed and restored"
    assert "record" not in [s.action for s in plan.host(L[0]).steps[:gate]]


def test_failure_before_backup_needs_no_restore(inv: Inventory) -> None:
    plan = fresh_plan(inv)
    t = FakeTransport(L[0], lambda d, s: (1, "disk full") if d.startswith("back up") else (0, ""))
    outcomes = rollout(plan, {L[0]: t, R[0]: FakeTransport(R[0])}, NoProgress())
    assert outcomes[0].status == "failed"
    assert len(t.calls) == 1


def test_wait_step_polls_until_it_passes() -> None:
    answers = iter([(1, "not yet"), (1, "not yet"), (0, "ok")])
    t = FakeTransport("h", lambda d, s: next(answers))
    clock = iter([0.0, 0.1, 0.2, 0.3, 0.4])
    res = run_step(t, Step(Action.GATE, "g", "true", wait=10), now=lambda: next(clock), sleep=lambda s: None)
    assert res.ok
    assert len(t.calls) == 3


def test_wait_step_times_out_with_last_output() -> None:
    t = FakeTransport("h", lambda d, s: (1, "vrrp:FAULT"))
    clock = iter([0.0, 5.0, 11.0])
    with pytest.raises(GateError, match="not satisfied after 10s: vrrp:FAULT"):
        run_step(t, Step(Action.GATE, "g", "true", wait=10), now=lambda: next(clock), sleep=lambda s: None)


@pytest.mark.parametrize(("code", "status"), [(0, "ok"), (1, "rejected"), (3, "not-installed"), (7, "error")])
def test_validation_outcomes(inv: Inventory, code: int, status: str) -> None:
    plan = fresh_plan(inv)

    def answer(describe: str, script: str) -> tuple[int, str]:
        return (code, "haproxy rejected the new config:\n[ALERT] x") if describe.startswith("check") else (0, "")

    ts = {n: FakeTransport(n, answer) for n in (L[0], R[0])}
    out = validate(plan, ts, NoProgress())
    assert {v.status for v in out.values()} == {status}


def test_final_check_counts_holders_and_ports(inv: Inventory) -> None:
    plan = fresh_plan(inv)
    holder = FakeTransport(L[0], lambda d, s: (0, "holder=ens192\nport=6443:open\nport=30080:open\n"))
    other = FakeTransport(R[0], lambda d, s: (0, "port=6443:open\nport=30080:open\n"))
    check = final_check(plan, {L[0]: holder, R[0]: other}, timeout=0)
    assert check.holders == (L[0],)
    assert check.ok
    both = FakeTransport(R[0], lambda d, s: (0, "holder=ens192\nport=6443:open\nport=30080:closed\n"))
    check = final_check(plan, {L[0]: holder, R[0]: both}, timeout=0)
    assert not check.ok


def test_drill_needs_exactly_one_holder() -> None:
    from hakeep.ops.drill import DrillError, run_drill

    ts = {n: FakeTransport(n, lambda d, s: (0, "")) for n in ("a", "b")}
    with pytest.raises(DrillError, match="on 0 LBs"):
        run_drill(ts, "10.0.0.9", (6443,))
    assert all(c[0] == "where is the VIP" for t in ts.values() for c in t.calls)


def test_ctrl_c_mid_rollout_restores_the_host_then_propagates(inv: Inventory) -> None:
    plan = fresh_plan(inv)

    def interrupt(describe: str, script: str) -> tuple[int, str]:
        if describe.startswith("reload (or start) haproxy"):
            raise KeyboardInterrupt
        return (0, "")

    t = FakeTransport(L[0], interrupt)
    with pytest.raises(KeyboardInterrupt):
        rollout(plan, {L[0]: t, R[0]: FakeTransport(R[0])}, NoProgress())
    ran = t.described()
    assert "put back the files saved in /var/lib/hakeep/releases/20261127T000000Z-abcdef" in ran
    assert ran[-1] == "mark the release interrupted"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_mid_rollout_restores_the_host_and_a_second_one_waits(inv: Inventory, sig: signal.Signals) -> None:
    """SIGTERM and SIGHUP take Ctrl-C's path (before: only SIGINT restored); another signal during
    the restore is held until it is done."""
    from hakeep import signals

    plan = fresh_plan(inv)

    def send(describe: str, script: str) -> tuple[int, str]:
        if describe.startswith("reload (or start) haproxy") or describe.startswith("put back the files"):
            os.kill(os.getpid(), sig)
        return (0, "")

    t = FakeTransport(L[0], send)
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    signals.install()
    try:
        with pytest.raises(signals.Interrupted) as info:
            rollout(plan, {L[0]: t, R[0]: FakeTransport(R[0])}, NoProgress())
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    assert info.value.signum == sig
    ran = t.described()
    restore = [step.describe for step in plan.host(L[0]).restore]
    # the second signal came during the restore (its first step): every step still ran
    assert ran[-len(restore) - 1:] == [*restore, "mark the release interrupted"]


def test_a_signal_held_by_a_shield_is_raised_when_it_ends() -> None:
    """A first signal during a shielded block (stopping a command, closing the session) is not
    lost: it is raised as the block ends."""
    from hakeep import signals

    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    signals.install()
    try:
        done: list[str] = []

        def shielded_work() -> None:
            with signals.shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("the block ran to its end")

        with pytest.raises(signals.Interrupted) as info:
            shielded_work()
        assert info.value.signum == signal.SIGTERM
        assert done == ["the block ran to its end"]
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_a_failed_prune_does_not_undo_a_healthy_host(inv: Inventory) -> None:
    plan = fresh_plan(inv)
    prune = Step(Action.PRUNE, "keep the newest 10 releases: remove x", "false")
    plan = dataclasses.replace(plan, hosts=tuple(dataclasses.replace(h, steps=(*h.steps, prune))
                                                 if h.host == L[0] else h for h in plan.hosts))
    t = FakeTransport(L[0], lambda d, s: (1, "") if d.startswith("keep the newest") else (0, ""))
    outcomes = rollout(plan, {L[0]: t, R[0]: FakeTransport(R[0])}, NoProgress())
    assert outcomes[0].status == "changed"
    assert "warning: keep the newest 10 releases" in outcomes[0].detail
    assert "put back" not in " ".join(t.described())


def test_the_proof_fails_on_a_host_outside_the_set_answering_for_the_vip() -> None:
    from types import SimpleNamespace

    from hakeep.hosts.remote import CommandResult
    from hakeep.run.execute import outside_claims
    from hakeep.run.results import FinalCheck

    def said(text: str) -> CommandResult:
        return CommandResult("vip_check", 0, text.encode(), b"")

    lb1 = said("holder=eth0\nmac=02:00:00:00:00:01\nport=6443:open\n")
    lb2 = said("mac=02:00:00:00:00:02\narp=02:00:00:00:00:01 ip=10.0.0.1\narp=02:00:00:00:00:99 ip=10.0.0.11\n")
    gone = said("mac=02:00:00:00:00:03\n")
    plan = SimpleNamespace(hosts=[SimpleNamespace(host="lb3", leaving=True)])
    assert outside_claims(plan, {"lb1": lb1, "lb2": lb2}) == ("02:00:00:00:00:99 (10.0.0.11)",)  # type: ignore[arg-type]
    lb2_sees_lb3 = said("mac=02:00:00:00:00:02\narp=02:00:00:00:00:03 ip=-\n")
    assert outside_claims(plan, {"lb1": lb1, "lb2": lb2_sees_lb3, "lb3": gone}) == ("02:00:00:00:00:03",)  # type: ignore[arg-type]
    assert not FinalCheck(("lb1",), {6443: True}, 1.0, outside=("02:00:00:00:00:99",)).ok
    assert FinalCheck(("lb1",), {6443: True}, 1.0).ok


def test_a_run_that_changes_nothing_is_proven_by_its_facts(inv: Inventory) -> None:
    from hakeep.hosts.arp import ArpSeen
    from hakeep.hosts.facts import parse_facts
    from hakeep.run.execute import facts_check
    from tests.fakes import DATA, MARK, marked

    plan = fresh_plan(inv)
    ports = dict.fromkeys(plan.ports, True)
    mine = (ArpSeen(L[0], "02:00:00:00:00:01", own=True),)
    holder = dataclasses.replace(facts(*L), vip_on=("ens192",), vip_ports=ports, vip_arp=mine)
    other = dataclasses.replace(facts(*R), vip_ports=ports, vip_arp=(ArpSeen(R[0], "02:00:00:00:00:02", own=True),
                                                                     ArpSeen(R[0], "02:00:00:00:00:01", "10.0.0.1")))
    check = facts_check(plan, {L[0]: holder, R[0]: other})
    assert check is not None
    assert check.ok
    assert check.holders == (L[0],)
    closed = dataclasses.replace(other, vip_ports={**ports, plan.ports[0]: False})
    stranger = dataclasses.replace(other, vip_arp=(*other.vip_arp, ArpSeen(R[0], "02:00:00:00:00:99", "10.0.0.9")))
    for left, right in ((holder, closed), (holder, stranger), (dataclasses.replace(holder, vip_on=()), other),
                        (holder, dataclasses.replace(other, vip_on=("ens192",))),
                        (holder, dataclasses.replace(other, vip_ports={}))):
        assert facts_check(plan, {L[0]: left, R[0]: right}) is None  # then final_check looks again
    captured = (DATA / "debian12-bare.txt").read_text()
    text = captured.replace("@@vip_probe\nsilent\n", "@@vip_probe\nsilent\nport=6443:open\nport=30080:closed\n"
                                                      "port=x:open\nport=1:maybe\n")
    assert parse_facts("lb1", marked(text), MARK).vip_ports == {6443: True, 30080: False}
