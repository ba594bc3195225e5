"""Inventory checks that span several keys: duplicates, reserved names, subnets, VIP clashes, counts.

Each check reads already-typed pieces (entries that failed their own key checks come in as
``None`` and are skipped) and appends a :class:`Problem` with the key path of the entry at fault.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

from hakeep.errors import Problem
from hakeep.inventory.model import (
    RESERVED_PREFIX,
    STATS_FRONTEND,
    Cluster,
    Frontend,
    HAProxySettings,
    LoadBalancer,
    Vip,
)

T = TypeVar("T")


def check(
    cluster: Cluster,
    lbs: list[tuple[str, LoadBalancer | None]],
    frontends: list[tuple[str, Frontend | None]],
    haproxy: HAProxySettings | None,
    problems: list[Problem],
    *,
    vips: list[tuple[str, Vip | None]],
) -> None:
    """``vips``: ("cluster", the [cluster] vip form's VIP) or each [[vip]] table's (path, VIP)."""
    if 0 < len(lbs) < 2:
        problems.append(Problem("lb", f"{len(lbs)} [[lb]] given; VRRP failover needs at least two"))
    good_lbs = [(p, lb) for p, lb in lbs if lb is not None]
    good_fes = [(p, fe) for p, fe in frontends if fe is not None]
    _duplicates(problems, ((f"{p}.name", lb.name) for p, lb in good_lbs), "LB name")
    _duplicates(problems, ((f"{p}.address", lb.address) for p, lb in good_lbs), "LB address")
    _duplicates(problems, ((f"{p}.address6", lb.address6) for p, lb in good_lbs if lb.address6), "LB address6")
    _duplicates(problems, ((f"{p}.name", fe.name) for p, fe in good_fes), "frontend name")
    _duplicates(problems, ((f"{p}.port", (fe.bind, fe.port)) for p, fe in good_fes), "frontend port",
                show=lambda key: str(key[1]))
    _generated_names(good_fes, problems)
    for p, fe in good_fes:
        _duplicates(problems, ((f"{p}.servers[{i}].name", s.name) for i, s in enumerate(fe.servers)),
                    "server name in this frontend")
        _duplicates(problems, ((f"{p}.servers[{i}].address", (s.address, s.port))
                               for i, s in enumerate(fe.servers)), "server address:port in this frontend",
                    show=lambda key: f"{key[0]}:{key[1]}")
    good_vips = [(p, v) for p, v in vips if v is not None]
    _vips(good_vips, good_lbs, good_fes, problems)
    if good_lbs and cluster.check_weight is None:
        for p, v in good_vips:
            prios = [v.priority(lb) for _, lb in good_lbs]
            if max(prios) - min(prios) + 2 > 253:
                where = "lb" if p == "cluster" else f"{p}.priorities"
                problems.append(Problem(where, f"priorities span {min(prios)}..{max(prios)}; keep the spread "
                                        "under 252 so a failed health check can hand the VIP over"))
    if haproxy is not None:
        _service_ports(haproxy, good_fes, problems)


def _vips(vips: list[tuple[str, Vip]], lbs: list[tuple[str, LoadBalancer]], frontends: list[tuple[str, Frontend]],
          problems: list[Problem]) -> None:
    """Each VIP on every LB's segment, a free address, its own VRID; priorities for LBs that exist."""
    def key(p: str) -> str:
        return "cluster.vip" if p == "cluster" else f"{p}.address"

    _duplicates(problems, ((f"{p}.name", v.name) for p, v in vips), "VIP name")
    _duplicates(problems, ((key(p), v.address.ip) for p, v in vips), "VIP address")
    # IPv4 and IPv6 VRRP are apart (RFC 5798: own virtual MACs), so one VRID may serve one of each
    _duplicates(problems, ((f"{p}.virtual_router_id", (v.address.version, v.virtual_router_id)) for p, v in vips),
                "virtual_router_id (each VIP of one IP version is its own VRRP instance)", show=lambda key: str(key[1]))
    _duplicates(problems, ((f"{p}.vrrp_instance", v.instance) for p, v in vips), "vrrp_instance name")
    names = {lb.name for _, lb in lbs}
    for p, v in vips[1:]:
        if v.name == "vip":
            problems.append(Problem(f"{p}.name", "'vip' names the first VIP (what bind = \"vip\" means): give this "
                                    "one another name, or put it first"))

    def which(v: Vip) -> str:
        return "the VIP" if len(vips) == 1 else f"the VIP {v.name}"

    for p, v in vips:
        vip = v.address
        field = "address" if vip.version == 4 else "address6"
        for lp, lb in lbs:
            own = lb.vrrp_address(v)
            if own is None:
                problems.append(Problem(f"{lp}.address6", f"is required: {which(v)} ({key(p)}) is IPv6, and "
                                        f"{lb.name} speaks VRRP for it from its own IPv6 address on {lb.interface}"))
            elif own not in vip.network:
                problems.append(Problem(f"{lp}.{field}", f"{own} is outside the VIP's subnet "
                                        f"{vip.network} ({key(p)}); VRRP needs every LB on the VIP's segment"))
            elif own == vip.ip:
                problems.append(Problem(key(p), f"{vip.ip} is also the address of {lp} ({lb.name}); "
                                        "the VIP must be a free address"))
        for fp, fe in frontends:
            for i, s in enumerate(fe.servers):
                if s.address == str(vip.ip):
                    problems.append(Problem(f"{fp}.servers[{i}].address",
                                            f"{s.address} is {which(v)}; a backend cannot be the VIP itself"))
        for lb_name, _ in v.priorities:
            if names and lb_name not in names:
                problems.append(Problem(f"{p}.priorities.{lb_name}", f"no [[lb]] is named {lb_name!r} "
                                        f"(there are: {', '.join(sorted(names))})"))


def _service_ports(haproxy: HAProxySettings, frontends: list[tuple[str, Frontend]], problems: list[Problem]) -> None:
    """The stats page's and the exporter's ports are their own (haproxy -c refuses a port bound twice)."""
    taken = {fe.port: f"{p} ({fe.name})" for p, fe in frontends}
    for key, page in (("haproxy.stats.port", haproxy.stats), ("haproxy.prometheus.port", haproxy.prometheus)):
        if page is None:
            continue
        if page.port in taken:
            problems.append(Problem(key, f"{page.port} is already the port of {taken[page.port]}"))
        else:
            taken[page.port] = key.rsplit(".", 1)[0].replace("haproxy.", "the ") + " page"


def _generated_names(frontends: list[tuple[str, Frontend]], problems: list[Problem]) -> None:
    """A frontend may not take a name of hakeep's own proxies (haproxy -c refuses two frontends of one
    name; the prefix is kept even with the stats page off, so turning it on cannot break a valid
    inventory) nor the name of the backend hakeep writes for another frontend."""
    backends = {fe.backend_name: f"{p} ({fe.name})" for p, fe in frontends}
    for p, fe in frontends:
        if fe.name.startswith(RESERVED_PREFIX):
            problems.append(Problem(f"{p}.name", f"{fe.name!r}: names starting with {RESERVED_PREFIX!r} are "
                                    f"kept for hakeep's own proxies (such as the stats page's {STATS_FRONTEND!r})"))
        elif fe.name in backends:
            problems.append(Problem(f"{p}.name", f"{fe.name!r} is the name hakeep gives the backend of "
                                    f"{backends[fe.name]}; choose another name"))


def _duplicates(
    problems: list[Problem],
    items: Iterable[tuple[str, Hashable]],
    what: str,
    show: object = str,
) -> None:
    seen: dict[Hashable, str] = {}
    for path, key in items:
        if key in seen:
            shown = show(key) if callable(show) else str(key)
            problems.append(Problem(path, f"duplicate {what} {shown} (also at {seen[key]})"))
        else:
            seen[key] = path
