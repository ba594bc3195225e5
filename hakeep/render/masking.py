"""What of a config file a person may see: secret-bearing directives masked, and masked diffs.

Two ways, both structural, neither replaces a secret's *value* wherever it happens to occur (a VRRP
password ``haproxy`` must not turn ``chroot /var/lib/haproxy`` into ``/var/lib/********``):

* a file hakeep renders is rendered a second time with ``********`` in place of each secret
  (:func:`hakeep.render.engine.render_all`); that copy is what listings and diffs show of it;
* a file hakeep did not render (the live file on a host, a file saved in a release) is shown with
  the value of every secret-bearing directive of haproxy and keepalived masked
  (:func:`mask_directives`), whoever wrote it: ``stats auth USER:PASS``, userlist ``password`` and
  ``insecure-password``, keepalived's ``auth_pass`` -- any spacing, quoted or not, in comments too.

:func:`unified_diff` compares the real bytes (a changed password is a changed line) and prints each
line in its masked form, so no diff ever carries a secret.
"""

from __future__ import annotations

import difflib
import re

MASK = "********"

# one haproxy/keepalived word: quoted parts, backslash escapes and plain characters, glued together
_WORD = r"""(?:"(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|\\.|[^\s"'\\])+"""
_SEP = r"[ \t]+"
_RULES = (
    # keepalived (anywhere on a line: `authentication { auth_type PASS auth_pass x }` is legal)
    re.compile(rf"(?P<key>(?:^|(?<=[\s{{;]))auth_pass{_SEP})(?P<value>{_WORD})"),
    # haproxy userlist: `user NAME [password HASH | insecure-password PASS] [groups ...]`
    re.compile(rf"(?P<key>(?:^|(?<=\s))insecure-password{_SEP})(?P<value>{_WORD})"),
    re.compile(rf"(?P<key>^[ \t]*user{_SEP}{_WORD}(?:{_SEP}{_WORD})*?{_SEP}password{_SEP})(?P<value>{_WORD})"),
)
# haproxy `stats auth USER:PASS`: the user stays visible, everything after the first ':' is masked
_STATS_AUTH = re.compile(rf"(?P<key>(?:^|(?<=\s))stats{_SEP}auth{_SEP})(?P<value>{_WORD})")


def _mask_credentials(m: re.Match[str]) -> str:
    value = m.group("value")
    colon = value.find(":")
    quote = value[0] if value[:1] in "\"'" else ""
    if colon < 0:
        return m.group("key") + quote + MASK + quote
    return m.group("key") + value[: colon + 1] + MASK + quote


def _mask_value(m: re.Match[str]) -> str:
    quote = m.group("value")[0] if m.group("value")[:1] in "\"'" else ""
    return m.group("key") + quote + MASK + quote


def mask_line(line: str) -> str:
    """One line of a haproxy or keepalived config with the value of each secret directive masked."""
    for rule in _RULES:
        line = rule.sub(_mask_value, line)
    return _STATS_AUTH.sub(_mask_credentials, line)


def mask_directives(text: str) -> str:
    """``text`` (any haproxy or keepalived config) with every secret directive's value masked."""
    return "".join(mask_line(line) for line in text.splitlines(keepends=True))


def _lines(data: bytes | None) -> list[str]:
    return data.decode("utf-8", "replace").splitlines(keepends=True) if data is not None else []


def unified_diff(path: str, old: bytes | None, new: bytes | None, shown_new: bytes | None = None) -> str:
    """A unified diff of ``old`` (the live file; None: absent) to ``new`` (None: removed), computed
    on the real bytes and printed masked: new lines as ``shown_new`` has them (the masked render),
    old lines, and new ones without a line-for-line masked render, by :func:`mask_directives`."""
    a, b = _lines(old), _lines(new)
    a_shown = [mask_line(line) for line in a]
    b_shown = _lines(shown_new) if shown_new is not None else []
    if len(b_shown) != len(b):  # no masked render, or a template that made it differ line for line
        b_shown = [mask_line(line) for line in b]
    out: list[str] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(3):
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

