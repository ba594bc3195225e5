"""What keepalived runs, against what its file says: the proof that a reload took.

keepalived reloads in its own process (SIGHUP), so unlike haproxy no new process shows that a new
file was read. Its own account does: asked with the DATA signal, keepalived dumps the
configuration it runs. ``sh/lib.sh`` (``hk_keepalived_parse``) boils that dump down to one line
per VRRP instance, never the password::

    NAME state=S router=R vrid=N priority=N interface=I src=A advert=MS vips=A/P,... peers=A,...

:func:`expected` reads a keepalived.conf into the same format, holding only what the file states
(keepalived's defaults are not guessed; ``vips`` and ``peers`` are always there, so a list emptied
in the file shows). hakeep's template ends ``router_id`` with a digest of the file, so any change
of the file changes what keepalived must report: a reload that has not happened yet cannot pass.
:func:`differences` says how a running summary departs from the file. The gate compares the two
on the host (``hk_judge_keepalived``); ``status`` compares them here from the facts. Pure
functions, tested on real dumps (``tests/data/keepalived``).

A file that uses ``include`` cannot be read whole here: :func:`expected` gives nothing for it
(only the instances' states are then checked).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence

LIST_KEYS = {"virtual_ipaddress": "vips", "unicast_peer": "peers"}
SCALAR_KEYS = {"virtual_router_id": "vrid", "priority": "priority", "interface": "interface",
               "unicast_src_ip": "src", "advert_int": "advert"}
ORDER = ("state", "router", "vrid", "priority", "interface", "src", "advert", "vips", "peers")
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


def _address(word: str) -> list[str]:
    """An address as keepalived prints it: canonical, without a host prefix; a range
    (``10.0.0.10-12/24``) as each of its addresses."""
    addr, _, prefix = word.partition("/")
    first, dash, last = addr.partition("-")
    try:
        ip = ipaddress.ip_address(first)
    except ValueError:
        return [word]
    host = 32 if ip.version == 4 else 128
    suffix = f"/{prefix}" if prefix and prefix != str(host) else ""
    if not dash:
        return [f"{ip}{suffix}"]
    try:
        end = int(last, 10 if ip.version == 4 else 16)
        step = 256 if ip.version == 4 else 65536
        start = int(ip) % step
        return [f"{ipaddress.ip_address(int(ip) - start + n)}{suffix}" for n in range(start, end + 1)]
    except ValueError:
        return [word]


def _advert(value: str, version3: bool) -> str:
    """advert_int in ms as keepalived runs it: VRRPv2 has whole seconds only (it rounds)."""
    try:
        seconds = float(value)
    except ValueError:
        return value
    if version3:
        return str(round(seconds * 1000))
    return str(max(1, int(seconds + 0.5)) * 1000)


def expected(conf: str) -> tuple[str, ...]:
    """The summary lines a keepalived running ``conf`` would report, with what the file states only
    (no state: that is keepalived's, not the file's)."""
    instances: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    router = ""
    global_v3 = False
    v3: dict[str, bool] = {}
    adverts: dict[str, str] = {}
    for path, words in _statements(conf):
        if not path and words[0] == "include":
            return ()
        if path == ("global_defs",) and len(words) > 1:
            if words[0] == "router_id":
                router = words[1]
            elif words[0] == "vrrp_version":
                global_v3 = words[1] == "3"
        if len(path) == 1 and path[0] == "vrrp_instance" and words[0] == "vrrp_instance":
            name = words[1] if len(words) > 1 else ""
            current = instances.setdefault(name, {"vips": [], "peers": []})
            continue
        if current is None or not path or path[0] != "vrrp_instance":
            continue
        if len(path) == 1 and words[0] == "version" and len(words) > 1:
            v3[name] = words[1] == "3"
        elif len(path) == 1 and words[0] == "advert_int" and len(words) > 1:
            adverts[name] = words[1]
        elif len(path) == 1 and words[0] in SCALAR_KEYS and len(words) > 1:
            current[SCALAR_KEYS[words[0]]] = _address(words[1]) if words[0] == "unicast_src_ip" else [words[1]]
        elif len(path) == 2 and path[1] in LIST_KEYS and words[0] != path[1]:
            current[LIST_KEYS[path[1]]].extend(_address(words[0]))
    for name, value in adverts.items():
        instances[name]["advert"] = [_advert(value, v3.get(name, global_v3))]
    if router:
        for fields in instances.values():
            fields["router"] = [router]
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
                out.append(f"{name}: {key} {have or '(none)'} running, {value or '(none)'} in the file")
    out.extend(f"{name}: running, not in the file" for name in live if name not in file)
    return out
