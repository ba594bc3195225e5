"""The inventory a live pair's configs make: cluster and frontends from the LB that holds the VIP
(what clients are served by now), each LB's own address, interface and priority, and every place
the LBs disagree beyond that. Pure: the hosts' parsed configs in, an :class:`Imported` out."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hakeep.errors import UsageError
from hakeep.inventory.fields import NAME_RE, IPInterface
from hakeep.takeover.mapping import PASSWORD_ENV, STATS_PASSWORD_ENV, HostValues, Note

DEFAULT_PRIORITY = 100  # keepalived's, for an instance that names none


@dataclass(frozen=True)
class LiveLB:
    """One LB as read: its name and address as the user gave them, its configs in hakeep's terms,
    the addresses on its interfaces (``iface``, ``address/prefix``; no link-local) and whether it holds the VIP."""

    name: str
    address: str
    values: HostValues
    addresses: tuple[tuple[str, str], ...]
    holds_vip: bool


@dataclass(frozen=True)
class Imported:
    doc: dict[str, Any]  # the inventory, in the order it is written
    reference: str  # the LB whose values were taken
    replaced: tuple[str, ...]  # what hakeep writes its own way (the documented fixes)
    unmapped: tuple[str, ...]  # what hakeep does not carry
    disagreements: tuple[str, ...]
    remarks: tuple[str, ...]  # what the first deploy changes that the user must know first
    secrets: dict[str, str]  # the live passwords (for the dry-run): never written unless asked


def build(lbs: Sequence[LiveLB], *, name: str | None, ssh: dict[str, Any], include_secrets: bool) -> Imported:
    ref = next((lb for lb in lbs if lb.holds_vip), lbs[0])
    ka = ref.values.keepalived
    notes: list[str] = []
    vip = _vip(ref, notes)
    cluster: dict[str, Any] = {"name": name or _cluster_name(ka.get("instance", "")), "vip": str(vip),
                               "virtual_router_id": ka.get("virtual_router_id"),
                               "advert_int": _plain_number(ka.get("advert_int") or 1), **_preempt(ka)}
    instance = ka.get("instance", "")
    if instance != f"{cluster['name']}-vip":
        if NAME_RE.fullmatch(instance):
            cluster["vrrp_instance"] = instance  # renamed, keepalived would take it for a new one: the VIP moves
        else:
            notes.append(f"{ref.name}: the live VRRP instance's name {instance!r} cannot be kept (letters, digits, "
                         f"_ . - only): hakeep names it {cluster['name']}-vip, and keepalived takes a renamed instance "
                         "for a new one, so on the VIP holder the first deploy moves the VIP (a failover)")
    password = ref.values.secrets.get("vrrp")
    if password is not None and len(password) > 8:  # keepalived sends the first 8 characters only
        notes.append(f"{ref.name}: the live auth_pass is longer than 8 characters; keepalived uses the first 8, and "
                     f"so does the inventory (set ${PASSWORD_ENV} to those 8)")
        password = password[:8]
        ref.values.secrets["vrrp"] = password
    if include_secrets and password is not None:
        cluster["auth_pass"] = password
    else:
        cluster["auth_pass_env"] = PASSWORD_ENV
    if password is None and vip.version == 4:  # (VRRPv3, an IPv6 VIP's, has no password)
        notes.append(f"{ref.name}: the live pair has no VRRP password; hakeep requires one. While the first deploy "
                     "has changed one LB and not yet the other, the two do not hear each other and both may hold "
                     "the VIP: deploy in a quiet moment")
    if ka.get("auth_type", "PASS") != "PASS":
        notes.append(f"{ref.name}: auth_type {ka['auth_type']}: hakeep uses PASS")
    if cluster["virtual_router_id"] is None:
        raise UsageError(f"{ref.name}: the live vrrp_instance has no virtual_router_id")
    doc: dict[str, Any] = {"cluster": cluster, **({"vip": _vip_tables(ref, lbs, cluster, vip, notes)}
                                                   if ka.get("extra_vips") else {}), "ssh": ssh}
    hp = {k: v for k, v in ref.values.haproxy.items() if k != "stats"}
    if hp:
        doc["haproxy"] = hp
    stats = ref.values.haproxy.get("stats")
    if stats:
        table = {k: v for k, v in stats.items() if k in ("bind", "port", "user") and v is not None}
        secret = ref.values.secrets.get("stats")
        if include_secrets and secret:
            table["password"] = secret
        else:
            table["password_env"] = STATS_PASSWORD_ENV
        if not secret:
            notes.append(f"{ref.name}: the live stats page has no password; hakeep requires one "
                         f"(${STATS_PASSWORD_ENV})")
        doc.setdefault("haproxy", {})["stats"] = table
    lb6 = _addresses6(lbs, [ipaddress.ip_interface(t["address"]) for t in doc.get("vip", [{"address": str(vip)}])],
                      notes)
    doc["lb"] = [_lb(lb, lbs, notes, lb6, vip.version) for lb in lbs]
    doc["frontend"] = [_frontend(fe) for fe in ref.values.frontends]
    for fe in doc["frontend"]:
        owner = next((lb.name for lb in lbs if fe.get("bind") == lb.address), None)
        if owner is not None:
            notes.append(f"frontend {fe['name']} binds {owner}'s own address {fe['bind']}: hakeep binds the same "
                         "address on every LB (set bind = \"*\" or \"vip\")")
    disagreements = [d for lb in lbs if lb is not ref for d in _differences(ref, lb)]
    remarks = tuple(dict.fromkeys(notes)) + _grouped(n for lb in lbs for n in lb.values.warnings)
    return Imported(doc, ref.name, _grouped(n for lb in lbs for n in lb.values.replaced),
                    _grouped(n for lb in lbs for n in lb.values.unmapped), tuple(disagreements),
                    remarks, dict(ref.values.secrets))


def _vip_tables(ref: LiveLB, lbs: Sequence[LiveLB], cluster: dict[str, Any], vip: IPInterface,
                notes: list[str]) -> list[dict[str, Any]]:
    """More than one instance with a VIP: [[vip]] tables, the first from [cluster]'s keys (its priorities
    the LBs' own), each other with its VRID, instance name and every LB's priority for it."""
    first = {"name": "vip", "address": str(vip), "virtual_router_id": cluster.pop("virtual_router_id"),
             **({"vrrp_instance": cluster.pop("vrrp_instance")} if "vrrp_instance" in cluster else {})}
    del cluster["vip"]
    tables = [first]
    used = {"vip"}
    for n, extra in enumerate(ref.values.keepalived["extra_vips"], start=2):
        instance = extra["instance"]
        name = instance if NAME_RE.fullmatch(instance) and instance not in used else f"vip{n}"
        used.add(name)
        table: dict[str, Any] = {"name": name, "address": str(_vip(ref, notes, extra["vip"], extra["where"])),
                                 "virtual_router_id": extra["virtual_router_id"]}
        if NAME_RE.fullmatch(instance):
            table["vrrp_instance"] = instance
        else:
            notes.append(f"{ref.name}: the live VRRP instance's name {instance!r} cannot be kept (letters, digits, "
                         f"_ . - only): hakeep names it {cluster['name']}-{name}, and keepalived takes a renamed "
                         "instance for a new one, so the first deploy moves that VIP (a failover)")
        priorities = {}
        for lb in lbs:
            theirs = next((x for x in lb.values.keepalived.get("extra_vips", []) if x["instance"] == instance), None)
            if theirs is None:
                notes.append(f"{lb.name}: has no vrrp_instance {instance} ({ref.name}'s VIP {extra['vip']}); the "
                             "inventory gives it the default priority 100 for it")
            priorities[lb.name] = theirs["priority"] if theirs else DEFAULT_PRIORITY
        table["priorities"] = priorities
        tables.append(table)
    return tables


def _vip(ref: LiveLB, notes: list[str], text: str | None = None, where: str | None = None) -> IPInterface:
    """The VIP (the first instance's, or ``text`` at ``where``) with its subnet's prefix."""
    text = ref.values.keepalived["vip"] if text is None else text
    try:
        vip = ipaddress.ip_interface(text)
    except ValueError:
        raise UsageError(f"{ref.name}:{where or ref.values.keepalived.get('vip_where', '')}: virtual_ipaddress {text}: "
                         "not an IP address") from None
    if "/" not in text or vip.network.prefixlen == vip.max_prefixlen:  # hakeep needs the LB subnet's prefix
        own = next((o for o in _interfaces(ref) if vip.ip in o.network and o.ip != vip.ip), None)
        if own is not None:
            vip = ipaddress.ip_interface(f"{vip.ip}/{own.network.prefixlen}")
            notes.append(f"{ref.name}: the live VIP {text} is a /{vip.max_prefixlen} (keepalived's default without a "
                         f"prefix); the inventory gives it its subnet's, /{own.network.prefixlen}")
    return vip


def _interfaces(lb: LiveLB) -> list[IPInterface]:
    out = []
    for _, cidr in lb.addresses:
        try:
            out.append(ipaddress.ip_interface(cidr))
        except ValueError:
            continue
    return out


def _addresses6(lbs: Sequence[LiveLB], vips: Sequence[IPInterface], notes: list[str]) -> dict[str, str | None]:
    """Each LB's address6 where a VIP is IPv6 ({} where none is)."""
    six = [v for v in vips if v.version == 6]
    return {lb.name: _address6(lb, six, notes) for lb in lbs} if six else {}


def _address6(lb: LiveLB, vips6: Sequence[IPInterface], notes: list[str]) -> str | None:
    """The LB's address6: the unicast_src_ip of its IPv6 VIPs' instances, else its own address in
    their subnet."""
    ka, own = lb.values.keepalived, lb.values.own
    srcs = [own.get("unicast_src_ip") if ":" in str(ka.get("vip", "")) else None,
            *(x.get("src") for x in ka.get("extra_vips", []) if ":" in str(x.get("vip", "")))]
    for src in srcs:
        if src and ":" in src:
            return str(ipaddress.ip_address(src))
    vip_ips = {v.ip for v in vips6}
    found = next((o.ip for o in _interfaces(lb) if o.version == 6 and o.ip not in vip_ips
                  and any(o.ip in v.network for v in vips6)), None)
    if found is None:
        notes.append(f"{lb.name}: no IPv6 address of its own in {', '.join(str(v.network) for v in vips6)}: set its "
                     "address6 (it speaks VRRP for the IPv6 VIP from there)")
        return None
    return str(found)


def _lb(lb: LiveLB, lbs: Sequence[LiveLB], notes: list[str], lb6: dict[str, str | None],
        version: int) -> dict[str, Any]:
    """``lb6``: each LB's address6 (where a VIP is IPv6); ``version``: the first VIP's IP version,
    whose instance's unicast addresses are compared with the LBs'."""
    own = lb.values.own
    src, peers = own.get("unicast_src_ip"), own.get("unicast_peers")
    mine = lb.address if version == 4 else lb6.get(lb.name)
    if src is not None and mine is not None and not _same(src, mine):
        notes.append(f"{lb.name}: unicast_src_ip {src} is not its address {mine}; hakeep uses the address")
    others = sorted(str(a) for o in lbs if o is not lb
                    if (a := o.address if version == 4 else lb6.get(o.name)) is not None)
    if peers is None:
        notes.append(f"{lb.name}: no unicast_peer (VRRP by multicast); hakeep sends unicast to the other LBs. While "
                     "the first deploy has changed one LB and not yet the other, the two do not hear each other "
                     "and both may hold the VIP: deploy in a quiet moment")
    elif sorted(map(_canonical, peers)) != others:
        notes.append(f"{lb.name}: unicast_peer lists {', '.join(peers) or 'nothing'}; the other LBs are "
                     f"{', '.join(others)}, and hakeep lists those")
    priority = own.get("priority") or (255 if own.get("state") == "MASTER" else DEFAULT_PRIORITY)
    if priority > 254:  # keepalived's address owner (a MASTER without a priority gets 255)
        notes.append(f"{lb.name}: priority {priority} (the VIP's owner, preempting always); hakeep's range ends at "
                     "254, which still wins every election against the others")
        priority = 254
    out: dict[str, Any] = {"name": lb.name, "address": lb.address}
    if lb6.get(lb.name):
        out["address6"] = lb6[lb.name]
    return {**out, "interface": own.get("interface"), "priority": priority}


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _same(a: str, b: str) -> bool:
    """Whether two addresses as written are one (IPv6 has many spellings); False for a non-address."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _frontend(fe: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fe["name"], "port": fe["port"]}
    if fe.get("bind", "*") != "*":
        out["bind"] = fe["bind"]
    out["check"] = fe.get("check", "tcp")
    if fe.get("check_path") and fe.get("check_path") != "/readyz":
        out["check_path"] = fe["check_path"]
    if fe.get("balance") and fe["balance"] != "roundrobin":
        out["balance"] = fe["balance"]
    for key in ("check_port", "hash_type", "stick", "stick_expire_s", "stick_size"):
        if fe.get(key):
            out[key] = fe[key]
    out["servers"] = [dict(s) for s in fe["servers"]]
    return out


def _preempt(ka: dict[str, Any]) -> dict[str, Any]:
    """keepalived's nopreempt and preempt_delay as the inventory says them (nothing: the defaults)."""
    if not ka.get("preempt", True):
        return {"preempt": False}
    return {"preempt_delay": min(1000, ka["preempt_delay"])} if ka.get("preempt_delay") else {}


def _differences(ref: LiveLB, other: LiveLB) -> list[str]:
    said = f"{other.name} differs from {ref.name}"
    out = []
    a, b = ref.values.keepalived, other.values.keepalived
    for key in ("vip", "virtual_router_id", "advert_int", "auth_type", "instance", "preempt", "preempt_delay"):
        if a.get(key) != b.get(key):
            out.append(f"{said}: {key} {_show(b.get(key))} (taken: {_show(a.get(key))})")
    if ref.values.secrets.get("vrrp") != other.values.secrets.get("vrrp"):
        out.append(f"{said}: the VRRP passwords differ (taken: {ref.name}'s)")
    mine = {fe["name"]: {"balance": "roundrobin", **_frontend(fe)} for fe in ref.values.frontends}
    theirs = {fe["name"]: {"balance": "roundrobin", **_frontend(fe)} for fe in other.values.frontends}
    for name in sorted(set(mine) | set(theirs)):
        if name not in theirs:
            out.append(f"{said}: it has no frontend {name}")
        elif name not in mine:
            out.append(f"{said}: it has a frontend {name} more (not taken)")
        elif mine[name] != theirs[name]:
            for key in sorted(set(mine[name]) | set(theirs[name])):
                if mine[name].get(key) != theirs[name].get(key):
                    out.append(f"{said}: frontend {name}: {key} {_show(theirs[name].get(key))} "
                               f"(taken: {_show(mine[name].get(key))})")
    for key in sorted(set(ref.values.haproxy) | set(other.values.haproxy)):
        left, right = ref.values.haproxy.get(key), other.values.haproxy.get(key)
        if key == "stats":
            left, right = ({k: v for k, v in (s or {}).items() if k != "where"} for s in (left, right))
        if left != right:
            out.append(f"{said}: haproxy {key} {_show(right)} (taken: {_show(left)})")
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"{s['name']} {s['address']}:{s['port']}" if isinstance(s, dict) else str(s)
                         for s in value) or "none"
    if isinstance(value, float):
        return str(_plain_number(value))
    return "none" if value is None else str(value)


def _grouped(notes: Iterable[Note]) -> tuple[str, ...]:
    """One line per (place, text), naming every host it was seen on (the pair's files are alike)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for n in notes:
        seen.setdefault((n.where, n.text), []).append(n.host)
    return tuple(f"{', '.join(dict.fromkeys(hosts))}: {where}: {text}" if where else f"{', '.join(hosts)}: {text}"
                 for (where, text), hosts in seen.items())


def _cluster_name(instance: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", re.sub(r"[-_]?vip$", "", instance, flags=re.IGNORECASE)).strip("-._")
    return name[:63] or "cluster"


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
