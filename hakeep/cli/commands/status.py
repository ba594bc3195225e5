"""``hakeep status``: where the VIP is and whether the pair is healthy; works with LBs down; changes nothing.

Per LB: reached or not (and why), whether it holds the VIP, its VRRP state (from keepalived's notify
script), both units, haproxy's backend servers, the live release and any drift; the VIP's frontend
ports probed from every reached LB and from this machine. One verdict, one exit code:
healthy 0, unreachable 5, degraded 6, split brain 7, VIP lost 8. ``--watch`` refreshes in place.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until Ctrl-C; VIP moves are printed with the time")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.status import PairStatus, survey
    from hakeep.run.session import SudoPassword, open_session

    inv = load_inventory(Path(args.inventory))
    wait = max(lb.ssh.connect_timeout for lb in inv.lbs)

    sudo = SudoPassword()  # one for every refresh, asked before the clock starts
    if any(lb.ssh.sudo for lb in inv.lbs):
        sudo.ask_now()

    def snapshot() -> PairStatus:  # connect_timeout + 0.3 s to connect, then facts and probes side by side
        with open_session(inv, lock=False, command="status", tolerate_unreachable=True, deadline_s=wait + 0.3,
                          gather=False, sudo_password=sudo,
                          accept_new_host_keys=args.accept_new_host_keys) as session:
            return survey(session, facts_timeout=1.5)

    if args.watch is not None:
        last = views.watch_status(snapshot, max(0.5, args.watch))
        return exitcodes.VERDICTS[last.verdict] if last is not None else exitcodes.INTERRUPTED
    pair = snapshot()
    if args.json:
        output.emit(jsondoc.dump(jsondoc.status_doc(pair)))
    else:
        output.out().print(views.status_table(pair))
        views.print_verdict(pair)
    return exitcodes.VERDICTS[pair.verdict]
