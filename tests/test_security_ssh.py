"""Security of the SSH side: what the local processes hakeep starts may see, and what known_hosts
may make hakeep trust.

Item 6: no local child process (a ProxyCommand, that of a ProxyJump hop, an ssh_config ``Match exec``
command) gets HAKEEP_SUDO_PASSWORD or the variables the inventory names for its passwords; checked
with children that dump their environment, against a private sshd on 127.0.0.1 (tests/sshd.py).
Item 8: a known_hosts line with an unknown or misspelt marker is ignored, never trusted.
Nothing here reads ~/.ssh or /etc/ssh: every config is ``-F`` style and names its known_hosts files
in a temp folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hakeep.hosts.connecting import connect
from hakeep.hosts.remote import HostKeyError
from hakeep.hosts.sshhosts import known_keys
from hakeep.hosts.transport import SSHTransport
from hakeep.inventory.model import Inventory, LoadBalancer
from hakeep.run.session import open_session
from tests import sshd
from tests.fixtures import base_doc, load


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.Server]:
    reason = sshd.missing()
    if reason is not None:
        if _ci():
            pytest.fail(f"test sshd unavailable under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    srv = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


@pytest.fixture
def trusted(server: sshd.Server) -> sshd.Server:
    """The server, its real key (only) in its known_hosts."""
    server.known_hosts.write_text("")
    server.trust()
    return server


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
