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
)

T = TypeVar("T")


def check(
    cluster: Cluster,
    lbs: list[tuple[str, LoadBalancer | None]],
    frontends: list[tuple[str, Frontend | None]],
    haproxy: HAProxySettings | None,
    problems: list[Problem],
) -> None:
    if 0 < len(lbs) < 2:
        problems.append(Problem("lb", f"{len(lbs)} [[lb]] given; VRRP failover needs at least two"))
    good_lbs = [(p, lb) for p, lb in lbs if lb is not None]
    good_fes = [(p, fe) for p, fe in frontends if fe is not None]
    _duplicates(problems, ((f"{p}.name", lb.name) for p, lb in good_lbs), "LB name")
    _duplicates(problems, ((f"{p}.address", lb.address) for p, lb in good_lbs), "LB address")
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
    vip = cluster.vip
    for p, lb in good_lbs:
        if lb.address not in vip.network:
            problems.append(Problem(f"{p}.address", f"{lb.address} is outside the VIP's subnet "
                                    f"{vip.network} (cluster.vip); VRRP needs every LB on the VIP's segment"))
        if lb.address == vip.ip:
            problems.append(Problem("cluster.vip", f"{vip.ip} is also the address of {p} ({lb.name}); "
                                    "the VIP must be a free address"))
    for p, fe in good_fes:
        for i, s in enumerate(fe.servers):
            if s.address == str(vip.ip):
                problems.append(Problem(f"{p}.servers[{i}].address",
                                        f"{s.address} is the VIP; a backend cannot be the VIP itself"))
    if good_lbs and cluster.check_weight is None:
        prios = [lb.priority for _, lb in good_lbs]
        if max(prios) - min(prios) + 2 > 253:
            problems.append(Problem("lb", f"priorities span {min(prios)}..{max(prios)}; keep the spread "
                                    "under 252 so a failed health check can hand the VIP over"))
    if haproxy is not None:
        _service_ports(haproxy, good_fes, problems)


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
