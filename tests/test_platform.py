"""Versions (pure, no host): parsing what hosts and package managers report, what each haproxy and
keepalived release can run (preflight), and the templates' view of them.

The package managers' outputs are recorded: apt's on a lab host of Debian 11; dnf's and yum's (the
RHEL family, which no lab here can boot) as those tools print them for the commands the facts run.
What the lab proves for real is in tests/test_platforms_lab.py and tests/test_binaries.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hakeep.cli import jsondoc
from hakeep.hosts.facts import HostFacts
from hakeep.hosts.versions import parse_candidates, parse_version, version_key
from hakeep.inventory.model import Inventory
from hakeep.layout import CHECK_ROOT, NEWEST_PROVEN, PROVEN, Platform
from hakeep.plan import platform
from hakeep.plan.planner import build_plan, build_rollback_plan
from hakeep.render.engine import render_all
from tests.fakes import facts
from tests.fixtures import base_doc, load
from tests.test_plan import RID, SECRETS, L, R
from tests.test_releases import V2, host_with_history

APT_BULLSEYE = """@apt-get
haproxy:
  Installed: (none)
  Candidate: 2.2.9-2+deb11u7
  Version table:
     2.2.9-2+deb11u7 500
        500 http://10.77.0.2:8080/bullseye ./ Packages
keepalived:
  Installed: (none)
  Candidate: 1:2.1.5-0.2+deb11u1
  Version table:
     1:2.1.5-0.2+deb11u1 500
        500 http://10.77.0.2:8080/bullseye ./ Packages
