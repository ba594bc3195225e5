"""``hakeep diff``: what differs between the inventory and the hosts, drift included; changes nothing.

Drift (a managed file edited on a host since its live release) is shown apart from the change the
next deploy would make. Exit 0 when every host matches, 3 when a deploy would change something.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_limit_argument, add_read_arguments

    add_limit_argument(parser, verb="compare")
    add_read_arguments(parser)
    parser.add_argument("--templates", metavar="DIR", type=Path,
                        help="folder whose templates override the shipped ones")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.cli.commands.common import plan_deploy, render_for_deploy
    from hakeep.cli.commands.options import checked_limit
    from hakeep.inventory.load import load_inventory
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    limit = checked_limit(inv, args.limit)
    rendered = render_for_deploy(inv, args.templates)
    with open_session(inv, lock=False, command="diff", limit=limit,
                      accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = plan_deploy(inv, rendered, session, limit)
    if args.json:
        output.document(jsondoc.plan_doc(plan, dry_run=True))
    else:
        views.print_plan(plan, steps=False)
    return exitcodes.CHANGES_PENDING if plan.changed or plan.drift else exitcodes.OK
