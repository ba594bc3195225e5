"""What one live LB's keepalived.conf says, in hakeep's terms, and the notes every reader shares.

:func:`read_keepalived` (and :func:`hakeep.takeover.haproxy_map.read_haproxy` for haproxy.cfg) take
one host's parsed file and fill a :class:`HostValues`: the values hakeep's inventory carries, and a
:class:`Note` for every statement not carried as it is: ``replaced`` when hakeep writes its own
version (the recipe's check script, ``state MASTER``, its log lines: the documented fixes),
``unmapped`` when hakeep has no equivalent, ``warnings`` when it is carried but behaves otherwise
after the first deploy. Each note names host, file, line and keyword, so nothing is dropped
silently. :mod:`.assemble` then makes the pair's inventory.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from hakeep.takeover.haproxy_cfg import Section, Statement
from hakeep.takeover.keepalived_conf import Node, ParseError

PASSWORD_ENV = "HAKEEP_VRRP_PASS"  # noqa: S105 (the variable's name)
STATS_PASSWORD_ENV = "HAKEEP_STATS_PASS"  # noqa: S105
ANY = ("", "*", "0.0.0.0", "::")  # noqa: S104 (a bind to every address, as haproxy writes it)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Note:
    host: str
    where: str  # file:line, or "" for the host as a whole
    text: str

    def line(self) -> str:
        return f"{self.host}:{self.where}: {self.text}" if self.where else f"{self.host}: {self.text}"


@dataclass
class HostValues:
    """One LB's configs in hakeep's terms (``None``: the config does not say)."""

    host: str
    keepalived: dict[str, Any] = field(default_factory=dict)  # cluster-wide: vip, vrid, advert_int, auth
    own: dict[str, Any] = field(default_factory=dict)  # per host: interface, priority, state, src, peers
    frontends: list[dict[str, Any]] = field(default_factory=list)
    haproxy: dict[str, Any] = field(default_factory=dict)  # maxconn, timeouts, stats
    replaced: list[Note] = field(default_factory=list)
    unmapped: list[Note] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)  # carried, but the first deploy changes behaviour
    carried: list[str] = field(default_factory=list)  # where each statement carried into the inventory is
    secrets: dict[str, str] = field(default_factory=dict)  # "vrrp", "stats": never written unless asked


# --- keepalived ---------------------------------------------------------------------------------

_GLOBAL_REPLACED = {
    "router_id": "hakeep sets its own router_id (with a digest of the file)",
    "vrrp_skip_check_adv_addr": "hakeep sets it too",
    "enable_script_security": "hakeep sets it too",
    "script_user": "hakeep sets its own script_user",
    "vrrp_garp_interval": "the recipe's 0; hakeep keeps keepalived's default",
    "vrrp_gna_interval": "the recipe's 0; hakeep keeps keepalived's default",
    "notification_email": "hakeep sends no mail (an empty list in the recipe)",
}
_INSTANCE_MAPPED = ("interface", "virtual_router_id", "priority", "advert_int", "authentication", "unicast_src_ip",
                    "unicast_peer", "virtual_ipaddress", "nopreempt", "preempt", "preempt_delay")


def read_keepalived(host: str, root: Node, values: HostValues) -> None:
    note = noter(host, values.unmapped)
    instances = root.all("vrrp_instance")
    if not instances:
        raise ParseError(f"{host}:{root.file}: no vrrp_instance: this is not a keepalived VIP pair")
    # the first instance with an IPv4 VIP, else with any: the shared settings (password) are an IPv4 one's
    with_vip = [i for i in instances if i.last("virtual_ipaddress") and i.last("virtual_ipaddress").children]  # type: ignore[union-attr]
    chosen = next((i for i in with_vip if ":" not in i.last("virtual_ipaddress").children[0].keyword),  # type: ignore[union-attr,index]
                  with_vip[0] if with_vip else instances[0])
    extra = [i for i in instances if i is not chosen and i.last("virtual_ipaddress") and i.args]
    _keepalived_others(host, root, [chosen, *extra], values)
    ka, own = values.keepalived, values.own
    ka["instance"] = chosen.args[0] if chosen.args else ""
    carried = values.carried
    _instance_statements(host, chosen, values)
    vip_node = chosen.last("virtual_ipaddress")
    addresses = list(vip_node.children or ()) if vip_node is not None else []
    if not addresses:
        raise ParseError(f"{host}:{chosen.where}: vrrp_instance {' '.join(chosen.args)} has no virtual_ipaddress")
    first = addresses[0]
    carried.append(first.where)
    ka["vip"] = first.keyword
    ka["vip_where"] = first.where
    if first.args:
        note(first, f"options of the VIP ({' '.join(first.args)}): hakeep puts the VIP on the LB's interface")
    for more in addresses[1:]:
        note(more, "another virtual address in one instance: hakeep puts one VIP in each")
    ka["virtual_router_id"] = _int(host, chosen.last("virtual_router_id"))
    ka["advert_int"] = _number(host, chosen.last("advert_int"))
    _preemption(host, chosen, values)
    _authentication(host, chosen.last("authentication"), values)
    if chosen.last("interface") is None:
        raise ParseError(f"{host}:{chosen.where}: vrrp_instance {' '.join(chosen.args)} names no interface")
    own["interface"] = _one(host, chosen.last("interface"))
    own["priority"] = _int(host, chosen.last("priority"))
    src = chosen.last("unicast_src_ip")
    own["unicast_src_ip"] = _one(host, src) if src else None
    peers = chosen.last("unicast_peer")
    own["unicast_peers"] = [p.keyword for p in peers.children or ()] if peers else None
    carried.extend(p.where for p in (peers.children or () if peers else ()))
    ka["extra_vips"] = [_extra_instance(host, i, chosen, values) for i in extra]


_SHARED = ("interface", "advert_int", "authentication", "nopreempt", "preempt", "preempt_delay")


def _extra_instance(host: str, inst: Node, chosen: Node, values: HostValues) -> dict[str, Any]:
    """Another instance with a VIP: a [[vip]] table (its VIP, VRID, name and this host's priority);
    what hakeep shares across VIPs (interface, advert_int, password, preemption) is the first's."""
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    values.carried.append(inst.where)
    addresses = list(inst.last("virtual_ipaddress").children or ())  # type: ignore[union-attr]
    if not addresses:
        raise ParseError(f"{host}:{inst.where}: vrrp_instance {' '.join(inst.args)} has no virtual_ipaddress")
    for c in inst.children or ():
        if c.keyword in ("virtual_router_id", "priority", "virtual_ipaddress", "unicast_src_ip", "unicast_peer"):
            values.carried.append(c.where)
            if c.keyword == "unicast_peer":  # (the first instance's peers are the ones carried)
                values.carried.extend(p.where for p in c.children or ())
        elif c.keyword in _SHARED:
            if _dump(c) == _dump(chosen.last(c.keyword)):
                values.carried.extend([c.where, *(x.where for x in c.children or ())])
            else:
                note(c, f"in vrrp_instance {inst.args[0]}: hakeep gives every VIP the first one's {c.keyword} "
                        f"(vrrp_instance {chosen.args[0] if chosen.args else ''}'s)")
        elif c.keyword == "state":
            replaced(c, "hakeep starts every LB as BACKUP: the highest priority wins the election")
        elif c.keyword == "track_script":
            replaced(c, "hakeep tracks its own haproxy check")
        elif c.keyword == "version":
            _version(host, c, inst, values)
        else:
            note(c, f"in vrrp_instance {inst.args[0]}: no equivalent in hakeep")
    values.carried.append(addresses[0].where)
    for more in addresses[1:]:
        note(more, "another virtual address in one instance: hakeep puts one VIP in each")
    state = inst.last("state")
    priority = _int(host, inst.last("priority")) or (255 if state and state.args[:1] == ("MASTER",) else 100)
    src = inst.last("unicast_src_ip")
    return {"instance": inst.args[0], "vip": addresses[0].keyword, "where": addresses[0].where,
            "virtual_router_id": _int(host, inst.last("virtual_router_id")), "priority": min(priority, 254),
            "src": _one(host, src) if src else None}


def _dump(node: Node | None) -> Any:
    """A statement with its arguments and children, comparable (where it stands left out)."""
    if node is None:
        return None
    return (node.keyword, tuple(node.args), tuple(_dump(c) for c in node.children or ()))


def _instance_statements(host: str, chosen: Node, values: HostValues) -> None:
    """The VIP's vrrp_instance itself and the statements of it hakeep does not carry as values."""
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    values.carried.append(chosen.where)
    for c in chosen.children or ():
        if c.keyword in _INSTANCE_MAPPED:
            if c is not chosen.last(c.keyword):
                note(c, "given again further down: keepalived uses the last")
            else:
                values.carried.append(c.where)
        elif c.keyword == "state":
            values.own["state"] = _one(host, c)
            replaced(c, "hakeep starts every LB as BACKUP: the highest priority wins the election")
        elif c.keyword == "track_script":
            replaced(c, "hakeep tracks its own haproxy check")
        elif c.keyword == "version":
            _version(host, c, chosen, values)
        else:
            note(c, "no equivalent in hakeep")


def _version(host: str, c: Node, inst: Node, values: HostValues) -> None:
    """An instance's ``version``: what hakeep renders (VRRPv2 for an IPv4 VIP, v3 for an IPv6 one) is carried."""
    vip = inst.last("virtual_ipaddress")
    first = (vip.children or ())[0].keyword if vip is not None and vip.children else ""
    if c.args[:1] == (("3",) if ":" in first else ("2",)):
        values.carried.append(c.where)
    else:
        noter(host, values.replaced)(c, f"version {' '.join(c.args)}: hakeep runs an IPv4 VIP with VRRPv2 and an "
                                        "IPv6 one with VRRPv3")


def _preemption(host: str, chosen: Node, values: HostValues) -> None:
    """What keepalived does: the last of nopreempt/preempt wins; state MASTER clears nopreempt and
    preempt_delay; a delay over 1000 s is refused (0 runs); a fraction of a second counts whole."""
    replaced, ka = noter(host, values.replaced), values.keepalived
    switches = [c for c in chosen.children or () if c.keyword in ("nopreempt", "preempt")]
    values.carried.extend(c.where for c in switches)
    no_preempt = bool(switches) and switches[-1].keyword == "nopreempt"
    delay = chosen.last("preempt_delay")
    if values.own.get("state") == "MASTER" and (no_preempt or delay is not None):
        replaced(next(c for c in (*switches, delay) if c is not None),
                 "keepalived ignores nopreempt and preempt_delay with state MASTER: the pair preempts, as carried")
        no_preempt, delay = False, None
    ka["preempt"] = not no_preempt
    seconds = _number(host, delay) if delay is not None else None
    ka["preempt_delay"] = 0
    if delay is not None and no_preempt:
        replaced(delay, "with nopreempt keepalived never preempts: nothing to delay")
    elif seconds is not None and seconds > 1000:
        replaced(delay, f"keepalived refuses a delay over 1000 s and runs with none ({seconds:g} given)")
    elif seconds is not None:
        ka["preempt_delay"] = math.ceil(seconds)
        if seconds != math.ceil(seconds):
            replaced(delay, f"{seconds:g} s: hakeep counts whole seconds ({math.ceil(seconds)})")


def _authentication(host: str, auth: Node | None, values: HostValues) -> None:
    if auth is None:
        return
    kind, password = auth.last("auth_type"), auth.last("auth_pass")
    for c in auth.children or ():
        if c is kind or c is password:
            values.carried.append(c.where)
        else:
            noter(host, values.unmapped)(c, "no equivalent in hakeep's authentication")
    values.keepalived["auth_type"] = _one(host, kind) if kind else "PASS"
    if password is not None:
        values.secrets["vrrp"] = _one(host, password)


def _keepalived_others(host: str, root: Node, chosen: list[Node], values: HostValues) -> None:
    """Every top-level statement but the VIPs' vrrp_instances: replaced by hakeep's own, or unmapped."""
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    for top in root.children or ():
        if any(top is c for c in chosen):
            continue
        if top.keyword == "global_defs":
            values.carried.append(top.where)  # (a container: each of its statements is named below)
            for g in top.children or ():
                known = g.keyword in _GLOBAL_REPLACED and (not g.children or g.keyword == "notification_email")
                if known:
                    replaced(g, _GLOBAL_REPLACED[g.keyword])
                else:
                    note(g, "no equivalent in hakeep")
        elif top.keyword == "vrrp_script":
            replaced(top, "hakeep checks haproxy with its own script (hakeep-check-haproxy.sh, weight -N)")
        elif top.keyword == "vrrp_instance":
            note(top, "a VRRP instance without a VIP (or a name): no equivalent in hakeep")
        else:
            note(top, "no equivalent in hakeep")


# --- helpers -------------------------------------------------------------------------------------

_TWO_WORDS = ("option", "timeout", "stats", "http-check", "tcp-check", "http-request", "tcp-request")


def noter(host: str, into: list[Note]) -> Any:
    """A function adding a note about a statement, named by its keyword (never its values: a value
    may be a password)."""
    def add(item: Node | Statement | Section, text: str) -> None:
        if isinstance(item, Section):
            what = f"{item.kind} {item.name}".strip()
        elif isinstance(item, Statement):
            what = " ".join(item.words[:2] if item.keyword in _TWO_WORDS else item.words[:1])
        else:
            what = item.keyword if item.keyword[:1].isalpha() else "(an address)"
        into.append(Note(host, item.where, f"{what}: {text}"))
    return add


def _one(host: str, node: Node | None) -> str:
    if node is None or len(node.args) != 1:
        raise ParseError(f"{host}:{node.where if node else '?'}: {node.keyword if node else 'a value'} takes one value")
    return node.args[0]


def _int(host: str, node: Node | None) -> int | None:
    if node is None:
        return None
    text = _one(host, node)
    if not re.fullmatch(r"\d{1,9}", text):
        raise ParseError(f"{host}:{node.where}: {node.keyword} {text}: not a whole number")
    return int(text)


def _number(host: str, node: Node | None) -> float | None:
    if node is None:
        return None
    try:
        return float(_one(host, node))
    except ValueError:
        raise ParseError(f"{host}:{node.where}: {node.keyword} {node.args[0]}: not a number") from None


def int_word(host: str, st: Statement) -> int:
    if len(st.args) != 1 or not st.args[0].isdigit():
        raise ParseError(f"{host}:{st.where}: {' '.join(st.words)}: not a whole number")
    return int(st.args[0])


def seconds(host: str, st: Statement, values: HostValues) -> int:
    """A haproxy time (milliseconds without a unit) in whole seconds, as hakeep's inventory has them."""
    secs = time_s(st.args[1])
    if secs is None:
        raise ParseError(f"{host}:{st.where}: {' '.join(st.words)}: not a haproxy time")
    whole = max(1, round(secs))
    if whole != secs:
        values.replaced.append(Note(host, st.where, f"timeout {st.args[0]} {st.args[1]} becomes {whole}s "
                                                    "(hakeep's inventory has whole seconds)"))
    return whole


def time_s(word: str) -> float | None:
    """A haproxy time (milliseconds without a unit) in seconds; ``None`` if it is not one."""
    m = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", word)
    return int(m.group(1)) * _UNITS[m.group(2) or "ms"] if m else None
