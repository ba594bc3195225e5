"""The SSH transport: the only module that imports fabric/paramiko.

It owns how hakeep reaches an LB the way OpenSSH would (ssh_config with ProxyCommand/ProxyJump,
HostName, User, Port, IdentityFile, agent; host keys checked against known_hosts, unknown ones
recorded only on request, changed ones never accepted), one SSH connection per host reused for
every command, becoming root (directly, or through sudo with or without a password that never
leaves memory except on sudo's stdin), the remote deploy lock, and turning every network, SSH and
sudo failure into a :class:`~hakeep.errors.HakeepError` with a hint. The shapes of the remote
commands (quoting, sudo wrapping, the lock script) are pure and live in :mod:`hakeep.remote`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import functools
import hashlib
import hmac
import io
import logging
import os
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko

from hakeep.errors import HakeepError
from hakeep.inventory.fields import USER_RE
from hakeep.inventory.model import LoadBalancer
from hakeep.remote import (
    LOCK_ACQUIRED,
    LOCK_BUSY,
    SUDO_PROBE,
    SUDO_STDIN_PROBE,
    CommandResult,
    ConnectError,
    HostKeyError,
    LockedError,
    Privilege,
    RemoteCommandError,
    SudoError,
    Transport,
    display_of,
    lock_script,
    privileged_stdin,
    shell_command,
    wrap_privileged,
)

__all__ = ["SSHTransport", "connect", "connect_all"]

# paramiko logs (with tracebacks) from its own threads when a host drops; hakeep reports failures
# itself, so keep that off the console whatever logging the CLI sets up.
for _name in ("paramiko", "fabric", "invoke"):
    _log = logging.getLogger(_name)
    _log.addHandler(logging.NullHandler())
    _log.propagate = False

_PROBE_TIMEOUT = 30.0
_LOCK_TIMEOUT = 30.0


class _Secret:
    """A password that never shows itself in a repr, a str or a traceback's locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's, except that a proxy that exits is EOF at once (paramiko's spins until its timeout)."""

    def recv(self, size: int) -> bytes:
        stdout: Any = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError
        try:
            return os.read(stdout.fileno(), size)  # b"" once the proxy is gone: paramiko sees EOF
        except OSError as exc:
            raise paramiko.ProxyCommandFailure(" ".join(self.cmd), exc.strerror or str(exc)) from None


class SSHTransport:
    """One open SSH connection to one LB (see :class:`hakeep.remote.Transport`)."""

    def __init__(self, name: str, cxn: Any) -> None:
        self.host = name
        self._cxn = cxn
        self.address = f"{cxn.host}:{cxn.port}"
        self.user: str = cxn.user
        self.privilege = Privilege.USER
        self._password: _Secret | None = None
        self._lock_chan: paramiko.Channel | None = None
        self._lock_path: str | None = None
        #: "name type key SHA256:... in FILE" for each host key this connect recorded (to report)
        self.host_keys_recorded: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"<SSHTransport {self.host} {self.user}@{self.address} "
                f"privilege={self.privilege.value}>")

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running commands ---------------------------------------------------------------------

    def run(self, script: str, *, display: str | None = None, privileged: bool = True,
            stdin: bytes = b"", timeout: float = 300.0, check: bool = True) -> CommandResult:
        shown = display_of(script, display)
        if privileged:
            command = wrap_privileged(script, self.privilege)
            data = privileged_stdin(self.privilege, self._secret(), stdin)
        else:
            command, data = shell_command(script), stdin
        return self._exec(command, shown, data, timeout=timeout, check=check)

    def _secret(self) -> str | None:
        return self._password.reveal() if self._password is not None else None

    def _exec(self, command: str, shown: str, data: bytes, *, timeout: float,
              check: bool) -> CommandResult:
        chan = self._open(command, shown)
        try:
            writer = threading.Thread(target=_feed, args=(chan, data, True), daemon=True)
            writer.start()
            out, err, finished = _collect(chan, time.monotonic() + timeout)
            code = chan.recv_exit_status() if finished else -1
        finally:
            chan.close()
        result = CommandResult(shown, code, self._scrub(out), self._scrub(err))
        if not finished:
            raise RemoteCommandError(
                self.host, result, reason=f"timed out after {timeout:g}s",
                hint="the command did not finish in time; look at the host (it may still be running)")
        if code == -1:
            self._check_alive(shown)
            if check:
                raise RemoteCommandError(self.host, result,
                                         reason="ended without an exit status (killed by a signal?)")
        if check and code != 0:
            raise RemoteCommandError(self.host, result)
        return result

    def _open(self, command: str, shown: str) -> paramiko.Channel:
        """A session channel on the shared connection with ``command`` started on it."""
        transport = self._cxn.transport
        try:
            if transport is None or not transport.is_active():
                raise EOFError("the connection is closed")
            chan: paramiko.Channel = transport.open_session(timeout=_PROBE_TIMEOUT)
            chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectError(f"{self.host}: connection lost before `{shown}`: {_reason(exc)}",
                               hint="check the host and the network, then re-run") from None
        return chan

    def _check_alive(self, shown: str) -> None:
        transport = self._cxn.transport
        if transport is None or not transport.is_active():
            raise ConnectError(f"{self.host}: connection lost while running `{shown}`",
                               hint="check the host and the network, then re-run")

    def _scrub(self, data: bytes) -> bytes:
        """Output can never carry the sudo password back (e.g. if sudo unexpectedly didn't read it)."""
        secret = self._secret()
        if secret:
            data = data.replace(secret.encode(), b"<hidden>")
        return data

    # --- the deploy lock ----------------------------------------------------------------------

    def lock(self, path: str, owner: str) -> None:
        if self._lock_chan is not None:
            raise RuntimeError(f"{self.host}: already holding {self._lock_path}")
        shown = f"lock {path}"
        chan = self._open(wrap_privileged(lock_script(path, owner), self.privilege), shown)
        try:
            # stdin stays open: the lock lives until it reaches EOF (unlock, close, or our death)
            _feed(chan, privileged_stdin(self.privilege, self._secret(), b""), eof=False)
            out, err, state = _read_lock_answer(chan, time.monotonic() + _LOCK_TIMEOUT)
        except BaseException:
            chan.close()
            raise
        if state == LOCK_ACQUIRED:
            self._lock_chan, self._lock_path = chan, path
            return
        chan.close()
        if state == LOCK_BUSY:
            holder = self._scrub(out).decode(errors="replace").split("\n", 1)[1].strip()
            raise LockedError(self.host, path, holder)
        code = chan.exit_status if chan.exit_status_ready() else -1
        result = CommandResult(shown, code, self._scrub(out), self._scrub(err))
        raise RemoteCommandError(self.host, result, reason="could not take the lock" if code != -1
                                 else f"gave no answer within {_LOCK_TIMEOUT:g}s",
                                 hint="flock (util-linux) must be installed on the host")

    def unlock(self) -> None:
        chan, self._lock_chan, self._lock_path = self._lock_chan, None, None
        if chan is None:
            return
        try:
            chan.shutdown_write()
            chan.status_event.wait(10.0)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the connection is gone: so is the lock
        finally:
            chan.close()

    def close(self) -> None:
        try:
            self.unlock()
        finally:
            _close_connection(self._cxn)


