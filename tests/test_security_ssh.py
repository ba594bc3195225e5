"""Security of the SSH side: what the local processes hakeep starts may see, and what known_hosts
and ssh_config may make hakeep trust.

Item 6: no local child process (a ProxyCommand, that of a ProxyJump hop, an ssh_config ``Match exec``
command) gets HAKEEP_SUDO_PASSWORD or the variables the inventory names for its passwords; checked
with children that dump their environment, against a private sshd on 127.0.0.1 (tests/sshd.py).
Item 8: a known_hosts line with an unknown or misspelt marker is ignored, never trusted; the tokens
of UserKnownHostsFile are expanded as OpenSSH does (cross-checked with ``ssh -G``, which only parses
the config) or refused with an error naming the token and the host; GlobalKnownHostsFile, which
OpenSSH never expands, refuses them. Nothing here reads ~/.ssh or /etc/ssh: every config is ``-F``
style and names its known_hosts files in a temp folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest

from hakeep.hosts import sshresolve
from hakeep.hosts.connecting import connect
from hakeep.hosts.remote import ConnectError, HostKeyError
from hakeep.hosts.sshhosts import connection, known_keys
from hakeep.hosts.transport import SSHTransport
from hakeep.inventory.model import Inventory, LoadBalancer
from hakeep.run.session import open_session
from tests import sshd
from tests.fixtures import base_doc, load


@pytest.fixture
def trusted(server: sshd.Server) -> sshd.Server:
    """The server, its real key (only) in its known_hosts."""
    server.known_hosts.write_text("")
    server.trust()
    return server


# under CI the client is installed (scripts/install-test-deps): missing there is a failure, not a skip
NO_SSH_CLIENT = shutil.which("ssh") is None and os.environ.get("CI") != "true"

def _block(srv: sshd.Server, known_hosts: str | None = None) -> str:
    """The client settings for the test sshd; optionally another UserKnownHostsFile value."""
    block = sshd._client_block(srv.dir, srv.port, srv.user)
    if known_hosts is not None:
        block = block.replace(f"UserKnownHostsFile {srv.dir}/known_hosts", f"UserKnownHostsFile {known_hosts}")
    return block


def _ssh(t: object) -> SSHTransport:
    assert isinstance(t, SSHTransport)
    return t


# --- item 6 ----------------------------------------------------------------------------------------
# Every child hakeep starts while connecting dumps its environment; none may hold a secret.

SECRETS = {"HAKEEP_SUDO_PASSWORD": "sudo-secret-6", "HK_T6_VRRP": "vrrp6pw", "HK_T6_STATS": "stats-secret-6"}
PLAIN = ("HK_T6_PLAIN", "plain-value-6")  # not a secret: the children must still see it


def _dumping_relay(dump: Path) -> str:
    """A ProxyCommand that writes its environment to ``dump``, then relays to %h %p."""
    return f"sh -c 'env > {dump}; exec {sys.executable} {sshd.RELAY} \"$1\" \"$2\"' relay %h %p"


def _proxycommand(srv: sshd.Server, dump: Path) -> str:
    return f"Host {sshd.LOOPBACK}\n{_block(srv)}    ProxyCommand {_dumping_relay(dump)}\n"


def _jump_hop_proxycommand(srv: sshd.Server, dump: Path) -> str:
    return (f"Host jumpbox\n    HostName {sshd.LOOPBACK}\n{_block(srv)}    ProxyCommand {_dumping_relay(dump)}\n"
            f"Host {sshd.LOOPBACK}\n{_block(srv)}    ProxyJump jumpbox\n")


def _match_exec(srv: sshd.Server, dump: Path) -> str:
    return f"Host {sshd.LOOPBACK}\n{_block(srv)}Match exec \"env > {dump}\"\n    ServerAliveInterval 5\n"


CHILDREN: list[tuple[str, Callable[[sshd.Server, Path], str]]] = [
    ("proxycommand", _proxycommand),
    ("proxycommand-of-a-proxyjump-hop", _jump_hop_proxycommand),
    ("match-exec", _match_exec),
]


def _inventory(tmp_path: Path, lb: LoadBalancer) -> Inventory:
    """An inventory naming HK_T6_VRRP and HK_T6_STATS for its passwords, whose one LB is ``lb``."""
    doc = base_doc()
    doc["cluster"]["auth_pass_env"] = "HK_T6_VRRP"
    doc["haproxy"] = {"stats": {"password_env": "HK_T6_STATS"}}
    inv = load(tmp_path, doc)
    return replace(inv, lbs=(lb,))  # only the loopback sshd is ever connected to


def _environment(dump: Path) -> dict[str, str]:
    text = dump.read_text()
    for value in SECRETS.values():
        assert value not in text
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.mark.parametrize("make_config", [c for _, c in CHILDREN], ids=[n for n, _ in CHILDREN])
def test_no_child_process_gets_the_secret_variables(
        trusted: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        make_config: Callable[[sshd.Server, Path], str]) -> None:
    for name, value in [*SECRETS.items(), PLAIN]:
        monkeypatch.setenv(name, value)
    dump = tmp_path / "child.env"
    config = tmp_path / "ssh_config"
    config.write_text(make_config(trusted, dump))
    inv = _inventory(tmp_path, trusted.lb(config=config))
    with open_session(inv, lock=False, gather=False) as session:
        assert session.transports["lb1"].run("echo ok", privileged=False).text() == "ok\n"
    seen = _environment(dump)
    assert seen[PLAIN[0]] == PLAIN[1]  # the child got hakeep's environment...
    assert not set(SECRETS) & set(seen)  # ...without a single secret variable


def test_the_sudo_password_variable_is_scrubbed_whatever_the_caller_passes(
        trusted: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAKEEP_SUDO_PASSWORD", SECRETS["HAKEEP_SUDO_PASSWORD"])
    monkeypatch.setenv(*PLAIN)
    dump = tmp_path / "child.env"
    config = tmp_path / "ssh_config"
    config.write_text(_proxycommand(trusted, dump))
    with _ssh(connect(trusted.lb(config=config))) as t:  # no inventory names passed at all
        assert t.run("true", privileged=False).ok
    seen = _environment(dump)
    assert seen[PLAIN[0]] == PLAIN[1]
    assert "HAKEEP_SUDO_PASSWORD" not in seen


# --- item 8 ----------------------------------------------------------------------------------------
# known_hosts markers: OpenSSH knows @cert-authority and @revoked only (case-sensitive, one per
# line); any other marker makes it skip the line (hostfile.c check_markers). Never trusted.

ED = ("ssh-ed25519", "AAAA")
MARKERS: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = [
    # line, trusted, revoked
    ("@foo 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@revokd 10.0.0.1 ssh-ed25519 AAAA", [], []),  # a misspelt revocation must not become trust
    ("@revoke 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@Revoked 10.0.0.1 ssh-ed25519 AAAA", [], []),  # markers are case-sensitive
    ("@REVOKED 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@ 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@cert-authorities 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@revoked,@foo 10.0.0.1 ssh-ed25519 AAAA", [], []),
    # as before (guards): the two real markers, one marker only, plain lines
    ("@cert-authority 10.0.0.1 ssh-ed25519 AAAA", [], []),  # CA keys: hakeep trusts no certificates
    ("@revoked @foo 10.0.0.1 ssh-ed25519 AAAA", [], []),
    ("@revoked\t10.0.0.1 ssh-ed25519 AAAA", [], [ED]),
    ("  @revoked 10.0.0.1 ssh-ed25519 AAAA", [], [ED]),
    ("10.0.0.1 ssh-ed25519 AAAA", [ED], []),
]


@pytest.mark.parametrize(("line", "trusted_keys", "revoked_keys"), MARKERS, ids=[m[0] for m in MARKERS])
def test_known_hosts_markers(line: str, trusted_keys: list[tuple[str, str]],
                             revoked_keys: list[tuple[str, str]]) -> None:
    assert known_keys(line + "\n", "10.0.0.1") == (trusted_keys, revoked_keys)


@pytest.mark.parametrize("marker", ["@foo", "@revokd", "@Revoked"])
def test_a_key_behind_an_unknown_marker_is_unknown_to_a_real_connect(server: sshd.Server, marker: str) -> None:
    server.known_hosts.write_text("")
    server.trust(f"{marker} {server.key_name}")
    with pytest.raises(HostKeyError, match="unknown host key"):
        connect(server.lb())


# UserKnownHostsFile tokens, as ssh_config(5) TOKENS lists them for it: %%, %C, %d, %h, %i, %k,
# %L, %l, %n, %p, %r, %u, and ${VAR}; "~" first. Each expected value is computed here from its
# definition; `ssh -G` (parses the config, never connects) must agree where it sees the same home.

LOCAL = socket.gethostname()
ME = pwd.getpwuid(os.getuid())


@functools.cache
def _ssh_expands_known_hosts_tokens() -> bool:
    """Does the local ``ssh -G`` print UserKnownHostsFile expanded (OpenSSH's that take tokens do)?"""
    if not shutil.which("ssh"):
        return False
    out = subprocess.run(["ssh", "-G", "-F", "/dev/null", "-o", "UserKnownHostsFile=/probe/%h", "probe.invalid"],
                         capture_output=True, text=True, check=False, timeout=30, stdin=subprocess.DEVNULL).stdout
    return "userknownhostsfile /probe/probe.invalid" in out


def _c_hash(port: int, user: str) -> str:
    return hashlib.sha1(f"{LOCAL}{sshd.LOOPBACK}{port}{user}".encode()).hexdigest()  # noqa: S324 (OpenSSH's %C)


class Token(NamedTuple):
    word: str  # UserKnownHostsFile is {tmp}/kh-<word> ~/second
    expected: Callable[[sshd.Server, Path], str]  # what <word> becomes (given the server and $HOME)
    extra: str = ""  # more config lines for the host
    cross_check: bool = True  # ssh -G must say the same (not for %d: its home is the passwd entry's)


TOKENS = [
    Token("%h", lambda s, h: sshd.LOOPBACK),
    Token("%p", lambda s, h: str(s.port)),
    Token("%r", lambda s, h: s.user),
    Token("%n", lambda s, h: sshd.LOOPBACK),
    Token("%k", lambda s, h: sshd.LOOPBACK),
    Token("%k", lambda s, h: "lb-alias", extra="    HostKeyAlias LB-Alias\n"),
    Token("%C", lambda s, h: _c_hash(s.port, s.user)),
    Token("%L", lambda s, h: LOCAL.split(".")[0]),
    Token("%l", lambda s, h: LOCAL),
    Token("%i", lambda s, h: str(os.getuid())),
    Token("%u", lambda s, h: ME.pw_name),
    Token("%%", lambda s, h: "%"),
    Token("%%h", lambda s, h: "%h"),
    Token("%h-%p_%r", lambda s, h: f"{sshd.LOOPBACK}-{s.port}_{s.user}"),
    Token("${HK_T8_PART}", lambda s, h: "from-env%h"),  # a variable's value is not expanded again
    Token("%d", lambda s, h: str(h), cross_check=False),  # hakeep's home is $HOME
]


@pytest.fixture
def no_ssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """hakeep on a machine without OpenSSH's client: it reads ssh_config itself (paramiko) and
    expands the known_hosts files' tokens itself, as the tests below check."""
    monkeypatch.setattr(sshresolve, "ssh_client", lambda: None)


@pytest.mark.parametrize("case", TOKENS, ids=[f"{t.word}{'-alias' if t.extra else ''}" for t in TOKENS])
def test_user_known_hosts_file_tokens_expand_as_openssh_does(
        server: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Token,
        no_ssh_client: None) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HK_T8_PART", "from-env%h")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {sshd.LOOPBACK}\n{_block(server, f'{tmp_path}/kh-{case.word} ~/second')}{case.extra}")
    _, checkers = connection(server.lb(config=config), False)
    want = [tmp_path / f"kh-{case.expected(server, home)}", home / "second"]
    assert checkers[0].user_files == want
    if case.cross_check and _ssh_expands_known_hosts_tokens():  # ssh -G only parses the config: no connection
        out = subprocess.run(["ssh", "-G", "-F", str(config), sshd.LOOPBACK], capture_output=True, text=True,
                             check=True, timeout=30, stdin=subprocess.DEVNULL).stdout
        files = next(line.split()[1:] for line in out.splitlines() if line.startswith("userknownhostsfile "))
        assert Path(files[0]) == want[0]


