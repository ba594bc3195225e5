"""Who is in the set of LBs, as the hosts remember it, against the inventory.

An LB dropped from the inventory keeps its keepalived running; no longer anyone's unicast peer, it
hears no adverts and makes itself MASTER: a split brain. So the set is remembered on the hosts
themselves: each reachable LB's live keepalived.conf names its peers (and its own source address),
and each release manifest records the members it was deployed for. :func:`dropped` compares that
memory with the inventory; the planner refuses a deploy that drops a member unless the operator
says what happened to it (``--decommission``: reachable, stopped first; ``--forget``: gone for
good). :func:`joining` names the inventory's LBs the others do not know yet. Pure functions of
(inventory, facts).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from hakeep.hosts import keepalived
from hakeep.hosts.facts import HostFacts
from hakeep.inventory.model import Inventory
from hakeep.layout import KEEPALIVED_CONF
from hakeep.plan.releases import History


@dataclass(frozen=True)
class Member:
    address: str
    name: str  # "" when only the address is known (a peer in a keepalived.conf)
    seen_by: tuple[str, ...]  # the reachable LBs that remember it
    also: tuple[str, ...] = ()  # its other addresses remembered (its IPv6 one: address6)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


def remembered(facts: Mapping[str, HostFacts]) -> dict[str, Member]:
    """Every member the reachable LBs remember, by address."""
    names: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for host, f in facts.items():
        live = History.of(f).live
        forgotten = set(live.forgotten) if live else set()
        for name, address in [*live.members.items(), *live.members6.items()] if live else ():
            names.setdefault(address, name)
            seen.setdefault(address, []).append(host)
        conf = f.file(KEEPALIVED_CONF)
        if conf.exists and conf.content is not None:
            for fields in keepalived.parse(keepalived.expected(conf.content.decode("utf-8", "replace"))).values():
                mine = [fields["src"]] if fields.get("src") else []
                for address in [*mine, *filter(None, fields.get("peers", "").split(","))]:
                    if address not in forgotten:
                        seen.setdefault(address, []).append(host)
    return {a: Member(a, names.get(a, ""), tuple(sorted(set(hosts)))) for a, hosts in seen.items()}


def dropped(inv: Inventory, facts: Mapping[str, HostFacts]) -> list[Member]:
    """The members the hosts remember at an address the inventory no longer has: an LB dropped, or
    one whose address changed (the old host may still run keepalived there). An LB remembered at
    both its addresses (IPv4, and IPv6 for an IPv6 VIP's instance) is named once, by the first. An
    address an LB of the inventory carries on its interface is that LB (an IPv6 VIP dropped, its
    address6 with it: still in the set)."""
    names = {lb.name for lb in inv.lbs}
    addresses = {str(a) for lb in inv.lbs for a in (lb.address, lb.address6) if a}
    addresses |= {a.split("/")[0] for n, f in facts.items() if n in names for a in f.iface_addresses}
    out: list[Member] = []
    for a, m in sorted(remembered(facts).items(), key=lambda item: (":" in item[0], item[0])):
        if a in addresses:
            continue
        if ":" in a and m.name in names:
            continue  # an old address6 of an LB still in the inventory (by name): this deploy gives it the new one
        first = next((i for i, o in enumerate(out) if m.name and o.name == m.name), None)
        if first is None:
            out.append(m)
        else:
            o = out[first]
            out[first] = dataclasses.replace(o, also=(*o.also, a), seen_by=tuple(sorted({*o.seen_by, *m.seen_by})))
    return out


def joining(inv: Inventory, facts: Mapping[str, HostFacts]) -> list[str]:
    """The inventory's LBs that no reachable LB with a history knows yet (a deploy adds them)."""
    known = remembered(facts)
    if not known:
        return []  # a first deploy: everyone is new, nobody joins anything
    return [lb.name for lb in inv.lbs if str(lb.address) not in known]


def matches(member: Member, word: str) -> bool:
    """Whether ``word`` (from --forget/--decommission) names ``member``: its name or its address."""
    return _canonical(word) in (member.name, *map(_canonical, (member.address, *member.also)))


def _canonical(word: str) -> str:
    """An address as one spelling (``FD00::0:1`` is ``fd00::1``); any other word as it is."""
    try:
        return str(ipaddress.ip_address(word))
    except ValueError:
        return word