def _feed(chan: paramiko.Channel, data: bytes, eof: bool) -> None:
    try:
        if data:
            chan.sendall(data)
        if eof:
            chan.shutdown_write()
    except (paramiko.SSHException, EOFError, OSError):
        pass  # the command stopped reading, or the channel closed: its exit status tells


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(65536)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(65536)


def _collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, bool]:
    """Read stdout/stderr until the command exits (True) or the deadline passes (False)."""
    out, err = bytearray(), bytearray()
    while True:
        _drain(chan, out, err)
        remaining = deadline - time.monotonic()
        if chan.eof_received or chan.closed:
            done = chan.status_event.wait(max(remaining, 0))
            _drain(chan, out, err)
            return bytes(out), bytes(err), done
        if remaining <= 0:
            return bytes(out), bytes(err), False
        select.select([chan], [], [], min(remaining, 1.0))


def _read_lock_answer(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, str | None]:
    out, err = bytearray(), bytearray()
    while True:
        _drain(chan, out, err)
        first = bytes(out).split(b"\n", 1)[0].decode(errors="replace")
        if b"\n" in out and first == LOCK_ACQUIRED:
            return bytes(out), bytes(err), LOCK_ACQUIRED
        remaining = deadline - time.monotonic()
        if chan.eof_received or chan.closed:
            chan.status_event.wait(max(remaining, 0))
            _drain(chan, out, err)
            return bytes(out), bytes(err), LOCK_BUSY if first == LOCK_BUSY else None
        if remaining <= 0:
            return bytes(out), bytes(err), None
        select.select([chan], [], [], min(remaining, 1.0))


