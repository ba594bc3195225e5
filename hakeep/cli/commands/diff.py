"""``hakeep diff``: what differs between the inventory and the hosts, drift included; changes nothing.

Drift (a managed file edited on a host since its live release) is shown apart from the change the
next deploy would make. Exit 0 when every host matches, 3 when a deploy would change something.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)
    parser.add_argument("--templates", metavar="DIR", type=Path,
                        help="folder whose templates override the shipped ones")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, views
    from hakeep.inventory.load import load_inventory
    from hakeep.layout import CHECK_ROOT
    from hakeep.plan.planner import build_plan
    from hakeep.render.engine import render_all
    from hakeep.render.secrets import resolve_secrets
    from hakeep.run.session import new_release_id, now_iso, open_session, operator

    inv = load_inventory(Path(args.inventory))
    secrets = resolve_secrets(inv)
    desired = render_all(inv, secrets, templates=args.templates)
    rid = new_release_id()
    check_copy = render_all(inv, secrets, templates=args.templates, root=CHECK_ROOT + rid)
    with open_session(inv, lock=False, accept_new_host_keys=args.accept_new_host_keys) as session:
        plan = build_plan(inv, session.facts, desired, check_copy, release_id=rid, now=now_iso(),
                          operator=operator())
    if args.json:
        print(jsondoc.dump(jsondoc.plan_doc(plan, dry_run=True)))
    else:
        views.print_plan(plan, steps=False)
    return exitcodes.CHANGES_PENDING if plan.changed or plan.drift else exitcodes.OK
