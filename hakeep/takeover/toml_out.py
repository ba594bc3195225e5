"""An imported inventory as commented TOML: a header saying where it came from, what hakeep writes
its own way, what it does not carry and where the LBs disagree; then the tables, in the order of
``inventory.example.toml`` (servers as inline tables, one per line)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from hakeep.takeover.assemble import Imported
from hakeep.takeover.mapping import PASSWORD_ENV


def render(imported: Imported, *, sources: Sequence[str], when: str, secrets_written: bool) -> str:
    out = [f"# Imported by `hakeep import` on {when} from {', '.join(sources)}.",
           f"# Cluster-wide values are {imported.reference}'s (it held the VIP, or was named first);",
           "# `hakeep deploy --dry-run` on this file shows what the first deploy changes.", "#"]
    if secrets_written:
        out += ["# WARNING: this file holds the live VRRP (and stats) passwords (--include-secrets).",
                "# Keep it private, or replace them with auth_pass_env / password_env.", "#"]
    else:
        out += [f"# The VRRP password is read from ${PASSWORD_ENV} (set it to the live one: `hakeep import`",
                "# does not write it; --include-secrets would).", "#"]
    for title, lines in (("Read before deploying:", imported.remarks),
                         ("The LBs disagree (beyond address, interface, priority and state):", imported.disagreements),
                         ("Not carried: hakeep has no equivalent (review these before deploying):", imported.unmapped),
                         ("Written hakeep's own way (README: What the generated configs fix in the recipe):",
                          imported.replaced)):
        if lines:
            out.append(f"# {title}")
            out += [f"#   {_comment(line)}" for line in lines]
            out.append("#")
    doc = imported.doc
    out.append("")
    out += _table("cluster", doc["cluster"])
    for vip in doc.get("vip", []):
        out += _table("vip", vip, array=True)
    if doc.get("ssh"):
        out += _table("ssh", doc["ssh"])
    if doc.get("haproxy"):
        out += _table("haproxy", {k: v for k, v in doc["haproxy"].items() if k != "stats"})
        if doc["haproxy"].get("stats"):
            out += _table("haproxy.stats", doc["haproxy"]["stats"])
    for lb in doc["lb"]:
        out += _table("lb", lb, array=True)
    for fe in doc["frontend"]:
        servers = fe["servers"]
        out += _table("frontend", {k: v for k, v in fe.items() if k != "servers"}, array=True)[:-1]
        out.append("servers = [")
        out += [f"  {_inline(s)}," for s in servers]
        out += ["]", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _table(name: str, values: dict[str, Any], *, array: bool = False) -> list[str]:
    lines = [f"[[{name}]]" if array else f"[{name}]"]
    lines += [f"{key} = {_value(v)}" for key, v in values.items() if v is not None]
    return [*lines, ""]


def _inline(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in values.items()) + " }"


def _key(key: str) -> str:
    """A bare key where TOML takes one (an LB name with a dot would be a dotted key), else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # a TOML basic string: JSON's escapes are TOML's (DEL too, which JSON leaves as it is)
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, dict):
        return _inline(value)
    raise TypeError(f"no TOML for {value!r}")


def _comment(text: str) -> str:
    """One comment line: no control character may end it or break the file."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