# --- ssh_config and known_hosts ------------------------------------------------------------------

_KNOWN_HOSTS_WRITE = threading.Lock()  # connect_all may record several hosts' keys at once


def _config_label(path: Path | None) -> str:
    return f"the ssh config {path}" if path is not None else "your ssh config (~/.ssh/config)"


def _load_ssh_config(lb: LoadBalancer) -> paramiko.SSHConfig:
    """The inventory's ssh config alone (like ``ssh -F``), else ~/.ssh/config then /etc/ssh/ssh_config.

    The inventory's port and user come first, as ``ssh -p/-l`` would: ssh_config's first value wins,
    so they also expand ``%p``/``%r`` in a ProxyCommand.
    """
    name, path = lb.name, lb.ssh.config
    if lb.ssh.user is not None and not USER_RE.fullmatch(lb.ssh.user):  # it goes into ssh_config text
        raise ConnectError(f"{name}: ssh user {lb.ssh.user!r} is not a login name",
                           hint="fix [ssh] user in the inventory")
    config = paramiko.SSHConfig()
    first = "".join(f"    {key} {value}\n" for key, value in (("Port", lb.ssh.port), ("User", lb.ssh.user))
                    if value is not None)
    if first:
        config.parse(io.StringIO(f"Host {lb.address}\n{first}"))
    paths = [path.expanduser()] if path is not None else [Path.home() / ".ssh" / "config",
                                                           Path("/etc/ssh/ssh_config")]
    for file in paths:
        if path is None and not file.is_file():
            continue
        try:
            with file.open(encoding="utf-8") as stream:
                config.parse(stream)
        except OSError as exc:
            raise ConnectError(f"{name}: cannot read the ssh config {file}: {_reason(exc)}",
                               hint="fix [ssh] config in the inventory") from None
        except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
            raise ConnectError(f"{name}: cannot use the ssh config {file}: {exc}",
                               hint="hakeep reads ssh_config with paramiko, which lacks a few "
                                    "OpenSSH keywords (e.g. Include); simplify that entry") from None
    return config


def _paths(value: str | None, default: tuple[str, ...]) -> list[Path]:
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


def known_keys(text: str, name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (key type, base64 blob) pairs a known_hosts text holds for ``name``: (trusted, revoked)."""
    trusted: list[tuple[str, str]] = []
    revoked: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        marker = fields.pop(0) if fields and fields[0].startswith("@") else None
        if len(fields) < 3 or fields[0].startswith("#") or marker == "@cert-authority":
            continue
        if host_matches(fields[0], name):
            (revoked if marker == "@revoked" else trusted).append((fields[1], fields[2]))
    return trusted, revoked


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (``SHA256:`` + unpadded base64)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class _HostKeyCheck(paramiko.MissingHostKeyPolicy):
    """Checks one hop's host key against known_hosts, OpenSSH style, and records new ones on request.

    The SSHClient is given no host keys of its own, so paramiko always calls us with the server's
    key; the lookup name is ``HostKeyAlias``, else ``host`` (port 22) or ``[host]:port``.
    """

    def __init__(self, label: str, host: str, port: int, ssh_config: dict[str, Any],
                 accept_new: bool) -> None:
        self.label = label
        self.name = ssh_config.get("hostkeyalias") or (host if port == 22 else f"[{host}]:{port}")
        self.user_files = _paths(ssh_config.get("userknownhostsfile"),
                                 ("~/.ssh/known_hosts", "~/.ssh/known_hosts2"))
        files = self.user_files + _paths(ssh_config.get("globalknownhostsfile"),
                                         ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"))
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
                                   f"{_reason(exc)}", hint="check that file's permissions") from None


# --- connecting ---------------------------------------------------------------------------------


def connect(lb: LoadBalancer, *, accept_new_host_keys: bool = False,
            sudo_password: Callable[[], str] | None = None) -> Transport:
    """Open the one SSH connection to ``lb`` and settle how to become root on it."""
    cxn, checkers = _connection(lb, accept_new_host_keys)
    try:
        _open(lb, cxn)
        session = SSHTransport(lb.name, cxn)
        session.host_keys_recorded = tuple(c.recorded for c in checkers if c.recorded)
        _settle_privilege(lb, session, sudo_password)
    except BaseException:
        _close_connection(cxn)
        raise
    return session


def connect_all(lbs: Sequence[LoadBalancer], *, accept_new_host_keys: bool = False,
                sudo_password: Callable[[], str] | None = None,
                max_workers: int = 16) -> dict[str, Transport | HakeepError]:
    """Connect to every LB in parallel; each one's transport or error, in inventory order."""
    if not lbs:
        return {}

    def one(lb: LoadBalancer) -> Transport | HakeepError:
        try:
            return connect(lb, accept_new_host_keys=accept_new_host_keys,
                           sudo_password=sudo_password)
        except HakeepError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(lbs))),
                            thread_name_prefix="hakeep-connect") as pool:
        futures = [(lb.name, pool.submit(one, lb)) for lb in lbs]
        outcomes: dict[str, Transport | HakeepError] = {}
        failure: BaseException | None = None
        for name, future in futures:
            try:
                outcomes[name] = future.result()
            except BaseException as exc:  # a bug, not a host problem: close what opened, re-raise
                failure = failure or exc
    if failure is not None:
        for outcome in outcomes.values():
            if not isinstance(outcome, HakeepError):
                outcome.close()
        raise failure
    return outcomes


