#!/usr/bin/env python3
"""Benchmark hakeep on the lab: wall time of a first deploy, a no-op re-deploy and a dry-run,
for several numbers of LB hosts. Prints one table row per size; changes only the lab.

usage: sudo .venv/bin/python bench/deploy_lab.py [SIZES...]      (default: 2 4 8)

Each size takes the lab down, boots it with LAB_LBS=N (bare LB hosts), writes an inventory of
the N LBs and runs `hakeep deploy` (first, with package installs), `hakeep deploy` again (no-op)
and `hakeep deploy --dry-run`. The lab is left down at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.tomlgen import dumps  # noqa: E402

LAB = REPO / "tests" / "lab" / "lab"


def lab(*args: str, n: int) -> None:
    subprocess.run([str(LAB), *args], check=True, env={**os.environ, "LAB_LBS": str(n)},
                   stdout=subprocess.DEVNULL)


def inventory(n: int, folder: Path) -> Path:
    doc = tomllib.loads((REPO / "tests" / "lab" / "inventory.toml").read_text())
    doc["ssh"]["config"] = str(REPO / "tests" / "lab" / "ssh_config")
    for fe in doc["frontend"]:
        if "ca_file" in fe:
            fe["ca_file"] = str(REPO / "tests" / "lab" / "state" / "ca.crt")
    doc["lb"] = [{"name": f"lb{i}", "address": f"10.77.0.{100 + i}", "interface": "eth0", "priority": 100 + (i == 1)}
                 for i in range(1, n + 1)]
    path = folder / f"inventory-{n}.toml"
    path.write_text(dumps(doc))
    return path


def timed(*args: str) -> tuple[float, int]:
    env = {**os.environ, "HAKEEP_VRRP_PASS": "hklab77"}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "hakeep", *args], env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - t0
    if r.returncode not in (0, 3):
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
    return took, r.returncode


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [2, 4, 8]
    print(f"{'LBs':>4} {'first deploy':>14} {'no-op deploy':>14} {'dry-run':>10}   exit codes")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            lab("down", n=n)
            lab("up", n=n)
            inv = str(inventory(n, Path(tmp)))
            first, c1 = timed("deploy", inv, "--yes")
            noop, c2 = timed("deploy", inv, "--yes")
            dry, c3 = timed("deploy", inv, "--dry-run")
            print(f"{n:>4} {first:>13.1f}s {noop:>13.1f}s {dry:>9.1f}s   {c1} {c2} {c3}", flush=True)
    lab("down", n=max(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
