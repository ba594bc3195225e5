"""The planner, table-driven: facts in, steps out (pure; no host needed).

Covers what the Debian lab cannot show end to end: dnf/yum hosts, firewalld, SELinux, non-root
logins, ports held by other programs, a foreign VIP; plus idempotency, ordering and restore steps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hakeep.hosts.facts import HostFacts, UnitFact
from hakeep.inventory.model import Inventory
from hakeep.layout import CHECK_ROOT, CHECK_SCRIPT, HAPROXY_CFG, KEEPALIVED_CONF
from hakeep.plan.planner import build_plan
from hakeep.plan.steps import Plan
from hakeep.render.engine import render_all
from hakeep.render.files import HostFiles, Secrets
from tests.fakes import DATA as DATA_FACTS
from tests.fakes import MARK, captured, facts, listening, marked, with_files
from tests.fixtures import base_doc, load

RID = "20261127T000000Z-abcdef"
SECRETS = Secrets(auth_pass="pw123")


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return load(tmp_path, base_doc())


def desired(inv: Inventory) -> dict[str, HostFiles]:
    return render_all(inv, SECRETS)


def plan_for(inv: Inventory, left: HostFacts, right: HostFacts, **kw: object) -> Plan:
    return build_plan(inv, {"loadbalance-left": left, "loadbalance-right": right}, desired(inv),
                      render_all(inv, SECRETS, root=CHECK_ROOT + RID), release_id=RID, now="2026-11-27T00:00:00Z",
                      operator="tester@ci", **kw)  # type: ignore[arg-type]


def deployed(inv: Inventory, name: str, address: str, **kw: object) -> HostFacts:
    """A host that already runs exactly this inventory."""
    files = {f.path: (f.content, f.mode) for f in desired(inv)[name].files}
    return with_files(facts(name, address, **kw), files)


def actions(plan: Plan, host: str) -> list[str]:
    return [s.action for s in plan.host(host).steps]


def scripts(plan: Plan, host: str) -> str:
    hp = plan.host(host)
    return "\n".join(s.script for s in ([hp.install] if hp.install else []) + list(hp.steps))


L, R = ("loadbalance-left", "10.220.62.32"), ("loadbalance-right", "10.220.62.33")


def test_up_to_date_hosts_get_no_steps(inv: Inventory) -> None:
    plan = plan_for(inv, deployed(inv, *L), deployed(inv, *R))
    assert not plan.changed
    assert plan.errors == ()
    assert all(h.steps == () and h.install is None for h in plan.hosts)


def test_fresh_debian_host_gets_the_whole_recipe(inv: Inventory) -> None:
    bare = captured("debian12-bare", L[0])
    bare = dataclasses.replace(bare, iface_addresses=(f"{L[1]}/24",))
    plan = plan_for(inv, bare, deployed(inv, *R))
    hp = plan.host(L[0])
    assert hp.packages == ("haproxy", "keepalived")
    assert hp.install is not None
    assert "apt-get install -y" in hp.install.script
    assert "DEBIAN_FRONTEND=noninteractive" in hp.install.script
    assert actions(plan, L[0]) == [
        "backup", *["stage"] * 6,
        "validate", "commit", "commit", "service", "service", "service", "wait",  # haproxy
        "commit", "validate", "commit", "commit", "service", "service", "service", "gate", "record"]  # keepalived
    text = scripts(plan, L[0])
    # each unit's drop-in is in place, and systemd has read it, before the unit is started
    described = [s.describe for s in hp.steps]
    for unit in ("haproxy", "keepalived"):
        dropin = f"/etc/systemd/system/{unit}.service.d/hakeep.conf"
        moved = next(i for i, d in enumerate(described) if d.startswith("move the new") and dropin in d)
        reload = described.index(f"systemctl daemon-reload (the drop-in of {unit} changed)")
        main = "/etc/haproxy/haproxy.cfg" if unit == "haproxy" else "/etc/keepalived/keepalived.conf"
        # after its unit's main config passed validation and replaced the live one; before the unit is touched
        assert described.index(f"atomically replace {main}") < moved < reload < described.index(
            f"reload (or start) {unit}")
    assert any(s.describe == "systemctl daemon-reload (the drop-ins put back)" for s in hp.restore)
    assert "systemctl enable haproxy.service" in text
    assert "systemctl reload-or-restart haproxy.service" in text
    assert "systemctl reload-or-restart keepalived.service" in text
    assert {c.action for c in hp.changes} == {"create"}


@pytest.mark.parametrize(("pkgmgr", "command"), [("dnf", "dnf -y install haproxy keepalived"),
                                                  ("yum", "yum -y install haproxy keepalived")])
def test_rhel_family_installs_with_its_own_manager(inv: Inventory, pkgmgr: str, command: str) -> None:
    host = facts(*L, pkgmgr=pkgmgr, tools={"systemctl": "/usr/bin/systemctl"}, units={})
    plan = plan_for(inv, host, deployed(inv, *R))
    hp = plan.host(L[0])
    assert hp.install is not None
    assert command in hp.install.script


def test_stock_debian_haproxy_is_reloaded_not_just_enabled(inv: Inventory) -> None:
    """Debian starts haproxy with its stock config on install: the new one must be loaded."""
    stock = captured("debian12-stock-haproxy", L[0])
    stock = dataclasses.replace(stock, iface_addresses=(f"{L[1]}/24",))
    assert stock.units["haproxy"].running
    plan = plan_for(inv, stock, deployed(inv, *R))
    assert "systemctl reload-or-restart haproxy.service" in scripts(plan, L[0])
    change = next(c for c in plan.host(L[0]).changes if c.path == HAPROXY_CFG)
    assert change.action == "update"
    assert "-\tchroot /var/lib/haproxy\n" in change.diff


def test_only_haproxy_changed_reloads_only_haproxy(inv: Inventory, tmp_path: Path) -> None:
    left = deployed(inv, *L)
    doc = base_doc()
    doc["frontend"][0]["servers"].append({"name": "devops-master-04", "address": "10.220.62.24", "port": 6443})
    (tmp_path / "v2").mkdir()
    inv2 = load(tmp_path / "v2", doc)
    plan = plan_for(inv2, left, deployed(inv, *R))
    text = scripts(plan, L[0])
    assert "systemctl reload-or-restart haproxy.service" in text
    assert "systemctl reload-or-restart keepalived.service" not in text
    assert "systemctl start keepalived.service" not in text
    staged = [s.describe for s in plan.host(L[0]).steps if s.action == "stage"]
    assert staged == [f"upload {HAPROXY_CFG} (mode 0644) beside the live file"]


def test_mode_only_change_uploads_nothing_and_reloads_nothing(inv: Inventory) -> None:
    files = {f.path: (f.content, f.mode) for f in desired(inv)[L[0]].files}
    files[KEEPALIVED_CONF] = (files[KEEPALIVED_CONF][0], 0o644)
    left = with_files(facts(*L), files)
    plan = plan_for(inv, left, deployed(inv, *R))
    assert "stage" not in actions(plan, L[0])
    assert "chmod 0600 /etc/keepalived/keepalived.conf" in scripts(plan, L[0])
    assert "reload" not in scripts(plan, L[0])


def test_stopped_unit_is_started(inv: Inventory) -> None:
    left = deployed(inv, *L)
    units = dict(left.units, keepalived=UnitFact("keepalived", True, "inactive", "enabled", 0))
    plan = plan_for(inv, dataclasses.replace(left, units=units), deployed(inv, *R))
    assert "systemctl start keepalived.service" in scripts(plan, L[0])
    assert "reload" not in scripts(plan, L[0])


@pytest.mark.parametrize("unit", ["haproxy", "keepalived"])
def test_a_unit_running_an_older_config_is_reloaded_though_its_file_is_right(inv: Inventory, unit: str) -> None:
    left = dataclasses.replace(deployed(inv, *L), stale={unit: "hklab-vip: priority 100 running, 101 in the file"})
    plan = plan_for(inv, left, deployed(inv, *R))
    assert "stage" not in actions(plan, L[0])  # nothing to upload
    assert f"systemctl reload-or-restart {unit}.service" in scripts(plan, L[0])
    assert "gate" in actions(plan, L[0])
    assert plan.host(R[0]).steps == ()  # the peer runs its file: untouched


def test_vip_holder_goes_last(inv: Inventory) -> None:
    left = facts(*L, vip_on=("ens192",))
    plan = plan_for(inv, left, facts(*R))
    assert [h.host for h in plan.hosts] == [R[0], L[0]]
    assert plan.host(L[0]).holds_vip


def test_firewalld_opens_ports_and_vrrp_once(inv: Inventory) -> None:
    left = facts(*L, firewalld="running", firewalld_ports=("6443/tcp",), firewalld_protocols=(),
                 firewalld_zone="internal")
    plan = plan_for(inv, left, deployed(inv, *R))
    text = scripts(plan, L[0])
    assert "firewall-cmd -q --zone=internal --add-port=30080/tcp" in text
    assert "firewall-cmd -q --permanent --zone=internal --add-port=30080/tcp" in text
    assert "--add-port=6443/tcp" not in text
    assert "firewall-cmd -q --permanent --zone=internal --add-protocol=vrrp" in text
    assert "--reload" not in text
    assert "stop firewalld" not in text
    done = deployed(inv, *L, firewalld="running", firewalld_ports=("6443/tcp", "30080/tcp"),
                    firewalld_protocols=("vrrp",))
    assert not plan_for(inv, done, deployed(inv, *R)).changed


def test_selinux_enforcing_sets_the_boolean_never_disables(inv: Inventory) -> None:
    left = facts(*L, selinux="Enforcing", selinux_connect_any=False)
    text = scripts(plan_for(inv, left, deployed(inv, *R)), L[0])
    assert "setsebool -P haproxy_connect_any 1" in text
    assert "setenforce" not in text
    ok = deployed(inv, *L, selinux="Enforcing", selinux_connect_any=True)
    assert not plan_for(inv, ok, deployed(inv, *R)).changed


def test_nonlocal_bind_only_when_binding_the_vip(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frontend"][1]["bind"] = "vip"
    inv = load(tmp_path, doc)
    text = scripts(plan_for(inv, facts(*L), facts(*R)), L[0])
    assert "sysctl -q -w net.ipv4.ip_nonlocal_bind=1" in text
    inv0 = load(tmp_path, base_doc())
    assert "ip_nonlocal_bind" not in scripts(plan_for(inv0, facts(*L), facts(*R)), L[0])


@pytest.mark.parametrize(("override", "fragment"), [
    ({"uid": 1000}, "run as uid 1000, not root: set sudo = true"),
    ({"iface_present": False}, "interface ens192 not found (lb[0].interface)"),
    ({"iface_addresses": ("10.220.62.99/24",)}, "10.220.62.32 is not on ens192 (it has 10.220.62.99/24)"),
    ({"listeners": listening((6443, "nginx"))}, "port 6443 (frontend kube-apiserver) is already held by nginx"),
    ({"tools": {}, "pkgmgr": None}, "systemctl not found"),
    ({"tools": {"systemctl": "x"}, "pkgmgr": None}, "haproxy, keepalived not installed and no dnf, yum or apt-get"),
])
def test_preflight_errors(inv: Inventory, override: dict[str, Any], fragment: str) -> None:
    plan = plan_for(inv, facts(*L, **override), facts(*R))
    assert any(fragment in e for e in plan.errors), plan.errors


def test_haproxy_holding_its_own_port_is_fine(inv: Inventory) -> None:
    plan = plan_for(inv, facts(*L, listeners=listening((6443, "haproxy"))), facts(*R))
    assert plan.errors == ()


def test_foreign_vip_is_refused_and_split_brain_warned(inv: Inventory) -> None:
    plan = plan_for(inv, facts(*L, vip_probe="answers"), facts(*R, vip_probe="answers"))
    assert any("answers but no LB holds it" in e for e in plan.errors)
    plan = plan_for(inv, facts(*L, vip_on=("ens192",)), facts(*R, vip_on=("ens192",)))
    assert plan.errors == ()
    assert any("split brain" in w for w in plan.warnings)


def test_limit_plans_only_the_named_host(inv: Inventory) -> None:
    plan = plan_for(inv, facts(*L), facts(*R), limit=[R[0]])
    assert [h.host for h in plan.hosts] == [R[0]]


def test_diffs_mask_secrets_and_manifest_records_state(inv: Inventory) -> None:
    old_conf = b"vrrp_instance x {\n    authentication {\n        auth_pass oldpw99\n    }\n}\n"
    left = with_files(facts(*L), {KEEPALIVED_CONF: (old_conf, 0o600)})
    plan = plan_for(inv, left, facts(*R))
    hp = plan.host(L[0])
    diff = next(c.diff for c in hp.changes if c.path == KEEPALIVED_CONF)
    assert "pw123" not in diff
    assert "oldpw99" not in diff
    assert "auth_pass ********" in diff
    manifest = json.loads(hp.steps[0].stdin)
    assert manifest["id"] == RID
    assert manifest["status"] == "in-progress"
    assert manifest["operator"] == "tester@ci"
    before = {f["path"]: f for f in manifest["files"]}
    assert before[KEEPALIVED_CONF]["existed"] is True
    assert before[KEEPALIVED_CONF]["mode"] == "0600"
    assert before[CHECK_SCRIPT]["existed"] is False
    assert json.loads(hp.steps[-1].stdin)["status"] == "complete"
    assert manifest["seq"] == 1


def test_restore_puts_back_files_and_unit_states(inv: Inventory) -> None:
    left = with_files(facts(*L, units={"haproxy": UnitFact("haproxy", True, "active", "enabled", 5)}),
                      {HAPROXY_CFG: (b"global\n", 0o644)})
    hp = plan_for(inv, left, facts(*R)).host(L[0])
    text = "\n".join(s.script for s in hp.restore)
    # decided on the host from the backup itself: the package install may have created the file
    assert (f"if [ -e /var/lib/hakeep/releases/{RID}/files/etc/haproxy/haproxy.cfg ]; then cp -p "
            f"/var/lib/hakeep/releases/{RID}/files/etc/haproxy/haproxy.cfg") in text
    assert "else rm -f /etc/keepalived/keepalived.conf; fi" in text
    assert "systemctl reload-or-restart haproxy.service" in text
    assert "systemctl stop keepalived.service" in text


def test_no_secret_in_any_script(inv: Inventory) -> None:
    """Contents travel on stdin; a password on a command line would show in `ps`."""
    plan = plan_for(inv, captured("debian12-bare", L[0]), facts(*R))
    for hp in plan.hosts:
        assert hp.validation is not None
        for step in [*hp.validation.prepare, hp.validation.check, *hp.steps, *hp.restore,
                     hp.on_failure.restored, hp.on_failure.not_restored]:
            assert "pw123" not in step.script


def test_prune_removes_the_oldest_beyond_keep_releases(tmp_path: Path) -> None:
    doc = base_doc()
    doc["cluster"]["keep_releases"] = 3
    inv = load(tmp_path, doc)
    old = {f"2026110{i}T000000Z-aaaaa{i}": json.dumps({"seq": i, "status": "complete"}).encode() for i in range(1, 5)}
    # the host's own counter orders the history, whatever the ids (operator clocks) say
    old["20991231T000000Z-future"] = json.dumps({"seq": 0, "status": "complete"}).encode()
    plan = plan_for(inv, dataclasses.replace(facts(*L), releases=old), facts(*R))
    hp = plan.host(L[0])
    prune = next(s for s in hp.steps if s.action == "prune")
    assert "rm -rf -- /var/lib/hakeep/releases/20991231T000000Z-future" in prune.script
    assert "rm -rf -- /var/lib/hakeep/releases/20261101T000000Z-aaaaa1" in prune.script
    assert "rm -rf -- /var/lib/hakeep/releases/20261102T000000Z-aaaaa2" in prune.script
    assert "aaaaa3" not in prune.script
    assert json.loads(hp.steps[0].stdin)["seq"] == 5


def test_incomplete_facts_never_echo_file_contents() -> None:
    from hakeep.hosts.facts import FactsError, parse_facts

    text = (DATA_FACTS / "debian12-stock-haproxy.txt").read_text()
    cut = text[: text.index("@@unit haproxy")] + "@@file /etc/keepalived/keepalived.conf\nYXV0aF9wYXNzIHMzY3JldA==\n"
    with pytest.raises(FactsError) as info:
        parse_facts("lb1", marked(cut), MARK)
    shown = info.value.message + (info.value.hint or "")
    assert "YXV0aF9wYXNz" not in shown
    assert "file /etc/keepalived/keepalived.conf" in shown


def three(tmp_path: Path) -> tuple[Inventory, Inventory]:
    """The inventory with a third LB, and the same without it."""
    doc = base_doc()
    doc["lb"].append({"name": "loadbalance-third", "address": "10.220.62.34", "interface": "ens192", "priority": 99})
    (tmp_path / "big").mkdir()
    (tmp_path / "small").mkdir()
    big = load(tmp_path / "big", doc)
    doc["lb"].pop()
    return big, load(tmp_path / "small", doc)


def plan_members(inv: Inventory, facts_by_name: dict[str, HostFacts], **kw: Any) -> Plan:
    return build_plan(inv, facts_by_name, desired(inv), render_all(inv, SECRETS, root=CHECK_ROOT + RID),
                      release_id=RID, now="2026-11-27T00:00:00Z", operator="tester@ci", **kw)


def test_dropping_an_lb_is_refused_until_told_what_happened_to_it(tmp_path: Path) -> None:
    big, small = three(tmp_path)
    left, right = deployed(big, *L), deployed(big, *R)  # both list the third LB as a peer
    plan = plan_members(small, {L[0]: left, R[0]: right})
    [err] = [e for e in plan.errors if "no longer in the inventory" in e]
    assert err.startswith("10.220.62.34 is no longer in the inventory, but is still a member for loadbalance-left, "
                          "loadbalance-right")
    assert "--forget 10.220.62.34" in err
    plan = plan_members(small, {L[0]: left, R[0]: right}, forget=["10.220.62.34"])
    assert not plan.errors, plan.errors
    assert any("leaves the set without being reached" in w for w in plan.warnings)
    manifest = json.loads(next(s.stdin for s in plan.host(L[0]).steps if s.action == "backup") or b"{}")
    assert manifest["members"] == {L[0]: L[1], R[0]: R[1]}
    assert manifest["forgotten"] == ["10.220.62.34"]
    plan = plan_members(small, {L[0]: left, R[0]: right}, forget=["nobody"])
    assert any(e.startswith("--forget nobody:") for e in plan.errors)


def test_a_member_is_known_by_the_name_its_release_recorded(tmp_path: Path) -> None:
    big, small = three(tmp_path)
    rec = json.dumps({"id": RID, "seq": 1, "status": "complete", "members": {"loadbalance-third": "10.220.62.34"}})
    left = dataclasses.replace(deployed(big, *L), releases={RID: rec.encode()})
    plan = plan_members(small, {L[0]: left, R[0]: deployed(big, *R)}, forget=["loadbalance-third"])
    assert not plan.errors, plan.errors


def test_an_lb_that_joins_is_named_in_the_plan(tmp_path: Path) -> None:
    big, small = three(tmp_path)
    plan = plan_members(big, {L[0]: deployed(small, *L), R[0]: deployed(small, *R),
                              "loadbalance-third": facts("loadbalance-third", "10.220.62.34")})
    assert "loadbalance-third joins the set of LBs: the others get it as a VRRP peer" in plan.warnings
    assert not [e for e in plan.errors if "inventory" in e]


def test_decommissioning_stops_keepalived_first_and_goes_first(tmp_path: Path) -> None:
    big, small = three(tmp_path)
    left, right = deployed(big, *L), deployed(big, *R)
    third = deployed(big, "loadbalance-third", "10.220.62.34", vip_on=("ens192",))
    plan = plan_members(small, {L[0]: left, R[0]: right}, decommission={"10.220.62.34": third})
    assert not plan.errors, plan.errors
    first = plan.hosts[0]
    assert (first.host, first.leaving) == ("10.220.62.34", True)
    assert [s.describe for s in first.steps][1:6] == [
        "stop keepalived", "disable keepalived", "the VIP has left this LB and answers from another",
        "stop haproxy", "disable haproxy"]
    assert "systemctl reload-or-restart keepalived.service" in "\n".join(s.script for s in first.restore)
    # it has two gates: a failure after the first one (stopping haproxy) still restores it
    from hakeep.run.execute import NoProgress, apply_host
    from tests.fakes import FakeTransport

    t = FakeTransport(first.host, lambda d, s: (1, "") if d == "stop haproxy" else (0, ""))
    outcome = apply_host(first, t, NoProgress())
    assert (outcome.status, outcome.restored) == ("failed", True)
    assert t.described()[-len(first.restore) - 1:] == [*[s.describe for s in first.restore],
                                                        "mark the release failed and restored"]


def inject(text: str, section: str, lines: str) -> str:
    head = f"@@{MARK} {section}\n"
    assert head in text
    return text.replace(head, head + lines + "\n", 1)


HOSTILE = [  # (section the host text lands in, the text): what local users can put in front of hakeep
    ("listen", "@@vip\nens192"), ("listen", "@@id\n0"), ("listen", "@@release /"), ("listen", "@@end"),
    ("listen", f"@@{MARK[:3]} vip\nens192"), ("stale", "haproxy=@@vip"), ("vrrp_state", "@@vip\nens192\nMASTER"),
    ("lock", "@@facts 1\n@@release ../../etc"), ("keepalived_running", "@@unit haproxy\nActiveState=failed"),
]


@pytest.mark.parametrize(("section", "text"), HOSTILE, ids=[f"{s}:{t!r}" for s, t in HOSTILE])
def test_host_text_cannot_open_a_section(section: str, text: str) -> None:
    from hakeep.hosts.facts import parse_facts

    clean = marked((DATA_FACTS / "debian12-stock-haproxy.txt").read_text())
    if f"@@{MARK} {section}\n" not in clean:
        clean = clean.replace(f"@@{MARK} end\n", f"@@{MARK} {section}\n@@{MARK} end\n")
    before = parse_facts("lb1", clean, MARK)
    after = parse_facts("lb1", inject(clean, section, text), MARK)
    assert (after.vip_on, after.uid, after.releases, after.units) == (before.vip_on, before.uid, before.releases,
                                                                       before.units)
    assert after.files == before.files


def _add(section: str) -> Callable[[str], str]:
    return lambda t: t.replace(f"@@{MARK} end\n", f"@@{MARK} {section}\n@@{MARK} end\n")


MALFORMED = [
    ("a section twice", _add("id\n0"), "appears twice"),
    ("a release that is not base64", _add("release r1\nxyz"), "malformed facts"),
    ("a uid that is no number", lambda t: t.replace(f"@@{MARK} id\n0\n", f"@@{MARK} id\nroot\n"), "malformed facts"),
]


@pytest.mark.parametrize(("change", "said"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_facts_are_an_error_naming_the_host(change: Callable[[str], str], said: str) -> None:
    from hakeep.hosts.facts import FactsError, parse_facts

    clean = marked((DATA_FACTS / "debian12-stock-haproxy.txt").read_text())
    changed = change(clean)
    assert changed != clean
    with pytest.raises(FactsError) as info:
        parse_facts("lb1", changed, MARK)
    assert info.value.message.startswith("lb1: ")
    assert said in info.value.message



def test_lbs_that_serve_nothing_yet_are_planned_side_by_side(inv: Inventory) -> None:
    bare = {name: facts(name, address, units={}) for name, address in (L, R)}
    assert plan_for(inv, bare[L[0]], bare[R[0]]).side_by_side
    serving = [dataclasses.replace(bare[L[0]], vip_on=("ens192",)),
               dataclasses.replace(bare[L[0]], units={"haproxy": UnitFact("haproxy", True, "active", "enabled", 5)}),
               dataclasses.replace(bare[L[0]], units={"keepalived": UnitFact("keepalived", True, "active", "enabled",
                                                                             5)})]
    for left in serving:
        assert not plan_for(inv, left, bare[R[0]]).side_by_side
    assert not plan_for(inv, bare[L[0]], bare[R[0]], limit=[L[0]]).side_by_side
