"""Security regression tests: hostile or broken input must be refused cleanly, never half-handled.

Each part of the security issue keeps its own section and tables below.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakeep.errors import InventoryError
from hakeep.inventory.lint import lint
from hakeep.inventory.load import build_inventory
from hakeep.inventory.parse import parse_toml
from tests.fixtures import base_doc
from tests.tomlgen import dumps

# --- item 5: inputs ---------------------------------------------------------------------------
# Inputs that escaped as tracebacks or validated wrongly. Each attack is a whole inventory file:
# the recipe's valid inventory with one value replaced by a raw TOML literal. `hakeep validate`
# must exit 2 with exactly one problem line, naming the key, and no traceback.

RAW = "@@raw-toml@@"  # placeholder string replaced by the attack's TOML literal after dumping


def inventory_text(dotted: str, literal: str, **extra: Any) -> str:
    """The base inventory with the value at ``dotted`` (``frontend.1.servers``) written as ``literal``."""
    doc = base_doc()
    doc.update(extra)
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node: Any = doc
    for p in parents:
        node = node[p]
    node[last] = RAW
    text = dumps(doc)
    assert text.count(json.dumps(RAW)) == 1
    return text.replace(json.dumps(RAW), literal)


# (id, key to replace, TOML literal written there, extra top-level tables, key path the error names)
INPUT_ATTACKS: list[tuple[str, str, str, dict[str, Any], str]] = [
    # lint indexed the LB list: IndexError
    ("lb-empty-array", "lb", "[]", {}, "lb"),
    # validated as "0 frontends" though the README requires one
    ("frontend-empty-array", "frontend", "[]", {}, "frontend"),
    # tomllib ran out of stack: RecursionError
    ("deep-arrays", "frontend.1.servers", "[" * 100_000 + "]" * 100_000, {}, "frontend[1].servers"),
    ("deep-inline-tables", "lb.1.ssh", "{a = " * 5_000 + "1" + "}" * 5_000, {}, "lb[1].ssh"),
    # tomllib's int() refused a literal longer than Python's 4300-digit limit: ValueError
    ("integer-5000-digits", "haproxy.maxconn", "9" * 5_000, {"haproxy": {"maxconn": 1}}, "haproxy.maxconn"),
    # validated, then haproxy -c refused two frontends named hakeep-stats
    ("frontend-named-hakeep-stats", "frontend.1.name", '"hakeep-stats"',
     {"haproxy": {"stats": {"password_env": "HAKEEP_STATS_PASS"}}}, "frontend[1].name"),
    ("frontend-named-hakeep-stats-stats-off", "frontend.1.name", '"hakeep-stats"', {}, "frontend[1].name"),
    # validated, though it is the backend hakeep writes for frontend[0]
    ("frontend-named-like-a-backend", "frontend.1.name", '"be_kube-apiserver"', {}, "frontend[1].name"),
    # an unknown key was printed raw: a newline split the problem in two, an escape reached the terminal
    ("key-with-newline", "frontend.0.port", '6443\n"bad\\nkey" = 1', {}, 'frontend[0]."bad\\nkey"'),
    ("key-with-terminal-escape", "frontend.0.port", '6443\n"\\u001b[2J" = 1', {}, 'frontend[0]."\\u001b[2J"'),
    # printing the value in "must be between 1 and 65535, got ..." raised ValueError (over 4300 digits)
    ("huge-hex-port", "frontend.0.port", "0x" + "f" * 4_000, {}, "frontend[0].port"),
    # file paths: a terminal escape was printed raw in "no such file" (an error, or a lint warning at exit 0)
    ("ca-file-terminal-escape", "frontend.0.ca_file", '"\\u001b[31mca.crt"', {}, "frontend[0].ca_file"),
    ("identity-file-terminal-escape", "ssh.identity_file", '"id\\u001b]0;owned\\u0007"', {},
     "ssh.identity_file"),
    # the VIP without a prefix was echoed raw in its "e.g." suggestion
    ("vip-terminal-escape", "cluster.vip", '"\\u001b[2J"', {}, "cluster.vip"),
]


def run_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hakeep", "validate", str(path)], capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.parametrize(("dotted", "literal", "extra", "key"), [c[1:] for c in INPUT_ATTACKS],
                         ids=[c[0] for c in INPUT_ATTACKS])
def test_bad_input_exit_2(tmp_path: Path, dotted: str, literal: str, extra: dict[str, Any], key: str) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(inventory_text(dotted, literal, **extra))
    proc = run_validate(path)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("hint: ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"inventory.toml: {key}: "), errors[0]
    assert errors[0].isprintable(), repr(errors[0])


@pytest.mark.parametrize("name", ["x\nid>PWNED\n#.toml", "\x1b[2Jclear.toml", "tab\there.toml"])
def test_a_file_name_that_would_break_the_line_is_shown_quoted(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(inventory_text("lb", "[]"))
    proc = run_validate(path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("hint: ")]
    assert errors == [f"{json.dumps(name)}: lb: is an empty array; at least two [[lb]] tables are required"]
    missing = run_validate(tmp_path / ("gone" + name))
    assert missing.returncode == 2
    assert [line for line in missing.stderr.splitlines() if not line.startswith("hint: ")] == [
        f"error: {json.dumps(str(tmp_path / ('gone' + name)))}: no such file"]


# Beyond the table: any parsed TOML the loader is given gives an Inventory or an InventoryError whose
# every line is one printable `inventory.toml: ...` problem; nothing else escapes (hypothesis).

_SCALARS = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["", "*", "vip", "https", "hakeep-stats", "be_kube-apiserver", "10.220.62.34", "127.0.0.1",
                     "10.220.62.31/24", "a" * 70]),
    st.dates(), st.times(), st.integers(0, 1).map(lambda i: 16**4_000 + i),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_KEYS = ["name", "port", "bind", "check", "ca_file", "servers", "address", "interface", "priority", "ssh",
         "identity_file", "vip", "auth_pass", "check_weight", "stats", "password_env", "lb", "frontend"]


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out += _nodes(v, (*path, k))
    return out


@st.composite
def _mutated_inventories(draw: st.DrawFn) -> dict[str, Any]:
    """The base inventory (stats page on or off) with a few values replaced, keys added or removed."""
    doc = base_doc()
    if draw(st.booleans()):
        doc["haproxy"] = {"stats": {"password_env": "HAKEEP_STATS_PASS"}}
    for _ in range(draw(st.integers(1, 4))):
        *parents, last = draw(st.sampled_from(_nodes(doc)))
        node: Any = doc
        for p in parents:
            node = node[p]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(node, dict):
            del node[last]
        elif action == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(_KEYS))] = draw(_VALUES)
        else:
            node[last] = draw(_VALUES)
    return doc


def _assert_clean(exc: InventoryError) -> None:
    for line in str(exc).splitlines():
        assert line.startswith("inventory.toml: "), repr(line)
        assert line.isprintable(), repr(line)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_inventories())
def test_fuzzed_inventories_load_or_fail_cleanly(doc: dict[str, Any]) -> None:
    try:
        inv = build_inventory(doc, path=Path("/nonexistent/inventory.toml"), digest="0" * 64)
    except InventoryError as exc:
        _assert_clean(exc)
        return
    lint(inv)
    assert len(inv.lbs) >= 2
    assert inv.frontends


_TOML_BITS = st.sampled_from([*'[]{}="\'#\n ,.ab1_', '"""', "'''", "[[", "]]", "a = ", "\n[t]\n", "\n[[t]]\n",
                              "\\", "9" * 50])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOML_BITS, max_size=60).map("".join), st.integers(0, 2_000), st.booleans())
def test_fuzzed_toml_text_parses_or_fails_cleanly(text: str, depth: int, long_int: bool) -> None:
    text += f"\nz = {'[' * depth}{']' * depth}" if depth else ""
    text += f"\nq = {'9' * 4_400}" if long_int else ""
    try:
        data = parse_toml(text.encode(), "inventory.toml")
        build_inventory(data, path=Path("/nonexistent/inventory.toml"), digest="0" * 64)
    except InventoryError as exc:
        _assert_clean(exc)
