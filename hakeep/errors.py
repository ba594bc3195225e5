"""The one exception hierarchy of hakeep.

Every failure a user can cause or meet is a :class:`HakeepError` carrying a one-line ``message``
and an optional ``hint`` (what to do about it). Modules raise these; some catch them to keep one
host's failure as an outcome (parallel runs, restore), but only the CLI prints them and chooses the
exit code, so no traceback ever reaches a user for a known problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


class HakeepError(Exception):
    """Root of every error hakeep reports to a user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(HakeepError):
    """The user's input (inventory, environment, options, templates) is wrong; nothing was touched."""


class UnreachableError(HakeepError):
    """An LB the command needs cannot be reached; nothing was changed. ``hosts``: name -> why."""

    def __init__(self, message: str, hint: str | None = None, *, hosts: dict[str, str] | None = None) -> None:
        super().__init__(message, hint)
        self.hosts = dict(hosts or {})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory: where (a key path such as ``lb[1].interface``) and what."""

    path: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}: " if self.path else f"{source}: "
        return where + self.message


class InventoryError(UsageError):
    """The inventory cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = [p.render(source) for p in problems]
        syntax = any(p.message.startswith("TOML syntax error") for p in problems)
        super().__init__(
            "\n".join(lines),
            hint=("the file is not valid TOML: fix it at that line and column (a missing quote, bracket or "
                  "'=' is usual); `hakeep validate INVENTORY` reads it again") if syntax else
                 "fix the keys named above; `hakeep validate INVENTORY` re-checks them all",
        )


def printable(text: str) -> str:
    """``text`` as one printable line for a message: as it is, or JSON-quoted when it holds a newline,
    a terminal escape or another non-printing character (a file name can hold any of them)."""
    return text if text.isprintable() else json.dumps(text)
