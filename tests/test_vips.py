"""More than one VIP (issue #18, part 2): ``[[vip]]`` tables, each its own VRRP instance with its own
VRID and priorities, frontends bound to a named VIP, and the ``[cluster] vip`` form unchanged.

Validation and rendering here; every release's ``haproxy -c``/``keepalived -t`` on the result is
tests/test_binaries.py's; the VIPs living on different LBs and moving is tests/test_vips_lab.py's.
"""

from __future__ import annotations

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
    assert inv.needs_nonlocal_bind
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
