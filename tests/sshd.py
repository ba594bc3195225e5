"""A private OpenSSH server on 127.0.0.1 for the transport tests (never any other address).

:func:`start` writes everything into one temp directory: the server's host key and sshd_config
(its own AuthorizedKeysFile and PidFile, StrictModes no, UsePAM no), a client key, and client
ssh_config files -- direct, through a ProxyCommand relay (tests/lab/relay.py, used read-only), and
through a ProxyJump hop -- all with UserKnownHostsFile in the temp dir, so ~/.ssh is never read
or written. The server runs as ``/usr/sbin/sshd -D -e`` and is stopped by its PID. A fake ``sudo``
on the server's PATH lets the sudo-with-password flow run for real without a second user.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeep.inventory.model import LoadBalancer, SSHSettings

SSHD = Path("/usr/sbin/sshd")
RELAY = Path(__file__).resolve().parent / "lab" / "relay.py"
LOOPBACK = "127.0.0.1"

# `-k -S -p ''`: reads one line (the password) from stdin, then runs what follows `--`; with a file
# sudo.nopasswd it reads nothing (as a NOPASSWD rule for the command makes sudo do); with sudo.eatline
# it reads one line more.
FAKE_SUDO = """#!/bin/sh
printf '%s\\n' "$*" >> {dir}/sudo.argv
if [ "$1" = -n ]; then
    if [ -e {dir}/sudo.password ]; then echo "sudo: a password is required" >&2; exit 1; fi
    shift
else
    shift 4
    if [ -e {dir}/sudo.nopasswd ]; then pw=$(cat {dir}/sudo.password); else IFS= read -r pw || pw=; fi
    if [ -e {dir}/sudo.eatline ]; then IFS= read -r _; fi  # as a PAM module asking a second question
    if [ "$pw" != "$(cat {dir}/sudo.password)" ]; then
        echo "sudo: 1 incorrect password attempt" >&2; exit 1
    fi
fi
[ "$1" = -- ] && shift
exec "$@"
"""


def missing() -> str | None:
    """Why no test sshd can run here, or None."""
    for tool in (SSHD, Path("/usr/bin/ssh-keygen")):
        if not tool.exists():
            return f"{tool} not installed (scripts/install-test-deps installs openssh-server)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, timeout=30)


def fingerprint(pub: Path) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return out.split()[1]


@dataclass
class Server:
    dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    user: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host_pub(self) -> Path:
        return self.dir / "ssh_host_ed25519_key.pub"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def proxy_config(self) -> Path:
        return self.dir / "ssh_config.proxy"

    @property
    def jump_config(self) -> Path:
        return self.dir / "ssh_config.jump"

    @property
    def key_name(self) -> str:
        return f"[{LOOPBACK}]:{self.port}"

    def fingerprint(self) -> str:
        return fingerprint(self.host_pub)

    def trust(self, name: str | None = None) -> None:
        """Record the server's real key in known_hosts (as `name`, default ``[127.0.0.1]:port``)."""
        kind, blob = self.host_pub.read_text().split()[:2]
        with self.known_hosts.open("a") as f:
            f.write(f"{name or self.key_name} {kind} {blob}\n")

    def trust_wrong_key(self) -> None:
        """known_hosts says the host has another key: what a changed host key looks like."""
        other = self.dir / "other_key"
        if not other.exists():
            keygen(other)
        kind, blob = Path(f"{other}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"{self.key_name} {kind} {blob}\n")

    def logins(self) -> int:
        return (self.dir / "sshd.log").read_text(errors="replace").count("Accepted publickey")

    def lb(self, name: str = "lb1", *, config: Path | None = None, port: int | None = None,
           sudo: bool = False, timeout: float = 5.0) -> LoadBalancer:
        ssh = SSHSettings(user=None, port=port, identity_file=None, config=config or self.config,
                          sudo=sudo, connect_timeout=timeout)
        return LoadBalancer(name=name, address=ipaddress.IPv4Address(LOOPBACK), interface="eth0",
                            priority=100, ssh=ssh)

    def stop(self) -> None:
        """SIGTERM to this sshd's PID (its sessions' own processes end with their connections)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _client_block(d: Path, port: int, user: str) -> str:
    return (f"    User {user}\n    Port {port}\n    IdentityFile {d}/id_ed25519\n    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {d}/known_hosts\n    GlobalKnownHostsFile /dev/null\n")


def write_configs(d: Path, port: int, user: str) -> None:
    block = _client_block(d, port, user)
    (d / "ssh_config").write_text(f"Host {LOOPBACK}\n{block}")
    relay = (f"sh -c 'echo \"$1 $2\" >> {d}/proxy.log; exec {sys.executable} {RELAY} \"$1\" \"$2\"' "
             "relay %h %p")
    (d / "ssh_config.proxy").write_text(f"Host {LOOPBACK}\n{block}    ProxyCommand {relay}\n")
    (d / "ssh_config.jump").write_text(
        f"Host jumpbox\n    HostName {LOOPBACK}\n{block}\nHost {LOOPBACK}\n{block}    ProxyJump jumpbox\n")


def start(d: Path) -> Server:
    """Start sshd in ``d`` (bounded wait for its banner); the caller stops it with ``.stop()``."""
    user = getpass.getuser()
    keygen(d / "ssh_host_ed25519_key")
    keygen(d / "id_ed25519")
    (d / "authorized_keys").write_text((d / "id_ed25519.pub").read_text())
    (d / "known_hosts").touch()
    (d / "bin").mkdir()
    sudo = d / "bin" / "sudo"
    sudo.write_text(FAKE_SUDO.format(dir=d))
    sudo.chmod(0o755)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    last = ""
    for _ in range(3):  # another process may grab the free port first
        port = free_port()
        (d / "sshd_config").write_text(
            f"Port {port}\nListenAddress {LOOPBACK}\nHostKey {d}/ssh_host_ed25519_key\n"
            f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nAllowTcpForwarding yes\nMaxStartups 50\n"
            f"SetEnv PATH={d}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
        with (d / "sshd.log").open("ab") as log:
            proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        server = Server(d, port, proc, user)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(8).startswith(b"SSH-"):
                        write_configs(d, port, user)
                        return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        last = (d / "sshd.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sshd did not start:\n{last}")


def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A test sshd for a test module's fixture: skipped where none can run, a failure under CI."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"test sshd unavailable under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    srv = start(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()
