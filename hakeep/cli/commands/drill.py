"""``hakeep drill``: failover drills on a healthy pair — take the VIP holder out (keepalived stopped or
crashed, its link down, haproxy stopped or crashed), time the handover as the LBs and as a client see
it, bring it back, time the fail-back; or watch a master leave rotation and come back while someone
makes it unhealthy (``--mode master-unhealthy``), counting what HTTP clients of the VIP got.

Refused (with the status verdict's exit code) unless the pair is healthy: a drill on a degraded pair
is an outage; refused with exit 4 when --probe cannot reach the VIP or --mode link would cut hakeep's
own path to a holder (any LB's, when a later round or VIP may start from it). With several VIPs each
is drilled in turn from its own holder (``--vip NAME``: one). Exit 0 when every round moved the VIP
to exactly one other LB within ``--max-seconds``, the frontends answered through it and the old holder
came back (master-unhealthy: the master left rotation and came back, and clients saw bad answers for
at most ``--max-seconds``); 1 otherwise, also when a later VIP had no single holder at its turn. The
LBs are locked during the drill, like a deploy.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from hakeep.hosts.remote import Transport
    from hakeep.inventory.model import Frontend, Inventory, LoadBalancer
    from hakeep.ops.drill import DrillResult, Mode
    from hakeep.run.session import Session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hakeep.cli.commands.options import add_read_arguments

    add_read_arguments(parser)
    parser.add_argument("--mode", choices=("stop", "crash", "link", "haproxy-stop", "haproxy-crash",
                                           "master-unhealthy"), default="stop",
                        help="on the VIP holder: stop: systemctl stop keepalived; crash: SIGKILL keepalived; link: "
                             "its VRRP interface down, brought back by a timer set on the host first; haproxy-stop: "
                             "systemctl stop haproxy; haproxy-crash: SIGKILL haproxy and its workers. "
                             "master-unhealthy: change nothing, watch --master leave rotation and come back while "
                             "you make it unhealthy and healthy again (default stop)")
    parser.add_argument("--master", metavar="NAME", help="--mode master-unhealthy: the server to watch")
    parser.add_argument("--frontend", metavar="NAME",
                        help="--mode master-unhealthy: the frontend to probe (default: the first with an https "
                             "check that has --master)")
    parser.add_argument("--path", metavar="PATH",
                        help="--mode master-unhealthy: what the probe asks for through the VIP (default: the "
                             "frontend's check path: what unhealthy means)")
    parser.add_argument("--observe-seconds", type=float, default=120.0, metavar="S",
                        help="--mode master-unhealthy: how long to wait for it to leave rotation and come back "
                             "(default 120)")
    parser.add_argument("--vip", metavar="NAME",
                        help="drill this VIP only ([[vip]] name; default: every VIP in turn, each taken from its own "
                             "holder; master-unhealthy: the first VIP that serves --frontend)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="repeat the drill N times (for each VIP; default 1)")
    parser.add_argument("--probe", action="store_true",
                        help="connect to VIP:port from this machine in a tight loop during each round; report "
                             "failed connects and the longest gap (this machine must reach the VIP)")
    parser.add_argument("--max-seconds", type=float,
                        help="longest acceptable handover, fault -> VIP on another LB (default: 3 for stop, "
                             "haproxy-stop and haproxy-crash; 3 x advert_int + 1 for crash and link, when the peer "
                             "waits out the silence); master-unhealthy: the longest time clients may get bad "
                             "answers (default 3)")
    parser.add_argument("--link-seconds", type=float, metavar="S",
                        help="--mode link: how long the link stays down; --mode crash, haproxy-crash, haproxy-stop: "
                             "when a timer on the host starts the unit should systemd or hakeep not "
                             "(default 3 x advert_int + 5)")
    parser.add_argument("--allow-ssh-loss", action="store_true",
                        help="--mode link: go ahead although hakeep reaches the holder over that same interface")


def run(args: argparse.Namespace) -> int:
    from hakeep.cli import exitcodes, jsondoc, output, views
    from hakeep.inventory.load import load_inventory
    from hakeep.ops.drill import DrillError, DrillRefused, Mode
    from hakeep.ops.probe import reachable
    from hakeep.ops.status import PairStatus, Verdict, survey
    from hakeep.run.session import open_session

    inv = load_inventory(Path(args.inventory))
    mode, link_s, limit_s, watched = _settings(inv, args)
    views_ = _targets(inv, args, watched)

    def refuse(why: str, hint: str) -> int:
        output.error(DrillRefused(f"drill refused: {why}; nothing was changed", hint=hint))
        return exitcodes.PREFLIGHT

    results: list[DrillResult] = []
    before: PairStatus | None = None

    def document(*, finished: bool = False) -> None:  # --json: what the drill found and did so far, whatever ends it
        if args.json:
            output.document(jsondoc.drill_doc(mode.value, before, results, rounds=args.rounds * len(views_),
                                              finished=finished))

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
        for view in views_:  # every check that can refuse, before anything changes
            vip, name = str(view.cluster.vip.ip), view.cluster.vip_name
            probe_port = watched.port if watched is not None else view.frontends[0].port
            if (args.probe or watched is not None) and not reachable(vip, probe_port):
                return refuse(f"{'--probe' if watched is None else 'the probe'}: {vip}:{probe_port}"
                              f"{f' (VIP {name})' if inv.extra_vips else ''} does not answer from this machine",
                              "run the drill where the VIP is reachable (where clients are)")
        # a link drill takes the holder's interface down: after the first round (without preemption, or
        # with several VIPs) any LB may be the holder
        at_risk = [inv.lb(h) for h in pair.holders] if not inv.extra_vips and args.rounds == 1 else list(inv.lbs)
        if mode is Mode.LINK and not args.allow_ssh_loss and (why := next(
                (w for lb in at_risk if (w := _cuts_ssh(session, lb))), "")):
            return refuse(why, "the host's timer brings the link back by itself: pass --allow-ssh-loss to go ahead, "
                               "or reach the LB by another path")
        try:
            for view in views_:
                _drill_vip(session, args, view, (mode, link_s, limit_s), watched=watched, results=results,
                           document=document)
        except DrillRefused as exc:  # a VIP without exactly one holder when its turn came
            if not results:
                return refuse(exc.message, exc.hint or "")
            output.error(DrillError(f"drill stopped: {exc.message}", hint=exc.hint))
            document()
            if not args.json:
                _report(results, mode.value, limit_s)
            return exitcodes.FAILED
    document(finished=True)
    if not args.json:
        _report(results, mode.value, limit_s)
    return exitcodes.OK if all(r.ok for r in results) else exitcodes.FAILED


def _drill_vip(session: Session, args: argparse.Namespace, view: Inventory, settings: tuple[Mode, float, float], *,
               watched: Frontend | None, results: list[DrillResult], document: Callable[[], None]) -> None:
    """Every round for one VIP, from the LB that holds it now (an earlier VIP's rounds may have moved it)."""
    from hakeep.cli import output, views
    from hakeep.ops.drill import run_drill
    from hakeep.ops.probe import Prober

    mode, link_s, limit_s = settings
    vip, name = str(view.cluster.vip.ip), view.cluster.vip_name
    ports = tuple(fe.port for fe in view.frontends)
    prios = {lb.name: lb.priority for lb in view.lbs}  # (the view's: this VIP's priorities)
    top = [n for n, p in prios.items() if p == max(prios.values())]
    preferred = top[0] if view.cluster.preempt and len(top) == 1 else None
    holder = _settled_holder(session.transports, vip, _failback_wait(view), preferred)
    if watched is not None:
        result = dataclasses.replace(_watch(session.transports, args, watched, vip, holder=holder, limit_s=limit_s),
                                     vip=name)
        results.append(result)
        if not args.json:
            output.out().print(views.drill_line(result))
        return
    for n in range(1, args.rounds + 1):
        lb = view.lb(holder)
        result = dataclasses.replace(run_drill(
            session.transports, vip, ports, mode=mode, interface=lb.interface, link_s=link_s, limit_s=limit_s,
            probe=Prober(vip, ports[0]) if args.probe else None, round_no=n, timeout_s=max(30.0, link_s + 20),
            failback_s=_failback_wait(view)), vip=name)
        results.append(result)
        document()
        holder = result.final_holder or holder
        if not args.json:
            output.out().print(views.drill_line(result))


def _settled_holder(transports: Mapping[str, Transport], vip: str, wait_s: float, preferred: str | None) -> str:
    """The one LB holding ``vip``, waiting up to ``wait_s`` for a VIP still moving back to settle (to
    ``preferred``, the LB that preempts it, when there is one; else any one holder)."""
    import time

    from hakeep.ops.drill import DrillRefused, holders_of, where

    deadline = time.monotonic() + wait_s
    while True:
        now = holders_of(where(transports, vip))
        late = time.monotonic() > deadline
        if len(now) == 1 and (preferred in (None, now[0]) or late):
            return str(now[0])
        if late:
            raise DrillRefused(f"the VIP {vip} is on {len(now)} LBs ({', '.join(now) or 'none'}); a drill needs "
                               "exactly one holder", hint="run `hakeep status` and fix that first")
        time.sleep(0.25)


def _report(results: list[DrillResult], mode: str, limit_s: float) -> None:
    from hakeep.cli import output, views

    output.out().print(views.drill_table(results))
    if results and all(r.ok for r in results) and mode == "master-unhealthy":
        r = results[0]
        output.success(f"{r.master} left rotation and came back; clients saw bad answers for "
                       f"{r.probe.bad_span_s if r.probe else 0:.2f}s (limit {limit_s:g}s)")
    elif all(r.ok for r in results):
        worst = max(r.vip_moved_s or 0.0 for r in results)
        output.success(f"{len(results)} round(s) of --mode {mode}: VIP moved in at most {worst:.2f}s "
                       f"(limit {limit_s:g}s)")
    else:
        output.line("drill FAILED", style="bold red")


def _settings(inv: Inventory, args: argparse.Namespace) -> tuple[Mode, float, float, Frontend | None]:
    """The mode, how long a fault lasts at most, the limit a round is held to, and the frontend that
    --mode master-unhealthy probes (None for the other modes)."""
    from hakeep.errors import UsageError
    from hakeep.ops.drill import Mode

    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    mode = Mode(args.mode)
    link_s = args.link_seconds or 3 * inv.cluster.advert_int + 5
    limit_s = args.max_seconds or (3 * inv.cluster.advert_int + 1 if mode in (Mode.CRASH, Mode.LINK) else 3.0)
    if (args.master is not None) != (mode is Mode.MASTER_UNHEALTHY):
        raise UsageError("--mode master-unhealthy needs --master NAME, and --master needs that mode")
    watched = _watched(inv, args) if mode is Mode.MASTER_UNHEALTHY else None
    if watched is not None and args.rounds != 1:
        raise UsageError("--mode master-unhealthy watches once: drop --rounds")
    return mode, link_s, limit_s, watched


def _targets(inv: Inventory, args: argparse.Namespace, watched: Frontend | None) -> list[Inventory]:
    """The VIPs to drill, each as the inventory it sees (:meth:`Inventory.for_vip`): --vip, else every
    VIP that serves a frontend (master-unhealthy: the first that serves the watched one)."""
    from hakeep.errors import UsageError

    names = [v.name for v in inv.vips]
    if args.vip is not None and args.vip not in names:
        raise UsageError(f"--vip {args.vip}: no such VIP; VIPs: {', '.join(names)}")
    views_ = [inv.for_vip(n) if inv.extra_vips else inv for n in names if args.vip in (None, n)]
    if watched is not None:
        views_ = [v for v in views_ if any(fe.name == watched.name for fe in v.frontends)][:1]
        if not views_:
            raise UsageError(f"--vip {args.vip}: it does not serve frontend {watched.name}")
        return views_
    if args.vip is not None and not views_[0].frontends:
        raise UsageError(f"--vip {args.vip}: it serves no frontend; nothing answers through it to time")
    served = [v for v in views_ if v.frontends]
    if not served:
        raise UsageError("no VIP serves a frontend: nothing answers through one to time")
    return served


def _failback_wait(inv: Inventory) -> float:
    """How long a round watches for the old holder taking the VIP back: its master-down interval
    (3 x advert_int + skew), the preempt delay, and a margin. Without preemption too: to see that
    the VIP stays (a fail-back then is reported, and is wrong)."""
    master_down = 3 * inv.cluster.vrrp_advert_s + 1
    return max(10.0, master_down + inv.cluster.preempt_delay + 5.0) if inv.cluster.preempt else master_down + 1.0


def _watch(transports: Mapping[str, Transport], args: argparse.Namespace, fe: Frontend, vip: str, *, holder: str,
           limit_s: float) -> DrillResult:
    from hakeep.cli import output
    from hakeep.ops.drill import DrillRefused, watch_master
    from hakeep.ops.probe import HttpProber

    path = args.path or fe.check_path
    output.progress(f"watching {args.master} in {fe.backend_name} on {holder} for up to {args.observe_seconds:g}s; "
                    f"HTTP clients: GET {path} through {vip}:{fe.port}. Make {args.master} unhealthy, then "
                    "healthy again.")
    prober = HttpProber(vip, fe.port, path, tls=True, ca_file=fe.ca_file)
    got, why = prober.ask()
    # a probe that cannot talk to the frontend, or is refused as a client, would count every request
    if got is False or why in ("HTTP 401", "HTTP 403", "HTTP 404"):
        raise DrillRefused(f"the probe: GET {path} on {vip}:{fe.port} over TLS fails from this machine: {why}",
                           hint="run it where clients are; the frontend's ca_file must sign the servers' "
                                "certificates; --path must need no credentials (kube-apiserver serves /readyz "
                                "and /version to anyone by default)")
    return watch_master(transports, vip, fe.backend_name, args.master, prober, observe_s=args.observe_seconds,
                        limit_s=limit_s)


def _cuts_ssh(session: Session, lb: LoadBalancer) -> str:
    """Why taking ``lb``'s VRRP interface down cuts hakeep's own path to it ("" when it does not)."""
    via = str(getattr(session.transports[lb.name], "address", lb.address)).rsplit(":", 1)[0]
    if not _is_ip(via):  # a DNS name from the ssh config: assume it is the LB's address (refuse more)
        via = str(lb.address)
    if any(a.split("/")[0] == via for a in session.facts[lb.name].iface_addresses):
        return (f"--mode link: hakeep reaches {lb.name} at {via}, on {lb.interface}, the interface the drill "
                "takes down")
    return ""


def _watched(inv: Inventory, args: argparse.Namespace) -> Frontend:
    """The frontend --mode master-unhealthy probes: --frontend, else the first with an https check
    that has --master among its servers."""
    from hakeep.errors import UsageError

    fes = [fe for fe in inv.frontends if args.frontend in (None, fe.name)]
    if args.frontend is not None and not fes:
        raise UsageError(f"--frontend {args.frontend}: no such frontend; frontends: "
                         f"{', '.join(fe.name for fe in inv.frontends)}")
    fes = [fe for fe in fes if any(s.name == args.master for s in fe.servers)]
    if not fes:
        raise UsageError(f"--master {args.master}: no such server" + (f" in frontend {args.frontend}"
                                                                      if args.frontend else ""))
    https = [fe for fe in fes if fe.check == "https"]
    if not https:
        raise UsageError(f"--mode master-unhealthy: frontend {fes[0].name} checks its servers with tcp; it needs "
                         "an https check (its check path is what unhealthy means)")
    return https[0]


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
