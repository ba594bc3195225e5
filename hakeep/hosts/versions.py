"""haproxy and keepalived versions as hosts report them: parsed from the programs' own banners
(``haproxy -v``, ``keepalived -v``) and, for a package not installed yet, from what the host's
package manager would install (its candidate, read from its local metadata: ``apt-cache policy``,
``dnf -C repoquery``, ``yum -C list available``; no download, so nothing changes on the host).
Pure parsing; what a version can do is :mod:`hakeep.plan.platform`'s business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Version = tuple[int, ...]

_BANNER_RE = re.compile(r"(?:version|v)\s*(\d+(?:\.\d+)+[^\s]*)", re.IGNORECASE)
_NUMBERS_RE = re.compile(r"(\d+(?:\.\d+)*)")


def parse_version(banner: str) -> str:
    """``HAProxy version 2.6.12-1+deb12u4 ...`` -> ``2.6.12-1+deb12u4``; ``Keepalived v2.2.7`` -> ``2.2.7``."""
    m = _BANNER_RE.search(banner)
    return m.group(1) if m else banner.strip()


def version_key(version: str) -> Version | None:
    """The upstream release as numbers: ``1:2.2.7-1+b2`` (epoch, Debian revision) -> (2, 2, 7);
    ``3.0.11-1+deb13u5`` -> (3, 0, 11); None when there is no number to read."""
    v = version.strip()
    if re.match(r"^\d+:", v):  # a package epoch
        v = v.split(":", 1)[1]
    m = _NUMBERS_RE.match(v)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def short(version: Version) -> str:
    return ".".join(str(x) for x in version)


def parse_candidates(lines: Sequence[str]) -> dict[str, str]:
    """The facts section ``candidates``: ``@MANAGER`` then that manager's own output about the
    packages not installed. -> {package: version it would install}; a package it does not know
    (no metadata yet, or no such package) is left out."""
    manager = ""
    out: dict[str, str] = {}
    current = ""
    for raw in lines:
        line = raw.rstrip()
        if line.startswith("@"):
            manager, current = line[1:].strip(), ""
            continue
        if manager == "apt-get":
            # "haproxy:" opens a package's block; "  Candidate: 2.6.12-1+deb12u4" or "(none)"
            if line and not line[0].isspace() and line.endswith(":"):
                current = line[:-1].split(":", 1)[0]
            elif current and line.strip().startswith("Candidate:"):
                value = line.split(":", 1)[1].strip()
                if value and value != "(none)":
                    out.setdefault(current, value)
        elif manager == "dnf":
            # repoquery --qf '%{name}=%{version}\n' (dnf 4 and 5)
            name, sep, value = line.strip().partition("=")
            if sep and name and value and name not in out:
                out[name] = value
        elif manager == "yum":
            # "haproxy.x86_64   1.5.18-9.el7_9.1   updates" under "Available Packages"
            words = line.split()
            if len(words) >= 2 and "." in words[0] and version_key(words[1]) is not None:
                name = words[0].rsplit(".", 1)[0]
                out.setdefault(name, words[1])
    return out


def parse_services(lines: list[str]) -> tuple[str, ...] | None:
    """``haproxy -vv``'s "Available services : a b" (the names may go on, indented, on the lines
    after it; "none" for none) -> ("a", "b"); ``None`` when the line is not there."""
    if not lines or not lines[0].startswith("Available services"):
        return None
    words = lines[0].partition(":")[2].split()
    for line in lines[1:]:
        if not line[:1].isspace():
            break
        words += line.split()
    return tuple(w for w in words if w != "none")