def _connection(lb: LoadBalancer, accept_new: bool) -> tuple[Any, list[_HostKeyCheck]]:
    """A not-yet-open fabric Connection for ``lb``, every hop checking host keys our way."""
    from fabric import Config, Connection

    ssh_config = _load_ssh_config(lb)
    connect_kwargs: dict[str, Any] = {}
    if lb.ssh.identity_file is not None:
        key = lb.ssh.identity_file.expanduser()
        if not os.access(key, os.R_OK):
            raise ConnectError(f"{lb.name}: cannot read the identity_file {key}",
                               hint="fix [ssh] identity_file in the inventory")
        connect_kwargs["key_filename"] = [str(key)]
    try:
        cxn = Connection(str(lb.address), user=lb.ssh.user, port=lb.ssh.port,
                         config=Config(ssh_config=ssh_config, lazy=True),
                         connect_kwargs=connect_kwargs)
    except (ValueError, KeyError) as exc:
        raise ConnectError(f"{lb.name}: unusable ssh config for {lb.address}: {exc}",
                           hint=f"check {_config_label(lb.ssh.config)}") from None
    checkers: list[_HostKeyCheck] = []
    hop = cxn
    while isinstance(hop, Connection):  # the target, then each ProxyJump hop
        label = lb.name if hop is cxn else f"{lb.name}: jump host {hop.original_host}"
        checker = _HostKeyCheck(label, hop.host, int(hop.port), hop.ssh_config, accept_new)
        checkers.append(checker)
        hop.client.set_missing_host_key_policy(checker)
        if hop is cxn or not hop.connect_timeout:
            hop.connect_timeout = lb.ssh.connect_timeout  # a float: fabric would truncate it
        keys = hop.connect_kwargs.get("key_filename") or []  # like ssh: skip IdentityFiles that are absent
        hop.connect_kwargs["key_filename"] = [k for k in keys if os.path.exists(k)]
        hop.connect_kwargs.update(transport_factory=checker.transport_factory,
                                  banner_timeout=max(15.0, lb.ssh.connect_timeout),
                                  auth_timeout=max(30.0, lb.ssh.connect_timeout))
        if hop.ssh_config.get("identitiesonly") == "yes" and hop.connect_kwargs.get("key_filename"):
            hop.connect_kwargs.update(allow_agent=False, look_for_keys=False)
        if hop.ssh_config.get("identityagent") == "none":
            hop.connect_kwargs["allow_agent"] = False
        if isinstance(hop.gateway, str):  # already %-expanded by the ssh_config lookup
            hop.open_gateway = functools.partial(_ProxyCommand, hop.gateway)
        hop = hop.gateway
    return cxn, checkers


