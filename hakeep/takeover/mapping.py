"""What one live LB's configs say, in hakeep's terms, and the inventory the pair's configs make.

:func:`read_keepalived` and :func:`read_haproxy` take one host's parsed files and return the values
hakeep's inventory carries, plus a :class:`Note` for every statement they did not carry: ``replaced``
when hakeep writes its own version (the recipe's check script, ``state MASTER``, its log lines: the
documented fixes), ``unmapped`` when hakeep has no equivalent (the statement is named with host,
file and line, so nothing is dropped silently). :func:`inventory` then takes the values of the host
that holds the VIP (what clients are served by now; else the first) and lists every place the LBs
disagree beyond what is per host (address, interface, priority, state).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from hakeep.takeover.haproxy_cfg import Section, Statement
from hakeep.takeover.keepalived_conf import Node, ParseError

BALANCES = ("roundrobin", "leastconn", "source", "first", "random")
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
                    "unicast_peer", "virtual_ipaddress")


def read_keepalived(host: str, root: Node, values: HostValues) -> None:
    note, replaced = _noter(host, values.unmapped), _noter(host, values.replaced)
    instances = root.all("vrrp_instance")
    if not instances:
        raise ParseError(f"{host}:{root.file}: no vrrp_instance: this is not a keepalived VIP pair")
    chosen = next((i for i in instances if i.first("virtual_ipaddress")), instances[0])
    _keepalived_others(host, root, chosen, values)
    ka, own = values.keepalived, values.own
    ka["instance"] = chosen.args[0] if chosen.args else ""
    for c in chosen.children or ():
        if c.keyword in _INSTANCE_MAPPED:
            continue
        if c.keyword == "state":
            own["state"] = _one(host, c)
            replaced(c, "hakeep starts every LB as BACKUP: the highest priority wins the election")
        elif c.keyword == "track_script":
            replaced(c, "hakeep tracks its own haproxy check")
        else:
            note(c, "no equivalent in hakeep")
    vip_node = chosen.first("virtual_ipaddress")
    addresses = [a for a in (vip_node.children or ()) if vip_node] if vip_node else []
    if not addresses:
        raise ParseError(f"{host}:{chosen.where}: vrrp_instance {' '.join(chosen.args)} has no virtual_ipaddress")
    first = addresses[0]
    ka["vip"] = first.keyword
    ka["vip_where"] = first.where
    if first.args:
        note(first, f"options of the VIP ({' '.join(first.args)}): hakeep puts the VIP on the LB's interface")
    for extra in addresses[1:]:
        note(extra, "another virtual address: hakeep manages one VIP")
    ka["virtual_router_id"] = _int(host, chosen.first("virtual_router_id"))
    ka["advert_int"] = _number(host, chosen.first("advert_int"))
    auth = chosen.first("authentication")
    if auth is not None:
        kind, password = auth.first("auth_type"), auth.first("auth_pass")
        ka["auth_type"] = _one(host, kind) if kind else "PASS"
        if password is not None:
            values.secrets["vrrp"] = _one(host, password)
    own["interface"] = _one(host, chosen.first("interface"))
    own["priority"] = _int(host, chosen.first("priority"))
    src = chosen.first("unicast_src_ip")
    own["unicast_src_ip"] = _one(host, src) if src else None
    peers = chosen.first("unicast_peer")
    own["unicast_peers"] = [p.keyword for p in peers.children or ()] if peers else None


def _keepalived_others(host: str, root: Node, chosen: Node, values: HostValues) -> None:
    """Every top-level statement but the VIP's vrrp_instance: replaced by hakeep's own, or unmapped."""
    note, replaced = _noter(host, values.unmapped), _noter(host, values.replaced)
    for top in root.children or ():
        if top is chosen:
            continue
        if top.keyword == "global_defs":
            for g in top.children or ():
                known = g.keyword in _GLOBAL_REPLACED and (not g.children or g.keyword == "notification_email")
                if known:
                    replaced(g, _GLOBAL_REPLACED[g.keyword])
                else:
                    note(g, "no equivalent in hakeep")
        elif top.keyword == "vrrp_script":
            replaced(top, "hakeep checks haproxy with its own script (hakeep-check-haproxy.sh, weight -N)")
        elif top.keyword == "vrrp_instance":
            note(top, "a second VRRP instance: hakeep manages one VIP")
        else:
            note(top, "no equivalent in hakeep")


# --- haproxy --------------------------------------------------------------------------------------

_GLOBAL_KEPT = {"log", "chroot", "pidfile", "user", "group", "daemon", "stats", "ca-base", "crt-base",
                "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites", "ssl-default-bind-options"}
_DEFAULTS_KEPT = {"log", "mode", "option", "errorfile", "retries"}


def read_haproxy(host: str, sections: list[Section], values: HostValues) -> None:
    note, replaced = _noter(host, values.unmapped), _noter(host, values.replaced)
    backends = {s.name: s for s in sections if s.kind == "backend"}
    used: set[str] = set()
    hp = values.haproxy
    for sec in sections:
        if sec.kind == "global":
            for st in sec.statements:
                if st.keyword == "maxconn":
                    hp["maxconn"] = _int_word(host, st)
                elif st.keyword in _GLOBAL_KEPT:
                    replaced(st, "hakeep writes its own global section")
                else:
                    note(st, "no equivalent in hakeep's global section")
        elif sec.kind == "defaults":
            for st in sec.statements:
                if st.keyword == "timeout" and len(st.args) == 2 and st.args[0] in ("connect", "client", "server",
                                                                                    "tunnel"):
                    hp[f"timeout_{st.args[0]}"] = _seconds(host, st, values)
                elif st.keyword in _DEFAULTS_KEPT or st.keyword == "timeout":
                    replaced(st, "hakeep writes its own defaults (mode tcp, log global, option dontlognull)")
                else:
                    note(st, "no equivalent in hakeep's defaults")
        elif sec.kind == "frontend":
            fe = _frontend(host, sec, backends, values)
            if fe is not None:
                used.add(fe.pop("backend_name"))
                values.frontends.append(fe)
        elif sec.kind == "listen":
            if sec.last("stats", "enable") or sec.last("stats", "uri"):
                _stats(host, sec, values)
            else:
                fe = _frontend(host, sec, {sec.name: sec}, values)
                if fe is not None:
                    fe.pop("backend_name")
                    values.frontends.append(fe)
        elif sec.kind != "backend":
            note(sec, "no equivalent in hakeep")
    for name, sec in backends.items():
        if name not in used:
            note(sec, "used by no frontend hakeep carries")


def _frontend(host: str, sec: Section, backends: dict[str, Section], values: HostValues) -> dict[str, Any] | None:
    note, replaced = _noter(host, values.unmapped), _noter(host, values.replaced)
    binds = sec.all("bind")
    if len(binds) != 1 or len(binds[0].args) < 1:
        note(sec, "hakeep carries a frontend with exactly one bind line")
        return None
    address, _, port = binds[0].args[0].rpartition(":")
    if not port.isdigit():
        note(binds[0], f"in {sec.kind} {sec.name}: hakeep cannot read it (address:port)")
        return None
    if len(binds[0].args) > 1:
        note(binds[0], f"bind options ({' '.join(binds[0].args[1:])}): hakeep binds without options")
    mode = sec.last("mode")
    if mode is not None and mode.args[:1] != ("tcp",):
        note(mode, f"in {sec.kind} {sec.name}: hakeep proxies TCP only")
        return None
    target = sec.last("default_backend")
    backend = sec if sec.kind == "listen" else backends.get(target.args[0]) if target and target.args else None
    if backend is None:
        note(sec, "no default_backend hakeep can follow")
        return None
    fe: dict[str, Any] = {"name": sec.name, "port": int(port), "backend_name": backend.name,
                          "bind": "*" if address in ANY else address,
                          "where": sec.where}
    for st in sec.statements:
        if st.keyword in ("bind", "default_backend", "mode") or st.words[:2] == ("option", "tcplog"):
            if st.words[:2] == ("option", "tcplog"):
                replaced(st, "hakeep logs each frontend with option tcplog")
        elif sec.kind != "listen":
            note(st, f"in frontend {sec.name}: no equivalent in hakeep")
    _backend(host, backend, fe, values)
    return fe


def _backend(host: str, sec: Section, fe: dict[str, Any], values: HostValues) -> None:
    note, replaced = _noter(host, values.unmapped), _noter(host, values.replaced)
    servers = []
    fe["check"] = "tcp"
    for st in sec.statements:
        kw = st.keyword
        if kw == "server" and len(st.args) >= 2:
            address, _, port = st.args[1].rpartition(":")
            if not port.isdigit() or not address:
                note(st, f"server {st.args[0]}: an address hakeep cannot read ({st.args[1]})")
                continue
            servers.append({"name": st.args[0], "address": address, "port": int(port)})
            if "check" not in st.args[2:]:
                replaced(st, f"server {st.args[0]} had no health check: hakeep checks every server")
            extra = [w for w in st.args[2:] if w not in ("check", "check-ssl", "verify", "none")]
            if extra:
                note(st, f"server {st.args[0]} options ({' '.join(extra)}): hakeep sets its own server options")
        elif kw == "balance" and st.args:
            if st.args[0] in BALANCES and len(st.args) == 1:
                fe["balance"] = st.args[0]
            else:
                note(st, f"{' '.join(st.args)}: hakeep offers {', '.join(BALANCES)}")
        elif st.words[:2] == ("option", "httpchk"):
            fe["check"] = "https"
            path = next((w for w in st.args[1:] if w.startswith("/")), None)
            if path:
                fe["check_path"] = path
        elif kw == "http-check":
            fe["check"] = "https"
            if "uri" in st.args:
                fe["check_path"] = st.args[st.args.index("uri") + 1] if st.args.index("uri") + 1 < len(st.args) \
                    else "/"
        elif kw in ("default-server", "mode") or st.words[:2] in (("option", "tcp-check"), ("option", "tcplog")):
            replaced(st, "hakeep writes its own check timing and server defaults (inter 10s fall 2 rise 2 ...)")
        elif sec.kind == "listen" and kw in ("bind", "default_backend"):
            continue
        else:
            note(st, f"in {sec.kind} {sec.name}: no equivalent in hakeep")
    if not servers:
        note(sec, "no server hakeep can carry")
    fe["servers"] = servers


def _stats(host: str, sec: Section, values: HostValues) -> None:
    note = _noter(host, values.unmapped)
    bind = sec.last("bind")
    stats: dict[str, Any] = {"where": sec.where}
    if bind and bind.args:
        address, _, port = bind.args[0].rpartition(":")
        stats["bind"] = "*" if address in ANY else address
        stats["port"] = int(port) if port.isdigit() else None
    auth = sec.last("stats", "auth")
    if auth and len(auth.args) >= 2:
        user, _, password = auth.args[1].partition(":")
        stats["user"] = user
        values.secrets["stats"] = password
    replaced = _noter(host, values.replaced)
    for st in sec.statements:
        if st.keyword == "bind" or st.words[:2] == ("stats", "auth"):
            continue
        if st.keyword in ("stats", "mode", "option", "timeout"):
            replaced(st, "hakeep writes its own stats page (mode http, uri /stats, refresh 10s)")
        else:
            note(st, f"in stats page {sec.name}: no equivalent in hakeep")
    values.haproxy["stats"] = stats


# --- helpers -------------------------------------------------------------------------------------

_TWO_WORDS = ("option", "timeout", "stats", "http-check", "tcp-check", "http-request", "tcp-request")


def _noter(host: str, into: list[Note]) -> Any:
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


def _int_word(host: str, st: Statement) -> int:
    if len(st.args) != 1 or not st.args[0].isdigit():
        raise ParseError(f"{host}:{st.where}: {' '.join(st.words)}: not a whole number")
    return int(st.args[0])


def _seconds(host: str, st: Statement, values: HostValues) -> int:
    """A haproxy time (milliseconds without a unit) in whole seconds, as hakeep's inventory has them."""
    m = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", st.args[1])
    if m is None:
        raise ParseError(f"{host}:{st.where}: {' '.join(st.words)}: not a haproxy time")
    secs = int(m.group(1)) * _UNITS[m.group(2) or "ms"]
    whole = max(1, round(secs))
    if whole != secs:
        values.replaced.append(Note(host, st.where, f"timeout {st.args[0]} {st.args[1]} becomes {whole}s "
                                                    "(hakeep's inventory has whole seconds)"))
    return whole


def vip_interface(vip: str) -> ipaddress.IPv4Interface:
    return ipaddress.IPv4Interface(vip)
