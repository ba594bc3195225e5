"""``hakeep import`` without hosts (#17): the recipe's configs and variants of them -> the inventory
it writes, compared with golden files (tests/data/takeover/golden/; HAKEEP_UPDATE_GOLDEN=1 rewrites
them, for review); each imported inventory is loaded and validated as a user's would be; inputs it
cannot read are refused naming host, file and line. The lab test (test_import_lab.py) reads a real
hand-made pair and takes it over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakeep.errors import UsageError
from hakeep.inventory.load import load_inventory
from hakeep.render.secrets import resolve_secrets
from hakeep.takeover import haproxy_cfg, keepalived_conf
from hakeep.takeover.assemble import Imported, LiveLB, build
from hakeep.takeover.mapping import HostValues, read_haproxy, read_keepalived
from hakeep.takeover.toml_out import render
from tests.takeover_cases import CASES, HAPROXY, KEEPALIVED, LBS, REFUSED, Case, reader, recipe

GOLDEN = Path(__file__).resolve().parent / "data" / "takeover" / "golden"


def live(name: str, address: str, files: dict[str, str], holds: bool) -> LiveLB:
    values = HostValues(name)
    read_keepalived(name, keepalived_conf.parse(files[KEEPALIVED], KEEPALIVED, reader(files), host=name), values)
    read_haproxy(name, haproxy_cfg.parse(files[HAPROXY], HAPROXY, host=name), values)
    return LiveLB(name, address, values, (("ens192", f"{address}/24"),) + ((("ens192", "10.220.62.31/24"),)
                                                                            if holds else ()), holds)


def imported(case: Case) -> tuple[Imported, str]:
    hosts = case.hosts()
    lbs = [live(name, address, hosts[name], name == case.holder) for name, address, _ in LBS]
    result = build(lbs, name=case.cluster_name, ssh={"user": "root"}, include_secrets=case.include_secrets)
    text = render(result, sources=[f"{n} ({a})" for n, a, _ in LBS], when="2026-11-28T12:00Z",
                  secrets_written=case.include_secrets and bool(result.secrets))
    return result, text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_pair_gives_its_golden_inventory(case: Case, tmp_path: Path) -> None:
    result, text = imported(case)
    golden = GOLDEN / f"{case.name}.toml"
    if os.environ.get("HAKEEP_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), f"{case.name}: the import differs from {golden} (review, then " \
                                       "HAKEEP_UPDATE_GOLDEN=1 to accept)"
    path = tmp_path / "imported.toml"
    path.write_text(text)
    inv = load_inventory(path)  # what import writes is a usable inventory
    secrets = resolve_secrets(inv, {"HAKEEP_VRRP_PASS": result.secrets.get("vrrp", "x"),
                                    "HAKEEP_STATS_PASS": result.secrets.get("stats", "y")})
    assert secrets.auth_pass == result.secrets.get("vrrp", "x")
    if not case.include_secrets:
        for secret in result.secrets.values():
            assert secret not in text, f"{case.name}: a live password was written"


def test_the_recipe_as_the_user_reads_it() -> None:
    result, text = imported(CASES[0])
    doc = result.doc
    assert doc["cluster"] == {"name": "haproxy", "vip": "10.220.62.31/24", "virtual_router_id": 60, "advert_int": 1,
                              "auth_pass_env": "HAKEEP_VRRP_PASS"}
    assert [(lb["name"], lb["interface"], lb["priority"]) for lb in doc["lb"]] == [
        ("loadbalance-left", "ens192", 100), ("loadbalance-right", "ens192", 100)]
    assert [fe["name"] for fe in doc["frontend"]] == ["kube-apiserver", "in-ingress-nginx-30080"]
    assert result.disagreements == ()  # the recipe's two files differ only per host
    assert result.unmapped == ()  # every statement of the recipe is carried or written hakeep's way
    assert "1111" not in text
    assert result.secrets == {"vrrp": "1111"}
    assert any("state: hakeep starts every LB as BACKUP" in r for r in result.replaced)
    assert any("vrrp_script: hakeep checks haproxy with its own script" in r for r in result.replaced)


def test_disagreements_and_unmapped_statements_are_named_with_host_and_line() -> None:
    by_name = {c.name: c for c in CASES}
    result, _ = imported(by_name["the-lbs-disagree"])
    assert "loadbalance-right differs from loadbalance-left: the VRRP passwords differ (taken: loadbalance-left's)" \
        in result.disagreements
    assert "loadbalance-right differs from loadbalance-left: advert_int 2 (taken: 1)" in result.disagreements
    assert any("frontend kube-apiserver: balance leastconn (taken: roundrobin)" in d for d in result.disagreements)
    assert any("frontend kube-apiserver: servers" in d for d in result.disagreements)
    result, text = imported(by_name["things-hakeep-does-not-carry"])
    lines = "\n".join(result.unmapped)
    assert "loadbalance-left, loadbalance-right: /etc/keepalived/keepalived.conf:" in lines
    for what in ("nopreempt: no equivalent", "notify_master: no equivalent", "vrrp_sync_group: no equivalent",
                 "acl: in frontend kube-apiserver", "tcp-request connection: in frontend kube-apiserver",
                 "mode: in frontend web: hakeep proxies TCP only"):
        assert what in lines, what
    assert "/usr/local/bin/paged.sh" not in text  # statements are named by keyword, never by their values
    assert [fe["name"] for fe in result.doc["frontend"]] == ["kube-apiserver", "in-ingress-nginx-30080"]


@pytest.mark.parametrize(("change", "message"), REFUSED, ids=[m.split(": ", 1)[-1][:40] for _, m in REFUSED])
def test_what_it_cannot_read_is_refused_naming_host_file_and_line(change: object, message: str) -> None:
    files = {"loadbalance-left": recipe("left")}
    change("left", files["loadbalance-left"])  # type: ignore[operator]
    with pytest.raises(UsageError) as info:
        live("loadbalance-left", "10.220.62.32", files["loadbalance-left"], True)
    assert info.value.message.startswith("loadbalance-left:"), info.value.message
    assert message in info.value.message, info.value.message


def test_includes_nested_too_deep_are_refused() -> None:
    files = {KEEPALIVED: "include /etc/keepalived/loop.conf\n", "/etc/keepalived/loop.conf": "include loop.conf\n"}
    with pytest.raises(UsageError, match="includes nested too deep"):
        keepalived_conf.parse(files[KEEPALIVED], KEEPALIVED, reader(files), host="lb1")


def test_haproxy_words_are_split_as_haproxy_splits_them() -> None:
    assert haproxy_cfg.words(r'''a "b c" 'd "e' f\ g "h\"i" # j''', "x:1") == ["a", "b c", 'd "e', "f g", 'h"i']
    assert haproxy_cfg.words('x ""', "x:1") == ["x", ""]
    assert keepalived_conf.parse('a "b c" ! d\nblk {\n  e # f\n}\n', "k").children is not None


def test_the_command_refuses_bad_options_before_connecting(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hakeep", "import", *args], capture_output=True, text=True,
                              timeout=60, check=False)

    taken = tmp_path / "taken.toml"
    taken.write_text("")
    for args, message in ((["--lb", "lb1=10.0.0.1"], "--lb: name at least two LBs"),
                          (["--lb", "lb1=10.0.0.1", "--lb", "lb2=10.0.0.300"], "'10.0.0.300' is not an IPv4 address"),
                          (["--lb", "lb 1=10.0.0.1", "--lb", "lb2=10.0.0.2"], "'lb 1' is not a usable LB name"),
                          (["--lb", "lb1=10.0.0.1", "--lb", "lb1=10.0.0.2"], "a name and an address of its own"),
                          (["--lb", "lb1=10.0.0.1", "--lb", "lb2=10.0.0.2", "-o", str(taken)],
                           "exists; not overwriting")):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_ssh_paths_are_written_relative_to_the_inventory(tmp_path: Path) -> None:
    import argparse

    from hakeep.cli.commands.import_ import _ssh_table

    (tmp_path / "keys").mkdir()
    (tmp_path / "out").mkdir()
    args = argparse.Namespace(output=tmp_path / "out" / "inv.toml", user="ops", port=2222, sudo=True,
                              identity_file=tmp_path / "keys" / "id", ssh_config=tmp_path / "ssh_config")
    assert _ssh_table(args) == {"user": "ops", "port": 2222, "identity_file": "../keys/id", "config": "../ssh_config",
                                "sudo": True}


def test_a_kept_instance_name_is_what_keepalived_gets(tmp_path: Path) -> None:
    """An imported pair keeps its instance's name (a renamed one is a new instance: the VIP would move)."""
    from hakeep.render.engine import render_all
    from hakeep.render.files import Secrets

    case = next(c for c in CASES if c.name == "keepalived-sample-instance-name")
    result, text = imported(case)
    assert result.doc["cluster"]["name"] == "VI_1"
    assert result.doc["cluster"]["vrrp_instance"] == "VI_1"
    path = tmp_path / "inv.toml"
    path.write_text(text)
    inv = load_inventory(path)
    conf = render_all(inv, Secrets(auth_pass="1111"))["loadbalance-left"].file(KEEPALIVED).content.decode()
    assert "vrrp_instance VI_1 {" in conf
    recipe_inv = tmp_path / "recipe.toml"
    recipe_inv.write_text(imported(CASES[0])[1])
    files = render_all(load_inventory(recipe_inv), Secrets(auth_pass="1111"))["loadbalance-left"]
    assert "vrrp_instance haproxy-vip {" in files.file(KEEPALIVED).content.decode()
