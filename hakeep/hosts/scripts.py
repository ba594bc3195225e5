"""The remote scripts kept as files (``hakeep/hosts/sh/*.sh``), and how one becomes a command.

A script file reads its inputs from shell variables. :func:`compose` builds what a host runs: a
fixed preamble (``set -u``, a sane PATH, the C locale), one quoted assignment per variable,
``lib.sh`` (the snippets the scripts share) and the script's body, comment lines left out. Every value is quoted with
:func:`shlex.quote`; list values must be words without white space (they are split by the shell).
The files are checked with ``sh -n`` and shellcheck by the test suite.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from functools import cache
from importlib import resources

PREAMBLE = ("set -u\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"
            "LC_ALL=C; export LC_ALL\n")
LIBRARY = "lib.sh"
_VAR = re.compile(r"[A-Z][A-Z0-9_]*")
_WORD = re.compile(r"[^\s'\"`$\\;&|<>(){}\[\]*?#~]+")  # nothing a shell would expand or split

Value = str | int | Iterable[str | int]


def names() -> list[str]:
    """Every script file shipped with hakeep (the library included)."""
    folder = resources.files("hakeep.hosts") / "sh"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sh"))


@cache
def source(name: str) -> str:
    return (resources.files("hakeep.hosts") / "sh" / name).read_text(encoding="utf-8")


def _value(key: str, value: Value) -> str:
    if isinstance(value, str | int):
        return str(value)
    words = [str(v) for v in value]
    for w in words:
        if not _WORD.fullmatch(w):
            raise ValueError(f"{key}: {w!r} cannot be a word of a list variable")
    return " ".join(words)


def compose(name: str, **variables: Value) -> str:
    """The full script ``name`` with ``variables`` assigned: what a host runs with ``/bin/sh -c``."""
    lines = []
    for key, value in variables.items():
        if not _VAR.fullmatch(key):
            raise ValueError(f"script variable {key!r} must be upper case")
        lines.append(f"{key}={shlex.quote(_value(key, value))}")
    return PREAMBLE + "\n".join(lines) + "\n" + _code(LIBRARY) + _code(name)


@cache
def _code(name: str) -> str:
    """A script file without its comment lines (the files document themselves; hosts need not read it)."""
    return "".join(line for line in source(name).splitlines(keepends=True) if not line.lstrip().startswith("#"))
