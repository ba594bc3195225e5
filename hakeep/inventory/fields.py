"""Typed, path-aware readers for TOML tables: the vocabulary of inventory validation.

A :class:`Table` wraps one TOML table and its key path (``frontend[0].servers[2]``). Each ``get_*``
reads one key, checks its type, range and character set, records a :class:`Problem` on the shared
list when it is wrong, and returns a usable default so that checking goes on and every problem is
reported at once. Unknown keys are reported with a "did you mean" suggestion. Keys and values are
shown so that each problem stays one printable line (a key with a newline or a terminal escape is
quoted, an integer too long to print is described).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hakeep.errors import Problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# Strings that end up in config files or shell commands. No whitespace, quotes, `;`, `$`,
# backticks, `#`, `!`, braces or newlines can pass any of these.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
IFACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_RE = re.compile(r"[A-Za-z0-9_.,:+=@%^*?/-]+")
URI_PATH_RE = re.compile(r"/[A-Za-z0-9._~/-]*")
BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")  # TOML's bare keys; others are shown quoted


def type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return names.get(type(value), type(value).__name__)


def shown_key(key: str) -> str:
    """``key`` as TOML would write it: bare, else quoted with escapes (never a control character)."""
    if BARE_KEY_RE.fullmatch(key):
        return key
    return json.dumps(key, ensure_ascii=not key.isprintable())


def shown_number(value: float) -> str:
    """``value`` for a message; Python refuses to print an int of over 4300 digits (ValueError)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    return str(value)


def describe_bad_chars(value: str, pattern: re.Pattern[str]) -> str:
    """Say precisely which characters made ``value`` fail ``pattern`` (when it is about characters)."""
    bad = sorted({c for c in value if not pattern.fullmatch(c) and not pattern.fullmatch("a" + c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"{value!r} contains forbidden character(s) {shown}"
    return f"{value!r} is not allowed"


class Table:
    """One TOML table being validated, with its key path and the shared problem list."""

    def __init__(self, data: dict[str, Any], path: str, problems: list[Problem]) -> None:
        self.data = data
        self.path = path
        self.problems = problems

    def key(self, key: str) -> str:
        return f"{self.path}.{shown_key(key)}" if self.path else shown_key(key)

    def error(self, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.key(key) if key else self.path, message))

    def check_keys(self, known: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                tip = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = ", ".join(known)
                self.error(key, f"unknown key{tip}; allowed here: {allowed}")

    def _raw(self, key: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                self.error(key, "is required")
            return None
        return self.data[key]

    def get_str(
        self, key: str, *, required: bool = False, pattern: re.Pattern[str] | None = None,
        what: str = "", choices: tuple[str, ...] = (),
    ) -> str | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"must be a string, not {type_name(value)}")
            return None
        if choices and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            tip = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(key, f"{value!r} is not one of {', '.join(map(repr, choices))}{tip}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            if not value:
                self.error(key, "must not be empty")
            else:
                detail = f" ({what})" if what else ""
                self.error(key, describe_bad_chars(value, pattern) + detail)
            return None
        return value

    def get_int(
        self, key: str, *, required: bool = False, lo: int | None = None, hi: int | None = None,
    ) -> int | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer, not {type_name(value)}")
            return None
        return self._in_range(key, value, lo, hi)

    def get_number(
        self, key: str, *, required: bool = False, above: float = 0.0, hi: float | None = None,
    ) -> float | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number, not {type_name(value)}")
            return None
        if not value > above:
            self.error(key, f"must be greater than {above:g}, got {shown_number(value)}")
            return None
        if hi is not None and value > hi:
            self.error(key, f"must be at most {hi:g}, got {shown_number(value)}")
            return None
        return float(value)

    def _in_range(self, key: str, value: int, lo: int | None, hi: int | None) -> int | None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, f"must be between {lo} and {hi}, got {shown_number(value)}")
            return None
        return value

    def get_bool(self, key: str, *, default: bool) -> bool:
        value = self._raw(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, not {type_name(value)}")
            return default
        return value

    def get_ipv4(self, key: str, *, required: bool = False) -> ipaddress.IPv4Address | None:
        value = self.get_str(key, required=required)
        if value is None:
            return None
        return parse_ipv4(value, lambda msg: self.error(key, msg))

    def get_table(self, key: str) -> Table | None:
        value = self._raw(key, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(key, f"must be a table, not {type_name(value)}")
            return None
        return Table(value, self.key(key), self.problems)

    def get_tables(self, key: str, *, label: str | None = None) -> list[Table]:
        """An array of tables (``[[lb]]`` or an inline array), each with an indexed path."""
        value = self._raw(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be an array of tables, not {type_name(value)}")
            return []
        base = label or self.key(key)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.problems.append(Problem(f"{base}[{i}]", f"must be a table, not {type_name(item)}"))
                continue
            out.append(Table(item, f"{base}[{i}]", self.problems))
        return out

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self.data.items())


def parse_ipv4(value: str, report: Any, *, loopback: bool = False) -> ipaddress.IPv4Address | None:
    addr = parse_ip(value, report, loopback=loopback)
    if isinstance(addr, ipaddress.IPv6Address):
        report(f"{value!r} is IPv6; an LB's IPv6 address goes in address6")
        return None
    return addr


def parse_ip(value: str, report: Any, *, loopback: bool = False) -> IPAddress | None:
    """A host address of either family, as strict for IPv6 as for IPv4: no zone (``%eth0``), no
    link-local (it means nothing without an interface), no IPv4-mapped form (give the IPv4 address),
    no multicast, unspecified or (unless ``loopback``) loopback address."""
    if "%" in value:
        report(f"{value!r} has a zone index; give a global address without %ZONE")
        return None
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        report(f"{value!r} is not an IP address")
        return None
    if addr.is_unspecified or addr.is_multicast or (addr.is_loopback and not loopback):
        report(f"{value!r} cannot be a host address")
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            report(f"{value!r} is an IPv4-mapped IPv6 address; give the IPv4 address {addr.ipv4_mapped} itself")
            return None
        # ::/8 (IPv4-compatible ::a.b.c.d among them; ::1 is loopback, above) and site-local fec0::/10
        if (addr.is_reserved and not addr.is_loopback) or addr.is_site_local:
            report(f"{value!r} is a reserved or deprecated IPv6 address (::/8, fec0::/10); give a global or "
                   "unique-local (fd00::/8) address")
            return None
        if addr.is_link_local:
            report(f"{value!r} is link-local (fe80::/10): it needs an interface to mean anything; "
                   "give a global or unique-local (fd00::/8) address")
            return None
    return addr


def parse_ipv6(value: str, report: Any) -> ipaddress.IPv6Address | None:
    addr = parse_ip(value, report)
    if isinstance(addr, ipaddress.IPv4Address):
        report(f"{value!r} is IPv4; this key takes an IPv6 address")
        return None
    return addr


def local_path(t: Table, key: str, base_dir: Path) -> Path | None:
    """A local file path (``~`` expanded, relative to the inventory's folder), or ``None``."""
    value = t.get_str(key)
    if value is None:
        return None
    if not value:
        t.error(key, "must be a file path, not empty")
        return None
    if not value.isprintable():  # a newline, NUL or terminal escape: in ssh's argv and in messages
        bad = ", ".join(sorted({repr(c) for c in value if not c.isprintable()}))
        t.error(key, f"{value!r} contains non-printing character(s) {bad}; must be a file path")
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
