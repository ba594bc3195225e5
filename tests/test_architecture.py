"""Static checks of hakeep's module boundaries, read with :mod:`ast` (no module under test is imported).

Only :mod:`hakeep.transport` and :mod:`hakeep.sshhosts` import fabric/paramiko/invoke; only
``hakeep/report*.py`` and :mod:`hakeep.cli` import rich; every module has a docstring and at most
420 lines; ``import hakeep.cli`` plus :func:`~hakeep.cli.build_parser` loads none of rich, paramiko,
fabric or jinja2; every subcommand's ``--help`` shows examples and the command is documented in
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

from hakeep.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hakeep"
MAX_LINES = 420

SSH_LIBRARIES = {"fabric", "paramiko", "invoke"}
SSH_MODULES = {"transport.py", "sshhosts.py"}
RICH_MODULES = {"cli.py", "report*.py"}  # relative to hakeep/, top level only
HEAVY_AT_START = ("rich", "paramiko", "fabric", "jinja2")


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


def test_the_modules_are_found() -> None:
    names = {rel(p) for p in modules()}
    assert {"cli.py", "transport.py", "sshhosts.py", "report.py", "commands/deploy.py"} <= names


def test_the_import_reader_sees_every_form() -> None:
    source = ("import os.path\nfrom paramiko import SSHClient\nfrom . import sibling\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import invoke\n"
              "def f():\n    import rich.console\n    importlib.import_module('jinja2')\n"
              "    __import__('fabric')\n    importlib.import_module(f'hakeep.{x}')\n")
    assert imports_of(ast.parse(source)) == {"os", "paramiko", "typing", "invoke", "rich", "jinja2", "fabric"}


def test_only_the_transport_modules_import_ssh_libraries() -> None:
    assert violations(SSH_LIBRARIES, SSH_MODULES) == []


def test_only_the_report_modules_and_the_cli_import_rich() -> None:
    assert violations({"rich"}, RICH_MODULES) == []


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_every_module_has_a_docstring_and_at_most_420_lines(path: Path) -> None:
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
        "import hakeep.cli\n"
        "hakeep.cli.build_parser()\n"
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
