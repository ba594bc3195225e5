"""``hakeep deploy``: preflight, install, validate, roll out with health gates, prove the VIP.

``--dry-run`` runs the same session and the same plan, validates the new configs on each host in a
private temp folder, prints the steps and diffs, and changes nothing. Exit codes: 0 done (dry-run:
nothing would change), 1 a host failed (it was restored), 2 bad input, 3 dry-run with changes
pending, 4 preflight, on-host validation or unconfirmed drift refused the deploy (nothing changed).
Heavy modules are imported inside :func:`run` so ``hakeep --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_apply_arguments

    add_apply_arguments(parser, verb="deploy")
    parser.add_argument("--templates", metavar="DIR", type=Path,
                        help="folder whose templates override the shipped ones")
    parser.add_argument("--decommission", metavar="NAME", action="append", default=[],
                        help="an LB dropped from the inventory that is still reachable: stop keepalived there "
                             "first (its VIP moves to the others), then haproxy, record a release, then roll the "
                             "others out (repeatable; NAME or address)")
    parser.add_argument("--forget", metavar="NAME", action="append", default=[],
                        help="an LB dropped from the inventory that is gone for good (cannot be reached): roll the "
                             "others out without it (repeatable; NAME or address)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output, views
    from hakeep.cli.commands.common import apply, plan_deploy, render_for_deploy
    from hakeep.cli.commands.options import checked_limit
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory
    from hakeep.run.session import join_leaving, open_session

    inv = load_inventory(Path(args.inventory))
    if not args.json:
        output.warnings(inv.source, lint(inv))
    limit = checked_limit(inv, args.limit)
    rendered = render_for_deploy(inv, args.templates)
    progress = views.LiveProgress(output.err() if args.json else None)
    with progress, open_session(inv, lock=not args.dry_run, command="deploy", limit=limit,
                                accept_new_host_keys=args.accept_new_host_keys) as session:
        leaving = join_leaving(session, args.decommission, lock=not args.dry_run,
                               accept_new_host_keys=args.accept_new_host_keys)
        plan = plan_deploy(inv, rendered, session, limit, forget=args.forget, decommission=leaving)
        return apply(args, plan, session, progress)
