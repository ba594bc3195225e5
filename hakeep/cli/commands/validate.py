"""``hakeep validate``: load, validate and lint an inventory; never touches a host."""

from __future__ import annotations

import argparse
from pathlib import Path

from hakeep.cli import exitcodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help="check the file only: skip the environment (the password variables it names)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON report (the inventory's summary and every problem) instead of text")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import jsondoc, output
    from hakeep.errors import InventoryError
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory

    source = str(args.inventory)
    if args.json:  # what stands if loading fails: the error itself is added when the run ends
        output.document(jsondoc.validate_doc(source, None, offline=args.offline))
    try:
        inv = load_inventory(Path(args.inventory))
    except InventoryError as exc:
        if args.json:
            output.document(jsondoc.validate_doc(exc.source, None, exc.problems, offline=args.offline))
        raise
    if args.json:
        output.document(jsondoc.validate_doc(inv.source, inv, offline=args.offline))  # until the checks below pass
    if not args.offline:  # a deploy would stop at a missing or empty password variable: say so now
        from hakeep.render.secrets import resolve_secrets

        resolve_secrets(inv)
    problems = list(lint(inv))
    warned = output.warnings(inv.source, problems)
    if args.json:
        output.document(jsondoc.validate_doc(inv.source, inv, (), problems, offline=args.offline, valid=True))
        return exitcodes.OK
    summary = (f"{inv.source}: valid: cluster {inv.cluster.name}, {len(inv.lbs)} LBs, "
               f"{len(inv.frontends)} frontends, VIP {inv.cluster.vip}")
    if warned:
        summary += f" ({warned} warning{'s' if warned > 1 else ''})"
    output.success(summary)
    return exitcodes.OK
