"""keepalived.conf as keepalived reads it: a tree of statements, with where each came from.

A statement is a keyword and its arguments on one line; a ``{`` ending the line opens a block of
statements closed by a ``}`` (braces may touch the words around them). ``#`` and ``!`` start a
comment anywhere outside double quotes; a double-quoted string is one argument (``"killall -0
haproxy"``). ``include GLOB`` is replaced by the statements of the files it names (relative to the
including file's folder), read through the caller's ``read`` (the live host's files). What keepalived
would refuse, and what this reader does not follow (``$NAME`` parameters, ``@host`` conditional
lines, an unbalanced brace), is a :class:`ParseError` naming the file and line: never guessed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hakeep.errors import UsageError

MAX_INCLUDE_DEPTH = 8


class ParseError(UsageError):
    """A config this reader cannot take as keepalived would: ``where`` is ``host:file:line``."""


@dataclass(frozen=True)
class Node:
    keyword: str
    args: tuple[str, ...]
    children: tuple[Node, ...] | None  # None: not a block
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def all(self, keyword: str) -> list[Node]:
        return [c for c in self.children or () if c.keyword == keyword]

    def last(self, keyword: str) -> Node | None:
        """The statement keepalived uses when one is given twice: the last."""
        found = self.all(keyword)
        return found[-1] if found else None


# read(pattern, relative_to) -> [(path, text), ...] for every file the glob names, sorted
Reader = Callable[[str], list[tuple[str, str]]]


def tokens(text: str, file: str, host: str = "") -> Iterator[tuple[int, list[str]]]:
    """(line number, words) per non-empty line; braces are words of their own."""
    for number, raw in enumerate(text.split("\n"), 1):  # keepalived ends lines at \n only
        words: list[str] = []
        word, quoted, i = "", False, 0
        while i < len(raw):
            ch = raw[i]
            if quoted:
                if ch == '"':
                    quoted = False
                    words.append(word)
                    word = ""
                else:
                    word += ch
            elif ch == "\\" and raw[i + 1:i + 2] in ("#", "!"):  # an escaped comment character is itself
                word += raw[i + 1]
                i += 1
            elif ch == '"':
                if word:
                    words.append(word)
                word, quoted = "", True
            elif ch in "#!":
                break
            elif ch in "{}":
                if word:
                    words.append(word)
                words.append(ch)
                word = ""
            elif ch.isspace():
                if word:
                    words.append(word)
                word = ""
            else:
                word += ch
            i += 1
        if quoted:
            raise ParseError(f"{_at(host, file, number)}: a double quote is not closed on this line")
        if word:
            words.append(word)
        if words:
            yield number, words


def parse(text: str, file: str, read: Reader | None = None, host: str = "") -> Node:
    """The whole config as a root block (keyword ``""``), includes followed."""
    stack: list[tuple[str, tuple[str, ...], list[Node], str, int]] = [("", (), [], file, 0)]
    for node_file, number, words in _lines(text, file, read, host, 0):
        where = _at(host, node_file, number)
        if words[0].startswith("@") or any(re.match(r"\$(\{|[A-Za-z_])", w) for w in words):
            raise ParseError(f"{where}: {words[0]}: keepalived parameters ($NAME) and conditional lines (@host) "
                             "are not followed by hakeep import", hint="write the values out in the file, then import")
        if words == ["}"]:
            if len(stack) == 1:
                raise ParseError(f"{where}: '}}' closes no block")
            kw, args, children, f, line = stack.pop()
            stack[-1][2].append(Node(kw, args, tuple(children), f, line))
            continue
        braces = [w for w in words if w in "{}"]
        if not braces:
            stack[-1][2].append(Node(words[0], tuple(words[1:]), None, node_file, number))
        elif braces == ["{"] and words[-1] == "{" and len(words) > 1:
            stack.append((words[0], tuple(words[1:-1]), [], node_file, number))
        elif braces == ["{", "}"] and words[-2:] == ["{", "}"] and len(words) > 2:  # `name { }`: an empty block
            stack[-1][2].append(Node(words[0], tuple(words[1:-2]), (), node_file, number))
        else:
            raise ParseError(f"{where}: {words[0]}: braces keepalived's reader would not take, or a block on one "
                             "line", hint="put each block's '{' at the end of its first line, its "
                             "statements on lines of their own, and its '}' on a line of its own")
    if len(stack) > 1:
        kw, _, _, f, line = stack[-1]
        raise ParseError(f"{_at(host, f, line)}: block {kw!r} is never closed")
    return Node("", (), tuple(stack[0][2]), file, 0)


def _lines(text: str, file: str, read: Reader | None, host: str, depth: int) -> Iterator[tuple[str, int, list[str]]]:
    for number, words in tokens(text, file, host):
        if words[0] != "include":
            yield file, number, words
            continue
        where = _at(host, file, number)
        if len(words) != 2:
            raise ParseError(f"{where}: include takes one file or pattern")
        if read is None or depth >= MAX_INCLUDE_DEPTH:
            raise ParseError(f"{where}: include {words[1]} cannot be followed here"
                             + (" (includes nested too deep)" if read is not None else ""))
        pattern = words[1] if words[1].startswith("/") else posixpath.join(posixpath.dirname(file), words[1])
        for path, included in read(pattern):
            yield from _lines(included, path, read, host, depth + 1)


def _at(host: str, file: str, line: int) -> str:
    return f"{host}:{file}:{line}" if host else f"{file}:{line}"
