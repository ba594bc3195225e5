"""``hakeep status`` without the printing: each LB's state from its facts, where the VIP answers, and
one verdict for the pair — healthy, degraded, split brain, VIP lost or unreachable — with reasons.

:func:`host_status` and :func:`judge` are pure; :func:`probe_vip` asks every reached LB (and this
machine) whether the VIP's frontend ports answer, each probe bounded.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from hakeep.hosts import arp as arps
from hakeep.hosts import commands
from hakeep.hosts.arp import ArpSeen, parse_arp
from hakeep.hosts.facts import HostFacts
from hakeep.hosts.group import parallel
from hakeep.hosts.remote import CommandResult, Transport
from hakeep.inventory.model import Inventory, LoadBalancer
from hakeep.layout import HAPROXY, KEEPALIVED, KEEPALIVED_DATA
from hakeep.plan.releases import History
from hakeep.run.session import NotAsked, Session, gather_facts, reason

HERE = "here"  # the vantage point of the machine hakeep runs on
PROBE_TIMEOUT = 1.0
RECENT_S = 3600.0  # a unit systemd restarted this recently is noted (after that: journalctl's business)


class Verdict(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # the VIP is served, but an LB is unreachable or unwell, or drift
    SPLIT_BRAIN = "split brain"  # the VIP on two or more LBs
    VIP_LOST = "VIP lost"  # on no LB, or held but not answering
    UNREACHABLE = "unreachable"  # no LB could be reached


@dataclass(frozen=True)
class HostStatus:
    host: str
    address: str
    reachable: bool
    reason: str = ""  # why it was not reached: timeout, refused, auth, host key, ...
    holds_vip: bool = False
    vrrp_state: str = "-"
    haproxy: str = "-"  # ActiveState, "absent" when not installed
    haproxy_pid: int = 0
    keepalived: str = "-"
    keepalived_pid: int = 0
    servers_up: int = 0
    servers_total: int = 0
    servers_down: tuple[str, ...] = ()  # "backend/server" not UP
    live_release: str = "-"
    drift: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()  # "haproxy: <journal line>": a unit runs an older config than its file
    keepalived_answered: bool = True  # False: keepalived runs but wrote no data dump when asked
    keepalived_dump_blocked: bool = False  # the dump's path is taken by something hakeep cannot remove
    vrrp_fault: str = ""  # keepalived's journal line on why an instance is in FAULT
    # "keepalived restarted by systemd 1x since it was last started by hand, active for 83s": a crash,
    # within the last RECENT_S
    restarts: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.reachable and self.haproxy == "active" and self.keepalived == "active"


@dataclass(frozen=True)
class PortProbe:
    vantage: str  # an LB's name, or HERE
    port: int
    result: str  # open, closed; from here also: refused, unreachable from here


@dataclass(frozen=True)
class PairStatus:
    vip: str
    verdict: Verdict
    reasons: tuple[str, ...]
    holders: tuple[str, ...]
    hosts: tuple[HostStatus, ...]
    probes: tuple[PortProbe, ...]
    arp: tuple[ArpSeen, ...] = ()
    # worth knowing, not wrong now (the verdict does not count them): units systemd restarted after a crash
    notes: tuple[str, ...] = ()
    name: str = "vip"  # the VIP's name ([[vip]] name; "vip" for the [cluster] vip form)
    # with more than one VIP: each VIP's own status, judged alone (this one's verdict is the worst of them)
    each: tuple[PairStatus, ...] = ()

    @property
    def every_vip(self) -> tuple[PairStatus, ...]:
        return self.each or (self,)

    @property
    def others(self) -> tuple[PairStatus, ...]:
        """The VIPs after the first."""
        return self.each[1:]


def host_status(lb: LoadBalancer, f: HostFacts) -> HostStatus:
    def unit(name: str) -> tuple[str, int]:
        u = f.units.get(name)
        if u is None or not u.loaded:
            return "absent", 0
        return u.active, u.main_pid

    servers = {f"{be}/{sv}": st for be, svs in f.backends.items() for sv, st in svs.items()}
    hist = History.of(f)
    current = hist.live
    (ha, ha_pid), (ka, ka_pid) = unit(HAPROXY.name), unit(KEEPALIVED.name)
    restarts = tuple(f"{u.name} restarted by systemd {u.restarts}x since it was last started by hand, "
                     f"active for {u.active_for_s:g}s"
                     for u in (f.units.get(HAPROXY.name), f.units.get(KEEPALIVED.name))
                     if u is not None and u.restarts and u.active_for_s is not None and u.active_for_s <= RECENT_S)
    return HostStatus(
        host=lb.name, address=str(lb.address), reachable=True, holds_vip=f.holds_vip,
        vrrp_state=f.vrrp_state or "-", haproxy=ha, haproxy_pid=ha_pid, keepalived=ka, keepalived_pid=ka_pid,
        servers_up=sum(1 for s in servers.values() if s.startswith("UP")), servers_total=len(servers),
        servers_down=tuple(n for n, s in servers.items() if not s.startswith("UP")),
        live_release=current.id if current else "-", drift=tuple(d.path for d in hist.drift),
        stale=tuple(f"{u}: {why}" if why != "?" else u for u, why in f.stale.items()),
        keepalived_answered=f.keepalived_answered, keepalived_dump_blocked=f.keepalived_dump_blocked,
        vrrp_fault=f.vrrp_fault, restarts=restarts,
    )


def unreachable_status(lb: LoadBalancer, reason: str) -> HostStatus:
    return HostStatus(host=lb.name, address=str(lb.address), reachable=False, reason=reason)


def probe_vip(transports: Mapping[str, Transport], vip: str, ports: Sequence[int],
              ifaces: Mapping[str, str] | None = None) -> tuple[list[PortProbe], list[ArpSeen]]:
    """Whether each frontend port answers on the VIP, from every reached LB and from here: all at
    once, each connect bounded by PROBE_TIMEOUT. With ``ifaces`` (LB -> interface), each LB also
    asks its segment who answers ARP for the VIP."""
    def script(name: str) -> str:
        return commands.vip_check(vip, ports, probe_timeout=int(PROBE_TIMEOUT), iface=(ifaces or {}).get(name, ""))

    with ThreadPoolExecutor(max_workers=1) as pool:
        local = pool.submit(local_probes, vip, ports)
        remote = parallel(lambda n: transports[n].run(script(n), display="probe the VIP", check=False,
                                                      timeout=PROBE_TIMEOUT + 2), list(transports))
        out = local.result()
    arp: list[ArpSeen] = []
    for name, res in remote.items():
        if isinstance(res, CommandResult):
            for line in res.text().splitlines():
                if line.startswith("port="):
                    port, _, state = line[5:].partition(":")
                    out.append(PortProbe(name, int(port), state))
            arp += parse_arp(name, res.text())
    return out, arp


def local_probes(vip: str, ports: Sequence[int], timeout: float = PROBE_TIMEOUT) -> list[PortProbe]:
    """From this machine, every port at once."""
    with ThreadPoolExecutor(max_workers=max(1, len(ports))) as pool:
        results = list(pool.map(lambda port: _connect(vip, port, timeout), ports))
    return [PortProbe(HERE, port, res) for port, res in zip(ports, results, strict=True)]


def _connect(address: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"  # something answered for the VIP, with nothing listening
    except OSError:  # no route, a blackhole, a timeout: this machine cannot tell
        return "unreachable from here"


def answering(probes: Sequence[PortProbe], ports: Sequence[int], holders: Sequence[str]) -> dict[int, bool]:
    """Per port: does the VIP answer? An open connect from here, or from an LB that does not hold
    the VIP, proves it; the holder reaching its own VIP counts only when nobody else could ask."""
    others = [p for p in probes if p.vantage not in holders]
    seen = others if any(p.vantage != HERE for p in others) else list(probes)
    return {port: any(p.port == port and p.result == "open" for p in seen) for port in ports}


def outside_claims(hosts: Sequence[HostStatus], arp: Sequence[ArpSeen],
                   addresses6: Collection[str] = ()) -> dict[str, tuple[str, tuple[str, ...]]]:
    """MACs answering ARP for the VIP that belong to no LB of the inventory. An answer from an
    unreachable LB (its own address in the neighbour table, or no address while an LB is
    unreachable) is not counted: status names that case. ``addresses6``: the LBs' IPv6 addresses
    (a neighbour table may know an LB by either)."""
    return arps.outside(arp, members={h.host for h in hosts}, excused={h.address for h in hosts} | set(addresses6),
                        anonymous_excused=any(not h.reachable for h in hosts))


def judge(vip: str, hosts: Sequence[HostStatus], probes: Sequence[PortProbe], ports: Sequence[int],
          arp: Sequence[ArpSeen] = (), *, addresses6: Collection[str] = ()) -> PairStatus:
    reached = [h for h in hosts if h.reachable]
    gone = [h for h in hosts if not h.reachable]
    holders = tuple(h.host for h in reached if h.holds_vip)
    lost = [f"{h.host} not asked (--limit): the verdict cannot vouch for it, nor tell it from a host outside the "
            "inventory answering ARP for the VIP" if h.reason == NotAsked.kind
            else f"{h.host} cannot be reached ({h.reason})" for h in gone]

    notes = tuple(f"{h.host}: {r} (a crash? journalctl -u {r.split()[0]})" for h in reached for r in h.restarts)

    def verdict(v: Verdict, *reasons: str) -> PairStatus:
        return PairStatus(vip, v, tuple(reasons), holders, tuple(hosts), tuple(probes), tuple(arp), notes)

    if not reached:
        return verdict(Verdict.UNREACHABLE, *lost)
    claims = outside_claims(hosts, arp, addresses6)
    if claims:
        who = arps.describe(claims)
        return verdict(Verdict.SPLIT_BRAIN, f"split brain outside the inventory: a host that is no LB of this "
                       f"inventory answers for the VIP too: {who}" + (f"; the VIP is on {', '.join(holders)}"
                                                                      if holders else ""), *lost)
    if len(holders) > 1:
        return verdict(Verdict.SPLIT_BRAIN, f"the VIP is on {', '.join(holders)} at once: VRRP between them "
                       "is broken (IP protocol 112 blocked, or different virtual_router_id/password)", *lost)
    answers = answering(probes, ports, holders)
    silent = [str(p) for p, ok in answers.items() if not ok]
    if not holders:
        if ports and not silent and gone:
            return verdict(Verdict.DEGRADED, f"no reachable LB holds the VIP, but it answers: probably "
                           f"{', '.join(h.host for h in gone)} holds it", *lost)
        why = "no LB holds the VIP" + (" and it does not answer" if silent else "")
        return verdict(Verdict.VIP_LOST, why, *lost)
    if silent:
        return verdict(Verdict.VIP_LOST, f"the VIP is on {holders[0]} but does not answer on port "
                       f"{', '.join(silent)}", *lost)
    reasons = list(lost)
    for h in reached:
        units = [f"{u} {state}" for u, state in ((HAPROXY.name, h.haproxy), (KEEPALIVED.name, h.keepalived))
                 if state != "active"]
        if units:
            reasons.append(f"{h.host}: {', '.join(units)}")
        elif not h.holds_vip and h.vrrp_state not in ("BACKUP", "-"):
            reasons.append(f"{h.host}: VRRP state {h.vrrp_state}, not BACKUP"
                           + (f": {h.vrrp_fault}" if h.vrrp_fault else ""))
        if h.servers_down:
            reasons.append(f"{h.host}: backend server(s) not UP: {', '.join(h.servers_down)}")
        if h.drift:
            reasons.append(f"{h.host}: edited since its live release: {', '.join(h.drift)}")
        for s in h.stale:
            unit, _, why = s.partition(": ")
            reasons.append(f"{h.host}: {unit} runs an older config than its file (a reload failed, or none "
                           "was done)" + (f": {why}" if why else ""))
        if h.keepalived_dump_blocked:
            reasons.append(f"{h.host}: keepalived cannot write its data dump: {KEEPALIVED_DATA} is taken by "
                           "something else (made by a local user?); remove it")
        elif not h.keepalived_answered:
            reasons.append(f"{h.host}: keepalived did not answer when asked what it runs (its data dump): hung?")
    return verdict(Verdict.DEGRADED if reasons else Verdict.HEALTHY, *reasons)


# which verdict of several VIPs' is the pair's: the worst
_SEVERITY = (Verdict.HEALTHY, Verdict.DEGRADED, Verdict.VIP_LOST, Verdict.SPLIT_BRAIN, Verdict.UNREACHABLE)


def combine(pairs: Sequence[PairStatus]) -> PairStatus:
    """The first VIP's status carrying the others': the worst verdict of all; the others' reasons
    named by their VIP, except those the first VIP's status gives already (a host's own: the same
    for every VIP)."""
    first, *others = pairs
    if not others:
        return first
    reasons = list(first.reasons)
    for p in others:
        reasons += [f"VIP {p.name} ({p.vip}): {r}" for r in p.reasons if r not in first.reasons]
    worst = max((p.verdict for p in pairs), key=_SEVERITY.index)
    return dataclasses.replace(first, verdict=worst, reasons=tuple(dict.fromkeys(reasons)), each=tuple(pairs))


def survey(session: Session, *, facts_timeout: float | None = None) -> PairStatus:
    """The pair's status from an open session (tolerating unreachable LBs): rows, probes, verdict.

    With ``facts_timeout``, the session has no facts yet: they are gathered (without pinging the
    VIP) side by side with the probes, so the whole takes the longer of the two, not their sum.
    """
    inv = session.inv
    primary = inv.for_vip(inv.cluster.vip_name) if inv.extra_vips else inv
    vip, ports = str(inv.cluster.vip.ip), [fe.port for fe in primary.frontends]
    ifaces = {lb.name: lb.interface for lb in inv.lbs}
    if facts_timeout is not None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            gathering = pool.submit(gather_facts, inv, session.transports, timeout=facts_timeout, probe_vip=False)
            probes, arp = probe_vip(session.transports, vip, ports, ifaces)
            session.facts, errors = gathering.result()
        session.unreachable.update(errors)
        probes = [p for p in probes if p.vantage == HERE or p.vantage in session.facts]
        arp = [a for a in arp if a.vantage in session.facts]
    else:
        probes, arp = probe_vip({n: t for n, t in session.transports.items() if n in session.facts}, vip, ports,
                                ifaces)
    first = dataclasses.replace(_judge_vip(session, primary, probes, arp), name=inv.cluster.vip_name)
    if not inv.extra_vips:
        return first
    pairs = [first]
    for v in inv.extra_vips:  # each VIP after the first: probed now (a second or so each), judged alone
        view = inv.for_vip(v.name)
        transports = {n: t for n, t in session.transports.items() if n in session.facts}
        v_probes, v_arp = probe_vip(transports, str(v.address.ip), [fe.port for fe in view.frontends], ifaces)
        pairs.append(dataclasses.replace(_judge_vip(session, view, v_probes, v_arp), name=v.name))
    return combine(pairs)


def _judge_vip(session: Session, view: Inventory, probes: Sequence[PortProbe], arp: Sequence[ArpSeen]) -> PairStatus:
    """One VIP's verdict: ``view`` is the inventory as that VIP sees it (:meth:`Inventory.for_vip`)."""
    vip, instance = str(view.cluster.vip.ip), view.cluster.instance_name
    ports = [fe.port for fe in view.frontends]
    rows = [host_status(lb, session.facts[lb.name].for_vip(vip, instance)) if lb.name in session.facts
            else unreachable_status(lb, reason(session.unreachable[lb.name])) for lb in view.lbs]
    return judge(vip, rows, probes, ports, arp, addresses6={str(lb.address6) for lb in view.lbs if lb.address6})
