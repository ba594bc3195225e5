"""More than one VIP (issue #18, part 2): ``[[vip]]`` tables, each its own VRRP instance with its own
VRID and priorities, frontends bound to a named VIP, and the ``[cluster] vip`` form unchanged.

Validation and rendering here; every release's ``haproxy -c``/``keepalived -t`` on the result is
tests/test_binaries.py's; the VIPs living on different LBs and moving is tests/test_vips_lab.py's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hakeep.errors import InventoryError
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from tests.fixtures import base_doc, load

LEFT, RIGHT = "loadbalance-left", "loadbalance-right"


def two_vips() -> dict[str, Any]:
    """api prefers the left LB, ingress the right one (active/active); ingress-nginx binds ingress."""
    doc = base_doc()
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    doc["vip"] = [
        {"name": "api", "address": "10.220.62.31/24", "virtual_router_id": 60,
         "priorities": {LEFT: 101, RIGHT: 100}},
        {"name": "ingress", "address": "10.220.62.34/24", "virtual_router_id": 61,
         "priorities": {LEFT: 100, RIGHT: 101}},
    ]
    doc["frontend"][0]["bind"] = "vip"
    doc["frontend"][1]["bind"] = "vip:ingress"
    return doc


def conf(tmp_path: Path, doc: dict[str, Any], lb: str = LEFT) -> str:
    host = render_all(load(tmp_path, doc), Secrets(auth_pass="x"))[lb]
    return host.file("/etc/keepalived/keepalived.conf").content.decode()


def instance(text: str, name: str) -> str:
    start = text.index(f"vrrp_instance {name} {{")
    return text[start:text.index("\n}\n", start)]


def test_two_vips_are_two_instances_with_their_own_vrid_and_priorities(tmp_path: Path) -> None:
    inv = load(tmp_path, two_vips())
    assert [(v.name, str(v.address), v.virtual_router_id, v.instance) for v in inv.vips] == [
        ("api", "10.220.62.31/24", 60, "devops-api"), ("ingress", "10.220.62.34/24", 61, "devops-ingress")]
    assert str(inv.cluster.vip) == "10.220.62.31/24"  # the first is the cluster's VIP
    assert [fe.bind for fe in inv.frontends] == ["10.220.62.31", "10.220.62.34"]
    assert inv.needs_nonlocal_bind(4)
    for lb, api_prio, ingress_prio in ((LEFT, 101, 100), (RIGHT, 100, 101)):
        text = conf(tmp_path, two_vips(), lb)
        api, ingress = instance(text, "devops-api"), instance(text, "devops-ingress")
        assert "    virtual_router_id 60\n" in api
        assert f"    priority {api_prio}\n" in api
        assert "        10.220.62.31/24 dev ens192\n" in api
        assert "    virtual_router_id 61\n" in ingress
        assert f"    priority {ingress_prio}\n" in ingress
        assert "        10.220.62.34/24 dev ens192\n" in ingress
        for block in (api, ingress):  # each tracks haproxy and notifies
            assert "    track_script {\n        chk_haproxy\n    }\n" in block
            assert "    notify \"/etc/keepalived/hakeep-notify.sh\"" in block
    assert text.count("vrrp_script chk_haproxy {") == 1


def test_the_check_weight_exceeds_every_vips_spread(tmp_path: Path) -> None:
    doc = two_vips()
    doc["vip"][1]["priorities"] = {LEFT: 50, RIGHT: 150}
    inv = load(tmp_path, doc)
    assert inv.check_weight == 102
    assert "    weight -102\n" in conf(tmp_path, doc)


def test_one_vip_table_named_vip_renders_as_the_cluster_form(tmp_path: Path) -> None:
    """Moving from [cluster] vip to [[vip]] changes nothing on the hosts (the same instance name)."""
    doc = base_doc()
    doc["cluster"]["vrrp_instance"] = "haproxy-vip"
    single = render_all(load(tmp_path, doc), Secrets(auth_pass="x"))
    doc = base_doc()
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    doc["vip"] = [{"name": "vip", "address": "10.220.62.31/24", "virtual_router_id": 60,
                   "vrrp_instance": "haproxy-vip"}]
    tables = render_all(load(tmp_path, doc), Secrets(auth_pass="x"))
    for lb in (LEFT, RIGHT):
        assert [f.content for f in single[lb].files] == [f.content for f in tables[lb].files]


def test_the_view_from_one_vip(tmp_path: Path) -> None:
    inv = load(tmp_path, two_vips())
    ingress = inv.for_vip("ingress")
    assert str(ingress.cluster.vip) == "10.220.62.34/24"
    assert ingress.cluster.instance_name == "devops-ingress"
    assert ingress.cluster.virtual_router_id == 61
    assert [lb.priority for lb in ingress.lbs] == [100, 101]
    assert [fe.name for fe in ingress.frontends] == ["ingress-nginx-30080"]
    assert [v.name for v in ingress.vips] == ["ingress"]
    doc = two_vips()
    doc["frontend"][1]["bind"] = "*"  # served by every VIP
    inv = load(tmp_path, doc)
    assert [fe.name for fe in inv.for_vip("api").frontends] == ["kube-apiserver", "ingress-nginx-30080"]
    assert [fe.name for fe in inv.for_vip("ingress").frontends] == ["ingress-nginx-30080"]



CASES: list[tuple[str, Any, str]] = [
    ("both-forms", lambda d: d["cluster"].update(vip="10.220.62.31/24"),
     "cluster.vip: is set in each [[vip]] table when there are any"),
    ("both-forms-vrid", lambda d: d["cluster"].update(virtual_router_id=9), "cluster.virtual_router_id: is set"),
    ("same-vrid", lambda d: d["vip"][1].update(virtual_router_id=60), "vip[1].virtual_router_id: duplicate"),
    ("same-address", lambda d: d["vip"][1].update(address="10.220.62.31/24"), "vip[1].address: duplicate"),
    ("same-name", lambda d: d["vip"][1].update(name="api"), "vip[1].name: duplicate"),
    ("same-instance", lambda d: d["vip"][1].update(vrrp_instance="devops-api"), "vip[1].vrrp_instance: duplicate"),
    ("unknown-lb", lambda d: d["vip"][0]["priorities"].update(lb9=5),
     "vip[0].priorities.lb9: no [[lb]] is named 'lb9'"),
    ("priority-range", lambda d: d["vip"][0]["priorities"].update({LEFT: 255}),
     f"vip[0].priorities.{LEFT}: must be between 1 and 254"),
    ("outside-subnet", lambda d: d["vip"][1].update(address="10.220.63.34/24"),
     "lb[0].address: 10.220.62.32 is outside the VIP's subnet 10.220.63.0/24 (vip[1].address)"),
    ("an-lb-address", lambda d: d["vip"][1].update(address="10.220.62.33/24"),
     "vip[1].address: 10.220.62.33 is also the address of lb[1]"),
    ("no-such-vip", lambda d: d["frontend"][1].update(bind="vip:web"),
     "frontend[1].bind: 'vip:web': there is no [[vip]] named 'web' (there are: api, ingress)"),
    ("no-address", lambda d: d["vip"][1].pop("address"), "vip[1].address: is required"),
    ("unknown-key", lambda d: d["vip"][1].update(priority=5), "vip[1].priority: unknown key"),
    ("vip-not-first", lambda d: d["vip"][1].update(name="vip"), "vip[1].name: 'vip' names the first VIP"),
    ("a-server-is-a-vip", lambda d: d["frontend"][0]["servers"][0].update(address="10.220.62.34"),
     "frontend[0].servers[0].address: 10.220.62.34 is the VIP ingress"),
]


@pytest.mark.parametrize(("mutate", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_vips_name_the_key(tmp_path: Path, mutate: Any, fragment: str) -> None:
    doc = two_vips()
    mutate(doc)
    with pytest.raises(InventoryError) as info:
        load(tmp_path, doc)
    assert fragment in str(info.value), str(info.value)


def test_the_cluster_form_still_binds_vip_by_its_name(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frontend"][0]["bind"] = "vip:vip"
    assert load(tmp_path, doc).frontends[0].bind == "10.220.62.31"
    doc["frontend"][0]["bind"] = "vip:api"
    with pytest.raises(InventoryError, match="there is no \\[\\[vip\\]\\] named 'api' \\(there are: vip\\)"):
        load(tmp_path, doc)


def test_an_empty_vip_array_is_named(tmp_path: Path) -> None:
    from tests.fixtures import write
    from tests.tomlgen import dumps

    doc = base_doc()
    for key in ("vip", "virtual_router_id"):
        del doc["cluster"][key]
    path = write(tmp_path, "vip = []\n" + dumps(doc))
    from hakeep.inventory.load import load_inventory

    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert "inventory.toml: vip: is an empty array; give [[vip]] tables, or the VIP as [cluster] vip" in str(info.value)


# --- the plan: a proof, a decommission gate and a rollback proof per VIP -----------------------------

def _plan_inputs(tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    from tests.test_plan import deployed

    inv = load(tmp_path, two_vips())
    return inv, {LEFT: deployed(inv, LEFT, "10.220.62.32", vip_on=("ens192",)),
                 RIGHT: deployed(inv, RIGHT, "10.220.62.33", extra_vip_on={"10.220.62.34": ("ens192",)})}


def test_the_deploy_proves_every_vip_with_the_ports_it_serves(tmp_path: Path) -> None:
    from tests.test_plan import plan_members

    inv, hosts = _plan_inputs(tmp_path)
    plan = plan_members(inv, hosts)
    assert not plan.errors, plan.errors
    assert (plan.proof.vip, plan.proof.ports) == ("10.220.62.31", (6443,))
    [(name, other)] = plan.extra_proofs
    assert (name, other.vip, other.ports) == ("ingress", "10.220.62.34", (30080,))


def test_a_decommission_waits_for_every_vip_to_leave(tmp_path: Path) -> None:
    from tests.test_plan import deployed, plan_members

    doc = two_vips()
    doc["lb"].append({"name": "third", "address": "10.220.62.35", "interface": "ens192", "priority": 99})
    big = load(tmp_path, doc)
    (tmp_path / "small").mkdir()
    small = load(tmp_path / "small", two_vips())
    third = deployed(big, "third", "10.220.62.35", vip_on=("ens192",))
    plan = plan_members(small, {LEFT: deployed(big, LEFT, "10.220.62.32"), RIGHT: deployed(big, RIGHT, "10.220.62.33")},
                        decommission={"10.220.62.35": third})
    assert not plan.errors, plan.errors
    gates = [s for s in plan.hosts[0].steps if s.describe.startswith("the VIP ")]
    assert [g.describe for g in gates] == ["the VIP 10.220.62.31 has left this LB and answers from another",
                                           "the VIP 10.220.62.34 has left this LB and answers from another"]
    assert "6443" in gates[0].script
    assert "30080" not in gates[0].script
    assert "30080" in gates[1].script
    assert "6443" not in gates[1].script


def test_a_final_check_fails_when_another_vip_fails() -> None:
    from hakeep.run.results import FinalCheck

    good = FinalCheck(("lb1",), {6443: True}, 0.1)
    assert good.ok
    lost = FinalCheck((), {30080: False}, 0.1)
    both = FinalCheck(("lb1",), {6443: True}, 0.1, others=(("ingress", "10.220.62.34", lost),))
    assert both.own_ok
    assert not both.ok


def test_status_takes_the_worst_verdict_and_names_the_vip_of_each_reason() -> None:
    from hakeep.ops.status import HostStatus, PortProbe, Verdict, combine, judge

    def host(name: str, *, holds: bool) -> HostStatus:
        return HostStatus(name, "10.0.0.1", True, holds_vip=holds, vrrp_state="MASTER" if holds else "BACKUP",
                          haproxy="active", keepalived="active")

    probes = [PortProbe("here", 6443, "open"), PortProbe("here", 30080, "open")]
    api = judge("10.220.62.31", [host(LEFT, holds=True), host(RIGHT, holds=False)], probes, [6443])
    ingress = judge("10.220.62.34", [host(LEFT, holds=True), host(RIGHT, holds=True)], probes, [30080])
    api, ingress = (dataclasses.replace(api, name="api"), dataclasses.replace(ingress, name="ingress"))
    both = combine([api, ingress])
    assert both.verdict is Verdict.SPLIT_BRAIN
    assert both.holders == (LEFT,)  # the first VIP's
    assert [p.verdict for p in both.every_vip] == [Verdict.HEALTHY, Verdict.SPLIT_BRAIN]
    assert both.others == (ingress,)
    assert both.reasons[0].startswith(f"VIP ingress (10.220.62.34): the VIP is on {LEFT}, {RIGHT} at once")
    assert combine([api]) is api


def test_preflight_sees_a_foreign_host_on_another_vip(tmp_path: Path) -> None:
    """A second VIP's address answered for by a host outside the set is refused before any change."""
    from tests.test_plan import plan_members

    inv, hosts = _plan_inputs(tmp_path)
    probe = ("mac=52:54:00:00:00:32", "arp=52:54:00:00:00:99 ip=10.220.62.99")
    hosts[LEFT] = dataclasses.replace(hosts[LEFT], extra_vip_on={"10.220.62.34": ()},
                                      extra_vip_probe={"10.220.62.34": probe})
    plan = plan_members(inv, hosts)
    want = ("split brain outside the inventory: a host that is no LB of this inventory answers ARP for the VIP "
            "10.220.62.34 too: MAC 52:54:00:00:00:99 (10.220.62.99)")
    assert any(e.startswith(want) for e in plan.errors), plan.errors
    # and one that answers while no LB holds it
    hosts[RIGHT] = dataclasses.replace(hosts[RIGHT], extra_vip_on={"10.220.62.34": ()})
    hosts[LEFT] = dataclasses.replace(hosts[LEFT], extra_vip_probe={"10.220.62.34": ("answers",)})
    plan = plan_members(inv, hosts)
    assert "the VIP 10.220.62.34 answers but no LB holds it: another host uses this address" in plan.errors


