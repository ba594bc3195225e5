"""Release history, drift and rollback planning from facts (pure, no host)."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from pathlib import Path

import pytest

from hakeep.hosts.facts import FileFact, HostFacts, UnitFact
from hakeep.inventory.model import Inventory
from hakeep.layout import HAPROXY_CFG, KEEPALIVED_CONF
from hakeep.plan.planner import build_rollback_plan
from hakeep.plan.releases import drift, history, live, parse_manifest, rollback_target
from tests.fakes import facts, with_files
from tests.fixtures import base_doc, load
from tests.test_plan import L, R

V1 = b"# v1\n"
V2 = b"# v2\n"
STOCK = b"# stock haproxy\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def manifest(rid: str, before: dict[str, bytes | None], deployed: dict[str, bytes | None], *,
             status: str = "complete", kind: str = "deploy", units: dict[str, str] | None = None) -> bytes:
    return json.dumps({
        "id": rid, "kind": kind, "status": status, "time": rid[:16], "operator": "op@ci",
        "files": [{"path": p, "existed": c is not None, "sha256": sha(c) if c else None,
                   "mode": "0644", "owner": "root", "group": "root"} for p, c in before.items()],
        "deployed": [{"path": p, "existed": c is not None, "sha256": sha(c) if c else None, "mode": "0644"}
                     for p, c in deployed.items()],
        "units_before": {u: {"active": a, "enabled": "enabled" if a == "active" else "disabled"}
                         for u, a in (units or {}).items()},
        "packages_installed": [],
    }).encode()


def host_with_history(name: str, address: str, live_cfg: bytes) -> HostFacts:
    """Two deploys: stock -> v1 (first, units were inactive) -> v2."""
    f = with_files(facts(name, address), {HAPROXY_CFG: (live_cfg, 0o644)})
    releases = {
        "20261101T000000Z-aaaaaa": manifest("20261101T000000Z-aaaaaa", {HAPROXY_CFG: STOCK, KEEPALIVED_CONF: None},
                                            {HAPROXY_CFG: V1, KEEPALIVED_CONF: b"k"},
                                            units={"haproxy": "inactive", "keepalived": "inactive"}),
        "20261102T000000Z-bbbbbb": manifest("20261102T000000Z-bbbbbb", {HAPROXY_CFG: V1}, {HAPROXY_CFG: V2},
                                            units={"haproxy": "active", "keepalived": "active"}),
        "20261103T000000Z-cccccc": b"{not json",
    }
    files = {(rid, HAPROXY_CFG): FileFact(HAPROXY_CFG, True, 0o644, "root", "root", None, content)
             for rid, content in (("20261101T000000Z-aaaaaa", STOCK), ("20261102T000000Z-bbbbbb", V1))}
    return dataclasses.replace(f, releases=releases, release_files=files)


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return load(tmp_path, base_doc())


def test_history_live_and_corrupt_manifests() -> None:
    rels = history(host_with_history(*L, V2))
    assert [r.id[-6:] for r in rels] == ["aaaaaa", "bbbbbb", "cccccc"]
    assert rels[2].status == "corrupt"
    current = live(rels)
    assert current is not None
    assert current.id.endswith("bbbbbb")
    assert rels[0].changed_paths() == [HAPROXY_CFG, KEEPALIVED_CONF]
    assert parse_manifest("x", b"[]").status == "corrupt"


def test_drift_is_a_live_file_that_differs_from_the_live_release() -> None:
    assert drift(host_with_history(*L, V2)) == []
    [d] = drift(host_with_history(*L, V2 + b"# hotfix\n"))
    assert d.path == HAPROXY_CFG
    assert d.release.endswith("bbbbbb")


def test_rollback_restores_the_backup_of_the_live_release(inv: Inventory) -> None:
    fl, fr = host_with_history(*L, V2), host_with_history(*R, V2)
    plan = build_rollback_plan(inv, {L[0]: fl, R[0]: fr}, to=None, release_id="20261104T000000Z-dddddd",
                               now="t", operator="op")
    assert plan.errors == ()
    hp = plan.host(L[0])
    staged = next(s for s in hp.steps if s.action == "stage")
    assert staged.stdin == V1
    assert json.loads(hp.steps[0].stdin)["kind"] == "rollback"
    assert json.loads(hp.steps[0].stdin)["rolls_back"].endswith("bbbbbb")
    assert "systemctl reload-or-restart haproxy.service" in "\n".join(s.script for s in hp.steps)


def test_rollback_to_the_first_release_stops_units_and_removes_files(inv: Inventory) -> None:
    f = with_files(host_with_history(*L, V2), {HAPROXY_CFG: (V2, 0o644), KEEPALIVED_CONF: (b"k", 0o600)})
    f = dataclasses.replace(f, releases=host_with_history(*L, V2).releases,
                            release_files=host_with_history(*L, V2).release_files)
    plan = build_rollback_plan(inv, {L[0]: f, R[0]: f}, to="20261101T000000Z-aaaaaa",
                               release_id="20261104T000000Z-dddddd", now="t", operator="op", limit=[L[0]])
    hp = plan.host(L[0])
    text = "\n".join(s.script for s in hp.steps)
    assert "rm -f /etc/keepalived/keepalived.conf" in text
    assert "systemctl stop keepalived.service" in text
    assert "systemctl stop haproxy.service" in text
    assert {c.action for c in hp.changes} == {"update", "delete"}
    assert not plan.expect_vip


def test_backup_presence_wins_over_a_stale_manifest(inv: Inventory) -> None:
    """The first deploy installs the package after facts: the manifest says absent, the backup has it."""
    f = host_with_history(*L, V2)
    rid = "20261101T000000Z-aaaaaa"
    stale = manifest(rid, {HAPROXY_CFG: None, KEEPALIVED_CONF: None}, {HAPROXY_CFG: V1})
    f = dataclasses.replace(f, releases={rid: stale, **{k: v for k, v in f.releases.items() if k != rid}})
    plan = build_rollback_plan(inv, {L[0]: f, R[0]: f}, to=rid, release_id="x", now="t", operator="op",
                               limit=[L[0]])
    staged = [s for s in plan.host(L[0]).steps if s.action == "stage"]
    assert [s.stdin for s in staged] == [STOCK]


def test_histories_that_disagree_are_refused_with_a_suggestion(inv: Inventory) -> None:
    fl = host_with_history(*L, V2)
    fr = dataclasses.replace(host_with_history(*R, V2), releases={
        k: v for k, v in host_with_history(*R, V2).releases.items() if not k.endswith("bbbbbb")})
    plan = build_rollback_plan(inv, {L[0]: fl, R[0]: fr}, to=None, release_id="x", now="t", operator="op")
    assert any("live releases differ" in e and "--to" in e for e in plan.errors)


def test_no_release_and_unknown_release_are_clear(inv: Inventory) -> None:
    bare = facts(*L)
    with pytest.raises(Exception, match="no release to go back to"):
        rollback_target(L[0], history(bare), None)
    plan = build_rollback_plan(inv, {L[0]: host_with_history(*L, V2), R[0]: host_with_history(*R, V2)},
                               to="nope", release_id="x", now="t", operator="op")
    assert any("no release nope" in e for e in plan.errors)


def test_a_reloading_unit_counts_as_running() -> None:
    assert UnitFact("haproxy", True, "reloading", "enabled", 1).running


def test_status_of_a_host_from_facts() -> None:
    from hakeep.inventory.model import LoadBalancer, SSHSettings
    from hakeep.ops.status import host_status

    f = dataclasses.replace(host_with_history(*L, V2 + b"# edited\n"), vip_on=("eth0",), vrrp_state="MASTER",
                            backends={"be_x": {"m1": "UP", "m2": "DOWN", "m3": "UP 1/2"}})
    lb = LoadBalancer(L[0], ipaddress.IPv4Address(L[1]), "eth0", 100,
                      SSHSettings(None, None, None, None, False, 10.0))
    st = host_status(lb, f)
    assert (st.holds_vip, st.vrrp_state, st.servers_up, st.servers_total) == (True, "MASTER", 2, 3)
    assert st.live_release.endswith("bbbbbb")
    assert st.drift == (HAPROXY_CFG,)
    assert st.healthy


def test_an_unfinished_release_is_not_drift_either_way() -> None:
    rid = "20261105T000000Z-eeeeee"
    base = host_with_history(*L, V2)
    unfinished = manifest(rid, {HAPROXY_CFG: V2}, {HAPROXY_CFG: b"# v3\n"}, status="in-progress")
    rels = {**base.releases, rid: unfinished}
    for live_cfg in (V2, b"# v3\n"):
        f = dataclasses.replace(with_files(facts(*L), {HAPROXY_CFG: (live_cfg, 0o644)}), releases=rels)
        assert drift(f) == []
    f = dataclasses.replace(with_files(facts(*L), {HAPROXY_CFG: (b"# hand edit\n", 0o644)}), releases=rels)
    assert [d.path for d in drift(f)] == [HAPROXY_CFG]


def test_a_release_in_progress_is_interrupted_once_no_run_holds_the_lock() -> None:
    """A run cut off (network cut, SIGKILL) leaves its manifest "in-progress": while another run
    holds the lock it may be that run's; with the lock free, it was interrupted."""
    rid = "20261104T000000Z-dddddd"
    f = dataclasses.replace(host_with_history(*L, V2), releases={
        rid: manifest(rid, {HAPROXY_CFG: V2}, {HAPROXY_CFG: V1}, status="in-progress")})
    assert [r.status for r in history(dataclasses.replace(f, lock_free=False))] == ["in-progress"]
    assert [r.status for r in history(f)] == ["interrupted"]


