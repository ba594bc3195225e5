"""``hakeep status``: where the VIP is and whether every LB is healthy, from one round of facts.

Per LB: whether it holds the VIP, its VRRP state (from keepalived's notify script), both units
(active, main PID), haproxy's backend servers by state (stats socket), the live release and any
drift. Exit 0 when exactly one LB holds the VIP and every unit is active, 1 otherwise. Changes
nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.status import host_status
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    with open_session(inv, lock=False, accept_new_host_keys=args.accept_new_host_keys) as session:
        rows = [host_status(lb, session.facts[lb.name]) for lb in inv.lbs]
    holders = [r.host for r in rows if r.holds_vip]
    healthy = len(holders) == 1 and all(r.healthy for r in rows)
    if args.json:
        print(jsondoc.dump(jsondoc.status_doc(str(inv.cluster.vip), holders, healthy, rows)))
    else:
        output.out().print(views.status_table(str(inv.cluster.vip), rows))
        if healthy:
            output.success(f"VIP {inv.cluster.vip.ip} on {holders[0]}; every LB healthy")
        else:
            where = ", ".join(holders) or "no LB"
            output.line(f"not healthy: VIP on {where}; see the table", style="bold red")
    return exitcodes.OK if healthy else exitcodes.FAILED
