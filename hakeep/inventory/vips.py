"""The VIPs: ``[cluster] vip`` (one, the recipe's form) or ``[[vip]]`` tables (one or more).

Each VIP is its own VRRP instance (own VRID and instance name; the password, advert_int, preemption
and health checks are the cluster's), with priorities on the LBs that default to each LB's own, so
two VIPs may prefer different LBs (active/active). The first VIP takes the place of [cluster] vip
everywhere one VIP is meant (deploy order, status' verdict, drill by default). This module owns the
``[[vip]]`` table's format; checks against the LBs and frontends are :mod:`.rules`'.
"""

from __future__ import annotations

import ipaddress

from hakeep.inventory.fields import NAME_RE, IPInterface, Table, parse_ip
from hakeep.inventory.model import Cluster, Vip

VIP_KEYS = ("name", "address", "virtual_router_id", "vrrp_instance", "priorities")


def vip_tables(top: Table, cluster_name: object) -> list[tuple[str, Vip | None]]:
    """Each ``[[vip]]`` table (key path, VIP or None when it has a problem); [] without any."""
    out: list[tuple[str, Vip | None]] = []
    for t in top.get_tables("vip"):
        t.check_keys(VIP_KEYS)
        name = t.get_str("name", required=True, pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
        address = vip_address(t, "address")
        vrid = t.get_int("virtual_router_id", required=True, lo=1, hi=255)
        instance = t.get_str("vrrp_instance", pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
        priorities: list[tuple[str, int]] = []
        prio_t = t.get_table("priorities")
        for lb, _ in prio_t.items() if prio_t is not None else ():
            prio = prio_t.get_int(lb, lo=1, hi=254) if prio_t is not None else None
            if prio is not None:
                priorities.append((lb, prio))
        if name is None or address is None or vrid is None:
            out.append((t.path, None))
            continue
        default = f"{cluster_name}-{name}" if isinstance(cluster_name, str) else name
        out.append((t.path, Vip(name, address, vrid, instance or default, tuple(priorities))))
    return out


def cluster_vip(cluster: Cluster) -> Vip:
    """The one VIP of the [cluster] vip form."""
    return Vip(cluster.vip_name, cluster.vip, cluster.virtual_router_id, cluster.instance_name, cluster.vip_priorities)


def vip_address(t: Table, key: str) -> IPInterface | None:
    """A VIP as address/prefix (the prefix says which LB subnet it must be in), IPv4 or IPv6 (an IPv6
    VIP is a VRRPv3 instance of its own, spoken from each LB's address6)."""
    value = t.get_str(key, required=True)
    if value is None:
        return None
    if "/" not in value:
        example = value + ("/64" if ":" in value else "/24")
        t.error(key, f"{value!r} needs a prefix length, e.g. {example!r}")
        return None
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        t.error(key, f"{value!r} is not an address/prefix (CIDR)")
        return None
    if parse_ip(value.rsplit("/", 1)[0], lambda msg: t.error(key, msg)) is None:  # as written: a %zone too
        return None
    net = iface.network
    if isinstance(iface, ipaddress.IPv4Interface):
        if net.prefixlen < 32 and iface.ip in (net.network_address, net.broadcast_address):
            t.error(key, f"{value!r} is the network or broadcast address of {net}")
            return None
    elif net.prefixlen < 127 and iface.ip == net.network_address:
        t.error(key, f"{value!r} is the subnet-router anycast address of {net} (its routers answer it)")
        return None
    return iface