@pytest.mark.skipif(NO_SSH_CLIENT, reason="no OpenSSH client")
@pytest.mark.parametrize("case", TOKENS, ids=[f"{t.word}{'-alias' if t.extra else ''}" for t in TOKENS])
def test_with_an_ssh_client_the_known_hosts_files_are_openssh_own(
        server: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Token) -> None:
    """With OpenSSH's client installed, ``ssh -G`` expands them, and hakeep uses exactly its answer."""
    monkeypatch.setenv("HK_T8_PART", "from-env%h")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {sshd.LOOPBACK}\n{_block(server, f'{tmp_path}/kh-{case.word} ~/second')}{case.extra}")
    _, checkers = connection(server.lb(config=config), False)
    out = subprocess.run(["ssh", "-G", "-F", str(config), "-p", str(server.port), "-l", server.user, sshd.LOOPBACK],
                         capture_output=True, text=True, check=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    files = next(line.split()[1:] for line in out.splitlines() if line.startswith("userknownhostsfile "))
    assert checkers[0].user_files == [Path(f) for f in files]
    if case.word in ("%%h", "${HK_T8_PART}"):  # a % OpenSSH left in a path is not expanded again
        assert "%h" in str(checkers[0].user_files[0])


@pytest.mark.skipif(NO_SSH_CLIENT, reason="no OpenSSH client")
@pytest.mark.parametrize("value", ["${HK_T8_UNSET}", "${HAKEEP_SUDO_PASSWORD}"])
def test_with_an_ssh_client_what_openssh_refuses_is_refused(
        server: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.delenv("HK_T8_UNSET", raising=False)
    monkeypatch.setenv("HAKEEP_SUDO_PASSWORD", "sudo-secret-8")  # ssh -G runs without it: unset there
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {sshd.LOOPBACK}\n{_block(server, f'{tmp_path}/kh-{value}')}")
    with pytest.raises(ConnectError) as info:
        connection(server.lb(config=config), False)
    assert info.value.message.startswith(f"lb1: OpenSSH cannot use the ssh config for {sshd.LOOPBACK}: ")
    assert "sudo-secret-8" not in info.value.message + (info.value.hint or "")


def test_a_tokened_user_known_hosts_file_is_where_the_key_is_found(server: sshd.Server, tmp_path: Path) -> None:
    kind, blob = server.host_pub.read_text().split()[:2]
    (tmp_path / f"kh-{sshd.LOOPBACK}-{server.port}").write_text(f"{server.key_name} {kind} {blob}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {sshd.LOOPBACK}\n{_block(server, f'{tmp_path}/kh-%h-%p')}")
    with _ssh(connect(server.lb(config=config))) as t:
        assert t.run("true", privileged=False).ok


class Refused(NamedTuple):
    keyword: str
    value: str  # {d}: a temp folder
    named: str  # what the error must name
    extra: str = ""  # more config lines for the host


REFUSED = [
    Refused("UserKnownHostsFile", "{d}/kh-%j", "%j"),  # OpenSSH 9.2 rejects it; later releases expand it
    Refused("UserKnownHostsFile", "{d}/kh-%T", "%T"),
    Refused("UserKnownHostsFile", "{d}/kh-%x", "%x"),
    Refused("UserKnownHostsFile", "{d}/kh-%", "a lone %"),
    Refused("UserKnownHostsFile", "{d}/kh-${HK_T8_UNSET}", "${HK_T8_UNSET}"),
    Refused("UserKnownHostsFile", "{d}/kh-${HK_T8_UNSET", "${"),
    Refused("UserKnownHostsFile", "{d}/kh-${}", "${}"),
    Refused("UserKnownHostsFile", "{d}/kh-${HAKEEP_SUDO_PASSWORD}", "${HAKEEP_SUDO_PASSWORD}"),
    Refused("UserKnownHostsFile", "{d}/kh-%C", "%C", extra="    ProxyJump jumpbox\n"),  # newer ssh hashes %j too
    Refused("GlobalKnownHostsFile", "{d}/g-%h", "%h"),  # OpenSSH expands nothing there
    Refused("GlobalKnownHostsFile", "{d}/g-%d", "%d"),
    Refused("GlobalKnownHostsFile", "{d}/g-${HOME}", "${HOME}"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[f"{r.keyword}-{r.value}" for r in REFUSED])
def test_unsupported_known_hosts_tokens_are_refused(
        server: sshd.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Refused,
        no_ssh_client: None) -> None:
    monkeypatch.delenv("HK_T8_UNSET", raising=False)
    monkeypatch.setenv("HAKEEP_SUDO_PASSWORD", "sudo-secret-8")
    value = case.value.replace("{d}", str(tmp_path))
    block = _block(server, f"{tmp_path}/kh")
    if case.keyword == "GlobalKnownHostsFile":
        block = block.replace("GlobalKnownHostsFile /dev/null", f"GlobalKnownHostsFile {value}")
    else:
        block = block.replace(f"UserKnownHostsFile {tmp_path}/kh", f"UserKnownHostsFile {value}")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host jumpbox\n    HostName {sshd.LOOPBACK}\n{_block(server)}"
                      f"Host {sshd.LOOPBACK}\n{block}{case.extra}")
    with pytest.raises(ConnectError) as info:
        connection(server.lb(config=config), False)
    message = info.value.message
    assert case.named in message
    assert case.keyword in message
    assert sshd.LOOPBACK in message  # the host
    assert message.startswith("lb1: ")
    assert "sudo-secret-8" not in message + (info.value.hint or "")
    assert info.value.kind == "config"
