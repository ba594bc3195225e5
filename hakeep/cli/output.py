"""Lines hakeep prints for a person: errors, warnings, results and file listings (rich).

With :mod:`.views` (tables, plans, progress), the only modules that import rich. Errors and
warnings go to stderr, results to stdout. Lines are never soft-wrapped and never parsed as rich
markup (inventory key paths such as ``lb[1]`` contain brackets), so every problem stays on one
greppable line. Colour is on only when the stream is a terminal (rich decides; ``NO_COLOR`` is
honoured).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from hakeep.errors import HakeepError, InventoryError, Problem

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        _out = Console(file=sys.stdout, soft_wrap=True, highlight=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        _err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
    return _err


def error(exc: HakeepError) -> None:
    """An inventory's problems print as bare ``FILE: KEY.PATH: message`` lines; others as ``error:``."""
    con = err()
    if isinstance(exc, InventoryError):
        for p in exc.problems:
            con.print(Text(p.render(exc.source), style="red"))
    else:
        for line in exc.message.splitlines() or [exc.message]:
            con.print(Text("error: ", style="bold red") + Text(line))
    if exc.hint:
        con.print(Text("hint: ", style="cyan") + Text(exc.hint))


def warnings(source: str, problems: Iterable[Problem]) -> int:
    count = 0
    for p in problems:
        err().print(Text("warning: ", style="bold yellow") + Text(p.render(source), style="yellow"))
        count += 1
    return count


def warn(message: str) -> None:
    """One ``warning:`` line on stderr."""
    err().print(Text("warning: ", style="bold yellow") + Text(message, style="yellow"))


def line(message: str, style: str = "") -> None:
    out().print(Text(message, style=style))


def success(message: str) -> None:
    out().print(Text("ok: ", style="bold green") + Text(message))


def file_listing(title: str, text: str, lexer: str) -> None:
    con = out()
    con.print(Text(f"# ---- {title} ----", style="bold cyan"))
    if con.is_terminal:
        from rich.syntax import Syntax  # (pygments: only a listing needs it)

        con.print(Syntax(text, lexer, theme="ansi_dark", word_wrap=False, background_color="default"))
    else:
        con.print(Text(text), end="")
