"""Lines hakeep prints for a person: errors, warnings, results and file listings (rich).

With :mod:`.views` (tables, plans, progress), the only modules that import rich. Errors and
warnings go to stderr, results to stdout. Lines are never soft-wrapped and never parsed as rich
markup (inventory key paths such as ``lb[1]`` contain brackets), so every problem stays on one
greppable line. Colour is on only when the stream is a terminal (rich decides; ``NO_COLOR`` is
honoured).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from rich.console import Console
from rich.text import Text

from hakeep.errors import HakeepError, InventoryError, Problem

_out: Console | None = None
_err: Console | None = None
_COLOR = "auto"  # --color: auto (a terminal, unless NO_COLOR; FORCE_COLOR forces), always, never
# --json: the run prints one document on stdout when it ends, whatever happens (see finish_document)
_doc_command: str | None = None
_doc: dict[str, object] | None = None
_doc_error: HakeepError | None = None
_doc_lines = False  # status --watch --json: a document per refresh, each on one line (JSON Lines)
_doc_streamed = False  # ... and one was printed: at the end, only an error's follows
_reader_gone = False  # stdout's reader went away (``| head``)


def set_color(choice: str) -> None:
    """``--color``; call before the first output."""
    global _COLOR, _out, _err
    _COLOR, _out, _err = choice, None, None


def _console(stream: object) -> Console:
    kw: dict[str, object] = {}
    if _COLOR == "always":
        kw["force_terminal"] = True
    elif _COLOR == "never":
        kw["no_color"] = True
        kw["color_system"] = None
    return _Console(file=stream, soft_wrap=True, highlight=False, width=_width(stream), **kw)  # type: ignore[arg-type]


def _silence(stream: object) -> None:
    """The reader of ``stream`` went away (``| head``): what is left to print goes nowhere, and the
    command goes on to its own end and exit code (a deploy is never cut short by a closed pipe;
    a watch, that prints for its reader only, asks :func:`reader_gone` and ends)."""
    global _reader_gone
    _reader_gone = _reader_gone or stream is sys.stdout
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno())
    finally:
        os.close(devnull)


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich's own exits 1: a misleading code
        self.quiet = True
        _silence(self.file)


def _width(stream: object) -> int | None:
    """A terminal's own width (or COLUMNS); for a pipe or a file, no limit: a table there is as wide
    as its values (a release id cut to ``20261127T05…`` could not be pasted into rollback --to)."""
    isatty = getattr(stream, "isatty", None)
    if os.environ.get("COLUMNS") or (isatty is not None and isatty()):
        return None  # rich reads the terminal, or COLUMNS
    return 100_000


def out() -> Console:
    global _out
    if _out is None:
        _out = _console(sys.stdout)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        _err = _console(sys.stderr)
    return _err


def emit(text: str) -> None:
    """A document (JSON) on stdout, whole, or nowhere once its reader has gone."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _silence(sys.stdout)


def reader_gone() -> bool:
    """Whether stdout's reader went away (a ``--watch`` then has nobody to print for)."""
    return _reader_gone


def json_document(command: str, *, lines: bool = False) -> None:
    """--json: this run ends by printing one JSON document (:func:`finish_document`), even when it
    fails; with ``lines`` (a watch), documents are printed as they come, one per line."""
    global _doc_command, _doc, _doc_error, _doc_streamed, _doc_lines
    _doc_command, _doc, _doc_error, _doc_streamed, _doc_lines = command, None, None, False, lines


def document(body: dict[str, object]) -> None:
    """The command's own fields of its --json document (printed when the run ends, with its exit code)."""
    global _doc
    _doc = body


def stream_document(body: dict[str, object], code: int) -> bool:
    """One document now, on one line (JSON Lines: ``status --watch --json``); False once the reader
    has gone."""
    global _doc_streamed
    from hakeep.cli import jsondoc

    _doc_streamed = True
    emit(jsondoc.dump(jsondoc.envelope(_doc_command or "", body, None, code), compact=True))
    return not _reader_gone


def finish_document(code: int, failure: HakeepError | None = None) -> None:
    """Print the --json document: the command's fields (if it got that far), its exit code, and the
    first error the run printed (or ``failure``); nothing without --json. After streamed lines, only
    an error's document, on one line too."""
    global _doc_command
    if _doc_command is None:
        return
    from hakeep.cli import jsondoc

    command, _doc_command = _doc_command, None
    error = _doc_error or failure
    if _doc_streamed and error is None:
        return
    emit(jsondoc.dump(jsondoc.envelope(command, None if _doc_streamed else _doc, error, code),
                      compact=_doc_lines))


def error(exc: HakeepError) -> None:
    """An inventory's problems print as bare ``FILE: KEY.PATH: message`` lines; others as ``error:``.
    With --json, the first one is also the document's ``error``."""
    global _doc_error
    if _doc_command is not None and _doc_error is None:
        _doc_error = exc
    con = err()
    if isinstance(exc, InventoryError):
        for p in exc.problems:
            text = p.render(exc.source)
            head, sep, rest = text.partition(": ")
            con.print(Text.assemble((head + sep, "red"), rest))
    else:
        for line in exc.message.splitlines() or [exc.message]:
            con.print(Text.assemble(("error: ", "bold red")) + Text(line))
    if exc.hint:
        con.print(Text.assemble(("hint: ", "cyan")) + Text(exc.hint))


def warnings(source: str, problems: Iterable[Problem]) -> int:
    count = 0
    for p in problems:
        err().print(Text.assemble(("warning: ", "bold yellow")) + Text(p.render(source)))
        count += 1
    return count


def warn(message: str) -> None:
    """One ``warning:`` line on stderr."""
    err().print(Text.assemble(("warning: ", "bold yellow")) + Text(message))


def progress(message: str) -> None:
    """One line on stderr, also under --json: what a long wait is waiting for."""
    err().print(Text(message))


def line(message: str, style: str = "") -> None:
    out().print(Text(message, style=style))


def success(message: str) -> None:
    out().print(Text.assemble(("ok: ", "bold green")) + Text(message))


def file_listing(title: str, text: str, lexer: str) -> None:
    con = out()
    con.print(Text(f"# ---- {title} ----", style="bold cyan"))
    if con.is_terminal:
        from rich.syntax import Syntax  # (pygments: only a listing needs it)

        con.print(Syntax(text, lexer, theme="ansi_dark", word_wrap=False, background_color="default"))
    else:
        con.print(Text(text), end="")


def verbose(*, debug: bool = False) -> None:
    """-v: one stderr line per remote command as it ends (its display name holds no secret);
    --debug: that, and paramiko's own log in a private file whose path is printed first."""
    from hakeep.hosts import remote

    def trace(host: str, what: str, seconds: float, code: int | None) -> None:
        status = "no exit status" if code is None or code < 0 else f"exit {code}"
        err().print(Text.assemble(("  ssh ", "dim"), f"{host}: {what} ({seconds:.2f}s, {status})"))

    remote.TRACE = trace
    if debug:
        import logging
        import tempfile

        fd, path = tempfile.mkstemp(prefix="hakeep-debug-", suffix=".log")  # 0600
        os.close(fd)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(threadName)s %(message)s"))
        log = logging.getLogger("paramiko")
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        err().print(Text.assemble(("debug: ", "bold"), f"the SSH library's log goes to {path}"))
