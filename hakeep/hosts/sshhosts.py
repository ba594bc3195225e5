"""How hakeep finds and trusts an SSH host the way OpenSSH would (fabric/paramiko, like transport).

It owns reading ssh_config (the inventory's file alone, like ``ssh -F``, else ~/.ssh/config then
/etc/ssh/ssh_config, with the inventory's port and user first, like ``ssh -p/-l``), building the
not-yet-open fabric Connection from it (HostName, User, Port, IdentityFile, agent, ProxyJump hops,
timeouts), the host-key policy every hop is checked with against its known_hosts files (read by
:mod:`.knownhosts`: OpenSSH's patterns, hashed entries, ``@revoked``, HostKeyAlias, several
User/GlobalKnownHostsFile; known keys accepted, unknown ones refused with their SHA256 fingerprint
or recorded only on request, changed or revoked ones never accepted), paramiko's ProxyCommand made
to see EOF as soon as the proxy exits, the ProxyCommand and ssh_config's ``Match exec`` started
without the secret variables (:mod:`.childenv`), and the short human reason for a network failure.
Opening, commands, sudo and the lock are :mod:`hakeep.hosts.transport`'s.
"""
from __future__ import annotations

import base64
import binascii
import errno
import functools
import io
import os
import select
import shlex
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paramiko

from hakeep.hosts import sshresolve
from hakeep.hosts.childenv import child_env
from hakeep.hosts.knownhosts import (
    Hop,
    fingerprint,
    global_known_hosts_files,
    host_matches,
    known_keys,
    user_known_hosts_files,
)
from hakeep.hosts.remote import ConnectError, HostKeyError
from hakeep.inventory.fields import USER_RE
from hakeep.inventory.model import LoadBalancer

__all__ = [
    "HostKeyCheck",
    "config_label",
    "connection",
    "failure_reason",
    "fingerprint",
    "host_matches",
    "known_keys",
    "load_ssh_config",
]


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's, except that the proxy gets no secret variable (:func:`.childenv.child_env`) and
    that a proxy that exits is EOF at once (paramiko's spins until its timeout)."""

    def __init__(self, command_line: str, secret_env: Sequence[str] = ()) -> None:
        # paramiko's own __init__, plus env=: its Popen would hand the proxy all of hakeep's environment
        self.cmd = shlex.split(command_line)
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0, env=child_env(secret_env))
        self.timeout = None

    def recv(self, size: int) -> bytes:
        stdout: Any = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError
        try:
            return os.read(stdout.fileno(), size)  # b"" once the proxy is gone: paramiko sees EOF
        except OSError as exc:
            raise paramiko.ProxyCommandFailure(" ".join(self.cmd), exc.strerror or str(exc)) from None


# --- ssh_config ----------------------------------------------------------------------------------

SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")


def config_label(path: Path | None) -> str:
    return f"the ssh config {path}" if path is not None else "your ssh config (~/.ssh/config)"


def load_ssh_config(lb: LoadBalancer, secret_env: Sequence[str] = ()) -> tuple[str, paramiko.SSHConfig]:
    """(the name to connect as, the ssh config for it): the inventory's ssh config alone (like
    ``ssh -F``), else ~/.ssh/config then /etc/ssh/ssh_config, as OpenSSH's own ``ssh -G`` resolves
    it where an ssh client is installed (:mod:`.sshresolve`: Include, Match, ``Host`` aliases of the
    LB's name), else read by paramiko (a config with Include or Match then refused).

    The inventory's port and user come first, as ``ssh -p/-l`` would: ssh_config's first value wins,
    so they also expand ``%p``/``%r`` in a ProxyCommand. A ``Match exec`` command runs without the
    variables ``secret_env`` names (nor HAKEEP_SUDO_PASSWORD).
    """
    name, path = lb.name, lb.ssh.config
    if lb.ssh.user is not None and not USER_RE.fullmatch(lb.ssh.user):  # it goes into ssh_config text
        raise ConnectError(f"{name}: ssh user {lb.ssh.user!r} is not a login name",
                           hint="fix [ssh] user in the inventory")
    if path is not None and (path.expanduser().is_dir() or not os.access(path.expanduser(), os.R_OK)):
        raise ConnectError(f"{name}: cannot read the ssh config {path.expanduser()}: no such file or directory",
                           hint="fix [ssh] config in the inventory")
    config = paramiko.SSHConfig()  # with no Match in it (ssh -G decided those, or they were refused)
    resolved = sshresolve.resolve(lb, secret_env)
    if resolved is not None:
        target, text = resolved
        config.parse(io.StringIO(text))
        return target, config
    first = "".join(f"    {key} {value}\n" for key, value in (("Port", lb.ssh.port), ("User", lb.ssh.user))
                    if value is not None)
    if first:
        config.parse(io.StringIO(f"Host {lb.address}\n{first}"))
    paths = [path.expanduser()] if path is not None else [Path.home() / ".ssh" / "config", SYSTEM_CONFIG]
    for file in paths:
        if path is None and not file.is_file():
            continue
        try:
            text = file.read_text(encoding="utf-8")
            sshresolve.refuse_unreadable(lb, text, file)
            config.parse(io.StringIO(text))
        except OSError as exc:
            raise ConnectError(f"{name}: cannot read the ssh config {file}: {failure_reason(exc)}",
                               hint="fix [ssh] config in the inventory") from None
        except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
            raise ConnectError(f"{name}: cannot use the ssh config {file}: {exc}",
                               hint="hakeep reads ssh_config with paramiko, which lacks a few "
                                    "OpenSSH keywords (e.g. Include); simplify that entry") from None
    return str(lb.address), config


