"""A frontend of the inventory: its keys, its servers, and what it binds, balances and checks.

This module owns the ``[[frontend]]`` table's format (keys, defaults, choices and limits) and returns
a :class:`Frontend`, or ``None`` with each problem recorded on the shared list. Checks across
frontends (duplicate names and ports) are :mod:`hakeep.inventory.rules`'.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hakeep.inventory.fields import HOSTNAME_RE, NAME_RE, URI_PATH_RE, IPInterface, Table, local_path, parse_ip
from hakeep.inventory.model import DEFAULT_CHECK_PATH, Frontend, Server, StickTable

FRONTEND_KEYS = ("name", "port", "bind", "check", "check_path", "check_port", "balance", "hash_type", "stick",
                 "stick_expire_s", "stick_size", "ca_file", "servers")
SERVER_KEYS = ("name", "address", "port")
BALANCES = ("roundrobin", "leastconn", "source", "first", "random")
CHECKS = ("tcp", "https")
HASH_TYPES = ("consistent", "map-based")
STICKS = ("none", "source")
STICK_EXPIRE_MAX = 86400 * 24  # haproxy's expire is a 32-bit count of milliseconds: at most ~24 days
STICK_SIZE_MAX = 100_000_000  # entries (~50 bytes each in memory for type ip)


def frontend(t: Table, vips: dict[str, IPInterface], primary: str, base_dir: Path) -> Frontend | None:
    """``vips``: each VIP's address by name (``primary``: the one "vip" means)."""
    t.check_keys(FRONTEND_KEYS)
    name = t.get_str("name", required=True, pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
    port = t.get_int("port", required=True, lo=1, hi=65535)
    bind = _bind(t, vips, primary)
    check = t.get_str("check", choices=CHECKS) or "tcp"
    path = t.get_str("check_path", pattern=URI_PATH_RE, what="an absolute URI path") or DEFAULT_CHECK_PATH
    balance = t.get_str("balance", choices=BALANCES) or "roundrobin"
    hash_type = _hash_type(t, balance)
    stick = _stick(t, balance)
    check_port = t.get_int("check_port", lo=1, hi=65535)
    ca_file = local_path(t, "ca_file", base_dir)
    if ca_file is not None and not ca_file.is_file():
        t.error("ca_file", f"{ca_file}: no such file (the CA that signed the servers' certificates)")
    if ca_file is not None and check != "https":
        t.error("ca_file", 'only applies to check = "https"')
    for key in ("check_path",):
        if key in t.data and check != "https":
            t.error(key, 'only applies to check = "https"')
    if "servers" not in t.data:
        t.error("servers", "is required: the backend servers of this frontend")
    servers = [s for st in t.get_tables("servers") if (s := _server(st, port)) is not None]
    if "servers" in t.data and isinstance(t.data["servers"], list) and not t.data["servers"]:
        t.error("servers", "is empty; a frontend needs at least one server")
    if name is None or port is None or bind is None or not servers:
        return None
    return Frontend(
        name=name, port=port, bind=bind, check=check, check_path=path, balance=balance,
        ca_file=ca_file, servers=tuple(servers), check_port=check_port, hash_type=hash_type, stick=stick,
    )


def _hash_type(t: Table, balance: str) -> str | None:
    """How balance = "source" maps client addresses to servers: "consistent" by default (a server that
    leaves or comes back moves only its own share of clients; "map-based" reshuffles nearly all)."""
    value = t.get_str("hash_type", choices=HASH_TYPES)
    if value is not None and balance != "source":
        t.error("hash_type", f'only applies to balance = "source" (this frontend balances by {balance})')
        return None
    return (value or "consistent") if balance == "source" else None


def _stick(t: Table, balance: str) -> StickTable | None:
    """Stickiness by client address for a dynamic balance (leastconn, roundrobin, ...): a stick table."""
    mode = t.get_str("stick", choices=STICKS)
    expire = t.get_int("stick_expire_s", lo=1, hi=STICK_EXPIRE_MAX)
    size = t.get_int("stick_size", lo=1, hi=STICK_SIZE_MAX)
    for key in ("stick_expire_s", "stick_size"):
        if key in t.data and mode != "source":
            t.error(key, 'only applies to stick = "source"')
    if mode != "source":
        return None
    if balance == "source":
        t.error("stick", 'balance = "source" already sends a client to the same server; stick = "source" '
                'is for the other balances (e.g. leastconn)')
        return None
    defaults = StickTable()
    return StickTable(expire_s=expire or defaults.expire_s, size=size or defaults.size)


def _bind(t: Table, vips: dict[str, IPInterface], primary: str) -> str | None:
    value = t.get_str("bind")
    if value is None:
        return "*" if "bind" not in t.data else None
    if value == "*":
        return value
    if value == "vip" or value.startswith("vip:"):
        name = value.partition(":")[2] or primary
        if name not in vips:
            if vips and value != "vip":
                t.error("bind", f"{value!r}: there is no [[vip]] named {name!r} (there are: {', '.join(vips)})")
            return None
        return str(vips[name].ip)
    addr = parse_ip(value, lambda msg: t.error("bind", msg + ' (use "*", "vip", "vip:NAME" or an IP address)'))
    return str(addr) if addr is not None else None


def _server(t: Table, default_port: int | None) -> Server | None:
    t.check_keys(SERVER_KEYS)
    name = t.get_str("name", required=True, pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
    address = t.get_str("address", required=True)
    if address is not None:
        address = _server_address(t, address)
    port = t.get_int("port", lo=1, hi=65535)
    if port is None and "port" not in t.data:
        port = default_port
    if name is None or address is None or port is None:
        return None
    return Server(name=name, address=address, port=port)


def _server_address(t: Table, value: str) -> str | None:
    """A DNS name as given, or an IP address of either family in its canonical form (so that two
    spellings of one IPv6 address are one server)."""
    try:
        ipaddress.ip_address(value.split("%", maxsplit=1)[0])
    except ValueError:
        if HOSTNAME_RE.fullmatch(value) and not value.replace(".", "").isdigit():
            return value
        t.error("address", f"{value!r} is neither an IP address nor a DNS name")
        return None
    addr = parse_ip(value, lambda msg: t.error("address", msg))
    return str(addr) if addr is not None else None
