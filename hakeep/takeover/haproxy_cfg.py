"""haproxy.cfg as haproxy reads it: sections of statements, with where each came from.

Each line is split into words as haproxy does: white space separates them, ``#`` starts a comment
outside quotes, ``"..."`` (with backslash escapes) and ``'...'`` (taken as is) are one word, and a
backslash escapes the next character. A line whose first word is a section keyword (``global``,
``defaults``, ``frontend``, ``backend``, ``listen``, ...) opens that section; the lines after it are
its statements. Conditional blocks (``.if``), environment variables in values (``"${VAR}"``) and
statements before any section are a :class:`~hakeep.takeover.keepalived_conf.ParseError` naming the
file and line: never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hakeep.takeover.keepalived_conf import ParseError

SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers", "mailers",
            "program", "http-errors", "ring", "cache", "crt-store", "traces", "log-forward")


@dataclass(frozen=True)
class Statement:
    words: tuple[str, ...]
    file: str
    line: int

    @property
    def keyword(self) -> str:
        return self.words[0]

    @property
    def args(self) -> tuple[str, ...]:
        return self.words[1:]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Section:
    kind: str  # global, defaults, frontend, backend, listen, ...
    name: str  # "" for global and an unnamed defaults
    statements: tuple[Statement, ...]
    file: str
    line: int
    args_after_name: tuple[str, ...] = ()  # ``from NAME`` and the like

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def all(self, *keyword: str) -> list[Statement]:
        """Statements starting with these words (``all("option", "httpchk")``)."""
        n = len(keyword)
        return [s for s in self.statements if s.words[:n] == keyword]

    def last(self, *keyword: str) -> Statement | None:
        found = self.all(*keyword)
        return found[-1] if found else None


def words(line: str, where: str) -> list[str]:
    out: list[str] = []
    word: str | None = None
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                word = (word or "") + ch
        elif ch == "\\" and i + 1 < len(line):
            i += 1
            word = (word or "") + line[i]
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch == "$" and line[i + 1:i + 2] == "{":
                raise ParseError(f"{where}: an environment variable in a value is not followed by hakeep import",
                                 hint="write the value out in the file, then import")
            else:
                word = (word or "") + ch
        elif ch in "\"'":
            quote = ch
            word = word or ""
        elif ch == "#":
            break
        elif ch.isspace():
            if word is not None:
                out.append(word)
            word = None
        else:
            word = (word or "") + ch
        i += 1
    if quote:
        raise ParseError(f"{where}: a {quote} quote is not closed on this line")
    if word is not None:
        out.append(word)
    return out


def statements(text: str, file: str, host: str = "") -> Iterator[Statement]:
    for number, raw in enumerate(text.split("\n"), 1):  # haproxy ends lines at \n only
        where = f"{host}:{file}:{number}" if host else f"{file}:{number}"
        found = words(raw, where)
        if found:
            if found[0].startswith(".") and found[0] in (".if", ".elif", ".else", ".endif", ".diag", ".notice",
                                                          ".warning", ".alert"):
                raise ParseError(f"{where}: {found[0]}: conditional blocks are not followed by hakeep import",
                                 hint="keep the branch that applies, then import")
            yield Statement(tuple(found), file, number)


def parse(text: str, file: str, host: str = "") -> list[Section]:
    sections: list[Section] = []
    current: tuple[str, str, list[Statement], int, tuple[str, ...]] | None = None
    for st in statements(text, file, host):
        if st.keyword in SECTIONS:
            if current is not None:
                sections.append(Section(current[0], current[1], tuple(current[2]), file, current[3], current[4]))
            current = (st.keyword, st.args[0] if st.args else "", [], st.line, st.args[1:])
            continue
        if current is None:
            where = f"{host}:{st.where}" if host else st.where
            raise ParseError(f"{where}: {st.keyword!r} comes before any section (global, defaults, frontend, ...)")
        current[2].append(st)
    if current is not None:
        sections.append(Section(current[0], current[1], tuple(current[2]), file, current[3], current[4]))
    return sections
