"""Table-driven validation tests: each bad inventory must name the exact key path, and nothing else
may go wrong (no traceback, every problem reported at once)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hakeep.errors import InventoryError, UsageError
from hakeep.inventory.load import load_inventory
from tests.fixtures import base_doc, write

Doc = dict[str, Any]


def at(doc: Doc, dotted: str) -> tuple[Any, str | int]:
    """The container and final key of a dotted path such as ``lb.1.interface``."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node: Any = doc
    for p in parts[:-1]:
        node = node[p]
    return node, parts[-1]


def set_(dotted: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        node, key = at(doc, dotted)
        node[key] = value
    return apply


def del_(dotted: str) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        node, key = at(doc, dotted)
        del node[key]
    return apply


def both(*fns: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        for fn in fns:
            fn(doc)
    return apply


def add_lb(**kw: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        doc["lb"].append({"name": "lb3", "address": "10.220.62.34", "interface": "ens192", "priority": 90,
                          **kw})
    return apply


CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    # (id, mutation, key path, message fragment)
    ("unknown-top", set_("clustr", {}), "clustr", "did you mean 'cluster'"),
    ("unknown-cluster-key", set_("cluster.virtual_router", 5), "cluster.virtual_router",
     "did you mean 'virtual_router_id'"),
    ("unknown-lb-key", set_("lb.1.interfac", "eth0"), "lb[1].interfac", "did you mean 'interface'"),
    ("unknown-server-key", set_("frontend.0.servers.2.prot", 1), "frontend[0].servers[2].prot",
     "did you mean 'port'"),
    ("missing-cluster-name", del_("cluster.name"), "cluster.name", "is required"),
    ("cluster-name-space", set_("cluster.name", "dev ops"), "cluster.name", "forbidden character"),
    ("cluster-name-type", set_("cluster.name", 5), "cluster.name", "must be a string"),
    ("vip-missing", del_("cluster.vip"), "cluster.vip", "is required"),
    ("vip-no-prefix", set_("cluster.vip", "10.220.62.31"), "cluster.vip", "needs a prefix"),
    ("vip-garbage", set_("cluster.vip", "10.220.62/24x"), "cluster.vip", "not an address/prefix"),
    ("vip-ipv6-needs-address6", set_("cluster.vip", "fd00::1/64"), "lb[0].address6", "is required"),
    ("vip-ipv6-no-prefix", set_("cluster.vip", "fd00::1"), "cluster.vip", "e.g. 'fd00::1/64'"),
    ("vip-ipv6-link-local", set_("cluster.vip", "fe80::5/64"), "cluster.vip", "link-local"),
    ("vip-ipv6-mapped", set_("cluster.vip", "::ffff:10.220.62.31/120"), "cluster.vip", "IPv4-mapped"),
    ("vip-ipv6-zone", set_("cluster.vip", "fd00::1%eth0/64"), "cluster.vip", "zone"),
    ("vip-ipv6-anycast", set_("cluster.vip", "fd00::/64"), "cluster.vip", "subnet-router anycast"),
    ("vip-ipv6-multicast", set_("cluster.vip", "ff02::9/64"), "cluster.vip", "cannot be a host address"),
    ("vip-ipv6-outside-lb6", both(set_("cluster.vip", "fd00::1/64"), set_("lb.0.address6", "fd00::32"),
                                   set_("lb.1.address6", "fd01::33")), "lb[1].address6", "outside the VIP's subnet"),
    ("vip-ipv6-equals-lb6", both(set_("cluster.vip", "fd00::32/64"), set_("lb.0.address6", "fd00::0:32"),
                                  set_("lb.1.address6", "fd00::33")), "cluster.vip", "also the address of lb[0]"),
    ("lb-address6-ipv4", set_("lb.0.address6", "10.220.62.40"), "lb[0].address6", "is IPv4"),
    ("lb-address6-bad", set_("lb.0.address6", "fd00::zz"), "lb[0].address6", "not an IP address"),
    ("lb-address6-duplicate", both(set_("lb.0.address6", "fd00::32"), set_("lb.1.address6", "FD00:0::32")),
     "lb[1].address6", "duplicate LB address6"),
    ("lb-address-ipv6", set_("lb.0.address", "fd00::32"), "lb[0].address", "goes in address6"),
    ("frontend-bind-link-local", set_("frontend.0.bind", "fe80::1"), "frontend[0].bind", "link-local"),
    ("server-address-zone", set_("frontend.0.servers.1.address", "fe80::1%eth0"), "frontend[0].servers[1].address",
     "zone"),
    ("server-address-mapped", set_("frontend.0.servers.1.address", "::ffff:10.0.0.1"),
     "frontend[0].servers[1].address", "IPv4-mapped"),
    ("server-address-ipv6-spellings", both(set_("frontend.0.servers.1.address", "fd00:0::11"),
                                           set_("frontend.0.servers.2.address", "FD00::11")),
     "frontend[0].servers[2].address", "duplicate server address:port"),
    ("stats-bind-ipv6-link-local", set_("haproxy", {"stats": {"bind": "fe80::1", "password_env": "X"}}),
     "haproxy.stats.bind", "link-local"),
    ("vip-network-address", set_("cluster.vip", "10.220.62.0/24"), "cluster.vip", "network or broadcast"),
    ("vip-equals-lb", set_("cluster.vip", "10.220.62.33/24"), "cluster.vip", "also the address of lb[1]"),
    ("vip-outside-lb-subnet", set_("lb.1.address", "10.220.63.33"), "lb[1].address",
     "outside the VIP's subnet"),
    ("vip-is-server", set_("frontend.1.servers.0.address", "10.220.62.31"),
     "frontend[1].servers[0].address", "is the VIP"),
    ("vrid-range", set_("cluster.virtual_router_id", 256), "cluster.virtual_router_id", "between 1 and 255"),
    ("vrid-zero", set_("cluster.virtual_router_id", 0), "cluster.virtual_router_id", "between 1 and 255"),
    ("vrid-type", set_("cluster.virtual_router_id", "60"), "cluster.virtual_router_id", "must be an integer"),
    ("vrid-bool", set_("cluster.virtual_router_id", True), "cluster.virtual_router_id", "must be an integer"),
    ("advert-zero", set_("cluster.advert_int", 0), "cluster.advert_int", "greater than 0"),
    ("advert-type", set_("cluster.advert_int", "1s"), "cluster.advert_int", "must be a number"),
    ("auth-both", set_("cluster.auth_pass", "abc"), "cluster.auth_pass", "not both"),
    ("auth-none", del_("cluster.auth_pass_env"), "cluster.auth_pass_env", "is required"),
    ("auth-too-long", both(del_("cluster.auth_pass_env"), set_("cluster.auth_pass", "123456789")),
     "cluster.auth_pass", "truncates"),
    ("auth-quote", both(del_("cluster.auth_pass_env"), set_("cluster.auth_pass", 'ab"c')),
     "cluster.auth_pass", "forbidden character"),
    ("auth-env-name", set_("cluster.auth_pass_env", "HAKEEP-PASS"), "cluster.auth_pass_env",
     "forbidden character"),
    ("lb-name-semicolon", set_("lb.0.name", "lb;reboot"), "lb[0].name", "';'"),
    ("lb-name-dollar", set_("lb.1.name", "lb$(id)"), "lb[1].name", "'$'"),
    ("lb-interface-space", set_("lb.1.interface", "ens 192"), "lb[1].interface", "' '"),
    ("lb-interface-brace", set_("lb.1.interface", "ens}"), "lb[1].interface", "'}'"),
    ("lb-interface-newline", set_("lb.0.interface", "ens192\nvrrp_script x"), "lb[0].interface", "'\\n'"),
    ("lb-interface-too-long", set_("lb.0.interface", "a" * 16), "lb[0].interface", "15 characters"),
    ("lb-interface-missing", del_("lb.1.interface"), "lb[1].interface", "is required"),
    ("lb-address-bad", set_("lb.0.address", "10.220.62.300"), "lb[0].address", "not an IP address"),
    ("lb-address-backtick", set_("lb.0.address", "`id`"), "lb[0].address", "not an IP address"),
    ("lb-address-loopback", set_("lb.0.address", "127.0.0.1"), "lb[0].address", "cannot be a host address"),
    ("lb-priority-range", set_("lb.0.priority", 255), "lb[0].priority", "between 1 and 254"),
    ("lb-priority-zero", set_("lb.1.priority", 0), "lb[1].priority", "between 1 and 254"),
    ("lb-duplicate-name", set_("lb.1.name", "loadbalance-left"), "lb[1].name", "duplicate LB name"),
    ("lb-duplicate-address", set_("lb.1.address", "10.220.62.32"), "lb[1].address", "duplicate LB address"),
    ("lb-only-one", lambda d: d["lb"].pop(), "lb", "at least two"),
    ("lb-none", del_("lb"), "lb", "at least two"),
    ("lb-not-table", set_("lb", ["a", "b"]), "lb[0]", "must be a table"),
    ("lb-ssh-port", set_("lb.0.ssh", {"port": 70000}), "lb[0].ssh.port", "between 1 and 65535"),
    ("lb-ssh-unknown", set_("lb.0.ssh", {"usr": "ops"}), "lb[0].ssh.usr", "did you mean 'user'"),
    ("ssh-user-quote", set_("ssh.user", "ro'ot"), "ssh.user", "forbidden character"),
    ("ssh-sudo-type", set_("ssh.sudo", "yes"), "ssh.sudo", "true or false"),
    ("frontend-none", del_("frontend"), "frontend", "at least one"),
    ("frontend-port-range", set_("frontend.0.port", 0), "frontend[0].port", "between 1 and 65535"),
    ("frontend-port-type", set_("frontend.0.port", 6443.0), "frontend[0].port", "must be an integer"),
    ("frontend-duplicate-port", set_("frontend.1.port", 6443), "frontend[1].port", "duplicate frontend port"),
    ("frontend-duplicate-name", set_("frontend.1.name", "kube-apiserver"), "frontend[1].name",
     "duplicate frontend name"),
    ("frontend-name-hash", set_("frontend.1.name", "ingress#1"), "frontend[1].name", "'#'"),
    ("frontend-check", set_("frontend.0.check", "http"), "frontend[0].check", "not one of"),
    ("frontend-check-typo", set_("frontend.0.check", "htps"), "frontend[0].check", "did you mean 'https'"),
    ("frontend-balance", set_("frontend.0.balance", "round-robin"), "frontend[0].balance",
     "did you mean 'roundrobin'"),
    ("frontend-ca-missing", set_("frontend.0.ca_file", "nope/ca.crt"), "frontend[0].ca_file", "no such file"),
    ("frontend-ca-tcp", set_("frontend.1.ca_file", "ca.crt"), "frontend[1].ca_file", 'only applies'),
    ("frontend-check-path", set_("frontend.0.check_path", "/ready z"), "frontend[0].check_path",
     "forbidden character"),
    ("frontend-bind", set_("frontend.0.bind", "everywhere"), "frontend[0].bind", "not an IP address"),
    ("servers-empty", set_("frontend.1.servers", []), "frontend[1].servers", "is empty"),
    ("servers-missing", del_("frontend.1.servers"), "frontend[1].servers", "is required"),
    ("server-port", set_("frontend.0.servers.2.port", 65536), "frontend[0].servers[2].port",
     "between 1 and 65535"),
    ("server-address", set_("frontend.0.servers.1.address", "master 2"), "frontend[0].servers[1].address",
     "neither an IP address nor a DNS name"),
    ("server-address-semicolon", set_("frontend.0.servers.1.address", "a;b"),
     "frontend[0].servers[1].address", "neither"),
    ("server-name-quote", set_("frontend.0.servers.0.name", "m'1"), "frontend[0].servers[0].name",
     "forbidden character"),
    ("server-duplicate-name", set_("frontend.0.servers.2.name", "devops-master-01"),
     "frontend[0].servers[2].name", "duplicate server name"),
    ("server-duplicate-address", set_("frontend.0.servers.2.address", "10.220.62.21"),
     "frontend[0].servers[2].address", "duplicate server address:port"),
    ("haproxy-maxconn", set_("haproxy", {"maxconn": 0}), "haproxy.maxconn", "between 1 and 1000000"),
    ("haproxy-unknown", set_("haproxy", {"timeout_clinet": 60}), "haproxy.timeout_clinet",
     "did you mean 'timeout_client'"),
    ("stats-password-both", set_("haproxy", {"stats": {"password": "a", "password_env": "B"}}),
     "haproxy.stats.password_env", "exactly one"),
    ("stats-port-clash", set_("haproxy", {"stats": {"port": 6443, "password_env": "B"}}),
     "haproxy.stats.port", "already the port of frontend[0]"),
    ("priority-spread", both(set_("lb.0.priority", 254), set_("lb.1.priority", 1)), "lb",
     "spread"),
    ("check-weight-range", set_("cluster.check_weight", 0), "cluster.check_weight", "between 1 and 253"),
    ("keep-releases", set_("cluster.keep_releases", 0), "cluster.keep_releases", "between 1 and 1000"),
    ("vrrp-instance", set_("cluster.vrrp_instance", "VI 1"), "cluster.vrrp_instance", "letters, digits"),
    ("preempt-type", set_("cluster.preempt", "no"), "cluster.preempt", "must be true or false"),
    ("default-server-key", set_("haproxy", {"default_server": {"inter": 5}}), "haproxy.default_server.inter",
     "did you mean 'inter_ms'"),
    ("default-server-fall", set_("haproxy", {"default_server": {"fall": 0}}), "haproxy.default_server.fall", "1"),
    ("default-server-inter", set_("haproxy", {"default_server": {"inter_ms": 50}}),
     "haproxy.default_server.inter_ms", "100"),
    ("default-server-slowstart", set_("haproxy", {"default_server": {"slowstart_s": 3601}}),
     "haproxy.default_server.slowstart_s", "3600"),
    ("check-port", set_("frontend.0.check_port", 70000), "frontend[0].check_port", "65535"),
    ("preempt-delay-range", set_("cluster.preempt_delay", 1001), "cluster.preempt_delay", "1000"),
    ("preempt-delay-type", set_("cluster.preempt_delay", 2.5), "cluster.preempt_delay", "must be an integer"),
    ("preempt-delay-without-preempt", both(set_("cluster.preempt", False), set_("cluster.preempt_delay", 30)),
     "cluster.preempt_delay", "needs preempt = true"),
    ("hash-type-without-source", set_("frontend.0.hash_type", "consistent"), "frontend[0].hash_type",
     'only applies to balance = "source"'),
    ("hash-type-choice", both(set_("frontend.0.balance", "source"), set_("frontend.0.hash_type", "ring")),
     "frontend[0].hash_type", "consistent"),
    ("stick-with-source", both(set_("frontend.0.balance", "source"), set_("frontend.0.stick", "source")),
     "frontend[0].stick", "already sends a client to the same server"),
    ("stick-choice", set_("frontend.0.stick", "cookie"), "frontend[0].stick", "source"),
    ("stick-expire-without-stick", set_("frontend.0.stick_expire_s", 60), "frontend[0].stick_expire_s",
     'only applies to stick = "source"'),
    ("stick-expire-range", both(set_("frontend.0.stick", "source"), set_("frontend.0.stick_expire_s", 2_073_601)),
     "frontend[0].stick_expire_s", "2073600"),
    ("stick-size-range", both(set_("frontend.0.stick", "source"), set_("frontend.0.stick_size", 0)),
     "frontend[0].stick_size", "between 1"),
    ("third-lb-outside", add_lb(address="192.168.1.5"), "lb[2].address", "outside the VIP's subnet"),
]


@pytest.mark.parametrize(("mutate", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_names_the_key(tmp_path: Path, mutate: Callable[[Doc], None], path: str,
                                     fragment: str) -> None:
    doc = base_doc()
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    mutate(doc)
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, doc))
    lines = str(info.value).splitlines()
    wanted = [line for line in lines if line.startswith(f"inventory.toml: {path}: ")]
    assert wanted, f"no problem at {path!r}; got:\n" + "\n".join(lines)
    assert any(fragment in line for line in wanted), "\n".join(wanted)


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_base_inventory_is_valid(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, base_doc()))
    assert [lb.name for lb in inv.lbs] == ["loadbalance-left", "loadbalance-right"]
    assert inv.frontends[0].backend_name == "be_kube-apiserver"
    assert inv.check_weight == 2


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    doc = base_doc()
    doc["lb"][0]["priority"] = 999
    doc["lb"][1]["interface"] = "bad name"
    doc["frontend"][0]["servers"][2]["port"] = -1
    doc["cluster"]["virtual_router_id"] = 300
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, doc))
    paths = [p.path for p in info.value.problems]
    assert paths == ["cluster.virtual_router_id", "lb[0].priority", "lb[1].interface",
                     "frontend[0].servers[2].port"]


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[cluster]\nname = "x"\nvip = \n')
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith("inventory.toml: line 3, column 7: TOML syntax error")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        load_inventory(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match="is a directory"):
        load_inventory(tmp_path)
    bad = write(tmp_path, "x")
    bad.write_bytes(b"\xff\xfe[cluster]")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(bad)