def _open(lb: LoadBalancer, cxn: Any) -> None:
    where = f"{cxn.host}:{cxn.port}"
    via = ""
    if isinstance(cxn.gateway, str):
        via = f" (through ProxyCommand {cxn.gateway})"
    elif cxn.gateway:
        via = f" (through ProxyJump {cxn.gateway.user}@{cxn.gateway.host}:{cxn.gateway.port})"
    config = _config_label(lb.ssh.config)
    try:
        cxn.open()
    except HakeepError:
        raise
    except paramiko.AuthenticationException as exc:
        raise ConnectError(
            f"{lb.name}: cannot log in to {where} as {cxn.user}: {_reason(exc)}",
            hint="check the user and identity_file in the inventory (or User/IdentityFile in "
                 f"{config}), that ssh-agent holds the key, and the host's authorized_keys") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        reason = _proxy_failure(cxn) or _reason(exc, cxn.connect_timeout)
        raise ConnectError(
            f"{lb.name}: cannot connect to {where}{via}: {reason}",
            hint=f"check the address, the port and any firewall on the way, or {config}") from None
    keepalive = cxn.ssh_config.get("serveraliveinterval")
    if keepalive and keepalive.isdigit() and cxn.transport is not None:
        cxn.transport.set_keepalive(int(keepalive))


def _settle_privilege(lb: LoadBalancer, session: SSHTransport,
                      sudo_password: Callable[[], str] | None) -> None:
    if session.user == "root":
        session.privilege = Privilege.ROOT
        return
    if not lb.ssh.sudo:
        session.privilege = Privilege.USER
        return
    probe = session.run(SUDO_PROBE, privileged=False, timeout=_PROBE_TIMEOUT, check=False)
    if probe.ok:
        session.privilege = Privilege.SUDO
        return
    if probe.exit_code == 127:
        raise SudoError(f"{lb.name}: sudo = true in the inventory, but sudo is not installed",
                        hint="install sudo on the host, or log in as root")
    if sudo_password is None:
        raise SudoError(f"{lb.name}: sudo asks {session.user} for a password and none was given",
                        hint="give the sudo password (prompt or HAKEEP_SUDO_PASSWORD), or allow "
                             f"{session.user} passwordless sudo (NOPASSWD)")
    session._password = _Secret(sudo_password())
    session.privilege = Privilege.SUDO_STDIN
    check = session.run(SUDO_STDIN_PROBE, display="sudo -S true", privileged=False,
                        stdin=privileged_stdin(Privilege.SUDO_STDIN, session._secret(), b""),
                        timeout=_PROBE_TIMEOUT, check=False)
    if not check.ok:
        said = check.stderr.decode(errors="replace").strip().splitlines()
        raise SudoError(f"sudo password rejected on {lb.name} (user {session.user})",
                        hint=f"sudo said: {said[-1]}" if said else
                        "check the password, and that the user may use sudo")


def _reason(exc: BaseException, timeout: float | None = None) -> str:
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
    return text[0].lower() + text[1:]


def _proxy_failure(cxn: Any) -> str | None:
    """Why the ProxyCommand died (exit code, its last stderr line), or None if it did not."""
    sock = getattr(cxn.client.get_transport(), "sock", None)
    if not isinstance(sock, paramiko.ProxyCommand):
        return None
    _close_connection(cxn)  # stops paramiko's thread (which signals the proxy) and reaps it
    proc = sock.process
    if proc.returncode is None or proc.returncode < 0:  # still running, or killed by our close
        return None
    said = b""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        stderr: Any = proc.stderr
        os.set_blocking(stderr.fileno(), False)
        said = stderr.read(4096) or b""
    last = said.decode(errors="replace").strip().splitlines()
    return f"the ProxyCommand exited with code {proc.returncode}" + (f": {last[-1]}" if last else "")


def _close_connection(cxn: Any) -> None:
    """Close the connection (and gateways); reap a ProxyCommand process so none is left behind."""
    hop = cxn
    while hop is not None and not isinstance(hop, str | bool):
        transport = hop.client.get_transport()
        sock = getattr(transport, "sock", None)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            hop.client.close()  # not hop.close(): that skips a half-open client (failed host key)
        if transport is not None and transport is not threading.current_thread():
            transport.join(timeout=5)  # its thread signals the ProxyCommand too: let it finish first
        if isinstance(sock, paramiko.ProxyCommand):
            with contextlib.suppress(Exception):  # best effort: close() has killed it
                sock.process.wait(timeout=5)
        hop = hop.gateway
