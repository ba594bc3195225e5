"""Turn an inventory file's bytes into TOML data, or one :class:`Problem` saying where it breaks.

:mod:`tomllib` reports syntax errors with a line and column, but two inputs make it fail with a bare
Python error instead: values nested so deeply that the parser runs out of stack
(:class:`RecursionError`) and integers with more digits than Python converts (:class:`ValueError`).
For those, :func:`locate` scans the text itself (strings and comments skipped) to name the key and
line at fault, so every unreadable file is reported like any other inventory problem. Pure.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

from hakeep.errors import InventoryError, Problem

_TOKEN = re.compile(
    r'(?P<str>"{3}(?:[^\\]|\\.)*?"{3,5}|\'{3}.*?\'{3,5}|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
    r"|(?P<comment>#[^\n]*)|(?P<open>[\[{])|(?P<close>[\]}])|(?P<eq>=)|(?P<nl>\n)"
    r"|(?P<other>[^\"'#\[\]{}=\n]+)|(?P<bad>.)",
    re.DOTALL,
)
_HEADER = re.compile(r"[ \t]*(\[\[?)[ \t]*([^\[\]\n]*?)[ \t]*\]\]?")
_DECIMAL = re.compile(r"(?<![0-9A-Za-z_.+-])[+-]?[0-9][0-9_]*(?![0-9A-Za-z_.])")  # not 0x.., 1e5, 1.5
# Deeper than any inventory needs, far shallower than where tomllib runs out of stack (~300).
DEEP = 64


def parse_toml(raw: bytes, source: str) -> dict[str, Any]:
    """``raw`` parsed as TOML; :class:`InventoryError` with one problem if it cannot be."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raise InventoryError(source, [problem]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(source, [syntax_problem(exc)]) from None
    except RecursionError:
        where = locate(text, lambda _kind, _token, depth: depth > DEEP)
        problem = _at(where, "arrays or inline tables nested too deeply to read")
    except ValueError:  # tomllib's int() of a literal with more digits than Python converts
        limit = sys.get_int_max_str_digits() or 4300
        where = locate(text, lambda kind, token, _depth: kind == "other" and _digit_run(token) > limit)
        problem = _at(where, f"an integer with more than {limit} digits")
    raise InventoryError(source, [problem]) from None


def syntax_problem(exc: tomllib.TOMLDecodeError) -> Problem:
    """``line 3, column 5: TOML syntax error: Expected '=' ...`` from tomllib's message."""
    text = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if m:
        return Problem(f"line {m[1]}, column {m[2]}", f"TOML syntax error: {text[: m.start()]}")
    m = re.search(r"\s*\(at end of document\)$", text)
    if m:
        return Problem("end of file", f"TOML syntax error: {text[: m.start()]}")
    return Problem("", f"TOML syntax error: {text}")


def _at(where: tuple[str, int, int] | None, what: str) -> Problem:
    if where is None:
        return Problem("", f"cannot be read: {what}")
    key, line, column = where
    return Problem(key, f"{what} (line {line}, column {column})")


def _digit_run(token: str) -> int:
    """The most digits of a decimal integer in ``token`` (ints go through int(), floats do not)."""
    return max((len(m.lstrip("+-").replace("_", "")) for m in _DECIMAL.findall(token)), default=0)


def locate(text: str, hit: Callable[[str, str, int], bool]) -> tuple[str, int, int] | None:
    """The key path, line and column of the first token of a value (outside strings and comments)
    for which ``hit(kind, token, depth)`` holds, or None. ``kind`` is ``open``, ``close`` or
    ``other`` (a bare word or number); ``depth`` counts the arrays and inline tables open after it."""
    for kind, token, pos, depth, key in _value_tokens(text):
        if hit(kind, token, depth):
            line = text.count("\n", 0, pos) + 1
            return key, line, pos - text.rfind("\n", 0, pos)
    return None


def _value_tokens(text: str) -> Iterator[tuple[str, str, int, int, str]]:
    """(kind, token, position, depth, key path) of the tokens in values, strings and comments aside."""
    depth, table, key, in_value, line_start = 0, "", "", False, True
    seen: dict[str, int] = {}
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        kind, token = (m.lastgroup or "bad", m[0]) if m else ("bad", text[pos])
        header = _HEADER.match(text, pos) if depth == 0 and line_start and kind == "open" else None
        if header:  # [table] or [[array.of.tables]]
            table = header[2]
            if header[1] == "[[":
                seen[table] = seen.get(table, -1) + 1
                table += f"[{seen[table]}]"
            pos, line_start = header.end(), False
            continue
        if depth == 0 and not in_value and kind in ("other", "str"):
            key += token
        elif depth == 0 and kind == "eq":
            in_value = True
        elif depth == 0 and kind == "nl":
            key, in_value = "", False
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(depth - 1, 0)
        if in_value and kind in ("open", "close", "other"):
            yield kind, token, pos, depth, _path(table, key.strip())
        line_start = kind == "nl" or (line_start and kind == "other" and not token.strip())
        pos += len(token)


def _path(table: str, key: str) -> str:
    """``table.key`` as written in the file (quoted and cut short if it would not print as one line)."""
    path = f"{table}.{key}" if table and key else table or key
    return path if path.isprintable() and len(path) <= 100 else json.dumps(path[:100])
