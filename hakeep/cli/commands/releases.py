"""``hakeep releases``: list each host's release history (marking the live one); changes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_limit_argument, add_read_arguments

    add_limit_argument(parser, verb="list")
    add_read_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.cli.commands.options import checked_limit
    from hakeep.inventory.load import load_inventory
    from hakeep.plan.releases import History
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    limit = checked_limit(inv, args.limit)
    with open_session(inv, lock=False, command="releases", limit=limit,
                      accept_new_host_keys=args.accept_new_host_keys) as session:
        histories = {lb.name: History.of(session.facts[lb.name]) for lb in inv.lbs
                     if lb.name in session.facts and (limit is None or lb.name in limit)}
        for name, err in session.unreachable.items():
            output.warn(f"{name} cannot be reached ({err.message}); its releases are not listed")
    if args.json:
        output.document(jsondoc.releases_doc(histories, session.reasons()))
        return exitcodes.OK
    for host, h in histories.items():
        output.out().print(views.releases_table(host, h.releases, h.live.id if h.live else None))
        for d in h.drift:
            output.line(f"  drift: {d.path} edited on the host since release {d.release}", style="magenta")
    return exitcodes.OK
