"""``hakeep drill``: failover drills on a healthy pair — take the VIP holder out (stop, crash or link),
time the handover as the LBs and as a client see it, bring it back, time the fail-back.

Refused (with the status verdict's exit code) unless the pair is healthy: a drill on a degraded pair
is an outage; refused with exit 4 when --probe cannot reach the VIP or --mode link would cut hakeep's
own path to the holder. Exit 0 when every round moved the VIP to exactly one other LB within
``--max-seconds``, the frontends answered through it and the old holder came back; 1 otherwise.
The LBs are locked during the drill, like a deploy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hakeep.ops.drill import DrillResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)
    parser.add_argument("--mode", choices=("stop", "crash", "link"), default="stop",
                        help="stop: systemctl stop keepalived; crash: SIGKILL keepalived; link: the holder's "
                             "VRRP interface down, brought back by a timer set on the host first (default stop)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N", help="repeat the drill N times (default 1)")
    parser.add_argument("--probe", action="store_true",
                        help="connect to VIP:port from this machine in a tight loop during each round; report "
                             "failed connects and the longest gap (this machine must reach the VIP)")
    parser.add_argument("--max-seconds", type=float,
                        help="longest acceptable handover, fault -> VIP on another LB (default: 3 for stop; "
                             "3 x advert_int + 1 for crash and link, when the peer waits out the silence)")
    parser.add_argument("--link-seconds", type=float, metavar="S",
                        help="--mode link: how long the link stays down; --mode crash: when a timer on the host "
                             "restarts keepalived should hakeep not (default 3 x advert_int + 5)")
    parser.add_argument("--allow-ssh-loss", action="store_true",
                        help="--mode link: go ahead although hakeep reaches the holder over that same interface")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.errors import UsageError
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.drill import DrillRefused, Mode, run_drill
    from hakeep.ops.probe import Prober, reachable
    from hakeep.ops.status import PairStatus, Verdict, survey
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    vip = str(inv.cluster.vip.ip)
    ports = tuple(fe.port for fe in inv.frontends)
    mode = Mode(args.mode)
    link_s = args.link_seconds or 3 * inv.cluster.advert_int + 5
    limit_s = args.max_seconds or (3.0 if mode is Mode.STOP else 3 * inv.cluster.advert_int + 1)

    def refuse(why: str, hint: str) -> int:
        output.error(DrillRefused(f"drill refused: {why}; nothing was changed", hint=hint))
        return exitcodes.PREFLIGHT

    results: list[DrillResult] = []
    before: PairStatus | None = None

    def document(*, finished: bool = False) -> None:  # --json: what the drill found and did so far, whatever ends it
        if args.json:
            output.document(jsondoc.drill_doc(mode.value, before, results, rounds=args.rounds, finished=finished))

    with open_session(inv, lock=True, command="drill", tolerate_unreachable=True,
                      accept_new_host_keys=args.accept_new_host_keys) as session:
        pair = before = survey(session)
        document()
        if pair.verdict is not Verdict.HEALTHY:
            if not args.json:
                output.out().print(views.status_table(pair))
                views.print_verdict(pair)
            output.error(DrillRefused(f"drill refused: the pair is {pair.verdict.value}; a drill now would be an "
                                      "outage", hint="`hakeep status` says why; fix that first"))
            return exitcodes.VERDICTS[pair.verdict]
        if args.probe and not reachable(vip, ports[0]):
            return refuse(f"--probe: {vip}:{ports[0]} does not answer from this machine",
                          "run the drill with --probe where the VIP is reachable (where clients are)")
        holder = pair.holders[0]
        for n in range(1, args.rounds + 1):
            lb = inv.lb(holder)
            via = str(getattr(session.transports[holder], "address", lb.address)).rsplit(":", 1)[0]
            if not _is_ip(via):  # a DNS name from the ssh config: assume it is the LB's address (refuse more)
                via = str(lb.address)
            if mode is Mode.LINK and not args.allow_ssh_loss and any(
                    a.split("/")[0] == via for a in session.facts[holder].iface_addresses):
                return refuse(f"--mode link: hakeep reaches {holder} at {via}, on {lb.interface}, the interface "
                              "the drill takes down", "the host's timer brings the link back by itself: pass "
                              "--allow-ssh-loss to go ahead, or reach the LB by another path")
            try:
                result = run_drill(session.transports, vip, ports, mode=mode, interface=lb.interface, link_s=link_s,
                                   limit_s=limit_s, probe=Prober(vip, ports[0]) if args.probe else None,
                                   round_no=n, timeout_s=max(30.0, link_s + 20))
            except DrillRefused as exc:
                return refuse(exc.message, exc.hint or "")
            results.append(result)
            document()
            holder = result.final_holder or holder
            if not args.json:
                output.out().print(views.drill_line(result))
    document(finished=True)
    if not args.json:
        _report(results, mode.value, limit_s)
    return exitcodes.OK if all(r.ok for r in results) else exitcodes.FAILED


def _report(results: list[DrillResult], mode: str, limit_s: float) -> None:
    from hakeep.cli import output, views

    output.out().print(views.drill_table(results))
    if all(r.ok for r in results):
        worst = max(r.vip_moved_s or 0.0 for r in results)
        output.success(f"{len(results)} round(s) of --mode {mode}: VIP moved in at most {worst:.2f}s "
                       f"(limit {limit_s:g}s)")
    else:
        output.line("drill FAILED", style="bold red")


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
