"""A frontend's balance options: hash_type for balance = "source", stick = "source" for the others.

What each renders into haproxy.cfg and the lint note on a static map with slowstart. That haproxy
accepts the result is tests/test_binaries.py's (every release's ``haproxy -c``).
"""

from __future__ import annotations

from pathlib import Path

from hakeep.inventory.lint import lint
from hakeep.render.engine import render_all
from hakeep.render.files import Secrets
from tests.fixtures import base_doc, load


def _backend(tmp_path: Path, **options: object) -> str:
    """The kube-apiserver backend's lines, with ``options`` set on the first frontend."""
    doc = base_doc()
    doc["frontend"][0].update(options)
    host = next(iter(render_all(load(tmp_path, doc), Secrets(auth_pass="x")).values()))
    cfg = host.file("/etc/haproxy/haproxy.cfg").content.decode()
    start = cfg.index("\nbackend be_kube-apiserver\n")
    return cfg[start:cfg.index("\n\n", start)]


def test_balance_source_hashes_consistently_by_default(tmp_path: Path) -> None:
    backend = _backend(tmp_path, balance="source")
    assert "    balance source\n    # A client stays on its server; a master that leaves or comes back moves only " \
           "its own clients.\n    hash-type consistent\n" in backend
    assert "stick" not in backend
    assert "    hash-type map-based\n" in _backend(tmp_path, balance="source", hash_type="map-based")


def test_other_balances_have_no_hash_type(tmp_path: Path) -> None:
    for balance in ("roundrobin", "leastconn", "first", "random"):
        backend = _backend(tmp_path, balance=balance)
        assert f"    balance {balance}\n" in backend
        assert "hash-type" not in backend
        assert "stick" not in backend


def test_stick_source_adds_a_stick_table_on_the_client_address(tmp_path: Path) -> None:
    backend = _backend(tmp_path, balance="leastconn", stick="source")
    assert "    stick-table type ip size 100000 expire 1800s\n    stick on src\n" in backend
    backend = _backend(tmp_path, balance="leastconn", stick="source", stick_expire_s=60, stick_size=5000)
    assert "    stick-table type ip size 5000 expire 60s\n    stick on src\n" in backend
    assert "stick-table" not in _backend(tmp_path, balance="leastconn", stick="none")


def test_a_static_map_with_slowstart_is_a_lint_note(tmp_path: Path) -> None:
    doc = base_doc()
    doc["frontend"][0].update(balance="source", hash_type="map-based")
    notes = [f"{p.path}: {p.message}" for p in lint(load(tmp_path, doc))]
    assert ('frontend[0].hash_type: "map-based" is static: haproxy ignores slowstart with it, so a master that '
            "comes back gets its full share at once") in notes
    doc["haproxy"] = {"default_server": {"slowstart_s": 0}}
    assert not [p for p in lint(load(tmp_path, doc)) if p.path.endswith("hash_type")]
    doc = base_doc()
    doc["frontend"][0].update(balance="source")
    assert not [p for p in lint(load(tmp_path, doc)) if p.path.endswith("hash_type")]
