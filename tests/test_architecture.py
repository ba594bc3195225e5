"""Static checks of hakeep's layout and module boundaries, read with :mod:`ast` (nothing under test is imported).

The packages follow the flow (inventory -> render -> hosts -> plan -> run -> ops -> cli) and each
imports only the parts before it that :data:`MAY_IMPORT` lists; only :mod:`hakeep.hosts.transport`,
:mod:`hakeep.hosts.sshhosts`, :mod:`hakeep.hosts.connecting` and :mod:`hakeep.hosts.channel` import
fabric/paramiko/invoke, and only the session reaches them;
only ``hakeep/cli/output.py`` and ``hakeep/cli/views.py`` import rich, only the renderer jinja2;
every module has a docstring and at most 400 lines; building the parser loads none of rich,
paramiko, fabric or jinja2; every subcommand's ``--help`` shows examples and the command is in
README.md. Imports inside functions, ``if TYPE_CHECKING:`` blocks and ``importlib.import_module("x")``
with a literal name all count.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from hakeep.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hakeep"
MAX_LINES = 400

SSH_LIBRARIES = {"fabric", "paramiko", "invoke"}
SSH_MODULES = {"hosts/transport.py", "hosts/sshhosts.py", "hosts/channel.py", "hosts/connecting.py"}
RICH_MODULES = {"cli/output.py", "cli/views.py"}
JINJA_MODULES = {"render/engine.py"}
HEAVY_AT_START = ("rich", "paramiko", "fabric", "jinja2")

FOUNDATION = {"errors", "layout", "signals"}
# What each part of hakeep may import from hakeep, besides itself and the root package (__version__).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "layout": set(),
    "signals": set(),
    "inventory": {"errors"},
    "render": FOUNDATION | {"inventory"},
    "hosts": FOUNDATION | {"inventory"},
    "plan": FOUNDATION | {"inventory", "render", "hosts"},
    "run": FOUNDATION | {"inventory", "render", "hosts", "plan"},
    "ops": FOUNDATION | {"inventory", "hosts", "plan", "run"},
    "takeover": {"errors", "inventory"},  # pure: configs read back from hosts -> an inventory's values
    "cli": FOUNDATION | {"inventory", "render", "hosts", "plan", "run", "ops", "takeover", "cli"},
}
# The SSH implementation is reached only through the session (everything else codes against Transport).
SSH_CALLERS = {"hosts/*", "run/session.py"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports_of(module: ast.Module) -> set[str]:
    """Top-level names of the absolute imports anywhere in ``module`` (``import a.b`` gives ``a``)."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id in {"__import__", "import_module"})
                   or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
            names.add(node.args[0].value)
    return {name.split(".")[0] for name in names}


def imported(path: Path) -> set[str]:
    return imports_of(tree(path))


def allowed(path: Path, patterns: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(rel(path), pattern) for pattern in patterns)


def violations(libraries: set[str], patterns: set[str]) -> list[str]:
    return [f"hakeep/{rel(p)} imports {', '.join(sorted(imported(p) & libraries))}"
            for p in modules() if imported(p) & libraries and not allowed(p, patterns)]