"""
YUM_CENTOS7 = """@yum
Available Packages
haproxy.x86_64                   1.5.18-9.el7_9.1                   updates
keepalived.x86_64                1.3.5-19.el7                       base
"""


@pytest.fixture
def https(tmp_path: Path) -> Inventory:
    """base_doc: frontend[0] kube-apiserver has an https check, frontend[1] a tcp one."""
    return load(tmp_path, base_doc())


@pytest.fixture
def tcp(tmp_path: Path) -> Inventory:
    doc = base_doc()
    for fe in doc["frontend"]:
        fe["check"] = "tcp"
        fe.pop("ca_file", None)
    return load(tmp_path, doc)


def host(haproxy: str | None = "2.6.12", keepalived: str | None = "2.2.7", *,
         candidates: dict[str, str] | None = None) -> HostFacts:
    """An LB with these versions installed (None: that package not installed)."""
    f = facts(*L)
    tools = {k: v for k, v in f.tools.items() if (k != "haproxy" or haproxy) and (k != "keepalived" or keepalived)}
    versions = {k: v for k, v in (("haproxy", haproxy), ("keepalived", keepalived)) if v}
    return dataclasses.replace(f, tools=tools, versions=versions, candidates=candidates or {})


# ---- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("banner", "version"), [
    ("HAProxy version 3.0.11-1+deb13u5 2026/11/18 - https://haproxy.org/", "3.0.11-1+deb13u5"),
    ("HA-Proxy version 1.8.27-2.el8 2021/01/04", "1.8.27-2.el8"),
    ("Keepalived v2.1.5 (07/13,2020)", "2.1.5"),
])
def test_banners(banner: str, version: str) -> None:
    assert parse_version(banner) == version


@pytest.mark.parametrize(("version", "key"), [
    ("2.2.9-2+deb11u7", (2, 2, 9)), ("1:2.2.7-1+b2", (2, 2, 7)), ("1.8.27-2.el8", (1, 8, 27)),
    ("3.0.11-1+deb13u5", (3, 0, 11)), ("2.4", (2, 4)), ("garbage", None), ("", None), ("1:", None),
])
def test_version_keys(version: str, key: tuple[int, ...] | None) -> None:
    assert version_key(version) == key


def test_apt_candidates() -> None:
    assert parse_candidates(APT_BULLSEYE.splitlines()) == {"haproxy": "2.2.9-2+deb11u7",
                                                          "keepalived": "1:2.1.5-0.2+deb11u1"}
    assert parse_candidates(["@apt-get"]) == {}  # no package lists: apt-cache prints nothing
    none = "@apt-get\nhaproxy:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n"
    assert parse_candidates(none.splitlines()) == {}


def test_dnf_candidates_with_and_without_empty_lines() -> None:
    dnf4 = ["@dnf", "haproxy=2.4.22", "", "keepalived=2.2.8", ""]
    dnf5 = ["@dnf", "haproxy=2.4.22", "keepalived=2.2.8"]
    assert parse_candidates(dnf4) == parse_candidates(dnf5) == {"haproxy": "2.4.22", "keepalived": "2.2.8"}
    assert parse_candidates(["@dnf", "haproxy=2.4.22", "haproxy=2.4.17", "noise"]) == {"haproxy": "2.4.22"}


def test_yum_candidates() -> None:
    assert parse_candidates(YUM_CENTOS7.splitlines()) == {"haproxy": "1.5.18-9.el7_9.1",
                                                         "keepalived": "1.3.5-19.el7"}
    assert parse_candidates(["@yum", "Loaded plugins: fastestmirror", "Available Packages"]) == {}


def test_no_manager_line_reads_nothing() -> None:
    assert parse_candidates(["haproxy=2.4.22", "  Candidate: 2.2.9"]) == {}


# ---- what a version can run ---------------------------------------------------------------------

def test_the_proven_tables_agree() -> None:
    for pkg in ("haproxy", "keepalived"):
        assert NEWEST_PROVEN[pkg] == max(p.version(pkg) for p in PROVEN)
    assert platform.PROVEN_RANGE == {"haproxy": ((2, 2), (3, 0)), "keepalived": ((2, 1), (2, 3))}


@pytest.mark.parametrize("haproxy", ["2.0.13-2ubuntu0.5", "1.8.27-2.el8"])
def test_an_https_check_needs_haproxy_2_2(https: Inventory, haproxy: str) -> None:
    errors, warnings = platform.check(https, "lb1", host(haproxy))
    assert errors == [f"lb1: haproxy {haproxy} cannot run the https health check of frontend kube-apiserver "
                      "(http-check connect ssl, http-check send): that needs haproxy 2.2 or newer; "
                      'set check = "tcp" for frontend[0] (kube-apiserver), or upgrade haproxy to 2.2 or newer']
    assert warnings == []  # the error says it all: no "outside the proven releases" for the same package


def test_a_tcp_inventory_on_haproxy_2_0_is_only_a_warning(tcp: Inventory) -> None:
    errors, warnings = platform.check(tcp, "lb1", host("2.0.13"))
    assert errors == []
    assert warnings == ["lb1: haproxy 2.0.13 is outside the releases hakeep is proven on (2.2 to 3.0); the host's "
                        "own haproxy -c still checks every file before it replaces a live one"]


def test_haproxy_before_1_8_is_refused_whatever_the_inventory(tcp: Inventory) -> None:
    [error], _ = platform.check(tcp, "lb1", host("1.5.18"))
    assert error.startswith("lb1: haproxy 1.5.18 cannot run hakeep's config (stats socket ... expose-fd listeners): "
                            "that needs haproxy 1.8 or newer")


def test_the_candidate_counts_before_the_install(https: Inventory) -> None:
    f = host(None, None, candidates={"haproxy": "2.0.13-2ubuntu0.5", "keepalived": "2.0.19"})
    [error], [warning] = platform.check(https, "lb1", f)
    assert error.startswith("lb1: haproxy 2.0.13-2ubuntu0.5 (the version its package manager would install) "
                            "cannot run the https health check")
    assert warning.startswith("lb1: keepalived 2.0.19 (the version its package manager would install) is outside")
    assert [v.describe() for v in platform.host_versions(f).values()] == [
        "haproxy 2.0.13-2ubuntu0.5 (to be installed)", "keepalived 2.0.19 (to be installed)"]


def test_unknown_versions_pass_and_say_so(https: Inventory) -> None:
    f = host(None, None)
    assert platform.check(https, "lb1", f) == ([], [])
    assert platform.host_versions(f)["haproxy"].describe() == (
        "haproxy not installed (version unknown until the package lists are read)")


def test_old_keepalived_warns_and_newer_haproxy_warns(https: Inventory) -> None:
    errors, warnings = platform.check(https, "lb1", host("3.2.4", "1.3.5"))
    assert errors == []
    assert [w.split(" is outside")[0] for w in warnings] == ["lb1: haproxy 3.2.4", "lb1: keepalived 1.3.5"]


@pytest.mark.parametrize("proven", PROVEN, ids=lambda p: p.name)
def test_every_proven_release_runs_everything(https: Inventory, proven: Platform) -> None:
    f = host(".".join(map(str, proven.haproxy)), ".".join(map(str, proven.keepalived)))
    assert platform.check(https, "lb1", f) == ([], [])


def test_render_versions() -> None:
    got = platform.render_versions({"a": host("2.2.9-2+deb11u7", "1:2.1.5"), "b": host(None, None)}, ["a", "b", "c"])
    assert got["a"] == {"haproxy": (2, 2, 9), "keepalived": (2, 1, 5)}
    assert got["b"] == got["c"] == NEWEST_PROVEN


# ---- through the planner and the views ---------------------------------------------------------

def plan(inv: Inventory, left: HostFacts, right: HostFacts) -> object:
    return build_plan(inv, {L[0]: left, R[0]: right}, render_all(inv, SECRETS),
                      render_all(inv, SECRETS, root=CHECK_ROOT + RID), release_id=RID, now="t", operator="op")


def test_the_deploy_plan_refuses_and_shows_versions(https: Inventory) -> None:
    old = dataclasses.replace(host("2.0.13"), host=R[0], iface_addresses=(f"{R[1]}/24",))
    p = build_plan(https, {L[0]: facts(*L), R[0]: old}, render_all(https, SECRETS),
                   render_all(https, SECRETS, root=CHECK_ROOT + RID), release_id=RID, now="t", operator="op")
    assert [e for e in p.errors if "haproxy 2.0.13" in e] == [
        f"{R[0]}: haproxy 2.0.13 cannot run the https health check of frontend kube-apiserver (http-check connect "
        'ssl, http-check send): that needs haproxy 2.2 or newer; set check = "tcp" for frontend[0] '
        "(kube-apiserver), or upgrade haproxy to 2.2 or newer"]
    assert [(v.package, v.version, v.source) for v in p.host(R[0]).versions] == [
        ("haproxy", "2.0.13", "installed"), ("keepalived", "2.2.7", "installed")]
    doc = json.loads(jsondoc.dump(jsondoc.plan_doc(p, dry_run=True)))
    by_host = {h["host"]: h for h in doc["hosts"]}
    assert by_host[R[0]]["versions"] == {"haproxy": {"version": "2.0.13", "source": "installed"},
                                         "keepalived": {"version": "2.2.7", "source": "installed"}}


def test_a_rollback_does_not_judge_versions(https: Inventory) -> None:
    """A rollback puts back files the host ran before: the inventory's wishes do not apply."""
    fl = dataclasses.replace(host_with_history(*L, V2), versions={"haproxy": "2.0.13", "keepalived": "2.2.7"})
    fr = host_with_history(*R, V2)
    p = build_rollback_plan(https, {L[0]: fl, R[0]: fr}, to=None, release_id="20261104T000000Z-dddddd",
                            now="t", operator="op")
    assert p.errors == ()
    assert not any("haproxy 2.0.13" in w for w in p.warnings)


