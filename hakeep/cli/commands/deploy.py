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


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import output, views
    from hakeep.cli.commands.common import apply
    from hakeep.errors import UsageError
    from hakeep.inventory.lint import lint
    from hakeep.inventory.load import load_inventory
    from hakeep.layout import CHECK_ROOT
    from hakeep.plan.planner import build_plan
    from hakeep.render.engine import render_all
    from hakeep.render.secrets import resolve_secrets
    from hakeep.run.session import new_release_id, now_iso, open_session, operator

    inv = load_inventory(Path(args.inventory))
    if not args.json:
        output.warnings(inv.source, lint(inv))
    unknown = [n for n in args.limit or [] if n not in [lb.name for lb in inv.lbs]]
    if unknown:
        raise UsageError(f"--limit {', '.join(unknown)}: no such [[lb]] in {inv.source}")
    secrets = resolve_secrets(inv)
    desired = render_all(inv, secrets, templates=args.templates)
    release_id = new_release_id()
    check_copy = render_all(inv, secrets, templates=args.templates, root=CHECK_ROOT + release_id)
    progress = views.LiveProgress(output.err() if args.json else None)
    with progress, open_session(inv, lock=not args.dry_run,
                                accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = build_plan(inv, session.facts, desired, check_copy, release_id=release_id, now=now_iso(),
                          operator=operator(), limit=args.limit)
        return apply(args, plan, session, progress)