def test_relative_paths_resolve_against_the_inventory_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    doc = base_doc()
    doc["ssh"]["config"] = "ssh_config"
    doc["frontend"][0]["ca_file"] = "ca.crt"
    inv = load_inventory(write(tmp_path / "sub", doc))
    assert inv.lbs[0].ssh.config == tmp_path / "sub" / "ssh_config"
    assert inv.frontends[0].ca_file == tmp_path / "sub" / "ca.crt"


def test_lb_ssh_overrides_defaults(tmp_path: Path) -> None:
    doc = base_doc()
    doc["ssh"] = {"user": "root", "port": 22, "sudo": False}
    doc["lb"][1]["ssh"] = {"user": "ops", "sudo": True}
    inv = load_inventory(write(tmp_path, doc))
    assert (inv.lbs[0].ssh.user, inv.lbs[0].ssh.sudo) == ("root", False)
    assert (inv.lbs[1].ssh.user, inv.lbs[1].ssh.port, inv.lbs[1].ssh.sudo) == ("ops", 22, True)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakeep", *args], capture_output=True, text=True,
                          env=env, check=False)


@pytest.mark.parametrize(("mutate", "path"), [
    (set_("lb.1.interface", "ens 192"), "lb[1].interface"),
    (set_("frontend.0.servers.2.port", 0), "frontend[0].servers[2].port"),
    (set_("clustr", {}), "clustr"),
    (del_("cluster.vip"), "cluster.vip"),
])
def test_cli_validate_exit_2_without_traceback(tmp_path: Path, mutate: Callable[[Doc], None],
                                                path: str) -> None:
    doc = base_doc()
    mutate(doc)
    proc = run_cli("validate", str(write(tmp_path, doc)))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert any(line.startswith(f"inventory.toml: {path}: ") for line in proc.stderr.splitlines()), proc.stderr


def test_cli_validate_syntax_error_and_missing_file(tmp_path: Path) -> None:
    proc = run_cli("validate", str(write(tmp_path, "[cluster\n")))
    assert proc.returncode == 2
    assert "inventory.toml: line 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("validate", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_validate_ok_with_warnings() -> None:
    from tests.fixtures import EXAMPLE
    proc = run_cli("validate", str(EXAMPLE), "--offline")
    assert proc.returncode == 0, proc.stderr
    assert "valid: cluster devops, 2 LBs, 2 frontends" in proc.stdout
    assert 'warning: inventory.example.toml: frontend[0].check: "tcp" keeps a hung' in proc.stderr


def test_render_needs_the_password_env_and_validate_offline_does_not(tmp_path: Path) -> None:
    path = write(tmp_path, base_doc())
    env = {"PATH": "/usr/bin:/bin"}
    assert run_cli("validate", str(path), "--offline", env=env).returncode == 0
    assert run_cli("validate", str(path), env=env).returncode == 2
    proc = run_cli("render", str(path), "-o", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2
    assert "cluster.auth_pass_env: environment variable HAKEEP_VRRP_PASS is not set" in proc.stderr
    assert not (tmp_path / "out").exists()
