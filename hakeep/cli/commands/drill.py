"""``hakeep drill``: the failover drill — stop keepalived on the VIP holder, time the handover, restore.

Exit 0 when the VIP moved to exactly one other LB within ``--max-seconds``, the frontends answered
through it, and the old holder came back (MASTER or BACKUP) with exactly one holder at the end;
1 otherwise. The hosts are locked during the drill, like a deploy.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)
    parser.add_argument("--max-seconds", type=float, default=3.0,
                        help="longest acceptable handover, stop -> VIP on another LB (default 3)")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.drill import run_drill
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    ports = tuple(fe.port for fe in inv.frontends)
    with open_session(inv, lock=True, accept_new_host_keys=args.accept_new_host_keys) as session:
        result = run_drill(session.transports, str(inv.cluster.vip.ip), ports, limit_s=args.max_seconds)
    if args.json:
        print(jsondoc.dump(jsondoc.drill_doc(result)))
    else:
        def secs(v: float | None) -> str:
            return f"{v:.2f}s" if v is not None else "never (timed out)"

        output.line(f"stopped keepalived on {result.old_holder} (the VIP holder)")
        output.line(f"VIP on {result.new_holder or 'no other LB'} after {secs(result.vip_moved_s)}")
        output.line(f"every frontend ({', '.join(map(str, ports))}) answered through the VIP after "
                    f"{secs(result.frontends_s)}")
        output.line(f"started keepalived again; {result.old_holder} back in MASTER/BACKUP after "
                    f"{secs(result.recovered_s)}; VIP now on {result.final_holder or 'no LB'}")
        if result.ok:
            output.success(f"failover in {secs(result.vip_moved_s)} (limit {args.max_seconds:g}s)")
        else:
            output.line("drill FAILED", style="bold red")
    return exitcodes.OK if result.ok else exitcodes.FAILED
