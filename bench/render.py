#!/usr/bin/env python3
"""Benchmark the pure core: load + validate + lint + render + plan for large inventories.

usage: .venv/bin/python bench/render.py      (no root, no hosts; prints a table)

Sizes grow in LBs and frontends; each row is the median of 5 runs. The plan is built against
synthetic facts (hosts already deployed), i.e. the cost of a no-op deploy's local work.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hakeep.inventory.lint import lint  # noqa: E402
from hakeep.inventory.load import load_inventory  # noqa: E402
from hakeep.layout import CHECK_ROOT  # noqa: E402
from hakeep.plan.planner import build_plan  # noqa: E402
from hakeep.render.engine import render_all  # noqa: E402
from hakeep.render.files import Secrets  # noqa: E402
from tests.fakes import facts, with_files  # noqa: E402
from tests.tomlgen import dumps  # noqa: E402


def doc(n_lbs: int, n_frontends: int, n_servers: int) -> dict[str, object]:
    return {
        "cluster": {"name": "bench", "vip": "10.0.0.250/16", "virtual_router_id": 9, "auth_pass_env": "P"},
        "lb": [{"name": f"lb{i}", "address": f"10.0.1.{i}", "interface": "eth0", "priority": 100 + i % 3}
               for i in range(1, n_lbs + 1)],
        "frontend": [{"name": f"fe{j}", "port": 20000 + j, "check": "https" if j % 2 else "tcp",
                      "servers": [{"name": f"s{k}", "address": f"10.0.2.{k}"} for k in range(1, n_servers + 1)]}
                     for j in range(n_frontends)],
    }


def once(path: Path) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    inv = load_inventory(path)
    lint(inv)
    t1 = time.perf_counter()
    files = render_all(inv, Secrets("pw"))
    check = render_all(inv, Secrets("pw"), root=CHECK_ROOT + "x")
    t2 = time.perf_counter()
    fs = {lb.name: with_files(facts(lb.name, str(lb.address)), {f.path: (f.content, f.mode)
                                                                 for f in files[lb.name].files}) for lb in inv.lbs}
    plan = build_plan(inv, fs, files, check, release_id="x", now="t", operator="bench")
    if plan.changed:
        raise SystemExit("bench: a no-op plan changed something")
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> int:
    print(f"{'LBs':>4} {'frontends':>9} {'servers':>7} {'validate ms':>12} {'render ms':>10} {'plan ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n_lbs, n_fe, n_srv in ((2, 2, 3), (4, 10, 10), (16, 50, 20), (16, 200, 50)):
            path = Path(tmp) / "inventory.toml"
            path.write_text(dumps(doc(n_lbs, n_fe, n_srv)))
            runs = [once(path) for _ in range(5)]
            med = [statistics.median(r[i] for r in runs) * 1000 for i in range(3)]
            print(f"{n_lbs:>4} {n_fe:>9} {n_srv:>7} {med[0]:>12.1f} {med[1]:>10.1f} {med[2]:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
