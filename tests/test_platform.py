"""Versions (pure, no host): parsing what hosts and package managers report, what each haproxy and
keepalived release can run (preflight), the plan's and JSON's view of them, and the templates' view.

The package managers' outputs are recorded: apt's on a lab host of Debian 11; dnf's and yum's (the
RHEL family, which no lab here can boot) as those tools print them for the commands the facts run
(hakeep/hosts/sh/facts.sh, section ``candidates``). What the lab proves for real is in
tests/test_platforms_lab.py and tests/test_binaries.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

from hakeep.cli import jsondoc
from hakeep.hosts.facts import HostFacts, UnitFact, parse_facts
from hakeep.hosts.versions import Version, parse_candidates, parse_version, short, version_key
from hakeep.inventory.model import Inventory
from hakeep.layout import CHECK_ROOT, HAPROXY_CFG, KEEPALIVED_CONF, NEWEST_PROVEN, PROVEN, Platform
from hakeep.plan import platform
from hakeep.plan.planner import build_plan, build_rollback_plan
from hakeep.plan.steps import Plan
from hakeep.render.engine import render_all
from hakeep.render.files import HostFiles
from tests.fakes import DATA, MARK, facts, marked
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
DNF4_RHEL9 = "@dnf\nhaproxy=2.4.22\n\nkeepalived=2.2.8\n\n"  # the \n in --qf, then dnf 4's own newline
DNF5 = "@dnf\nhaproxy=2.4.22\nkeepalived=2.2.8\n"
YUM_CENTOS7 = """@yum
Available Packages
haproxy.x86_64                   1.5.18-9.el7_9.1                   updates
keepalived.x86_64                1.3.5-19.el7                       base
"""
HTTPS_NEED = "the https health check of frontend {fe} (http-check connect ssl, http-check send)"
BASE_NEED = "hakeep's config (stats socket ... expose-fd listeners)"
CANDIDATE = " (the version its package manager would install)"


def https_error(lb: str, version: str, *, fe: str = "kube-apiserver", i: int = 0, source: str = "") -> str:
    return (f"{lb}: haproxy {version}{source} cannot run {HTTPS_NEED.format(fe=fe)}: that needs haproxy 2.2 or "
            f'newer; set check = "tcp" for frontend[{i}] ({fe}), or upgrade haproxy to 2.2 or newer')


def base_error(lb: str, version: str, source: str = "") -> str:
    return (f"{lb}: haproxy {version}{source} cannot run {BASE_NEED}: that needs haproxy 1.8 or newer; "
            "upgrade haproxy to 2.2 or newer")


def outside(lb: str, pkg: str, version: str, source: str = "") -> str:
    low, high, validator = {"haproxy": ("2.2", "3.0", "haproxy -c"), "keepalived": ("2.1", "2.3", "keepalived -t")}[pkg]
    return (f"{lb}: {pkg} {version}{source} is outside the releases hakeep is proven on ({low} to {high}); the "
            f"host's own {validator} still checks every file before it replaces a live one")


@pytest.fixture
def https(tmp_path: Path) -> Inventory:
    """base_doc: frontend[0] kube-apiserver has an https check, frontend[1] a tcp one."""
    return load(tmp_path, base_doc())


@pytest.fixture
def tcp(tmp_path: Path) -> Inventory:
    doc = base_doc()
    doc["frontend"][0]["check"] = "tcp"  # frontend[1] has the default, tcp
    return load(tmp_path, doc)


def host(haproxy: str | None = "2.6.12", keepalived: str | None = "2.2.7", *, at: tuple[str, str] = L,
         candidates: dict[str, str] | None = None) -> HostFacts:
    """An LB with these versions installed (None: that package not installed, its unit not loaded)."""
    f = facts(*at)
    have = {"haproxy": haproxy, "keepalived": keepalived}
    return dataclasses.replace(
        f, tools={k: v for k, v in f.tools.items() if k not in have or have[k]},
        versions={k: v for k, v in have.items() if v}, candidates=candidates or {},
        units={u: f.units[u] if v else UnitFact(u, False, "inactive", "", 0) for u, v in have.items()})


# ---- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("banner", "version"), [
    ("HAProxy version 3.0.11-1+deb13u5 2026/11/18 - https://haproxy.org/", "3.0.11-1+deb13u5"),
    ("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/", "2.6.12-1+deb12u4"),
    ("HA-Proxy version 1.8.27-2.el8 2021/01/04", "1.8.27-2.el8"), ("HA-Proxy version 1.5.18 2016/05/10", "1.5.18"),
    ("Keepalived v2.1.5 (07/13,2020)", "2.1.5"),
    ("Keepalived v1.3.5 (03/19,2017), git commit v1.3.5-6-g6fa32f2", "1.3.5"),
    ("  something else  ", "something else"), ("", ""),
])
def test_banners(banner: str, version: str) -> None:
    assert parse_version(banner) == version


@pytest.mark.parametrize(("version", "key"), [
    ("2.2.9-2+deb11u7", (2, 2, 9)), ("1:2.2.7-1+b2", (2, 2, 7)), ("1:2.1.5-0.2+deb11u1", (2, 1, 5)),
    ("1.8.27-2.el8", (1, 8, 27)), ("1.5.18-9.el7_9.1", (1, 5, 18)), ("2.0.13-2ubuntu0.5", (2, 0, 13)),
    ("3.0.11-1+deb13u5", (3, 0, 11)), ("2.6.12~bpo11+1", (2, 6, 12)), (" 2.4.22 ", (2, 4, 22)), ("2.4", (2, 4)),
    ("10:3.2.0", (3, 2, 0)), ("garbage", None), ("", None), ("1:", None), ("(none)", None), ("v2.2.7", None),
])
def test_version_keys(version: str, key: Version | None) -> None:
    assert version_key(version) == key


BULLSEYE = {"haproxy": "2.2.9-2+deb11u7", "keepalived": "1:2.1.5-0.2+deb11u1"}
RHEL9 = {"haproxy": "2.4.22", "keepalived": "2.2.8"}


@pytest.mark.parametrize(("text", "known"), [
    (APT_BULLSEYE, BULLSEYE), (DNF4_RHEL9, RHEL9), (DNF5, RHEL9),
    (YUM_CENTOS7, {"haproxy": "1.5.18-9.el7_9.1", "keepalived": "1.3.5-19.el7"}),
    (APT_BULLSEYE.replace("Candidate: 2.2.9-2+deb11u7", "Candidate: (none)"), {"keepalived": BULLSEYE["keepalived"]}),
    ("@apt-get\nN: Unable to locate package x\nhaproxy:amd64:\n  Candidate: 2.6.12-1\n", {"haproxy": "2.6.12-1"}),
    ("@dnf\nFailed to set locale, defaulting to C.UTF-8\nhaproxy=2.4.22\nhaproxy=2.4.17\nkeepalived=\n=2.2.8\n",
     {"haproxy": "2.4.22"}),  # a name twice: the first (--latest-limit 1 lists the newest first)
    ("@yum\nLoaded plugins: fastestmirror, langpacks\n * base: mirror.example.org\nAvailable Packages\n"
     "haproxy.x86_64  1.5.18-9.el7_9.1  updates\nhaproxy.x86_64  1.5.18-9.el7  base\n"
     "keepalived.x86_64  not-a-version  base\nkeepalived.i686  1:1.3.5-19.el7  base\n",
     {"haproxy": "1.5.18-9.el7_9.1", "keepalived": "1:1.3.5-19.el7"}),
    ("@apt-get", {}), ("@dnf", {}), ("@yum\nLoaded plugins: fastestmirror\nAvailable Packages", {}),  # no metadata
    ("haproxy=2.4.22\nhaproxy:\n  Candidate: 2.2.9\nhaproxy.x86_64 1.5.18 base", {}),  # before any manager line
    ("@zypper\nhaproxy=2.4.22\nhaproxy:\n  Candidate: 2.2.9\nhaproxy.x86_64 1.5.18 base", {}),  # one it cannot read
], ids=["apt-bullseye", "dnf4-rhel9", "dnf5", "yum-centos7", "apt-none", "apt-noise", "dnf-noise", "yum-noise",
        "apt-no-lists", "dnf-no-metadata", "yum-no-metadata", "no-manager", "unknown-manager"])
def test_candidates(text: str, known: dict[str, str]) -> None:
    assert parse_candidates(text.splitlines()) == known


def test_apt_a_name_listed_twice_keeps_the_first() -> None:
    text = "@apt-get\nhaproxy:\n  Candidate: 2.2.9\nhaproxy:\n  Candidate: 2.0.13\n"
    assert parse_candidates(text.splitlines()) == {"haproxy": "2.2.9"}


def facts_with_candidates(section: str) -> HostFacts:
    """The facts of a real Debian 12 host with neither package, its candidates section ``section``."""
    text = (DATA / "debian12-bare.txt").read_text().replace("@@iface\n", f"@@candidates\n{section}@@iface\n", 1)
    return parse_facts("lb1", marked(text), MARK)


def test_the_facts_carry_the_candidates_to_preflight_and_templates(https: Inventory) -> None:
    f = facts_with_candidates(APT_BULLSEYE)
    assert f.candidates == BULLSEYE
    assert platform.host_versions(f) == {
        "haproxy": platform.HostVersion("haproxy", "2.2.9-2+deb11u7", "candidate"),
        "keepalived": platform.HostVersion("keepalived", "1:2.1.5-0.2+deb11u1", "candidate")}
    assert platform.check(https, "lb1", f) == ([], [])
    assert platform.render_versions({"lb1": f}, ["lb1"]) == {"lb1": {"haproxy": (2, 2, 9), "keepalived": (2, 1, 5)}}
    assert platform.check(https, "lb1", facts_with_candidates(YUM_CENTOS7)) == (
        [base_error("lb1", "1.5.18-9.el7_9.1", CANDIDATE), https_error("lb1", "1.5.18-9.el7_9.1", source=CANDIDATE)],
        [outside("lb1", "keepalived", "1.3.5-19.el7", CANDIDATE)])
    assert facts_with_candidates("@apt-get\n").candidates == {}


# ---- what a version can run ---------------------------------------------------------------------

def test_the_proven_tables_agree() -> None:
    assert NEWEST_PROVEN == {"haproxy": (3, 0, 11), "keepalived": (2, 3, 3)}
    assert platform.PROVEN_RANGE == {"haproxy": ((2, 2), (3, 0)), "keepalived": ((2, 1), (2, 3))}


def test_needs_name_each_frontend_by_its_index_and_balance_random_needs_1_9(tmp_path: Path) -> None:
    assert [(n.package, n.since, n.what) for n in platform.needs(load(tmp_path, base_doc()))] == [
        ("haproxy", (1, 8), BASE_NEED), ("haproxy", (2, 2), HTTPS_NEED.format(fe="kube-apiserver"))]
    doc = base_doc()
    doc["frontend"][1].update(check="https", balance="random")
    inv = load(tmp_path, doc)
    fe = inv.frontends[1].name
    random = (f"lb1: haproxy 1.8.27-2.el8 cannot run balance random in frontend {fe}: that needs haproxy 1.9 or newer; "
              f"choose another balance for frontend[1] ({fe}), or upgrade haproxy to 2.2 or newer")
    assert platform.check(inv, "lb1", host("1.8.27-2.el8")) == (
        [https_error("lb1", "1.8.27-2.el8"), random, https_error("lb1", "1.8.27-2.el8", fe=fe, i=1)], [])
    assert platform.check(inv, "lb1", host("2.0.13")) == (  # 1.9 runs balance random
        [https_error("lb1", "2.0.13"), https_error("lb1", "2.0.13", fe=fe, i=1)], [])
    assert platform.check(inv, "lb1", host("2.2.9")) == ([], [])


@pytest.mark.parametrize("haproxy", ["2.0.13", "2.0.13-2ubuntu0.5", "1.8.27-2.el8", "2.1.12"])
def test_an_https_check_needs_haproxy_2_2(https: Inventory, haproxy: str) -> None:
    # the error says it all: no "outside the proven releases" for the same package
    assert platform.check(https, "lb1", host(haproxy)) == ([https_error("lb1", haproxy)], [])


@pytest.mark.parametrize("haproxy", ["2.0.13", "1.8.27-2.el8"])
def test_a_tcp_inventory_on_an_old_haproxy_is_only_a_warning(tcp: Inventory, haproxy: str) -> None:
    assert platform.check(tcp, "lb1", host(haproxy)) == ([], [outside("lb1", "haproxy", haproxy)])


@pytest.mark.parametrize("haproxy", ["1.5.18", "1.7.14"])
def test_haproxy_before_1_8_is_refused_whatever_the_inventory(tcp: Inventory, https: Inventory, haproxy: str) -> None:
    assert platform.check(tcp, "lb1", host(haproxy)) == ([base_error("lb1", haproxy)], [])
    assert platform.check(https, "lb1", host(haproxy)) == ([base_error("lb1", haproxy), https_error("lb1", haproxy)],
                                                           [])


def test_the_candidate_counts_before_the_install(https: Inventory) -> None:
    f = host(None, None, candidates={"haproxy": "2.0.13-2ubuntu0.5", "keepalived": "2.0.19"})
    assert platform.check(https, "lb1", f) == ([https_error("lb1", "2.0.13-2ubuntu0.5", source=CANDIDATE)],
                                               [outside("lb1", "keepalived", "2.0.19", CANDIDATE)])
    assert [v.describe() for v in platform.host_versions(f).values()] == [
        "haproxy 2.0.13-2ubuntu0.5 (to be installed)", "keepalived 2.0.19 (to be installed)"]
    installed = host("2.6.12", "2.2.7", candidates={"haproxy": "2.0.13"})  # what runs counts, not a candidate
    assert platform.host_versions(installed)["haproxy"] == platform.HostVersion("haproxy", "2.6.12", "installed")
    assert platform.check(https, "lb1", installed) == ([], [])


def test_unknown_versions_pass_silently_and_say_why(https: Inventory) -> None:
    f = host(None, None)
    assert platform.check(https, "lb1", f) == ([], [])
    hv = platform.host_versions(f)["haproxy"]
    assert (hv, hv.key) == (platform.HostVersion("haproxy", "", ""), None)
    assert hv.describe() == "haproxy not installed (version unknown until the package lists are read)"
    assert platform.check(https, "lb1", host("its banner said nothing useful")) == ([], [])
    f = dataclasses.replace(host(), versions={"keepalived": "2.2.7"})  # installed; haproxy -v printed nothing
    hv = platform.host_versions(f)["haproxy"]
    assert (hv.version, hv.source) == ("", "installed")
    assert hv.describe() == "haproxy installed (version unknown: its banner was not understood)"
    assert platform.check(https, "lb1", f) == ([], [])


@pytest.mark.parametrize(("haproxy", "keepalived", "warned"), [
    ("2.6.12", "1.3.5", [("keepalived", "1.3.5")]), ("3.2.4", "2.2.7", [("haproxy", "3.2.4")]),
    ("3.1.0", "2.4.0", [("haproxy", "3.1.0"), ("keepalived", "2.4.0")]),
    ("2.2.0", "2.1.0", []), ("3.0.99", "2.3.9", []),
    *[(short(p.haproxy), short(p.keepalived), []) for p in PROVEN],  # every proven release runs everything
    ("2.6.12", "1:2.0.19-2", [("keepalived", "1:2.0.19-2")]),
])
def test_outside_the_proven_releases_is_a_warning(https: Inventory, haproxy: str, keepalived: str,
                                                  warned: list[tuple[str, str]]) -> None:
    assert platform.check(https, "lb1", host(haproxy, keepalived)) == (
        [], [outside("lb1", pkg, version) for pkg, version in warned])


def test_an_error_hides_only_its_own_packages_warning(https: Inventory) -> None:
    assert platform.check(https, "lb1", host("2.0.13", "1.3.5")) == ([https_error("lb1", "2.0.13")],
                                                                     [outside("lb1", "keepalived", "1.3.5")])


def test_render_versions() -> None:
    got = platform.render_versions({"a": host("2.2.9-2+deb11u7", "1:2.1.5"), "b": host(None, None),
                                    "d": host(None, None, candidates={"haproxy": "2.4.22"})}, ["a", "b", "c", "d"])
    assert list(got) == ["a", "b", "c", "d"]
    assert got["a"] == {"haproxy": (2, 2, 9), "keepalived": (2, 1, 5)}
    assert got["b"] == got["c"] == NEWEST_PROVEN == {"haproxy": (3, 0, 11), "keepalived": (2, 3, 3)}
    assert got["d"] == {"haproxy": (2, 4, 22), "keepalived": NEWEST_PROVEN["keepalived"]}


# ---- through the planner and the JSON document ---------------------------------------------------

def deploy(inv: Inventory, left: HostFacts, right: HostFacts, limit: list[str] | None = None) -> Plan:
    return build_plan(inv, {L[0]: left, R[0]: right}, render_all(inv, SECRETS),
                      render_all(inv, SECRETS, root=CHECK_ROOT + RID), release_id=RID, now="t", operator="op",
                      limit=limit)


def json_versions(p: Plan) -> dict[str, object]:
    return {h["host"]: h["versions"] for h in json.loads(jsondoc.dump(jsondoc.plan_doc(p)))["hosts"]}


def seen(version: str | None, source: str | None = "installed") -> dict[str, str | None]:
    return {"version": version, "source": source}


def test_the_deploy_plan_refuses_and_shows_versions(https: Inventory) -> None:
    p = deploy(https, facts(*L), host("2.0.13", at=R))
    assert p.errors == (https_error(R[0], "2.0.13"),)
    assert not any("2.0.13" in w for w in p.warnings)
    assert p.host(R[0]).versions == (platform.HostVersion("haproxy", "2.0.13", "installed"),
                                     platform.HostVersion("keepalived", "2.2.7", "installed"))
    assert json_versions(p) == {L[0]: {"haproxy": seen("2.6.12"), "keepalived": seen("2.2.7")},
                                R[0]: {"haproxy": seen("2.0.13"), "keepalived": seen("2.2.7")}}


def test_a_tcp_inventory_warns_and_a_limit_judges_only_its_hosts(tcp: Inventory, https: Inventory) -> None:
    p = deploy(tcp, facts(*L), host("2.0.13", at=R))
    assert (p.errors, [w for w in p.warnings if "2.0.13" in w]) == ((), [outside(R[0], "haproxy", "2.0.13")])
    limited = deploy(https, facts(*L), host("2.0.13", at=R), limit=[L[0]])
    assert not any("2.0.13" in m for m in (*limited.errors, *limited.warnings))


def test_a_fresh_host_is_judged_by_its_candidates(https: Inventory) -> None:
    right = dataclasses.replace(host(None, "2.2.7", at=R), versions={})  # keepalived -v said nothing
    p = deploy(https, host(None, None, candidates={"haproxy": "2.0.13-2ubuntu0.5"}), right)
    assert p.errors == (https_error(L[0], "2.0.13-2ubuntu0.5", source=CANDIDATE),)
    assert p.host(L[0]).packages == ("haproxy", "keepalived")
    assert json_versions(p) == {L[0]: {"haproxy": seen("2.0.13-2ubuntu0.5", "candidate"),
                                       "keepalived": seen(None, None)},
                                R[0]: {"haproxy": seen(None, None), "keepalived": seen(None)}}  # installed, unknown


@pytest.mark.parametrize("haproxy", ["2.0.13", "1.5.18"])
def test_a_rollback_does_not_judge_versions(https: Inventory, haproxy: str) -> None:
    """A rollback puts back files the host ran before: the inventory's wishes do not apply."""
    fl = dataclasses.replace(host_with_history(*L, V2), versions={"haproxy": haproxy, "keepalived": "1.3.5"})
    fr = host_with_history(*R, V2)
    assert any(f"haproxy {haproxy} cannot run" in e for e in deploy(https, fl, fr).errors)  # a deploy refuses them
    p = build_rollback_plan(https, {L[0]: fl, R[0]: fr}, to=None, release_id="20261104T000000Z-dddddd",
                            now="t", operator="op")
    assert p.errors == ()
    assert not any(haproxy in w or "1.3.5" in w for w in p.warnings)
    assert [h.host for h in p.hosts] == [L[0], R[0]]  # it plans every host


