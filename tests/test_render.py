"""Rendering: golden files of the example inventory, determinism, masking, the render command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hakeep.errors import UsageError
from hakeep.inventory.load import load_inventory
from hakeep.layout import CHECK_SCRIPT, HAPROXY_CFG, KEEPALIVED_CONF
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from hakeep.render.secrets import resolve_secrets
from tests.fixtures import EXAMPLE, base_doc, load, write

GOLDEN = Path(__file__).parent / "golden" / "example"
PASSWORD = "1111"


def rendered_example() -> dict[str, dict[str, bytes]]:
    inv = load_inventory(EXAMPLE)
    hosts = render_all(inv, Secrets(auth_pass=PASSWORD))
    return {name: {f.path: f.content for f in h.files} for name, h in hosts.items()}


def test_example_matches_golden_files() -> None:
    got = rendered_example()
    if os.environ.get("HAKEEP_UPDATE_GOLDEN") == "1":
        for name, files in got.items():
            for path, content in files.items():
                target = GOLDEN / name / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
    expected: dict[str, dict[str, bytes]] = {p.name: {} for p in GOLDEN.iterdir()}
    for p in GOLDEN.rglob("*"):
        if p.is_file():
            rel = p.relative_to(GOLDEN)
            expected[rel.parts[0]]["/" + "/".join(rel.parts[1:])] = p.read_bytes()
    assert got == expected, "rendering changed: review, then HAKEEP_UPDATE_GOLDEN=1 to accept"


def test_golden_keepalived_is_per_host() -> None:
    left = (GOLDEN / "loadbalance-left" / "etc/keepalived/keepalived.conf").read_text()
    right = (GOLDEN / "loadbalance-right" / "etc/keepalived/keepalived.conf").read_text()
    assert "unicast_src_ip 10.220.62.32" in left
    assert "unicast_peer {\n        10.220.62.33\n    }" in left
    assert "unicast_src_ip 10.220.62.33" in right
    assert "unicast_peer {\n        10.220.62.32\n    }" in right
    for text in (left, right):
        assert "10.220.62.31/24 dev ens192" in text
        assert "enable_script_security" in text
        assert "killall" not in text
        assert "vrrp_garp_interval" not in text


def test_rendering_is_deterministic_and_has_no_timestamp() -> None:
    assert rendered_example() == rendered_example()
    text = rendered_example()["loadbalance-left"][HAPROXY_CFG].decode()
    assert text.startswith("# Managed by hakeep (cluster devops)")
    assert "2026" not in text
    assert "UTC" not in text


def test_modes_and_services() -> None:
    inv = load_inventory(EXAMPLE)
    host = render_all(inv, Secrets(auth_pass=PASSWORD))["loadbalance-left"]
    assert host.file(HAPROXY_CFG).mode == 0o644
    assert host.file(KEEPALIVED_CONF).mode == 0o600
    assert host.file(CHECK_SCRIPT).mode == 0o755
    assert PASSWORD in host.file(KEEPALIVED_CONF).content.decode()
    assert PASSWORD not in host.file(KEEPALIVED_CONF).masked_text()
    assert "auth_pass ********" in host.file(KEEPALIVED_CONF).masked_text()
    assert host.file(KEEPALIVED_CONF).validate == ("keepalived", "-t", "-f", "{}")


def test_weight_hands_over_with_unequal_priorities(tmp_path: Path) -> None:
    doc = base_doc()
    doc["lb"][0]["priority"] = 150
    doc["lb"][1]["priority"] = 100
    inv = load(tmp_path, doc)
    assert inv.check_weight == 52  # 150 - 52 = 98 < 100: the failed master hands over
    ka = render_all(inv, Secrets(auth_pass="x"))["loadbalance-left"].file(KEEPALIVED_CONF).content.decode()
    assert "weight -52" in ka


def test_secret_from_env_is_checked(tmp_path: Path) -> None:
    inv = load(tmp_path, base_doc())
    assert resolve_secrets(inv, {"HAKEEP_VRRP_PASS": "abcd"}).auth_pass == "abcd"
    with pytest.raises(UsageError, match="at most 8"):
        resolve_secrets(inv, {"HAKEEP_VRRP_PASS": "123456789"})
    with pytest.raises(UsageError, match="not allowed"):
        resolve_secrets(inv, {"HAKEEP_VRRP_PASS": "a b"})
    with pytest.raises(UsageError, match="HAKEEP_VRRP_PASS is not set"):
        resolve_secrets(inv, {})


def test_template_errors_are_clear(tmp_path: Path) -> None:
    inv = load_inventory(EXAMPLE)
    (tmp_path / "haproxy.cfg.j2").write_text("{{ no_such_variable }}\n")
    with pytest.raises(UsageError, match=r"haproxy\.cfg\.j2.*no_such_variable"):
        render_all(inv, Secrets(auth_pass="x"), templates=tmp_path)
    with pytest.raises(UsageError, match="templates folder not found"):
        render_all(inv, Secrets(auth_pass="x"), templates=tmp_path / "missing")


def test_render_command_writes_the_tree_with_modes(tmp_path: Path) -> None:
    env = dict(os.environ, HAKEEP_VRRP_PASS=PASSWORD)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "hakeep", "render", str(EXAMPLE), "-o", str(out)],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = rendered_example()
    for name, files in expected.items():
        for path, content in files.items():
            target = out / name / path.lstrip("/")
            assert target.read_bytes() == content
    ka = out / "loadbalance-left/etc/keepalived/keepalived.conf"
    assert stat.S_IMODE(ka.stat().st_mode) == 0o600
    script = out / "loadbalance-left/etc/keepalived/hakeep-check-haproxy.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_render_command_prints_masked(tmp_path: Path) -> None:
    env = dict(os.environ, HAKEEP_VRRP_PASS="zq9secret"[:8])
    proc = subprocess.run([sys.executable, "-m", "hakeep", "render", str(write(tmp_path, base_doc()))],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "auth_pass ********" in proc.stdout
    assert "zq9secre" not in proc.stdout
    assert "# ---- loadbalance-right:/etc/keepalived/keepalived.conf (mode 0600) ----" in proc.stdout


def test_a_stats_password_makes_haproxy_cfg_group_readable_only(tmp_path: Path) -> None:
    doc = base_doc()
    doc["haproxy"] = {"stats": {"password_env": "STATS"}}
    inv = load(tmp_path, doc)
    cfg = render_all(inv, Secrets(auth_pass="vrrpPw1", stats_password="st4ts"))["loadbalance-left"].file(HAPROXY_CFG)
    assert (cfg.mode, cfg.owner, cfg.group) == (0o640, "root", "haproxy")
    assert "stats auth admin:st4ts" in cfg.content.decode()
    assert "stats auth admin:********" in cfg.masked_text()
    assert "st4ts" not in cfg.masked_text()
    plain = render_all(load_inventory(EXAMPLE), Secrets(auth_pass="x"))["loadbalance-left"].file(HAPROXY_CFG)
    assert (plain.mode, plain.group) == (0o644, "root")
