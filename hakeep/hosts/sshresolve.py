"""An LB's SSH options as OpenSSH itself resolves them: ``ssh -G``.

paramiko reads ssh_config itself, without ``Include`` and with its own idea of ``Match``,
canonicalisation and tokens. Where an ``ssh`` client is installed, hakeep asks it instead:
``ssh -G [-F FILE] [-p PORT] [-l USER] HOST`` prints every option OpenSSH would use for HOST, after
``Include``, ``Host``/``Match`` (``Match exec`` run by ssh, without hakeep's secret variables),
aliases and canonicalisation. Which name is asked (the documented precedence):

1. the LB's ``name``, when the ssh config gives it a ``HostName`` (a ``Host lb1`` alias): OpenSSH's
   options for that alias are used, as ``ssh lb1`` would; when that HostName is an IP address, it
   must be the LB's ``address`` (else the run is refused: the two would name different hosts);
2. otherwise the LB's ``address``, as ``ssh ADDRESS`` would.

Each ProxyJump hop is resolved the same way (its own ``ssh -G``, with the user and port its
``[ssh://][user@]host[:port]`` spec gives, as ssh does for ``-J``). The result is ssh_config text,
one ``Host`` block per name with the resolved values, that :mod:`.sshhosts` hands to paramiko:
what paramiko then sees is what OpenSSH decided. A chain ``ProxyJump a,b`` is written as OpenSSH
runs it, one hop per block (the target through ``b``, ``b`` through ``a``, ``a`` as its own config
says): fabric would otherwise connect the hops in reverse order, and it cannot parse IPv6 or
``ssh://`` specs (such a hop gets a block named ``hakeep-jump-N``). Without an ``ssh`` client, a config with
``Include`` or ``Match`` is refused (paramiko would silently skip or misread it) rather than guessed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hakeep.hosts.childenv import child_env
from hakeep.hosts.remote import ConnectError
from hakeep.inventory.model import LoadBalancer

# the options hakeep's connection uses (the rest of ``ssh -G``'s output concerns what hakeep never does)
USED = ("hostname", "user", "port", "identityfile", "identitiesonly", "identityagent", "proxycommand",
        "proxyjump", "hostkeyalias", "userknownhostsfile", "globalknownhostsfile", "hashknownhosts",
        "connecttimeout", "serveraliveinterval", "serveralivecountmax", "forwardagent")
RESOLVE_TIMEOUT = 15.0  # seconds for one ``ssh -G`` (a Match exec may run a command)
_NAME = re.compile(r"[A-Za-z0-9._:%\[\]-]+")


def ssh_client() -> str | None:
    return shutil.which("ssh")


def resolve(lb: LoadBalancer, secret_env: Sequence[str] = ()) -> tuple[str, str] | None:
    """(the name to connect as, ssh_config text with OpenSSH's options for it and its jump hosts),
    or None when no ``ssh`` client is installed (the caller then reads the config itself, refusing
    what it cannot read: :func:`refuse_unreadable`)."""
    ssh = ssh_client()
    if ssh is None:
        return None
    by_name = _ask(ssh, lb, lb.name, secret_env)
    hostname = (by_name.get("hostname") or [lb.name])[0]
    if hostname.casefold() != lb.name.casefold():  # ssh -G prints names in lower case
        _same_host(lb, hostname, proxied=bool(_hops(by_name) or by_name.get("proxycommand")))
        target, options = lb.name, by_name
    else:
        target, options = str(lb.address), _ask(ssh, lb, str(lb.address), secret_env)
    chain = _Chain(ssh, lb, secret_env, used={target})
    chain.add(target, options)
    return target, "".join(chain.blocks)


JUMP_PREFIX = "hakeep-jump-"  # the block of a hop whose spec fabric cannot take as a name
MAX_HOPS = 10


@dataclass
class _Chain:
    """The ``Host`` blocks of a target and its ProxyJump chain, as OpenSSH runs it."""

    ssh: str
    lb: LoadBalancer
    secret_env: Sequence[str]
    used: set[str]
    blocks: list[str] = field(default_factory=list)

    def add(self, name: str, options: dict[str, list[str]], depth: int = 0) -> None:
        """``name``'s block, and its chain's: each hop as ``ssh -G`` resolves it (its spec's user and
        port given), every hop but the first reached through the one before it, the first through
        whatever its own config says (resolved the same way)."""
        specs = _hops(options)
        if specs:
            if depth + len(specs) > MAX_HOPS:
                raise ConnectError(f"{self.lb.name}: more than {MAX_HOPS} ProxyJump hops (a jump host jumping to "
                                   "itself?)", hint="check ProxyJump in your ssh config")
            previous = ""
            for user, host, port in specs:
                hop = _ask(self.ssh, self.lb, host, self.secret_env, jump=True, user=user, port=port)
                hop_name = host if re.fullmatch(r"[A-Za-z0-9._-]+", host) and host not in self.used else \
                    f"{JUMP_PREFIX}{len(self.used)}"
                self.used.add(hop_name)
                if not previous:
                    self.add(hop_name, hop, depth + len(specs))
                else:  # as `ssh -J previous host`: the jump on the command line wins over the host's own
                    hop = {k: v for k, v in hop.items() if k != "proxycommand"}
                    hop["proxyjump"] = [previous]
                    self.blocks.append(_block(hop_name, hop))
                previous = hop_name
            options = {**options, "proxyjump": [previous]}
        self.blocks.append(_block(name, options))


def refuse_unreadable(lb: LoadBalancer, text: str, file: Path) -> None:
    """Without an ``ssh`` client: a config paramiko would misread is refused, naming the line."""
    for number, line in enumerate(text.splitlines(), 1):
        words = line.strip().replace("=", " ", 1).split()
        if words and words[0].lower() in ("include", "match"):
            raise ConnectError(
                f"{lb.name}: {file}:{number}: {words[0]} needs OpenSSH's own reading of the config, and no ssh "
                "client is installed here",
                hint="install the OpenSSH client (hakeep then asks `ssh -G`), or write that part out without "
                     f"{words[0]} in a file of its own and name it as [ssh] config in the inventory")


def _ask(ssh: str, lb: LoadBalancer, host: str, secret_env: Sequence[str], *,
         jump: bool = False, user: str | None = None, port: int | None = None) -> dict[str, list[str]]:
    if not _NAME.fullmatch(host) or host.startswith("-"):
        raise ConnectError(f"{lb.name}: cannot ask ssh about {host!r}: not a host name",
                           hint="check ProxyJump in your ssh config")
    argv = [ssh, "-G"]
    if lb.ssh.config is not None:
        argv += ["-F", str(lb.ssh.config.expanduser())]
    if not jump:  # the inventory's port and user, as `ssh -p -l`; a jump host's from its ProxyJump spec
        user, port = lb.ssh.user, lb.ssh.port
    if user is not None and (not user or user.startswith("-")):
        raise ConnectError(f"{lb.name}: cannot ask ssh about user {user!r}", hint="check ProxyJump in your ssh config")
    argv += [*(["-p", str(port)] if port is not None else []), *(["-l", user] if user is not None else [])]
    with subprocess.Popen([*argv, host], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=child_env(secret_env), start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=RESOLVE_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # ssh and any Match exec command it started
            proc.communicate()
            raise ConnectError(f"{lb.name}: `ssh -G {host}` did not answer within {RESOLVE_TIMEOUT:g}s",
                               hint="a Match exec command in your ssh config may hang") from None
    done = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    if done.returncode != 0:
        why = "; ".join(line.strip() for line in done.stderr.splitlines()[:5] if line.strip()) or (
            f"exit {done.returncode}")
        raise ConnectError(f"{lb.name}: OpenSSH cannot use the ssh config for {host}: {why}",
                           hint="`ssh -G` shows the same; fix that config")
    options: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() in USED and value:
            options.setdefault(key.lower(), []).append(value.strip())
    return options


def _same_host(lb: LoadBalancer, hostname: str, *, proxied: bool) -> None:
    """An alias must name the LB's own address: an IP HostName must be it; a DNS one, reached without
    a proxy, must resolve to it. (Behind a proxy only the proxy resolves it: preflight then refuses
    a host that does not carry the LB's address on its interface, before anything changes.)"""
    try:
        ip = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        if proxied:
            return
        try:
            found = {ipaddress.ip_address(str(info[4][0]).split("%")[0])
                     for info in socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)}
        except (OSError, ValueError):
            return  # not resolvable here: connecting will say so
        if lb.address not in found:
            raise ConnectError(
                f"{lb.name}: your ssh config makes {lb.name} an alias of {hostname}, which resolves to "
                f"{', '.join(sorted(map(str, found)))}, not the inventory's address {lb.address}",
                hint=f"make the two agree: fix the HostName of `Host {lb.name}`, or lb.address in the inventory"
            ) from None
        return
    if ip != lb.address:
        raise ConnectError(
            f"{lb.name}: your ssh config makes {lb.name} an alias of {ip}, but the inventory's address for it is "
            f"{lb.address}",
            hint=f"make the two agree: fix the HostName of `Host {lb.name}`, or lb.address in the inventory")


def _hops(options: dict[str, list[str]]) -> list[tuple[str | None, str, int | None]]:
    """(user, host, port) of each hop of ProxyJump ``[ssh://][user@]host[:port],...``, in order; a
    host may be ``[IPv6]``."""
    value = (options.get("proxyjump") or ["none"])[0]
    if value.lower() == "none":
        return []
    hops = []
    for spec in value.split(","):
        rest = spec.strip().removeprefix("ssh://").rstrip("/")
        user, at, rest = rest.rpartition("@")
        port: int | None = None
        if rest.startswith("[") and "]" in rest:
            host, _, tail = rest[1:].partition("]")
            port_text = tail.removeprefix(":") if tail.startswith(":") else ""
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
        else:
            host, port_text = rest, ""
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConnectError(f"ProxyJump {spec.strip()!r}: {port_text!r} is not a port",
                                   hint="check ProxyJump in your ssh config")
            port = int(port_text)
        hops.append((user if at else None, host, port))
    return hops


def _block(host: str, options: dict[str, list[str]]) -> str:
    lines = [f"Host {host}"]
    for key in USED:
        for value in options.get(key, []):
            if key == "connecttimeout" and value == "none":
                continue
            if key == "proxycommand" and value.lower() == "none":
                continue
            if key == "proxyjump" and value.lower() == "none":
                continue
            # OpenSSH expanded UserKnownHostsFile's tokens already: none may be expanded again
            shown = value.replace("%", "%%") if key == "userknownhostsfile" else value
            lines.append(f"    {key} {shown}")
    return "\n".join(lines) + "\n\n"
