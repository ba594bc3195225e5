"""``hakeep validate``: load, validate and lint an inventory; never touches a host."""

from __future__ import annotations

import argparse
from pathlib import Path

from hakeep.cli import exitcodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options beyond INVENTORY


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory

    inv = load_inventory(Path(args.inventory))
    warned = output.warnings(inv.source, lint(inv))
    summary = (f"{inv.source}: valid: cluster {inv.cluster.name}, {len(inv.lbs)} LBs, "
               f"{len(inv.frontends)} frontends, VIP {inv.cluster.vip}")
    if warned:
        summary += f" ({warned} warning{'s' if warned > 1 else ''})"
    output.success(summary)
    return exitcodes.OK