# ---- rendering for versions -------------------------------------------------------------------

def templates_dir(tmp_path: Path, haproxy: str | None = None, keepalived: str | None = None) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in (("haproxy.cfg.j2", haproxy), ("keepalived.conf.j2", keepalived)):
        if text is not None:
            (folder / name).write_text(text)
    return folder


HAPROXY_PROBE = ("# {{ haproxy_version | join('.') }}{% if haproxy_version >= (2, 4) %} new{% else %} old{% endif %}"
                 " {{ keepalived_version | join('.') }};\n")
KEEPALIVED_PROBE = "# {{ lb.name }} {{ keepalived_version | join('.') }} {{ haproxy_version | join('.') }}\n"


def probed(hosts: Mapping[str, HostFiles], lb: str) -> tuple[str, str]:
    return hosts[lb].file(HAPROXY_CFG).content.decode(), hosts[lb].file(KEEPALIVED_CONF).content.decode()


def test_each_lb_gets_its_own_versions_and_the_newest_proven_when_unknown(https: Inventory, tmp_path: Path) -> None:
    folder = templates_dir(tmp_path, HAPROXY_PROBE, KEEPALIVED_PROBE)
    hosts = render_all(https, SECRETS, templates=folder, versions={
        L[0]: {"haproxy": (2, 2, 9), "keepalived": (2, 1, 5)}, R[0]: {"haproxy": (2, 6, 12), "keepalived": (2, 2, 7)}})
    assert probed(hosts, L[0]) == ("# 2.2.9 old 2.1.5;\n", f"# {L[0]} 2.1.5 2.2.9\n")
    assert probed(hosts, R[0]) == ("# 2.6.12 new 2.2.7;\n", f"# {R[0]} 2.2.7 2.6.12\n")
    hosts = render_all(https, SECRETS, templates=folder, versions={L[0]: {"haproxy": (2, 0, 13)}})
    assert probed(hosts, L[0]) == ("# 2.0.13 old 2.3.3;\n", f"# {L[0]} 2.3.3 2.0.13\n")  # keepalived: the newest
    assert probed(hosts, R[0]) == ("# 3.0.11 new 2.3.3;\n", f"# {R[0]} 2.3.3 3.0.11\n")  # not in versions
    unset = render_all(https, SECRETS, templates=folder)  # no versions at all: every LB the newest
    assert probed(unset, L[0]) == ("# 3.0.11 new 2.3.3;\n", f"# {L[0]} 2.3.3 3.0.11\n")


