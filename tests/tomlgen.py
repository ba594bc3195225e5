"""A tiny TOML writer for tests: tables, arrays of tables, inline tables for nested arrays."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _table_body(table: dict[str, Any]) -> list[str]:
    return [f"{_key(k)} = {_value(v)}" for k, v in table.items()]


def dumps(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, dict | list)
               or (isinstance(v, list) and not all(isinstance(x, dict) for x in v))}
    lines += _table_body(scalars)
    for k, v in doc.items():
        if k in scalars:
            continue
        if isinstance(v, dict):
            lines.append(f"\n[{_key(k)}]")
            lines += _table_body(v)
        else:
            for item in v:
                lines.append(f"\n[[{_key(k)}]]")
                lines += _table_body(item)
    return "\n".join(lines) + "\n"
