"""SSH options as OpenSSH resolves them (``ssh -G``: :mod:`hakeep.hosts.sshresolve`), against a
real sshd on loopback: a config that reaches the host only through an ``Include`` and a ``Host lb1``
alias, the precedence of the LB's name over its address, an alias naming another address, and,
without an ssh client, the refusal of what paramiko would misread."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hakeep.hosts import sshresolve
from hakeep.hosts.connecting import connect
from hakeep.hosts.remote import ConnectError
from hakeep.hosts.sshhosts import connection
from hakeep.hosts.transport import SSHTransport
from tests import sshd

# under CI the client is installed (scripts/install-test-deps): missing there is a failure, not a skip
pytestmark = pytest.mark.skipif(shutil.which("ssh") is None and os.environ.get("CI") != "true",
                                reason="no OpenSSH client")


def included(server: sshd.Server, tmp_path: Path, host_line: str, extra: str = "") -> Path:
    """An inventory ssh config whose only line is an Include of the file that names the host."""
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    (tmp_path / "conf.d" / "lbs.conf").write_text(
        f"{host_line}\n{sshd._client_block(server.dir, server.port, server.user)}{extra}")
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\n")
    return config


def run_on(server: sshd.Server, lb: object) -> str:
    if not server.known_hosts.read_text():
        server.trust()
    t = connect(lb)  # type: ignore[arg-type]
    assert isinstance(t, SSHTransport)
    try:
        return t.run("echo reached", privileged=False).stdout.decode().strip()
    finally:
        t.close()


def test_a_host_reached_only_through_an_include_and_an_alias(server: sshd.Server, tmp_path: Path) -> None:
    config = included(server, tmp_path, f"Host lb1\n    HostName {sshd.LOOPBACK}")
    lb = server.lb("lb1", config=config)
    target, text = sshresolve.resolve(lb) or ("", "")
    assert target == "lb1"  # the LB's name: a Host block gives it a HostName
    assert f"hostname {sshd.LOOPBACK}" in text
    assert f"port {server.port}" in text
    assert run_on(server, lb) == "reached"


def test_the_address_is_asked_when_no_block_names_the_lb(server: sshd.Server, tmp_path: Path) -> None:
    config = included(server, tmp_path, f"Host {sshd.LOOPBACK}")
    lb = server.lb("lb1", config=config)
    target, _ = sshresolve.resolve(lb) or ("", "")
    assert target == sshd.LOOPBACK
    assert run_on(server, lb) == "reached"


def test_an_alias_naming_another_address_is_refused(server: sshd.Server, tmp_path: Path) -> None:
    config = included(server, tmp_path, "Host lb1\n    HostName 127.0.0.9")
    with pytest.raises(ConnectError) as info:
        connection(server.lb("lb1", config=config), False)
    assert info.value.message == ("lb1: your ssh config makes lb1 an alias of 127.0.0.9, but the inventory's address "
                                  f"for it is {sshd.LOOPBACK}")


def test_the_inventory_port_comes_first_as_ssh_p(server: sshd.Server, tmp_path: Path) -> None:
    config = included(server, tmp_path, f"Host lb1\n    HostName {sshd.LOOPBACK}")
    lb = server.lb("lb1", config=config, port=sshd.free_port())
    _, text = sshresolve.resolve(lb) or ("", "")
    assert f"port {lb.ssh.port}" in text
    with pytest.raises(ConnectError, match="connection refused"):
        connect(lb)


def test_without_an_ssh_client_an_include_is_refused(server: sshd.Server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshresolve, "ssh_client", lambda: None)
    config = included(server, tmp_path, f"Host lb1\n    HostName {sshd.LOOPBACK}")
    with pytest.raises(ConnectError) as info:
        connection(server.lb("lb1", config=config), False)
    assert info.value.message == (f"lb1: {config}:1: Include needs OpenSSH's own reading of the config, and no ssh "
                                  "client is installed here")
    assert "ssh -G" in (info.value.hint or "")


def test_a_config_openssh_rejects_is_named(server: sshd.Server, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host lb1\n    NoSuchKeyword yes\n")
    with pytest.raises(ConnectError) as info:
        connection(replace(server.lb("lb1", config=config)), False)
    assert info.value.message.startswith("lb1: OpenSSH cannot use the ssh config for lb1: ")
    assert "nosuchkeyword" in info.value.message.lower()


def test_a_name_in_capitals_is_not_taken_for_an_alias(server: sshd.Server, tmp_path: Path) -> None:
    config = included(server, tmp_path, f"Host {sshd.LOOPBACK}")
    target, _ = sshresolve.resolve(server.lb("LB1", config=config)) or ("", "")
    assert target == sshd.LOOPBACK  # ssh -G prints "lb1": the same name, not an alias


def test_a_dns_alias_must_resolve_to_the_lbs_address(server: sshd.Server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = included(server, tmp_path, "Host lb1\n    HostName localhost")
    target, _ = sshresolve.resolve(server.lb("lb1", config=config)) or ("", "")
    assert target == "lb1"  # localhost is the LB's address (127.0.0.1) here
    import socket

    real = socket.getaddrinfo  # the resolver's answer for a name elsewhere, at its seam

    def elsewhere(host: str, *args: Any, **kw: Any) -> Any:
        return [(2, 1, 6, "", ("10.9.9.9", 0))] if host == "lb1.example" else real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", elsewhere)
    (tmp_path / "conf.d" / "lbs.conf").write_text(
        (tmp_path / "conf.d" / "lbs.conf").read_text().replace("HostName localhost", "HostName lb1.example"))
    with pytest.raises(ConnectError, match=r"an alias of lb1\.example, which resolves to 10\.9\.9\.9, not the inv"):
        sshresolve.resolve(server.lb("lb1", config=config))


def test_dev_null_as_the_config_means_no_config(server: sshd.Server) -> None:
    target, text = sshresolve.resolve(server.lb("lb1", config=Path("/dev/null"))) or ("", "")
    assert target == sshd.LOOPBACK
    assert "port 22" in text  # nothing from any file: OpenSSH's defaults


def settled_logins(server: sshd.Server, before: int, expected: int) -> int:
    """Logins since ``before``, once sshd has logged ``expected`` of them (or 2 s have passed)."""
    deadline = time.monotonic() + 2
    while server.logins() - before < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.logins() - before


def relay_command(server: sshd.Server) -> str:
    """The ProxyCommand of the server's proxy config: a relay that logs "%h %p" to proxy.log."""
    return next(line.strip().removeprefix("ProxyCommand ") for line in server.proxy_config.read_text().splitlines()
                if line.strip().startswith("ProxyCommand "))


