"""The real haproxy and keepalived accept every config hakeep renders, with no warning.

The example inventory, variants exercising every option, and many generated valid inventories
(hypothesis) are rendered and checked by ``haproxy -c`` and ``keepalived -t`` (see tests/sandbox.py):
this machine's, and each lab release's own (Debian 11, 12, 13: haproxy 2.2, 2.6, 3.0, keepalived
2.1, 2.2, 2.3), chrooted, with the files rendered for that release's versions.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakeep.hosts.versions import version_key
from hakeep.inventory.load import build_inventory, load_inventory
from hakeep.inventory.model import Inventory
from hakeep.layout import PROVEN
from hakeep.render.engine import render_all
from hakeep.render.files import HostFiles, Secrets
from tests import sandbox
from tests.fixtures import EXAMPLE, base_doc, load

reason = sandbox.available()
if reason and os.environ.get("CI") == "true":
    raise RuntimeError(f"real-binary tests cannot run under CI: {reason}")
pytestmark = [pytest.mark.binaries, pytest.mark.skipif(reason is not None, reason=reason or "")]
# "machine": this machine's binaries; then every lab release's own (Debian 11, 12, 13), chrooted.
# A release's validators are built (or found cached) by the lab only when a test asks for them.
TARGETS = ["machine", *sandbox.RELEASE_NAMES]
target = pytest.mark.parametrize("name", TARGETS)


def get(name: str) -> sandbox.Release | None:
    if name == "machine":
        return None
    found, why = sandbox.releases()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the releases' validators cannot be had under CI: {why}", pytrace=False)
        pytest.skip(why)
    return found[name]


def versions_of(inv: Inventory, release: sandbox.Release | None) -> dict[str, dict[str, tuple[int, ...]]] | None:
    """Every LB of ``inv`` on ``release`` (None: unknown versions, rendered for the newest proven)."""
    if release is None:
        return None
    keys = {pkg: version_key(getattr(release, pkg)) for pkg in ("haproxy", "keepalived")}
    return {lb.name: {k: v for k, v in keys.items() if v} for lb in inv.lbs}

SECRETS = Secrets(auth_pass="s3cr.t", stats_password="st4ts-pw")
CA_PEM = (Path(__file__).parent / "data" / "ca.crt")


def assert_clean(host: HostFiles, release: sandbox.Release | None = None) -> None:
    where = release.name if release else "this machine"
    result = sandbox.check_host(host, release.root if release else None)
    assert result.haproxy_rc == 0, f"{where}: {result.haproxy_output}"
    assert result.haproxy_output.strip() == "Configuration file is valid", (
        f"{where}: haproxy -c printed more than its OK line:\n" + result.haproxy_output)
    assert result.keepalived_rc == 0, f"{where}: {result.keepalived_output}"
    assert "WARNING" not in result.keepalived_output, f"{where}: {result.keepalived_output}"
    assert result.keepalived_output.strip() == "", f"{where}: keepalived -t printed:\n{result.keepalived_output}"


def test_the_lab_releases_are_the_proven_ones() -> None:
    """README's table and hakeep.layout.PROVEN name what these tests check: keep them in step."""
    releases = [get(name) for name in sandbox.RELEASE_NAMES]
    built = sorted(tuple(version_key(r.haproxy) or ())[:2] + tuple(version_key(r.keepalived) or ())[:2]
                   for r in releases if r is not None)
    assert built == sorted(p.haproxy[:2] + p.keepalived[:2] for p in PROVEN)


@target
def test_example_inventory_passes_both_binaries(name: str) -> None:
    release = get(name)
    inv = load_inventory(EXAMPLE)
    hosts = render_all(inv, Secrets(auth_pass="1111"), versions=versions_of(inv, release))
    assert set(hosts) == {"loadbalance-left", "loadbalance-right"}
    for host in hosts.values():
        assert_clean(host, release)


