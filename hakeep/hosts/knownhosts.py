"""known_hosts as OpenSSH reads it, without paramiko.

It owns which files a hop's keys come from: UserKnownHostsFile with a leading ``~`` and then the
tokens ssh_config(5) allows there (%%, %C, %d, %h, %i, %k, %L, %l, %n, %p, %r, %u) and ``${VAR}``
expanded exactly as OpenSSH does, anything else (%j, %T, a lone %, an unset or secret variable, %C
behind a ProxyJump) refused with an error naming it and the host, never read as a literal path;
GlobalKnownHostsFile, where OpenSSH expands nothing, refusing any ``%`` or ``${``. Then which lines
name a host (patterns, ``!`` negation, hashed ``|1|`` entries), which keys they trust or revoke
(``@revoked``; ``@cert-authority`` lines are skipped: hakeep trusts no certificates; a line with
any other marker -- misspelt, in another case, or a second one -- is skipped as OpenSSH skips it,
never trusted), and OpenSSH's SHA256 fingerprint of a key. The host-key policy that uses them is
:class:`hakeep.hosts.sshhosts.HostKeyCheck`.
"""
from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import os
import pwd
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hakeep.hosts.childenv import SUDO_ENV
from hakeep.hosts.remote import ConnectError

__all__ = ["Hop", "expand", "fingerprint", "global_known_hosts_files", "host_matches", "known_keys",
           "user_known_hosts_files"]


USER_DEFAULT = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_DEFAULT = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# What ssh_config(5) TOKENS lets UserKnownHostsFile use, besides %% and ${VAR} (OpenSSH 9.2: no %j)
TOKENS = "CdhikLlnpru"
_SHOWN = "%%, %C, %d, %h, %i, %k, %L, %l, %n, %p, %r, %u or ${VAR}"


@dataclass(frozen=True)
class Hop:
    """One hop as the tokens of its known_hosts files see it."""

    label: str  # who the errors are about ("lb1", "lb1: jump host jumpbox")
    host: str  # HostName, else the host as given (%h)
    original: str  # the host as given (%n)
    port: int  # %p
    user: str  # the remote user (%r)
    alias: str | None = None  # HostKeyAlias (%k)
    proxy_jump: str | None = None  # ProxyJump: %C is hashed differently across OpenSSH releases then


def user_known_hosts_files(value: str | None, hop: Hop, secret_env: Iterable[str] = ()) -> list[Path]:
    """UserKnownHostsFile's files as OpenSSH finds them: several, ``none`` for none, each with a
    leading ``~`` expanded, then its ``%`` tokens and ``${VAR}`` (:func:`expand`)."""
    if value is None:
        return [Path(p).expanduser() for p in USER_DEFAULT]
    if value.strip().lower() == "none":
        return []
    return [Path(expand(os.path.expanduser(word), hop, "UserKnownHostsFile", secret_env)) for word in value.split()]


def global_known_hosts_files(value: str | None, hop: Hop) -> list[Path]:
    """GlobalKnownHostsFile's files. OpenSSH expands no token nor variable there (it opens the literal
    name), so a ``%`` or ``${`` is refused rather than read from a path nobody meant. (A leading ``~``
    is expanded, as hakeep always did; OpenSSH would open a relative ``~/...``.)"""
    if value is None:
        return [Path(p) for p in GLOBAL_DEFAULT]
    if value.strip().lower() == "none":
        return []
    for word in value.split():
        found = re.search(r"%.?|\$\{[^}]*\}?", word)
        if found:
            raise _refused(hop, "GlobalKnownHostsFile", word,
                           f"OpenSSH does not expand {found.group()} there (it would open that literal name)",
                           "write the path out in full")
    return [Path(word).expanduser() for word in value.split()]


def expand(word: str, hop: Hop, keyword: str, secret_env: Iterable[str] = ()) -> str:
    """``word`` with its ``%`` tokens and ``${VAR}`` expanded in one pass, as OpenSSH's
    percent_dollar_expand does (a variable's value is not expanded again). A token hakeep cannot
    expand exactly as OpenSSH would, an unset variable, or one that holds a secret (HAKEEP_SUDO_PASSWORD,
    ``secret_env``) is a :class:`ConnectError` naming it and the host."""
    secrets = {SUDO_ENV, *secret_env}
    out: list[str] = []
    i = 0
    while i < len(word):
        if word.startswith("${", i):
            end = word.find("}", i + 2)
            if end < 0:
                raise _refused(hop, keyword, word, "${ without its closing }")
            name = word[i + 2:end]
            if not name:
                raise _refused(hop, keyword, word, "${} names no variable")
            if name in secrets:
                raise _refused(hop, keyword, word, f"${{{name}}} holds a secret; it goes into no path")
            value = os.environ.get(name)
            if value is None:
                raise _refused(hop, keyword, word, f"${{{name}}} is not set")
            out.append(value)
            i = end + 1
        elif word[i] == "%":
            key = word[i + 1:i + 2]
            if not key:
                raise _refused(hop, keyword, word, "a lone % at its end")
            out.append("%" if key == "%" else _token(key, hop, keyword, word))
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _token(key: str, hop: Hop, keyword: str, word: str) -> str:
    """What ``%key`` stands for, as ssh_config(5) TOKENS defines it (``ssh -G`` agrees)."""
    local = socket.gethostname()
    if key not in TOKENS:
        raise _refused(hop, keyword, word, f"hakeep does not expand %{key} there")
    if key == "C":
        if hop.proxy_jump and hop.proxy_jump.lower() != "none":
            raise _refused(hop, keyword, word, "%C with a ProxyJump: newer OpenSSH releases hash the "
                           "ProxyJump (%j) too, so the file it names depends on the release")
        return hashlib.sha1(f"{local}{hop.host.lower()}{hop.port}{hop.user}".encode()).hexdigest()  # noqa: S324
    values = {
        "d": str(Path.home()),  # $HOME (OpenSSH: the passwd entry's home; the same unless $HOME is changed)
        "h": hop.host.lower(),
        "i": str(os.getuid()),
        "k": hop.alias.lower() if hop.alias else hop.original,
        "L": local.split(".")[0],
        "l": local,
        "n": hop.original,
        "p": str(hop.port),
        "r": hop.user,
    }
    return values[key] if key != "u" else _local_user()


def _local_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name  # like OpenSSH: the passwd entry, not $USER
    except KeyError:
        return getpass.getuser()


def _refused(hop: Hop, keyword: str, word: str, why: str, hint: str | None = None) -> ConnectError:
    return ConnectError(f"{hop.label}: cannot use {keyword} {word} for {hop.host}: {why}",
                        hint=hint or f"use only {_SHOWN} there (ssh_config(5), TOKENS), or write the path out",
                        kind="config")


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
