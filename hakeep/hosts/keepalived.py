"""What keepalived runs, against what its file says: the proof that a reload took.

keepalived reloads in its own process (SIGHUP), so unlike haproxy no new process shows that a new
file was read. Its own account does: asked with the DATA signal, keepalived dumps the
configuration it runs. ``sh/lib.sh`` (``hk_keepalived_summary``) boils that dump down to one line
per VRRP instance, never the password::

    NAME state=S vrid=N priority=N interface=I src=A advert=MS vips=A/P,... peers=A,...

:func:`expected` reads a keepalived.conf into the same format, holding only what the file states
(keepalived's defaults are not guessed), and :func:`differences` says how a running summary
departs from it. The gate compares the two on the host (``hk_check_keepalived``); ``status``
compares them here from the facts. Pure functions, tested on real dumps (``tests/data/keepalived``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

LIST_KEYS = {"virtual_ipaddress": "vips", "unicast_peer": "peers"}
SCALAR_KEYS = {"virtual_router_id": "vrid", "priority": "priority", "interface": "interface",
               "unicast_src_ip": "src", "advert_int": "advert"}
ORDER = ("state", "vrid", "priority", "interface", "src", "advert", "vips", "peers")
_HOST_PREFIX = re.compile(r"/(32|128)$")
_TOKEN = re.compile(r'"[^"]*"|[{}]|[^\s{}"]+')


def _tokens(text: str) -> Iterator[str]:
    """keepalived's words, with "\\n" closing each line; comments (``#``, ``!``) left out."""
    for line in text.splitlines():
        for tok in _TOKEN.findall(line):
            if tok[0] in "#!":
                break
            yield tok
        yield "\n"


def _statements(text: str) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """Each statement as (the keywords of the blocks it is in, its words); a block's opening
    statement is given with the block's own path."""
    path: list[str] = []
    words: list[str] = []
    for tok in _tokens(text):
        if tok in ("\n", "{", "}"):
            if words:
                yield tuple(path), words
            if tok == "{":
                path.append(words[0] if words else "")
                if words:
                    yield tuple(path), words
            elif tok == "}" and path:
                path.pop()
            words = []
        else:
            words.append(tok.strip('"'))


def _vip(word: str) -> str:
    return _HOST_PREFIX.sub("", word)


def _advert(value: str) -> str:
    try:
        return str(round(float(value) * 1000))
    except ValueError:
        return value


def expected(conf: str) -> tuple[str, ...]:
    """The summary lines a keepalived running ``conf`` would report, with what the file states only
    (no state: that is keepalived's, not the file's)."""
    instances: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for path, words in _statements(conf):
        if len(path) == 1 and path[0] == "vrrp_instance" and words[0] == "vrrp_instance":
            current = instances.setdefault(words[1] if len(words) > 1 else "", {})
            continue
        if current is None or not path or path[0] != "vrrp_instance":
            continue
        if len(path) == 1 and words[0] in SCALAR_KEYS and len(words) > 1:
            value = _advert(words[1]) if words[0] == "advert_int" else words[1]
            current[SCALAR_KEYS[words[0]]] = [value]
        elif len(path) == 2 and path[1] in LIST_KEYS and words[0] != path[1]:
            key = LIST_KEYS[path[1]]
            current.setdefault(key, []).append(_vip(words[0]) if key == "vips" else words[0])
    return tuple(_line(name, fields) for name, fields in instances.items())


def _line(name: str, fields: Mapping[str, Sequence[str]]) -> str:
    parts = [name]
    for key in ORDER:
        if key in fields:
            parts.append(f"{key}={','.join(sorted(fields[key]))}")
    return " ".join(parts)


def parse(lines: Sequence[str]) -> dict[str, dict[str, str]]:
    """Summary lines -> {instance: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in lines:
        words = line.split()
        if words:
            out[words[0]] = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return out


def states(running: Sequence[str]) -> dict[str, str]:
    """{instance: VRRP state} as keepalived reports it."""
    return {name: fields.get("state", "") for name, fields in parse(running).items()}


def differences(want: Sequence[str], running: Sequence[str]) -> list[str]:
    """How the running summary departs from the file's: "NAME: priority 100 running, 99 in the
    file", "NAME: in the file, not running", ...; empty when keepalived runs the file."""
    file, live = parse(want), parse(running)
    out = []
    for name, fields in file.items():
        if name not in live:
            out.append(f"{name}: in the file, not running")
            continue
        for key, value in fields.items():
            have = live[name].get(key, "")
            if have != value:
                out.append(f"{name}: {key} {have or '(none)'} running, {value} in the file")
    out.extend(f"{name}: running, not in the file" for name in live if name not in file)
    return out