def gateways(cxn: Any) -> list[str]:
    """The hops a connection goes through, nearest first (the target's gateway, then its gateway...)."""
    names = []
    hop = cxn.gateway
    while hop is not None and not isinstance(hop, str):
        names.append(hop.original_host)
        hop = hop.gateway
    return names


def test_a_proxyjump_chain_is_walked_in_openssh_order(server: sshd.Server, tmp_path: Path) -> None:
    """``ProxyJump first,second``: OpenSSH reaches first directly (as its own config says: here through
    the logging relay), second through first, the target through second. fabric alone would connect
    second directly and first through it (its ProxyCommand then never runs)."""
    block = sshd._client_block(server.dir, server.port, server.user)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host first\n    HostName {sshd.LOOPBACK}\n{block}    ProxyCommand {relay_command(server)}\n\n"
                      f"Host second\n    HostName {sshd.LOOPBACK}\n{block}\n"
                      f"Host lb1\n    HostName {sshd.LOOPBACK}\n{block}    ProxyJump first,second\n")
    log = server.dir / "proxy.log"
    log.write_text("")
    lb = server.lb("lb1", config=config)
    cxn, _ = connection(lb, False)
    assert gateways(cxn) == ["second", "first"]
    assert isinstance(cxn.gateway.gateway.gateway, str)  # first: through its own ProxyCommand
    before = server.logins()
    assert run_on(server, lb) == "reached"
    assert log.read_text() == f"{sshd.LOOPBACK} {server.port}\n"  # only first went through the relay, once
    assert settled_logins(server, before, 3) == 3  # first, second through it, the target through second


