"""What of a config file a person may see: secret-bearing directives masked, and masked diffs.

Two ways, both structural, neither replaces a secret's *value* wherever it happens to occur (a VRRP
password ``haproxy`` must not turn ``chroot /var/lib/haproxy`` into ``/var/lib/********``):

* a file hakeep renders is rendered a second time with ``********`` in place of each secret
  (:func:`hakeep.render.engine.render_all`); that copy is what listings and diffs show of it;
* a file hakeep did not render (the live file on a host, a file saved in a release) is shown with
  the value of every secret-bearing directive of haproxy and keepalived masked
  (:func:`mask_directives`), whoever wrote it. Each line is split into words the way both parsers
  do (any blank, quotes, backslash escapes; a leading ``#``/``!`` is a comment, read all the same),
  so ``"auth_pass" pw``, ``stats au\\x74h u:pw`` and ``#auth_pass pw`` are masked as well as the
  plain forms: ``stats auth USER:PASS``, userlist ``password``/``insecure-password``, keepalived
  ``auth_pass``, the digest hakeep ends keepalived's ``router_id`` with (it is taken over the real
  file), a keepalived ``$NAME=value`` definition and a haproxy ``setenv``/``presetenv`` whose name
  says secret (``PASS``, ``SECRET``, ``TOKEN``, ``KEY``, ``AUTH``, ``PW``, ``CRED``).

:func:`unified_diff` compares the real bytes (a changed password is a changed line) and prints each
line in its masked form. A removed line (or a new one with no line-for-line masked render) has
also each word that *is* one of the run's secrets masked: a ``--templates`` file may hold a secret
anywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

MASK = "********"
_BLANK = " \t\f\v\r"
_SECRET_NAME = re.compile(r"(?i)pass|secret|token|key|auth|pw|cred")
_DIGEST = re.compile(r"-[0-9a-f]{12}$")


def _words(line: str) -> list[tuple[int, int, str]]:
    """(start, end, value) of each word of ``line``: blanks split, quotes and escapes are undone,
    braces and a leading comment sign are not part of a word's value."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in _BLANK:
            i += 1
            continue
        start, value = i, []
        while i < n and line[i] not in _BLANK:
            c = line[i]
            if c in "\"'":
                end = line.find(c, i + 1) if c == "'" else _closing_quote(line, i + 1)
                end = n if end < 0 else end
                value.append(_unescape(line[i + 1:end]) if c == '"' else line[i + 1:end])
                i = end + 1
            elif c == "\\" and i + 1 < n:
                hexa = line[i + 2:i + 4] if line[i + 1] == "x" else ""
                if len(hexa) == 2 and all(h in "0123456789abcdefABCDEF" for h in hexa):
                    value.append(chr(int(hexa, 16)))
                    i += 4
                else:
                    value.append(line[i + 1])
                    i += 2
            else:
                value.append(c)
                i += 1
        out.append((start, min(i, n), "".join(value).lstrip("#!").strip("{}")))
    return out


def _closing_quote(line: str, i: int) -> int:
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == '"':
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})|\\(.)", lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)


def _secret_spans(line: str, words: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """The spans of ``line`` that hold a secret, by the directives around them."""
    spans: list[tuple[int, int]] = []
    keys = [w[2] for w in words]
    for i, (start, _end, key) in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        after_user = key == "password" and "user" in keys[:i]  # userlist: user NAME password HASH
        if nxt is not None and (key in ("auth_pass", "insecure-password") or after_user):
            spans.append(nxt[:2])
        elif key == "stats" and nxt is not None and nxt[2] == "auth" and i + 2 < len(words):
            s, e, _value = words[i + 2]
            raw = line[s:e]
            colon = raw.find(":")
            plain = colon >= 0 and not any(c in raw for c in "\"'\\")
            spans.append((s + colon + 1, e) if plain else (s, e))
        elif key == "router_id" and nxt is not None and _DIGEST.search(line[nxt[0]:nxt[1]]):
            spans.append((nxt[1] - 12, nxt[1]))
        elif key in ("setenv", "presetenv") and i + 2 < len(words) and _SECRET_NAME.search(words[i + 1][2]):
            spans.append(words[i + 2][:2])
        elif key.startswith("$") and "=" in key and _SECRET_NAME.search(key.split("=", 1)[0]):
            at = line.index("=", start) + 1  # keepalived: $NAME=the rest of the line
            spans.append((at, len(line.rstrip("\r"))))
            break
    return spans


def mask_line(line: str, secrets: Sequence[str] = ()) -> str:
    """One line of a haproxy or keepalived config with each secret directive's value masked; with
    ``secrets``, also each word that is one of them."""
    words = _words(line)
    spans = _secret_spans(line, words)
    if secrets:
        spans += [(s, e) for s, e, value in words if value in secrets]
        spans += [(s, e) for s, e, piece in _pieces(line) if piece in secrets]
    for s, e in sorted(set(spans), reverse=True):
        if not any(s2 <= s and e <= e2 and (s2, e2) != (s, e) for s2, e2 in spans):
            line = line[:s] + MASK + line[e:]
    return line


def _pieces(line: str) -> list[tuple[int, int, str]]:
    """The parts of ``line`` between blanks, quotes and the separators ``:=,;`` (``-u admin:PW``)."""
    return [(m.start(), m.end(), m[0]) for m in re.finditer(r"[^\s\"':=,;]+", line)]


def split_lines(text: str) -> list[str]:
    """``text`` cut after each ``\\n`` only (haproxy and keepalived end a line there and nowhere else)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    return [*out, lines[-1]] if lines[-1] else out


def mask_directives(text: str) -> str:
    """``text`` (any haproxy or keepalived config) with every secret directive's value masked."""
    return "".join(mask_line(line) for line in split_lines(text))


def _lines(data: bytes | None) -> list[str]:
    return split_lines(data.decode("utf-8", "replace")) if data is not None else []


def unified_diff(path: str, old: bytes | None, new: bytes | None, shown_new: bytes | None = None,
                 secrets: Sequence[str] = ()) -> str:
    """A unified diff of ``old`` (the live file; None: absent) to ``new`` (None: removed), computed
    on the real bytes and printed masked: new lines as ``shown_new`` has them (the masked render);
    old lines, and new ones without a line-for-line masked render, by their directives and with
    each word that is one of ``secrets`` masked."""
    a, b = _lines(old), _lines(new)
    a_shown = [mask_line(line, secrets) for line in a]
    b_shown = _lines(shown_new) if shown_new is not None else []
    if len(b_shown) != len(b):  # no masked render, or a template that made it differ line for line
        b_shown = [mask_line(line, secrets) for line in b]
    out: list[str] = []
    for group in difflib.SequenceMatcher(None, a, b).get_grouped_opcodes(3):
        if not out:
            out += [f"--- {path} (live)\n" if old is not None else "--- /dev/null\n",
                    f"+++ {path} (new)\n" if new is not None else "+++ /dev/null\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in b_shown[j1:j2]]
                continue
            out += ["-" + line for line in a_shown[i1:i2]]
            out += ["+" + line for line in b_shown[j1:j2]]
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _range(start: int, stop: int) -> str:
    """difflib's unified range: ``start,length`` counted from 1 (``start`` alone for one line)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"
