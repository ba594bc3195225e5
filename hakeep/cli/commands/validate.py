"""``hakeep validate``: load, validate and lint an inventory; never touches a host."""

from __future__ import annotations

import argparse
from pathlib import Path

from hakeep.cli import exitcodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help="check the file only: skip the environment (the password variables it names)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory

    inv = load_inventory(Path(args.inventory))
    if not args.offline:  # a deploy would stop at a missing or empty password variable: say so now
        from hakeep.render.secrets import resolve_secrets

        resolve_secrets(inv)
    warned = output.warnings(inv.source, lint(inv))
    summary = (f"{inv.source}: valid: cluster {inv.cluster.name}, {len(inv.lbs)} LBs, "
               f"{len(inv.frontends)} frontends, VIP {inv.cluster.vip}")
    if warned:
        summary += f" ({warned} warning{'s' if warned > 1 else ''})"
    output.success(summary)
    return exitcodes.OK