def test_jump_specs_with_a_user_a_port_ssh_urls_and_ipv6(server: sshd.Server, tmp_path: Path) -> None:
    """(``ssh -G`` prints a chain as written; OpenSSH 9.2 takes ``user@[v6]:port``, not ``ssh://`` with v6.)"""
    block = sshd._client_block(server.dir, server.port, "nobody-by-default").replace(f"Port {server.port}", "Port 1")
    own = sshd._client_block(server.dir, server.port, server.user)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host jumpbox\n    HostName {sshd.LOOPBACK}\n{block}\n"
                      f"Host lb1\n    HostName {sshd.LOOPBACK}\n{own}"
                      f"    ProxyJump someone@[2001:db8::7]:2222,ssh://{server.user}@jumpbox:{server.port}\n")
    target, text = sshresolve.resolve(server.lb("lb1", config=config)) or ("", "")
    blocks = {b.split("\n")[0].removeprefix("Host "): b for b in text.strip().split("\n\n")}
    assert set(blocks) == {"lb1", "hakeep-jump-1", "jumpbox"}
    v6 = blocks["hakeep-jump-1"]  # fabric cannot take [2001:db8::7]:2222 as a name: a block of its own
    assert "hostname 2001:db8::7" in v6
    assert "port 2222" in v6
    assert "user someone" in v6
    assert "proxyjump" not in v6
    jump = blocks["jumpbox"]  # the spec's user and port win over the block's, as with ssh -J
    assert f"user {server.user}\n" in jump
    assert f"port {server.port}\n" in jump
    assert "proxyjump hakeep-jump-1\n" in jump  # the second hop through the first
    assert "proxyjump jumpbox\n" in blocks["lb1"]
    assert target == "lb1"
    config.write_text(config.read_text().replace("someone@[2001:db8::7]:2222,", ""))
    before = server.logins()
    assert run_on(server, server.lb("lb1", config=config)) == "reached"  # user@host:port from the spec, for real
    assert settled_logins(server, before, 2) == 2


@pytest.mark.parametrize("spec", ["host:0", "host:99999", "a,host:0"])
def test_a_jump_spec_with_a_bad_port_is_refused(server: sshd.Server, tmp_path: Path, spec: str) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host lb1\n    HostName {sshd.LOOPBACK}\n    ProxyJump {spec}\n")
    with pytest.raises(ConnectError, match=r"Invalid ProxyJump|is not a port"):  # OpenSSH's words, or hakeep's
        sshresolve.resolve(server.lb("lb1", config=config))


def test_jump_specs_are_parsed_as_openssh_writes_them() -> None:
    hops = sshresolve._hops  # (what ssh -G prints: a chain as written, one hop normalised)
    assert hops({"proxyjump": ["none"]}) == []
    assert hops({"proxyjump": ["a,ssh://u@b:2200,u@[2001:db8::1]:22,[::1],c:7"]}) == [
        (None, "a", None), ("u", "b", 2200), ("u", "2001:db8::1", 22), (None, "::1", None), (None, "c", 7)]
    assert hops({"proxyjump": ["us@er@h"]}) == [("us@er", "h", None)]
    for bad in ("h:0", "h:65536", "h:x", "[::1]:0"):
        with pytest.raises(ConnectError, match="is not a port"):
            hops({"proxyjump": [bad]})


def test_a_jump_host_jumping_to_itself_is_refused(server: sshd.Server, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host lb1\n    HostName {sshd.LOOPBACK}\n    ProxyJump bastion\n\n"
                      "Host bastion\n    HostName 127.0.0.1\n    ProxyJump bastion\n")
    with pytest.raises(ConnectError, match="more than 10 ProxyJump hops"):
        sshresolve.resolve(server.lb("lb1", config=config))
