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
from hakeep.takeover.haproxy_map import read_haproxy
from hakeep.takeover.mapping import HostValues, read_keepalived
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
    assert result.doc["cluster"]["preempt"] is False  # carried: keepalived's nopreempt
    for what in ("notify_master: no equivalent", "vrrp_sync_group: no equivalent",
                 "acl: in frontend kube-apiserver", "tcp-request connection: in frontend kube-apiserver",
                 "mode: for frontend web: hakeep proxies TCP only (not carried)"):
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


def test_words_are_split_as_the_daemons_split_them() -> None:
    assert haproxy_cfg.words(r'''a "b c" 'd "e' f\ g "h\"i" # j''', "x:1") == ["a", "b c", 'd "e', "f g", 'h"i']
    assert haproxy_cfg.words('x ""', "x:1") == ["x", ""]
    root = keepalived_conf.parse('a "b c" ! d\nblk {\n  e p\\#q # f\n}\n', "k")
    assert [(n.keyword, n.args) for n in root.children or ()] == [("a", ("b c",)), ("blk", ())]
    assert [(n.keyword, n.args) for n in root.children[1].children or ()] == [("e", ("p#q",))]  # type: ignore[index]


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


def unnamed(node: keepalived_conf.Node, seen: set[str], carried: set[str], *, noted: bool) -> list[str]:
    """The statements under ``node`` neither carried nor named, nor inside a block named as a whole."""
    out = []
    for child in node.children or ():
        here = child.where in seen
        if not (here or noted):
            out.append(f"{child.where}: {child.keyword}")
        out += unnamed(child, seen, carried, noted=noted or (here and child.where not in carried))
    return out


def covered(values: HostValues) -> set[str]:
    return set(values.carried) | {n.where for n in (*values.replaced, *values.unmapped, *values.warnings)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_statement_is_carried_or_named(case: Case) -> None:
    """Nothing is dropped silently: each statement of both files (an include's too) is carried into
    the inventory, or named in a note, or inside a block or section named as a whole."""
    for name, address, _ in LBS:
        files = case.hosts()[name]
        values = live(name, address, files, True).values
        seen = covered(values)
        missing = unnamed(keepalived_conf.parse(files[KEEPALIVED], KEEPALIVED, reader(files), host=name), seen,
                          set(values.carried), noted=False)
        for sec in haproxy_cfg.parse(files[HAPROXY], HAPROXY, host=name):
            whole = sec.where in seen
            missing += [f"{st.where}: {' '.join(st.words[:2])}" for st in sec.statements
                        if st.where not in seen and not whole]
        assert missing == [], f"{case.name}: {name}: dropped without a note"


def test_no_secret_in_a_refusal() -> None:
    files = recipe("left")
    files[KEEPALIVED] = files[KEEPALIVED].replace("    auth_pass 1111\n", "    auth_pass s3cr3t }\n")
    with pytest.raises(UsageError) as info:
        live("loadbalance-left", "10.220.62.32", files, True)
    assert "s3cr3t" not in info.value.message + (info.value.hint or "")
    files = recipe("left")
    files[HAPROXY] = files[HAPROXY].replace("    maxconn     4000", '    maxconn "${SECRET}x" s3cr3t')
    with pytest.raises(UsageError) as info:
        live("loadbalance-left", "10.220.62.32", files, True)
    assert "s3cr3t" not in info.value.message


@pytest.mark.parametrize(("change", "field", "want", "remark"), [
    (("keepalived", "auth_pass 1111", "auth_pass 123456789abc"), ("cluster", "auth_pass_env"), "HAKEEP_VRRP_PASS",
     "longer than 8 characters"),
    (("keepalived", "priority 100", "priority 255"), ("lb", "priority"), 254, "hakeep's range ends at 254"),
    (("keepalived", "state BACKUP\n  priority 100\n", "state MASTER\n"), ("lb", "priority"), 254, "priority 255"),
    (("keepalived", "10.220.62.31/24 ", "10.220.62.31/32 "), ("cluster", "vip"), "10.220.62.31/24", "is a /32"),
    (("haproxy", "defaults\n", "defaults\n  mode http\n"), ("frontend", "count"), 1, None),  # the other: mode tcp
    (("haproxy", "defaults\n", "defaults\n  balance leastconn\n"), ("frontend1", "balance"), "leastconn", None),
    (("haproxy", "defaults\n", "defaults\n  option httpchk GET /livez\n"), ("frontend", "check"), "tcp",
     "checks plain HTTP"),
    (("haproxy", "    option tcp-check\n", "    option httpchk\n    http-check connect ssl\n"
                                          "    http-check expect status 401\n"), ("frontend", "check"), "https",
     "expects status 200"),
    (("haproxy", "10.220.62.21:6443 check", "10.220.62.21:6443 check send-proxy"), ("frontend", "check"), "tcp",
     "send-proxy: hakeep's servers have no such option"),
    (("haproxy", "  bind *:6443", "  bind 10.220.62.32:6443"), ("frontend", "bind"), "10.220.62.32",
     "binds loadbalance-left's own address"),
    (("keepalived", "priority 100\n", "priority 100\n  preempt_delay 30\n"), ("cluster", "preempt_delay"), 30, None),
    (("keepalived", "priority 100\n", "priority 100\n  nopreempt\n"), ("cluster", "preempt"), False, None),
    (("keepalived", "priority 100\n", "priority 100\n  nopreempt\n  preempt\n"), ("cluster", "preempt"), None,
     None),  # the old keyword after it clears it: the pair preempts
    (("keepalived", "state BACKUP\n  priority 100\n", "state MASTER\n  priority 100\n  nopreempt\n"),
     ("cluster", "preempt"), None, None),  # keepalived ignores nopreempt with state MASTER
    (("keepalived", "priority 100\n", "priority 100\n  preempt_delay 2.5\n"), ("cluster", "preempt_delay"), 3,
     None),
    (("haproxy", ":6443 check", ":6443 check port 6444"), ("frontend", "check_port"), 6444, None),
    (("haproxy", "10.220.62.21:6443 check", "10.220.62.21:6443 check port 6444"), ("frontend", "check_port"), None,
     None),  # one server names another check port: not carried (named)
    (("keepalived", "priority 100\n", "priority 100\n  preempt_delay 1500\n"), ("cluster", "preempt_delay"),
     None, None),  # keepalived refuses it and runs with none
])
def test_what_keepalived_and_haproxy_would_do_is_what_is_imported(change: tuple[str, str, str],
                                                                 field: tuple[str, str], want: object,
                                                                 remark: str | None, tmp_path: Path) -> None:
    which, old, new = change
    path = KEEPALIVED if which == "keepalived" else HAPROXY
    result, text = imported(Case("x", lambda side, files: files.__setitem__(path, files[path].replace(old, new))))
    table, key = field
    doc = result.doc
    fe = doc["frontend"][1 if table == "frontend1" else 0] if doc["frontend"] else {}
    got = (len(doc["frontend"]) if key == "count" else fe.get(key, "roundrobin" if key == "balance" else None)) \
        if table.startswith("frontend") else (doc["lb"][0][key] if table == "lb" else doc["cluster"].get(key))
    assert got == want, (change, got)
    if remark is not None:
        assert any(remark in r for r in result.remarks), result.remarks
    path_ = tmp_path / "inv.toml"
    path_.write_text(text)
    if doc["frontend"]:
        load_inventory(path_)  # still a usable inventory
