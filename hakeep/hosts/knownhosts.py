"""known_hosts as OpenSSH reads it, without paramiko: which files (User/GlobalKnownHostsFile, with
``~`` and ``%d``/``%u`` expanded), which lines name a host (patterns, ``!`` negation, hashed
``|1|`` entries), which keys they trust or revoke (``@revoked``; ``@cert-authority`` lines are
skipped: hakeep trusts no certificates; a line with any other marker -- misspelt, in another case,
or a second one -- is skipped as OpenSSH skips it, never trusted), and OpenSSH's SHA256
fingerprint of a key. The host-key policy that uses them is :class:`hakeep.hosts.sshhosts.HostKeyCheck`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from pathlib import Path

__all__ = ["fingerprint", "host_matches", "known_hosts_paths", "known_keys"]


def known_hosts_paths(value: str | None, default: tuple[str, ...]) -> list[Path]:
    """UserKnownHostsFile/GlobalKnownHostsFile values: several, with ~ and %d/%u expanded."""
    if value is None:
        return [Path(p).expanduser() for p in default]
    if value.strip().lower() == "none":
        return []
    home, user = str(Path.home()), os.environ.get("USER", "")
    return [Path(p.replace("%d", home).replace("%u", user)).expanduser() for p in value.split()]


def _glob(pattern: str, name: str) -> bool:
    """known_hosts patterns: only ``*`` and ``?`` are special (``[host]:port`` is literal)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def host_matches(field: str, name: str) -> bool:
    """Does a known_hosts host field (hashed ``|1|salt|hash``, or a comma list of patterns
    where ``!pattern`` negates) name the host ``name``?"""
    if field.startswith("|1|"):
        try:
            salt, digest = field[3:].split("|", 1)
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(base64.b64encode(mac).decode(), digest)
    matched = False
    for pattern in field.split(","):
        if pattern.startswith("!"):
            if _glob(pattern[1:], name):
                return False
        elif _glob(pattern, name):
            matched = True
    return matched


_MARKERS = ("@cert-authority", "@revoked")  # all OpenSSH knows (hostfile.c check_markers), case and all


def known_keys(text: str, name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (key type, base64 blob) pairs a known_hosts text holds for ``name``: (trusted, revoked)."""
    trusted: list[tuple[str, str]] = []
    revoked: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        marker = None
        if fields and fields[0].startswith("@"):
            marker = fields.pop(0)
            if marker not in _MARKERS or (fields and fields[0].startswith("@")):
                continue  # an unknown, misspelt or second marker: OpenSSH skips the line, never trusts it
        if len(fields) < 3 or fields[0].startswith("#") or marker == "@cert-authority":
            continue
        if host_matches(fields[0], name):
            (revoked if marker == "@revoked" else trusted).append((fields[1], fields[2]))
    return trusted, revoked


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (``SHA256:`` + unpadded base64)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
