"""``hakeep rollback``: put back the state saved before a release, on every host, safely.

A rollback is a plan like a deploy's (same planner, same executor): the files come from each host's
release backup, are validated on the host before they replace anything, replaced atomically, the
units reloaded, restarted or stopped as they were, in the same order (the VIP holder last), behind
the same health gates; and it records a release itself, so it can be rolled back too.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_apply_arguments

    add_apply_arguments(parser, verb="roll back")
    parser.add_argument("--to", metavar="ID",
                        help="undo release ID and every release after it (default: the live release)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output, views
    from hakeep.cli.commands.common import apply
    from hakeep.cli.commands.options import checked_limit
    from hakeep.inventory.load import load_inventory
    from hakeep.plan.planner import build_rollback_plan
    from hakeep.run.session import new_release_id, now_iso, open_session, operator

    inv = load_inventory(Path(args.inventory))
    limit = checked_limit(inv, args.limit)
    progress = views.LiveProgress(output.err() if args.json else None)
    with progress, open_session(inv, lock=not args.dry_run, command="rollback", limit=limit,
                                accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = build_rollback_plan(inv, session.facts, to=args.to, release_id=new_release_id(), now=now_iso(),
                                   operator=operator(), limit=limit, unreachable=session.reasons())
        return apply(args, plan, session, progress)