@target
def test_every_option_passes_both_binaries(tmp_path: Path, name: str) -> None:
    release = get(name)
    doc = base_doc()
    (tmp_path / "ca.crt").write_bytes(CA_PEM.read_bytes())
    doc["frontend"][0].update(check="https", ca_file="ca.crt", check_path="/livez", balance="leastconn",
                            stick="source", stick_expire_s=2_073_600, stick_size=100_000_000)
    doc["frontend"][1].update(bind="vip", balance="source", check_port=10254, hash_type="map-based")
    doc["frontend"].append({"name": "one", "port": 8443, "bind": "10.220.62.32", "check": "https",
                            "servers": [{"name": "solo", "address": "localhost"}]})
    doc["haproxy"] = {"maxconn": 20000, "timeout_client": 3600, "timeout_server": 3600,
                      "timeout_connect": 3, "timeout_tunnel": 7200,
                      "stats": {"port": 8404, "user": "ops", "password_env": "STATS"},
                      "default_server": {"inter_ms": 2000, "fastinter_ms": 250, "downinter_ms": 5000, "rise": 5,
                                         "fall": 3, "slowstart_s": 0, "maxconn": 1000},
                      "prometheus": {"bind": "*", "port": 9101}}
    doc["keepalived"] = {"prometheus": {"textfile_dir": "/var/lib/node_exporter/textfile_collector"}}
    doc["lb"][0]["priority"] = 150
    doc["cluster"]["advert_int"] = 2
    doc["cluster"]["preempt_delay"] = 30
    path = tmp_path / "inventory.toml"
    from tests.tomlgen import dumps
    path.write_text(dumps(doc))
    inv = load_inventory(path)
    assert inv.needs_nonlocal_bind(4)
    hosts = render_all(inv, SECRETS, versions=versions_of(inv, release))
    cfg = hosts["loadbalance-left"].file("/etc/haproxy/haproxy.cfg").content.decode()
    assert "verify required ca-file /etc/haproxy/hakeep/kube-apiserver-ca.crt" in cfg
    assert "http-check send meth GET uri /livez" in cfg
    assert "bind 10.220.62.31:30080" in cfg
    assert "stats auth ops:st4ts-pw" in cfg
    assert ("default-server inter 2000ms fastinter 250ms downinter 5000ms rise 5 fall 3 maxconn 1000 maxqueue 256 "
            "weight 100\n") in cfg  # slowstart 0: none
    assert "10.220.62.21:30080 check port 10254\n" in cfg
    assert "    stick-table type ip size 100000000 expire 2073600s\n    stick on src\n" in cfg
    assert "    balance source\n" in cfg
    assert "    hash-type map-based\n" in cfg
    assert "    bind *:9101\n" in cfg
    assert "    http-request use-service prometheus-exporter if { path /metrics }\n" in cfg
    conf = hosts["loadbalance-left"].file("/etc/keepalived/keepalived.conf").content.decode()
    assert "    preempt_delay 30\n" in conf
    for host in hosts.values():
        assert_clean(host, release)


@target
def test_two_vips_pass_both_binaries(tmp_path: Path, name: str) -> None:
    from tests.test_vips import two_vips

    release = get(name)
    doc = two_vips()
    doc["keepalived"] = {"prometheus": {}}
    inv = load(tmp_path, doc)
    hosts = render_all(inv, SECRETS, versions=versions_of(inv, release))
    for host in hosts.values():
        conf = host.file("/etc/keepalived/keepalived.conf").content.decode()
        assert conf.count("vrrp_instance ") == 2
        assert_clean(host, release)


@target
def test_dual_stack_passes_both_binaries(tmp_path: Path, name: str) -> None:
    """An IPv6 VIP beside an IPv4 one (a VRRPv3 instance with no authentication), IPv6 servers, a
    frontend on the IPv6 VIP with an IPv6 stick table, "*" on both families, pages on IPv6."""
    from tests.test_ipv6 import dual_stack

    release = get(name)
    doc = dual_stack()
    doc["haproxy"] = {"stats": {"bind": "::1", "password_env": "STATS"}, "prometheus": {"bind": "fd00:62::32"}}
    doc["cluster"]["preempt_delay"] = 5
    inv = load(tmp_path, doc)
    hosts = render_all(inv, SECRETS, versions=versions_of(inv, release))
    for host in hosts.values():
        conf = host.file("/etc/keepalived/keepalived.conf").content.decode()
        assert conf.count("vrrp_instance ") == 2
        assert conf.count("    version 3\n") == 1
        cfg = host.file("/etc/haproxy/haproxy.cfg").content.decode()
        assert "    bind [::]:6443 v4v6\n" in cfg
        assert "    bind [::1]:8404\n" in cfg
        assert "stick-table type ipv6" in cfg
        assert_clean(host, release)


@target
def test_nopreempt_passes_keepalived(tmp_path: Path, name: str) -> None:
    release = get(name)
    doc = base_doc()
    doc["cluster"]["preempt"] = False
    path = tmp_path / "inventory.toml"
    from tests.tomlgen import dumps
    path.write_text(dumps(doc))
    hosts = render_all(load_inventory(path), SECRETS, versions=versions_of(load_inventory(path), release))
    for host in hosts.values():
        conf = host.file("/etc/keepalived/keepalived.conf").content.decode()
        assert "    state BACKUP\n" in conf
        assert "    nopreempt\n" in conf
        assert "preempt_delay" not in conf
        assert_clean(host, release)


@target
def test_a_broken_template_is_caught_by_haproxy(tmp_path: Path, name: str) -> None:
    """The check itself can fail: a config with an unknown keyword is rejected."""
    release = get(name)
    inv = load_inventory(EXAMPLE)
    (tmp_path / "haproxy.cfg.j2").write_text("global\n    no-such-keyword 1\n")
    host = render_all(inv, SECRETS, templates=tmp_path)["loadbalance-left"]
    result = sandbox.check_host(host, release.root if release else None)
    assert result.haproxy_rc != 0
    assert "no-such-keyword" in result.haproxy_output