def test_rollback_to_a_release_made_before_drop_ins_removes_hakeeps_drop_ins(inv: Inventory) -> None:
    """A release that does not list the drop-ins was made by a hakeep that did not manage them: none
    of hakeep's was there then. One that is not hakeep's (no header) is left alone."""
    from hakeep.layout import HAPROXY, KEEPALIVED

    ours = b"# Managed by hakeep (cluster c, host h): haproxy.service's drop-in.\n[Service]\nRestart=always\n"
    f = with_files(host_with_history(*L, V2), {HAPROXY.dropin: (ours, 0o644),
                                               KEEPALIVED.dropin: (b"[Service]\nNice=5\n", 0o644)})
    f = dataclasses.replace(f, releases=host_with_history(*L, V2).releases,
                            release_files=host_with_history(*L, V2).release_files)
    plan = build_rollback_plan(inv, {L[0]: f, R[0]: f}, to=None, release_id="20261104T000000Z-dddddd", now="t",
                               operator="op", limit=[L[0]])
    assert plan.errors == ()
    hp = plan.host(L[0])
    deleted = {c.path for c in hp.changes if c.action == "delete"}
    assert HAPROXY.dropin in deleted
    assert KEEPALIVED.dropin not in deleted
    described = [s.describe for s in hp.steps]
    assert described.index(f"remove {HAPROXY.dropin} (absent before)") < described.index(
        "systemctl daemon-reload (the drop-in of haproxy changed)") < described.index("reload (or start) haproxy")
