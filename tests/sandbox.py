"""Run the real ``haproxy -c`` and ``keepalived -t`` on rendered files, as if they were installed.

Each check runs in a throwaway network and mount namespace (``unshare -n -m``): tmpfs is mounted
over /etc/haproxy and /etc/keepalived (inside the namespace only), the host's rendered files are
copied to their real paths with their real modes, and the inventory's interface is created as a veth
pair so keepalived accepts it. Nothing of this machine's own /etc or network is touched, and the
namespaces vanish with the process. Needs root plus the haproxy and keepalived binaries.
"""

from __future__ import annotations

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
for d in /etc/haproxy /etc/keepalived; do
    mkdir -p "$d" && mount -t tmpfs -o mode=0755 tmpfs "$d"
done
cd "$SRC"
find . -type f | while read -r f; do
    target="/${f#./}"
    mkdir -p "$(dirname "$target")"
    cp -p "$f" "$target"
done
ip link add "$IFACE" type veth peer name hkpeer0 || exit 90
echo "@@haproxy"
haproxy -c -f /etc/haproxy/haproxy.cfg 2>&1
echo "@@rc=$?"
echo "@@keepalived"
keepalived -t -f /etc/keepalived/keepalived.conf </dev/null 2>&1
echo "@@rc=$?"
"""


@dataclass(frozen=True)
class CheckResult:
    haproxy_rc: int
    haproxy_output: str
    keepalived_rc: int
    keepalived_output: str


def available() -> str | None:
    """Why the real-binary checks cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (unshare -n -m)"
    for tool in ("haproxy", "keepalived", "unshare", "ip"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} not installed (run scripts/install-test-deps)"
    return None


def check_host(host: HostFiles) -> CheckResult:
    with tempfile.TemporaryDirectory(prefix="hakeep-check-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)  # noqa: S103 - keepalived refuses scripts under non-root-readable dirs
        for f in host.files:
            target = root / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.content)
            os.chmod(target, f.mode)
        env = dict(os.environ, SRC=str(root), IFACE=host.lb.interface,
                   PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        proc = subprocess.run(["unshare", "-n", "-m", "sh", "-c", SCRIPT], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
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
