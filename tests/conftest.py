"""Shared pytest fixtures: the session-scoped `lab` fixture (tests/lab/README.md).

`lab` brings the test lab up (or reuses a running one) and tears it down at the
end of the session only if it started it. Without root it skips, except under
CI (CI=true) where a lab that cannot start is an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests import sshd

LAB_DIR = Path(__file__).resolve().parent / "lab"
LAB = LAB_DIR / "lab"
LAB_RUN = Path(os.environ.get("HAKEEP_LAB_RUN", "/var/lib/hakeep-lab"))
MASTERS = {"m1": "10.77.0.11", "m2": "10.77.0.12", "m3": "10.77.0.13"}

# tests/lab holds scripts and (while up) state, never tests: don't walk it
collect_ignore = ["lab"]


def lab_lbs() -> dict[str, str]:
    """LB hosts of a lab started with the current LAB_LBS (default 2)."""
    n = int(os.environ.get("LAB_LBS", "2"))
    return {f"lb{i}": f"10.77.0.{100 + i}" for i in range(1, n + 1)}


def lab_hosts() -> dict[str, str]:
    return {**lab_lbs(), **MASTERS}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_teardown: runs after every other test (it takes the lab down)")
    config.addinivalue_line("markers", "lab_matrix: runs after the other lab tests (it reboots the lab per release)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked lab_matrix run after the others (they reboot the lab from other releases, then
    give it back), lab_teardown ones last, so the lab stays up for everything else."""
    items.sort(key=lambda item: (item.get_closest_marker("lab_teardown") is not None,
                                 item.get_closest_marker("lab_matrix") is not None))


@dataclass
class Lab:
    """A running test lab. Paths are absolute; helpers run with a timeout and text I/O."""

    dir: Path = LAB_DIR
    inventory: Path = LAB_DIR / "inventory.toml"
    ssh_config: Path = LAB_DIR / "ssh_config"
    key: Path = LAB_DIR / "state" / "id_ed25519"
    known_hosts: Path = LAB_DIR / "state" / "known_hosts"
    ca_file: Path = LAB_DIR / "state" / "ca.crt"
    ops_password_file: Path = LAB_DIR / "state" / "ops_password"
    env_file: Path = LAB_DIR / "state" / "env"
    state_file: Path = LAB_RUN / "lab.json"
    vip: str = "10.77.0.200/24"
    vrrp_pass: str = "hklab77"
    lbs: dict[str, str] = field(default_factory=lab_lbs)
    masters: dict[str, str] = field(default_factory=lambda: dict(MASTERS))
    started_here: bool = False
    is_up: bool = True

    @property
    def hosts(self) -> dict[str, str]:
        """name -> address of every host (LBs first, then masters)."""
        return {**self.lbs, **self.masters}

    @property
    def ops_password(self) -> str:
        return self.ops_password_file.read_text().strip()

    def env(self) -> dict[str, str]:
        """os.environ plus HAKEEP_VRRP_PASS (the inventory's auth_pass_env) for running hakeep."""
        return {**os.environ, "HAKEEP_VRRP_PASS": self.vrrp_pass}

    def run_lab(self, *args: str, check: bool = True, timeout: float = 900,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run tests/lab/lab ARGS (output captured; with check, a failure shows it)."""
        r = subprocess.run([str(LAB), *args], capture_output=True, text=True, check=False, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ssh(
        self,
        host: str,
        cmd: str | Sequence[str],
        *,
        user: str = "root",
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """`ssh -F <lab ssh_config> [-l user] host cmd` with the OpenSSH client. A list is shell-quoted."""
        remote = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = ["ssh", "-F", str(self.ssh_config), "-l", user, host, remote]
        r = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"ssh {user}@{host} {remote!r} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ctl(
        self, cmd: str | Sequence[str], *, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the control namespace (a string runs under sh -c)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        r = subprocess.run(["ip", "netns", "exec", "hklab-ctl", *argv], capture_output=True, text=True,
                           input=input, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"ctl {argv!r} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def http_get(self, url: str, *, timeout: float = 5) -> tuple[int, str]:
        """GET url from the control namespace, TLS verified against the lab CA.
        Returns (status, body); status 0 with the error text if no HTTP answer."""
        probe = (
            "import ssl,sys,urllib.request,urllib.error\n"
            "ctx=ssl.create_default_context(cafile=sys.argv[2])\n"
            "try:\n r=urllib.request.urlopen(sys.argv[1],context=ctx,timeout=float(sys.argv[3]));"
            "print(r.status);print(r.read().decode(),end='')\n"
            "except urllib.error.HTTPError as e: print(e.code);print(e.read().decode(),end='')\n"
            "except Exception as e: print(0);print(repr(e))\n"
        )
        r = self.ctl(["/usr/bin/python3", "-c", probe, url, str(self.ca_file), str(timeout)], timeout=timeout + 10)
        status, _, body = r.stdout.partition("\n")
        return int(status), body

    def reset(self, host: str, *, new_host_key: bool = False) -> None:
        """Pristine host again (same SSH host key unless new_host_key: then known_hosts no longer matches)."""
        self.run_lab("reset", *(["--new-host-key"] if new_host_key else []), host, timeout=300)

    def trust(self) -> None:
        """Rewrite known_hosts from the hosts' current keys (after reset(new_host_key=True))."""
        self.run_lab("trust")

    def master(self, host: str, action: str) -> None:
        """action: healthy | unhealthy | stop | start (the fake kube-apiserver on a master)."""
        self.run_lab("master", host, action, timeout=60)

    def pids(self) -> dict[str, int]:
        """PIDs the lab recorded: systemd-nspawn per host, and 'mirror'."""
        st = json.loads(self.state_file.read_text())
        return {**st["pids"], "mirror": st["mirror_pid"]}

    def up(self) -> None:
        self.run_lab("up")
        self.is_up = True

    def down(self) -> None:
        self.run_lab("down", timeout=300)
        self.is_up = False


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    def unavailable(reason: str) -> NoReturn:
        if _ci():
            pytest.fail(f"lab unavailable under CI: {reason}", pytrace=False)
        pytest.skip(f"lab unavailable: {reason}")

    if os.geteuid() != 0:
        unavailable("needs root (network namespaces, mounts, systemd-nspawn)")
    status = subprocess.run([str(LAB), "status"], capture_output=True, text=True, check=False)
    obj = Lab(started_here=status.returncode != 0)
    if obj.started_here:
        try:
            r = obj.run_lab("up", check=False)
        except subprocess.TimeoutExpired:
            unavailable("`tests/lab/lab up` timed out")
        if r.returncode != 0:
            unavailable(f"`tests/lab/lab up` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    hosts: dict[str, str] = json.loads(obj.state_file.read_text())["hosts"]
    obj.lbs = {n: a for n, a in hosts.items() if n.startswith("lb")}
    yield obj
    if obj.started_here and obj.is_up:
        obj.down()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.Server]:
    """A test sshd on loopback for one test module (tests/sshd.py)."""
    yield from sshd.serve(tmp_path_factory)
