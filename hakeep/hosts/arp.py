"""Who answers ARP for the VIP, as the LBs see it: the ``mac=``/``arp=`` lines of ``hk_vip_arp``
(sh/lib.sh; printed by the VIP check and by the facts script), and which of those MACs belong to no
LB of the set. Pure; status, deploy's preflight and deploy's final proof all judge with
:func:`outside`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ArpSeen:
    """From one LB: its own MAC (``own``), or another MAC answering ARP for the VIP, with an address
    the LB's neighbour table has for it ("-": none). mac "unknown": this LB could not probe."""
    vantage: str
    mac: str
    ip: str = "-"
    own: bool = False


def parse_arp(vantage: str, text: str) -> tuple[ArpSeen, ...]:
    """The ``mac=`` and ``arp=`` lines in one LB's output (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith("mac=") and len(line) > 4:
            out.append(ArpSeen(vantage, line[4:].strip(), own=True))
        elif line.startswith("arp="):
            mac, _, ip = line[4:].partition(" ip=")
            out.append(ArpSeen(vantage, mac.strip(), ip.strip() or "-"))
    return tuple(out)


def outside(arp: Iterable[ArpSeen], *, members: Collection[str], excused: Collection[str] = (),
            anonymous_excused: bool = False) -> dict[str, tuple[str, tuple[str, ...]]]:
    """MACs answering ARP for the VIP that are no member's: mac -> (an address it has, or "-"; the
    LBs that saw it). A member's MAC is the one it reports as its own (``members``: the vantages
    that count). Not counted: answers from a MAC known at one of the ``excused`` addresses (an
    unreachable LB of the set), and, with ``anonymous_excused``, those with no known address (when an
    LB of the set is unreachable, it may be the one)."""
    seen = list(arp)
    ours = {a.mac for a in seen if a.own and a.vantage in members}
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for a in seen:
        if a.own or a.mac in ours or a.mac == "unknown" or a.ip in excused or (a.ip == "-" and anonymous_excused):
            continue
        ip, by = out.get(a.mac, ("-", ()))
        out[a.mac] = (ip if ip != "-" else a.ip, by if a.vantage in by else (*by, a.vantage))
    return out


def describe(claims: dict[str, tuple[str, tuple[str, ...]]]) -> str:
    """"MAC m (address), seen from lb1, lb2; ..." for :func:`outside`'s result."""
    return "; ".join(f"MAC {mac}" + (f" ({ip})" if ip != "-" else "") + f", seen from {', '.join(sorted(by))}"
                     for mac, (ip, by) in sorted(claims.items()))