def test_a_rollback_proves_each_vip_with_the_ports_the_restored_config_binds_to_it(tmp_path: Path) -> None:
    """The restored haproxy.cfg says which VIP serves a port (not today's inventory); a VIP the restored
    keepalived.conf does not have is not proved."""
    from hakeep.hosts.facts import FileFact
    from hakeep.layout import HAPROXY_CFG, KEEPALIVED_CONF
    from hakeep.plan.planner import build_rollback_plan
    from tests.fakes import facts, with_files
    from tests.test_releases import manifest

    inv = load(tmp_path, two_vips())
    old_cfg = b"frontend a\n    bind 10.220.62.31:6443\n    bind 10.220.62.31:30080\n"
    old_ka = b"vrrp_instance devops-api {\n    virtual_ipaddress {\n        10.220.62.31/24 dev ens192\n    }\n}\n"
    rid = "20261102T000000Z-bbbbbb"

    def host(name: str, address: str, ka: bytes) -> Any:
        f = with_files(facts(name, address), {HAPROXY_CFG: (b"# now\n", 0o644), KEEPALIVED_CONF: (b"# now\n", 0o600)})
        rel = manifest(rid, {HAPROXY_CFG: old_cfg, KEEPALIVED_CONF: ka}, {HAPROXY_CFG: b"# now\n",
                                                                            KEEPALIVED_CONF: b"# now\n"},
                       units={"haproxy": "active", "keepalived": "active"})
        return dataclasses.replace(f, releases={rid: rel}, release_files={
            (rid, HAPROXY_CFG): FileFact(HAPROXY_CFG, True, 0o644, "root", "root", None, old_cfg),
            (rid, KEEPALIVED_CONF): FileFact(KEEPALIVED_CONF, True, 0o644, "root", "root", None, ka)})

    plan = build_rollback_plan(inv, {LEFT: host(LEFT, "10.220.62.32", old_ka),
                                     RIGHT: host(RIGHT, "10.220.62.33", old_ka)},
                               to=None, release_id="20261104T000000Z-dddddd", now="t", operator="op")
    assert plan.errors == (), plan.errors
    assert (plan.proof.vip, plan.proof.ports) == ("10.220.62.31", (6443, 30080))
    assert plan.extra_proofs == ()  # the restored config has no ingress VIP
    both = old_ka + (b"vrrp_instance devops-ingress {\n    virtual_ipaddress {\n        10.220.62.34/24 dev ens192\n"
                     b"    }\n}\n")
    plan = build_rollback_plan(inv, {LEFT: host(LEFT, "10.220.62.32", both), RIGHT: host(RIGHT, "10.220.62.33", both)},
                               to=None, release_id="20261104T000000Z-dddddd", now="t", operator="op")
    [(name, other)] = plan.extra_proofs
    assert (name, other.vip, other.ports) == ("ingress", "10.220.62.34", ())


def test_a_vrrp_identity_change_is_found_by_instance_name(tmp_path: Path) -> None:
    from hakeep.plan.planner import _vrrp_identity_change
    from tests.test_plan import SECRETS, deployed

    inv = load(tmp_path, two_vips())
    live = deployed(inv, LEFT, "10.220.62.32")
    doc = two_vips()
    doc["vip"].insert(0, {"name": "web", "address": "10.220.62.40/24", "virtual_router_id": 62})
    (tmp_path / "b").mkdir()
    added = render_all(load(tmp_path / "b", doc), SECRETS)[LEFT]
    assert _vrrp_identity_change(live, added) == []  # a VIP added in front: the others unchanged
    doc = two_vips()
    doc["vip"][1]["virtual_router_id"] = 70
    (tmp_path / "c").mkdir()
    changed = render_all(load(tmp_path / "c", doc), SECRETS)[LEFT]
    assert _vrrp_identity_change(live, changed) == ["virtual_router_id"]