def connection(lb: LoadBalancer, accept_new: bool,
               secret_env: Sequence[str] = ()) -> tuple[Any, list[HostKeyCheck]]:
    """A not-yet-open fabric Connection for ``lb``, every hop checking host keys our way; no local
    process it starts (ProxyCommand, ``Match exec``) gets HAKEEP_SUDO_PASSWORD or ``secret_env``."""
    from fabric import Config, Connection

    target, ssh_config = load_ssh_config(lb, secret_env)
    connect_kwargs: dict[str, Any] = {}
    if lb.ssh.identity_file is not None:
        key = lb.ssh.identity_file.expanduser()
        if not os.access(key, os.R_OK):
            raise ConnectError(f"{lb.name}: cannot read the identity_file {key}",
                               hint="fix [ssh] identity_file in the inventory")
        connect_kwargs["key_filename"] = [str(key)]
    try:
        cxn = Connection(target, user=lb.ssh.user, port=lb.ssh.port,
                         config=Config(ssh_config=ssh_config, lazy=True),
                         connect_kwargs=connect_kwargs)
    except (ValueError, KeyError) as exc:
        raise ConnectError(f"{lb.name}: unusable ssh config for {lb.address}: {exc}",
                           hint=f"check {config_label(lb.ssh.config)}") from None
    checkers: list[HostKeyCheck] = []
    hop = cxn
    while isinstance(hop, Connection):  # the target, then each ProxyJump hop
        shown = hop.host if hop.original_host.startswith(sshresolve.JUMP_PREFIX) else hop.original_host
        label = lb.name if hop is cxn else f"{lb.name}: jump host {shown}"
        checker = HostKeyCheck(label, hop.host, int(hop.port), hop.ssh_config, accept_new, user=hop.user,
                               original=hop.original_host, secret_env=secret_env)
        checkers.append(checker)
        hop.client.set_missing_host_key_policy(checker)
        if hop is cxn or not hop.connect_timeout:
            hop.connect_timeout = lb.ssh.connect_timeout  # a float: fabric would truncate it
        keys = hop.connect_kwargs.get("key_filename") or []  # like ssh: skip IdentityFiles that are absent
        hop.connect_kwargs["key_filename"] = [k for k in keys if os.path.exists(k)]
        hop.connect_kwargs.update(transport_factory=checker.transport_factory,
                                  banner_timeout=lb.ssh.connect_timeout,
                                  auth_timeout=max(30.0, lb.ssh.connect_timeout))
        if hop.ssh_config.get("identitiesonly") == "yes" and hop.connect_kwargs.get("key_filename"):
            hop.connect_kwargs.update(allow_agent=False, look_for_keys=False)
        if hop.ssh_config.get("identityagent") == "none":
            hop.connect_kwargs["allow_agent"] = False
        if isinstance(hop.gateway, str):  # already %-expanded by the ssh_config lookup
            hop.open_gateway = functools.partial(_ProxyCommand, hop.gateway, secret_env)
        hop = hop.gateway
    return cxn, checkers


# --- known_hosts and the host-key policy ---------------------------------------------------------

_KNOWN_HOSTS_WRITE = threading.Lock()  # connect_all may record several hosts' keys at once