# ---- rendering for versions -------------------------------------------------------------------

def test_templates_see_each_hosts_versions(https: Inventory, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "haproxy.cfg.j2").write_text(
        "# {{ haproxy_version | join('.') }}{% if haproxy_version >= (2, 4) %} new{% else %} old{% endif %}\n")
    (templates / "keepalived.conf.j2").write_text("# {{ keepalived_version | join('.') }} {{ lb.name }}\n")
    hosts = render_all(https, SECRETS, templates=templates,
                       versions={L[0]: {"haproxy": (2, 2, 9), "keepalived": (2, 1, 5)}})
    assert hosts[L[0]].file("/etc/haproxy/haproxy.cfg").content == b"# 2.2.9 old"
    assert hosts[L[0]].file("/etc/keepalived/keepalived.conf").content == f"# 2.1.5 {L[0]}\n".encode()
    newest = ".".join(map(str, NEWEST_PROVEN["haproxy"]))
    assert hosts[R[0]].file("/etc/haproxy/haproxy.cfg").content == f"# {newest} new".encode()


def test_the_proven_releases_get_the_same_files(https: Inventory) -> None:
    default = render_all(https, SECRETS)
    for proven in PROVEN:
        each = {lb.name: {"haproxy": proven.haproxy, "keepalived": proven.keepalived} for lb in https.lbs}
        rendered = render_all(https, SECRETS, versions=each)
        for name, files in rendered.items():
            assert [(f.path, f.content) for f in files.files] == [(f.path, f.content) for f in default[name].files]