@pytest.mark.parametrize(("version", "said"), [((2, 2, 9), "old"), ((2, 3, 99), "old"), ((2, 4), "new"),
                                               ((2, 4, 0), "new"), ((3, 0, 11), "new")])
def test_templates_compare_versions_as_numbers(https: Inventory, tmp_path: Path, version: Version, said: str) -> None:
    hosts = render_all(https, SECRETS, templates=templates_dir(tmp_path, HAPROXY_PROBE),
                       versions={L[0]: {"haproxy": version}})
    assert hosts[L[0]].file(HAPROXY_CFG).content == f"# {short(version)} {said} 2.3.3;\n".encode()
    shipped = render_all(https, SECRETS)[L[0]]  # the templates not overridden: the shipped ones
    assert hosts[L[0]].file(KEEPALIVED_CONF).content == shipped.file(KEEPALIVED_CONF).content


def test_deploy_and_diff_render_each_lb_for_its_versions(https: Inventory, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """plan_deploy (deploy's and diff's) renders again once the facts are in: each LB its own."""
    from hakeep.cli.commands.common import plan_deploy, render_for_deploy

    monkeypatch.setenv(https.cluster.auth_pass_env or "HAKEEP_VRRP_PASS", "pw")
    rendered = render_for_deploy(https, templates_dir(tmp_path, "# haproxy {{ haproxy_version | join('.') }}\n"))
    session = SimpleNamespace(facts={L[0]: host("2.2.9-2+deb11u7", "1:2.1.5"), R[0]: host(None, None, at=R)},
                              reasons=dict)
    p = plan_deploy(https, rendered, session, None)  # type: ignore[arg-type]
    diffs = {hp.host: "".join(c.diff or "" for c in hp.changes) for hp in p.hosts}
    assert "+# haproxy 2.2.9" in diffs[L[0]]
    assert "+# haproxy 3.0.11" in diffs[R[0]]  # not installed, version unknown: the newest proven


def snapshot(hosts: Mapping[str, HostFiles]) -> list[tuple[str, str, bytes, int, str, str]]:
    return [(name, f.path, f.content, f.mode, f.group, f.masked_text()) for name, files in hosts.items()
            for f in files.files]


@pytest.mark.parametrize("proven", PROVEN, ids=lambda p: p.name)
def test_the_proven_releases_need_no_other_directive(https: Inventory, proven: Platform) -> None:
    """The shipped templates render the same files for every proven release as for the newest."""
    default = snapshot(render_all(https, SECRETS))
    assert {(name, path) for name, path, *_ in default} >= {(L[0], HAPROXY_CFG), (R[0], KEEPALIVED_CONF)}
    each = {lb.name: {"haproxy": proven.haproxy, "keepalived": proven.keepalived} for lb in https.lbs}
    assert snapshot(render_all(https, SECRETS, versions=each)) == default
    mixed = {L[0]: {"haproxy": proven.haproxy, "keepalived": proven.keepalived}}  # the other: unknown
    assert snapshot(render_all(https, SECRETS, versions=mixed)) == default