def hakeep_imports(module: ast.Module) -> set[str]:
    """The hakeep modules ``module`` imports, as dotted names below hakeep (``plan.steps``); "" for the root."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "hakeep")
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("<relative import>")  # hakeep uses absolute imports only: never allowed
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hakeep":
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and node.args[0].value.split(".")[0] == "hakeep"):
            names.add(node.args[0].value)  # importlib.import_module("hakeep.x")
    return {n.removeprefix("hakeep").lstrip(".") for n in names}


def part_of(name: str) -> str:
    """``plan.steps.Step`` -> ``plan``; ``__version__`` (from the root package) -> ""."""
    first = name.split(".", maxsplit=1)[0]
    return "" if first.startswith("__") else first


def test_the_hakeep_import_reader_sees_every_form() -> None:
    source = ("from hakeep.plan import steps\nimport hakeep.run.session\nfrom ..cli import views\n"
              "def f():\n    importlib.import_module('hakeep.ops.status')\n")
    assert hakeep_imports(ast.parse(source)) == {"plan.steps", "run.session", "<relative import>", "ops.status"}


def test_the_modules_are_found() -> None:
    names = {rel(p) for p in modules()}
    assert {"cli/main.py", "hosts/transport.py", "hosts/sshhosts.py", "cli/output.py",
            "cli/commands/deploy.py", "plan/planner.py", "layout.py"} <= names


def test_the_packages_are_the_flow() -> None:
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and not p.name.startswith("__"))}
    assert parts == set(MAY_IMPORT)


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_each_part_imports_only_what_comes_before_it(path: Path) -> None:
    part = rel(path).split("/")[0].removesuffix(".py")
    if part.startswith("__"):
        return
    wrong = sorted(n for n in hakeep_imports(tree(path))
                   if part_of(n) not in {"", part, *MAY_IMPORT[part]})
    assert wrong == [], f"hakeep/{rel(path)} may not import {wrong} (see MAY_IMPORT)"


def test_only_the_session_reaches_the_ssh_implementation() -> None:
    ssh = {"hosts.transport", "hosts.sshhosts", "hosts.channel", "hosts.connecting"}
    wrong = [rel(p) for p in modules()
             if any(n.startswith(tuple(ssh)) for n in hakeep_imports(tree(p))) and not allowed(p, SSH_CALLERS)]
    assert wrong == []


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(tree(init)) or ""
        assert doc.strip(), f"hakeep/{rel(init)} has no docstring"
        if init.parent.parent == PACKAGE:
            assert "import" in doc, f"hakeep/{rel(init)}: say what the package may import"


def test_the_remote_scripts_are_files_not_strings() -> None:
    """No multi-line shell program hides in a Python string: the long ones live in hakeep/hosts/sh/."""
    for path in modules():
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.count("\n") > 6:
                text = node.value
                shell = [word for word in ("fi\n", "done\n", "esac") if word in text]
                assert shell == [], f"hakeep/{rel(path)}:{node.lineno}: a shell script in a string: use hosts/sh/"


def test_the_import_reader_sees_every_form() -> None:
    source = ("import os.path\nfrom paramiko import SSHClient\nfrom . import sibling\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import invoke\n"
              "def f():\n    import rich.console\n    importlib.import_module('jinja2')\n"
              "    __import__('fabric')\n    importlib.import_module(f'hakeep.{x}')\n")
    assert imports_of(ast.parse(source)) == {"os", "paramiko", "typing", "invoke", "rich", "jinja2", "fabric"}


def test_only_the_transport_modules_import_ssh_libraries() -> None:
    assert violations(SSH_LIBRARIES, SSH_MODULES) == []


def test_only_the_output_modules_import_rich() -> None:
    assert violations({"rich"}, RICH_MODULES) == []


def test_only_the_renderer_imports_jinja2() -> None:
    assert violations({"jinja2"}, JINJA_MODULES) == []


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_every_module_has_a_docstring_and_at_most_400_lines(path: Path) -> None:
    problems = []
    if not (ast.get_docstring(tree(path)) or "").strip():
        problems.append("no module docstring")
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if lines > MAX_LINES:
        problems.append(f"{lines} lines (at most {MAX_LINES})")
    assert problems == [], f"hakeep/{rel(path)}: {'; '.join(problems)}"


def test_building_the_parser_loads_no_heavy_library() -> None:
    probe = (
        "import json, sys\n"
        "import hakeep.cli.main\n"
        "hakeep.cli.main.build_parser()\n"
        f"heavy = {HEAVY_AT_START!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_there_are_commands() -> None:
    assert COMMANDS


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_with_examples(command: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hakeep", command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "examples:" in done.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_is_in_the_readme(command: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\bhakeep {re.escape(command)}\b", readme), f"README.md never shows `hakeep {command}`"