def test_the_recipes_keepalived_defects_are_caught(tmp_path: Path) -> None:
    """keepalived 2.2 rejects the recipe's `vrrp_garp_interval 0` (why our template drops it)."""
    inv = load_inventory(EXAMPLE)
    good = (Path(__file__).parent.parent / "templates" / "keepalived.conf.j2").read_text()
    (tmp_path / "keepalived.conf.j2").write_text(
        good.replace("    vrrp_skip_check_adv_addr\n", "    vrrp_garp_interval 0\n    vrrp_gna_interval 0\n"))
    result = sandbox.check_host(render_all(inv, SECRETS, templates=tmp_path)["loadbalance-left"])
    assert result.keepalived_rc != 0, result.keepalived_output


# ---- generated inventories -------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)
ifaces = st.sampled_from(["eth0", "ens192", "enp0s3", "bond0", "br-lan", "eth1.100"])


@st.composite
def inventories(draw: Any) -> dict[str, Any]:
    prefix = draw(st.integers(min_value=16, max_value=29))
    base = draw(st.integers(min_value=0x0A000000, max_value=0x0AFFFFFF))
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    n_lbs = draw(st.integers(min_value=2, max_value=4))
    hosts = list(net.hosts())
    picks = draw(st.lists(st.integers(min_value=0, max_value=len(hosts) - 1), min_size=n_lbs + 1,
                          max_size=n_lbs + 1, unique=True))
    vip, *lb_addrs = (hosts[i] for i in picks)
    lb_names = draw(st.lists(names, min_size=n_lbs, max_size=n_lbs, unique=True))
    iface = draw(ifaces)
    # a spread above 251 is refused by validation (the weight could not exceed it)
    low = draw(st.integers(min_value=1, max_value=254))
    prios = draw(st.lists(st.integers(min_value=low, max_value=min(254, low + 251)), min_size=n_lbs, max_size=n_lbs))
    fe_count = draw(st.integers(min_value=1, max_value=3))
    ports = draw(st.lists(st.integers(min_value=1024, max_value=65000), min_size=fe_count,
                          max_size=fe_count, unique=True))
    frontends = []
    for i, port in enumerate(ports):
        n_srv = draw(st.integers(min_value=1, max_value=4))
        balance = draw(st.sampled_from(["roundrobin", "leastconn", "source", "first", "random"]))
        frontends.append({
            "name": f"fe{i}-{draw(names)}", "port": port,
            "check": draw(st.sampled_from(["tcp", "https"])),
            "balance": balance,
            "servers": [{"name": f"s{j}", "address": f"192.0.2.{j + 1}", "port": port + 1}
                        for j in range(n_srv)],
        })
        if balance == "source":
            frontends[-1]["hash_type"] = draw(st.sampled_from(["consistent", "map-based"]))
        elif draw(st.booleans()):
            frontends[-1].update(stick="source", stick_expire_s=draw(st.integers(min_value=1, max_value=2_073_600)),
                                 stick_size=draw(st.integers(min_value=1, max_value=100_000_000)))
    return {
        "cluster": {"name": draw(names), "vip": f"{vip}/{prefix}",
                    "virtual_router_id": draw(st.integers(min_value=1, max_value=255)),
                    "advert_int": draw(st.integers(min_value=1, max_value=10)),
                    "auth_pass_env": "P"},
        "lb": [{"name": n, "address": str(a), "interface": iface, "priority": p}
               for n, a, p in zip(lb_names, lb_addrs, prios, strict=True)],
        "frontend": frontends,
        "haproxy": {"timeout_client": draw(st.integers(min_value=35, max_value=86400))},
    }


@target
@settings(max_examples=int(os.environ.get("HAKEEP_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(inventories())
def test_generated_inventories_pass_both_binaries(name: str, doc: dict[str, Any]) -> None:
    release = get(name)
    inv: Inventory = build_inventory(doc, path=Path("/gen/inventory.toml"), digest="0" * 64)
    hosts = render_all(inv, SECRETS, versions=versions_of(inv, release))
    # Every LB (all on one release here) gets the same haproxy.cfg; check it once and every keepalived.conf.
    first = next(iter(hosts.values()))
    assert_clean(first, release)
    weight = inv.check_weight
    prios = [lb.priority for lb in inv.lbs]
    assert weight > max(prios) - min(prios)
    for host in list(hosts.values())[1:]:
        assert host.file("/etc/haproxy/haproxy.cfg").content == first.file("/etc/haproxy/haproxy.cfg").content
        assert_clean(host, release)
