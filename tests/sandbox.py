"""Run the real ``haproxy -c`` and ``keepalived -t`` on rendered files, as if they were installed.

Each check runs in a throwaway network and mount namespace (``unshare -n -m``): tmpfs is mounted
over /etc/haproxy, /etc/keepalived and /run (inside the namespace only), the host's rendered files
of those two folders are copied to their real paths with their real modes, and the inventory's
interface is created as a veth pair so keepalived accepts it. Nothing of this machine's own /etc or
network is touched, and the namespaces vanish with the process. Needs root plus the haproxy and keepalived binaries.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hakeep.render.files import HostFiles

SCRIPT = r"""
set -u
mount --make-rprivate /
# R: "" (this machine's binaries) or a release's validators root (see tests/lab/build-base)
# each folder's own files kept (keepalived 2.3 reads keepalived.config-opts beside its config)
keep=$(mktemp -d)
trap 'rm -rf "$keep"' EXIT
for d in /etc/haproxy /etc/keepalived; do
    mkdir -p "$R$d" "$keep$d" && cp -a "$R$d/." "$keep$d/" && mount -t tmpfs -o mode=0755 tmpfs "$R$d" &&
        cp -a "$keep$d/." "$R$d/" || exit 91
done
run=""
if [ -n "$R" ]; then
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" &&
        mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" && mount --rbind /sys "$R/sys" || exit 91
    run="chroot $R"
fi
# /run/hakeep exists on an LB (keepalived's drop-in makes it; hakeep validates in it): keepalived 2.3
# ignores a track_file whose folder is missing. A tmpfs /run, in this namespace only.
mount -t tmpfs -o mode=0755 tmpfs "$R/run" && mkdir -p "$R/run/hakeep" || exit 91
cd "$SRC"
# only the files of the two folders under tmpfs (systemd drop-ins would land in this machine's /etc)
find ./etc/haproxy ./etc/keepalived -type f | while read -r f; do
    target="$R/${f#./}"
    mkdir -p "$(dirname "$target")"
    cp -p "$f" "$target"
done
ip link add "$IFACE" type veth peer name hkpeer0 || exit 90
echo "@@haproxy"
$run haproxy -c -V -f /etc/haproxy/haproxy.cfg 2>&1  # -V: 3.0 names a valid file only when verbose
echo "@@rc=$?"
echo "@@keepalived"
$run keepalived -t -f /etc/keepalived/keepalived.conf </dev/null 2>&1
echo "@@rc=$?"
"""


@dataclass(frozen=True)
class CheckResult:
    haproxy_rc: int
    haproxy_output: str
    keepalived_rc: int
    keepalived_output: str


@dataclass(frozen=True)
class Release:
    """One Debian release's validators (``tests/lab/lab build``): its root and package versions."""

    name: str
    root: Path
    haproxy: str
    keepalived: str


LAB = Path(__file__).resolve().parent / "lab" / "lab"
RELEASE_NAMES = ("bullseye", "bookworm", "trixie")  # the lab's (tests/lab/lab build)


@functools.cache
def releases() -> tuple[dict[str, Release], str | None]:
    """Every lab release's validators (built once and cached by the lab; the first build of a
    release takes about 90 s), or why they cannot be had here."""
    if os.geteuid() != 0:
        return {}, "needs root (the lab's builds, chroot)"
    proc = subprocess.run([str(LAB), "build", *RELEASE_NAMES], capture_output=True, text=True, timeout=1800,
                          check=False)
    if proc.returncode != 0:
        return {}, f"tests/lab/lab build failed: {proc.stderr.strip()[-500:]}"
    out = {}
    for line in proc.stdout.splitlines():
        name, build = line.split(maxsplit=1)
        versions = dict(x.split("=", 1) for x in (Path(build) / "versions").read_text().split())
        out[name] = Release(name, Path(build) / "validators", versions["haproxy"], versions["keepalived"])
    return out, None


def available() -> str | None:
    """Why the real-binary checks cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (unshare -n -m)"
    for tool in ("haproxy", "keepalived", "unshare", "ip"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} not installed (run scripts/install-test-deps)"
    return None


def check_host(host: HostFiles, root: Path | None = None) -> CheckResult:
    """``root``: a release's validators root (``tests/lab/lab build``): its own haproxy and
    keepalived check the files, chrooted; None: this machine's."""
    with tempfile.TemporaryDirectory(prefix="hakeep-check-") as tmp:
        src = Path(tmp)
        os.chmod(src, 0o755)  # noqa: S103 - keepalived refuses scripts under non-root-readable dirs
        for f in host.files:
            target = src / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.content)
            os.chmod(target, f.mode)
        env = dict(os.environ, SRC=str(src), IFACE=host.lb.interface, R=str(root or ""),
                   PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        proc = subprocess.run(["unshare", "-n", "-m", "sh", "-c", SCRIPT], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
    if proc.returncode == 91:
        raise RuntimeError(f"cannot prepare the chroot {root}: {proc.stdout}{proc.stderr}")
    if proc.returncode == 90:
        raise RuntimeError(f"cannot create interface {shlex.quote(host.lb.interface)}: {proc.stdout}")
    return parse(proc.stdout + proc.stderr)


def parse(output: str) -> CheckResult:
    parts: dict[str, tuple[int, str]] = {}
    current = ""
    buf: list[str] = []
    for line in output.splitlines():
        if line in ("@@haproxy", "@@keepalived"):
            current, buf = line[2:], []
        elif line.startswith("@@rc=") and current:
            parts[current] = (int(line[5:]), "\n".join(buf))
            current = ""
        elif current:
            buf.append(line)
    if set(parts) != {"haproxy", "keepalived"}:
        raise RuntimeError(f"sandbox output not understood:\n{output}")
    (h_rc, h_out), (k_rc, k_out) = parts["haproxy"], parts["keepalived"]
    return CheckResult(h_rc, h_out, k_rc, k_out)
