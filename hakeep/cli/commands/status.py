"""``hakeep status``: where the VIP is and whether the pair is healthy; works with LBs down; changes nothing.

Per LB: reached or not (and why), whether it holds the VIP, its VRRP state (from keepalived's notify
script), both units, haproxy's backend servers, the live release and any drift; the VIP's frontend
ports probed from every reached LB and from this machine. One verdict, one exit code:
healthy 0, unreachable 5, degraded 6, split brain 7, VIP lost 8. ``--watch`` refreshes in place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hakeep.ops.status import PairStatus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    parser.add_argument("--limit", metavar="NAMES", action="append",
                        help="ask only these LBs: names, comma lists and shell globs ('lb*', lb1,lb3; repeatable); "
                             "the others are shown as not asked, and the verdict is at best degraded")
    add_read_arguments(parser)
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until Ctrl-C; VIP moves are printed with the time")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.cli.commands.options import checked_limit
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.status import survey
    from hakeep.run.session import SudoPassword, open_session

    inv = load_inventory(Path(args.inventory))
    limit = checked_limit(inv, args.limit)
    wait = max(lb.ssh.connect_timeout for lb in inv.lbs)

    sudo = SudoPassword()  # one for every refresh, asked before the clock starts
    if any(lb.ssh.sudo for lb in inv.lbs):
        sudo.ask_now()

    def snapshot() -> PairStatus:  # connect_timeout + 0.3 s to connect, then facts and probes side by side
        with open_session(inv, lock=False, command="status", tolerate_unreachable=True, deadline_s=wait + 0.3,
                          gather=False, sudo_password=sudo, only=limit,
                          accept_new_host_keys=args.accept_new_host_keys) as session:
            return survey(session, facts_timeout=1.5)

    if args.watch is not None and args.json:
        return _watch_json(snapshot, max(0.5, args.watch))
    if args.watch is not None:
        last = views.watch_status(snapshot, max(0.5, args.watch))
        return exitcodes.VERDICTS[last.verdict] if last is not None else exitcodes.INTERRUPTED
    pair = snapshot()
    if args.json:
        output.document(jsondoc.status_doc(pair))
    else:
        output.out().print(views.status_table(pair))
        views.print_verdict(pair)
    return exitcodes.VERDICTS[pair.verdict]


def _watch_json(snapshot: Callable[[], PairStatus], interval: float) -> int:
    """--watch --json: one document per refresh, each on one line (JSON Lines), until Ctrl-C."""
    import signal
    import time

    from hakeep.cli import exitcodes, jsondoc, output

    code: int | None = None
    try:
        while True:
            pair = snapshot()
            code = exitcodes.VERDICTS[pair.verdict]
            if not output.stream_document(jsondoc.status_doc(pair), code):
                break  # the reader went away (`| head -1`)
            time.sleep(interval)
    except KeyboardInterrupt as exc:  # Ctrl-C ends watching; SIGTERM and SIGHUP end hakeep
        if getattr(exc, "signum", signal.SIGINT) != signal.SIGINT or code is None:
            raise  # (before the first refresh, Ctrl-C ends it with an error line: nothing was said yet)
    return code