class HostKeyCheck(paramiko.MissingHostKeyPolicy):
    """Checks one hop's host key against known_hosts, OpenSSH style, and records new ones on request.

    The SSHClient is given no host keys of its own, so paramiko always calls us with the server's
    key; the lookup name is ``HostKeyAlias``, else ``host`` (port 22) or ``[host]:port``.
    """

    def __init__(self, label: str, host: str, port: int, ssh_config: dict[str, Any], accept_new: bool, *,
                 user: str = "", original: str | None = None, secret_env: Sequence[str] = ()) -> None:
        self.label = label
        self.name = ssh_config.get("hostkeyalias") or (host if port == 22 else f"[{host}]:{port}")
        hop = Hop(label, host, original or host, port, user, ssh_config.get("hostkeyalias"),
                  ssh_config.get("proxyjump"))
        self.user_files = user_known_hosts_files(ssh_config.get("userknownhostsfile"), hop, secret_env)
        files = self.user_files + global_known_hosts_files(ssh_config.get("globalknownhostsfile"), hop)
        self.hash = str(ssh_config.get("hashknownhosts", "no")).lower() == "yes"
        self.accept_new = accept_new
        self.recorded: str | None = None
        self.known: list[tuple[Path, str, str]] = []
        self.revoked: list[tuple[str, str]] = []
        for file in files:
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            trusted, revoked = known_keys(text, self.name)
            self.known += [(file, kind, blob) for kind, blob in trusted]
            self.revoked += revoked

    def transport_factory(self, sock: Any, **kwargs: Any) -> paramiko.Transport:
        """A Transport that asks the server first for the key types known_hosts holds for it."""
        transport = paramiko.Transport(sock, **kwargs)
        options = transport.get_security_options()
        wanted: list[str] = []
        for _, kind, _ in self.known:
            wanted += ["rsa-sha2-512", "rsa-sha2-256", kind] if kind == "ssh-rsa" else [kind]
        first = [k for k in dict.fromkeys(wanted) if k in options.key_types]
        options.key_types = first + [k for k in options.key_types if k not in first]
        return transport

    def missing_host_key(self, _client: paramiko.SSHClient, _hostname: str,
                         key: paramiko.PKey) -> None:
        kind, blob = key.get_name(), key.asbytes()
        shown = f"{kind} key {fingerprint(blob)}"

        def same(b64: str) -> bool:
            try:
                return base64.b64decode(b64) == blob
            except (ValueError, binascii.Error):
                return False

        def error(message: str, hint: str, changed: bool) -> HostKeyError:
            return HostKeyError(message, hint, host=self.label, key_type=kind,
                                fingerprint=fingerprint(blob), changed=changed)

        if any(k == kind and same(b) for k, b in self.revoked):
            raise error(f"{self.label}: the host key of {self.name} is REVOKED ({shown})",
                        "the key is marked @revoked in known_hosts; do not connect", True)
        if any(k == kind and same(b) for _, k, b in self.known):
            return
        if self.known:
            file = self.known[0][0]
            raise error(
                f"{self.label}: HOST KEY CHANGED for {self.name}: it offers {shown}, which is not "
                f"the key recorded in {file}",
                "someone may be intercepting the connection, or the host was reinstalled. After "
                "checking the new key with the host's administrator, remove the old one with "
                f"`ssh-keygen -R {shlex.quote(self.name)} -f {shlex.quote(str(file))}` and re-run "
                "with --accept-new-host-keys", True)
        target = self.user_files[0] if self.user_files else None
        if not self.accept_new or target is None:
            raise error(
                f"{self.label}: unknown host key for {self.name}: {shown}",
                "if that is the host's key (on the host: `ssh-keygen -lf "
                "/etc/ssh/ssh_host_*_key.pub`), re-run with --accept-new-host-keys to record it in "
                f"{target or 'a known_hosts file (UserKnownHostsFile is none)'}", False)
        self._record(target, key)
        self.recorded = f"{self.name} {shown} in {target}"

    def _record(self, target: Path, key: paramiko.PKey) -> None:
        host = paramiko.HostKeys.hash_host(self.name) if self.hash else self.name
        line = f"{host} {key.get_name()} {key.get_base64()}\n".encode()
        with _KNOWN_HOSTS_WRITE:
            try:
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        line = b"\n" + line
                    os.write(fd, line)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise ConnectError(f"{self.label}: cannot record the host key in {target}: "
                                   f"{failure_reason(exc)}", hint="check that file's permissions") from None


def failure_reason(exc: BaseException, timeout: float | None = None) -> str:
    """A short human reason for a connection failure."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if errno.ECONNREFUSED in codes:
            return "connection refused"
        if errno.EHOSTUNREACH in codes:
            return "no route to host"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the name: {exc.strerror}"
    if isinstance(exc, EOFError):
        return "the connection was closed by the other side"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0].rstrip(".")
    if text.lower() == "no existing session":  # paramiko's words when no SSH answer came in time
        return "no SSH answer: timed out"
    return text[0].lower() + text[1:]
