"""What one live haproxy.cfg says, in hakeep's terms (see :mod:`.mapping` for the notes' groups).

Each proxy is read with the ``defaults`` section in effect where it stands (haproxy's rule: the
last one before it), so a mode, balance or health check inherited from there counts as the proxy's
own. A health check is carried only as hakeep can run it: ``https`` (``option httpchk`` over TLS:
``check-ssl`` or ``http-check connect ssl``) or ``tcp``; any other (plain HTTP, another expected
status, a check port) becomes ``tcp`` with a note under "Read before deploying", as do server and
bind options that change what goes over the wire (``send-proxy``, ``ssl``, ``backup``, ...).
"""

from __future__ import annotations

import math
import re
from typing import Any

from hakeep.inventory.frontends import BALANCES, HASH_TYPES, STICK_EXPIRE_MAX, STICK_SIZE_MAX
from hakeep.takeover.haproxy_cfg import Section, Statement
from hakeep.takeover.mapping import ANY, HostValues, int_word, noter, seconds, time_s

_GLOBAL_REPLACED = {"log", "chroot", "pidfile", "user", "group", "daemon", "stats"}
_DEFAULTS_REPLACED = {("log",), ("mode", "tcp"), ("option", "dontlognull"), ("option", "tcplog"),
                      ("option", "httplog"), ("timeout", "check")}
_TIMEOUTS = ("connect", "client", "server", "tunnel")
_WIRE = {"send-proxy", "send-proxy-v2", "ssl", "backup", "disabled", "accept-proxy", "crt", "proto", "alpn"}
_SERVER_OPTIONS = {"check", "check-ssl", "verify", "none", "inter", "fastinter", "downinter", "rise", "fall",
                   "slowstart", "weight", "maxconn", "maxqueue"}
_TIMING = {"inter", "fastinter", "downinter", "rise", "fall", "slowstart", "maxconn"}  # [haproxy.default_server]


def read_haproxy(host: str, sections: list[Section], values: HostValues) -> None:
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    defaults_of: dict[int, Section | None] = {}
    current: Section | None = None
    for sec in sections:
        if sec.kind == "defaults":
            current = sec
        defaults_of[id(sec)] = current
    backends = {s.name: s for s in sections if s.kind == "backend"}
    used: set[str] = set()
    timeouts_from: Section | None = None
    for sec in sections:
        if len(sec.args_after_name) > 0:
            note(sec, f"the words after its name ({' '.join(sec.args_after_name)}) are not followed by hakeep "
                      "import: it reads the defaults section before it")
        if sec.kind == "global":
            for st in sec.statements:
                if st.keyword == "maxconn":
                    values.haproxy["maxconn"] = int_word(host, st)
                    values.carried.append(st.where)
                elif st.keyword in _GLOBAL_REPLACED:
                    replaced(st, "hakeep writes its own global section")
                else:
                    note(st, "no equivalent in hakeep's global section")
        elif sec.kind == "defaults":
            timeouts_from = _defaults(host, sec, values, timeouts_from)
        elif sec.kind in ("frontend", "listen"):
            if sec.kind == "listen" and (sec.last("stats", "enable") or sec.last("stats", "uri")):
                _stats(host, sec, values)
                continue
            if any(st.words[:3] == ("http-request", "use-service", "prometheus-exporter") for st in sec.statements):
                _prometheus(host, sec, values)
                continue
            backend = sec if sec.kind == "listen" else _default_backend(sec, backends)
            if backend is None:
                note(sec, "no default_backend hakeep can follow")
                continue
            fe = _frontend(host, sec, defaults_of[id(sec)], values)
            if fe is None:
                note(sec, "not carried (the line named says why)")
            else:
                _backend(host, backend, defaults_of[id(backend)], fe, values)
                used.add(backend.name)
                values.frontends.append(fe)
        elif sec.kind != "backend":
            note(sec, "no equivalent in hakeep")
    for name, sec in backends.items():
        if name not in used:
            note(sec, "used by no frontend hakeep carries")


def _defaults(host: str, sec: Section, values: HostValues, timeouts_from: Section | None) -> Section | None:
    """A defaults section's statements; hakeep has one set of timeouts: the first section's."""
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    for st in sec.statements:
        if st.keyword == "timeout" and len(st.args) == 2 and st.args[0] in _TIMEOUTS:
            if timeouts_from is None or timeouts_from is sec:
                timeouts_from = sec
                values.haproxy[f"timeout_{st.args[0]}"] = seconds(host, st, values)
                values.carried.append(st.where)
            else:
                note(st, "a later defaults section's timeout: hakeep has one set, the first section's")
        elif tuple(st.words[:2]) in _DEFAULTS_REPLACED or tuple(st.words[:1]) in _DEFAULTS_REPLACED:
            replaced(st, "hakeep writes its own defaults (mode tcp, log global, option dontlognull)")
        elif _inheritable(st):
            replaced(st, "read into each proxy that inherits it (hakeep writes it per backend)")
        else:
            note(st, "no equivalent in hakeep's defaults")
    return timeouts_from


def _inheritable(st: Statement) -> bool:
    return st.keyword in ("mode", "balance", "hash-type", "http-check", "default-server") or tuple(st.words[:2]) in (
        ("option", "httpchk"), ("option", "tcp-check"))


def _default_backend(sec: Section, backends: dict[str, Section]) -> Section | None:
    target = sec.last("default_backend")
    return backends.get(target.args[0]) if target and target.args else None


def _effective(sec: Section, defaults: Section | None, *keyword: str) -> Statement | None:
    return sec.last(*keyword) or (defaults.last(*keyword) if defaults is not None else None)


def _frontend(host: str, sec: Section, defaults: Section | None, values: HostValues) -> dict[str, Any] | None:
    note, replaced, warn = noter(host, values.unmapped), noter(host, values.replaced), noter(host, values.warnings)
    binds = sec.all("bind")
    if len(binds) != 1 or not binds[0].args:
        note(sec, "hakeep carries a frontend with exactly one bind line")
        return None
    bind = binds[0]
    spec = bind.args[0].removeprefix("ipv4@").removeprefix("ipv6@")
    address, _, port = spec.rpartition(":")
    address = address.strip("[]")
    if "," in spec or not port.isdigit():
        note(bind, f"in {sec.kind} {sec.name}: hakeep binds one address:port")
        return None
    mode = _effective(sec, defaults, "mode")
    if mode is not None and mode.args[:1] != ("tcp",):
        note(mode, f"for {sec.kind} {sec.name}: hakeep proxies TCP only (not carried)")
        return None
    for word in bind.args[1:]:
        (warn if word in _WIRE else note)(bind, f"{word} (in {sec.kind} {sec.name}): hakeep binds without options")
    values.carried.append(bind.where)
    values.carried.extend(st.where for st in sec.all("default_backend"))
    for st in sec.statements if sec.kind == "frontend" else ():  # (a listen's: read with its backend part)
        if st.keyword in ("bind", "default_backend"):
            continue
        if st.keyword == "mode" or tuple(st.words[:2]) in (("option", "tcplog"), ("option", "httplog")):
            replaced(st, "hakeep's frontends are mode tcp, with option tcplog")
        else:
            note(st, f"in frontend {sec.name}: no equivalent in hakeep")
    return {"name": sec.name, "port": int(port), "bind": "*" if address in (*ANY, "::") else address,
            "where": sec.where}


def _backend(host: str, sec: Section, defaults: Section | None, fe: dict[str, Any], values: HostValues) -> None:
    note, replaced, warn = noter(host, values.unmapped), noter(host, values.replaced), noter(host, values.warnings)
    servers = []
    tls = False
    check_ports: dict[str, Statement] = {}  # the check port each server names -> where
    for st in sec.statements:
        kw = st.keyword
        if kw == "server" and len(st.args) >= 2:
            address, _, port = st.args[1].rpartition(":")
            if not port.isdigit() or not address:
                note(st, f"{st.args[0]}: an address hakeep cannot read")
                continue
            servers.append({"name": st.args[0], "address": address.strip("[]"), "port": int(port)})
            values.carried.append(st.where)
            opts = st.args[2:]
            tls = tls or "check-ssl" in opts
            if "check" not in opts:
                replaced(st, f"{st.args[0]} had no health check: hakeep checks every server")
            for i, word in enumerate(opts):
                if word in _WIRE:
                    warn(st, f"{st.args[0]}: {word}: hakeep's servers have no such option (carried without it)")
                elif word == "port" and i + 1 < len(opts) and opts[i + 1].isdigit():
                    check_ports[opts[i + 1]] = st
                elif word in _TIMING:
                    replaced(st, f"{st.args[0]}: {word}: hakeep sets check timing and server limits for every "
                                 "server ([haproxy.default_server])")
                elif word == "port" or (word not in _SERVER_OPTIONS and not (i and opts[i - 1] in _SERVER_OPTIONS)
                                        and not (i and opts[i - 1] == "port")):
                    note(st, f"{st.args[0]}: {word}: hakeep sets its own server options")
        elif kw == "mode" or tuple(st.words[:2]) in (("option", "tcplog"), ("option", "httplog")):
            replaced(st, "hakeep's proxies are mode tcp, with option tcplog")
        elif kw in ("balance", "hash-type", "stick-table", "stick", "default-server", "http-check") or tuple(
                st.words[:2]) in (
                ("option", "httpchk"), ("option", "tcp-check")):
            continue  # read below, with what the defaults give
        elif sec.kind == "listen" and kw in ("bind", "default_backend"):
            continue  # the listen's frontend part
        else:
            note(st, f"in {sec.kind} {sec.name}: no equivalent in hakeep")
    balance = _effective(sec, defaults, "balance")
    if balance is not None and balance.args[:1] == ("roundrobin",):
        values.carried.append(balance.where)
    if balance is not None and balance.args[:1] != ("roundrobin",):
        if len(balance.args) == 1 and balance.args[0] in BALANCES:
            fe["balance"] = balance.args[0]
            values.carried.append(balance.where)
        else:
            warn(balance, f"{' '.join(balance.args)}: hakeep offers {', '.join(BALANCES)} (roundrobin carried)")
    _hash_type(sec, defaults, fe, values, note)
    _stick(sec, fe, values, note)
    for st in [*sec.all("default-server"), *sec.all("option", "tcp-check")]:
        tls = tls or "check-ssl" in st.args
        replaced(st, "hakeep writes its own check timing and server defaults (inter 1s fastinter 500ms rise 3 "
                     "fall 2 ...; [haproxy.default_server] changes them)")
    fe["check"] = _check(sec, defaults, fe, tls, warn=warn, replaced=replaced)
    _check_port(sec, len(servers), check_ports, fe, note)
    if not servers:
        note(sec, "no server hakeep can carry")
    fe["servers"] = servers


def _hash_type(sec: Section, defaults: Section | None, fe: dict[str, Any], values: HostValues, note: Any) -> None:
    """balance source's hash-type as the pair runs it: haproxy's default is map-based (hakeep's: consistent)."""
    if fe.get("balance") != "source":
        if sec.last("hash-type") is not None:
            note(sec.last("hash-type"), "applies to balance source only in hakeep (not carried)")
        return
    st = _effective(sec, defaults, "hash-type")
    if st is None:
        fe["hash_type"] = "map-based"  # what runs; hakeep's own default would move clients
    elif st.args[:1] and st.args[0] in HASH_TYPES:
        fe["hash_type"] = st.args[0]
        values.carried.append(st.where)
        if st.args[1:]:
            note(st, f"{' '.join(st.args[1:])}: hakeep uses haproxy's default hash function (sdbm)")
    else:
        note(st, f"hakeep offers {', '.join(HASH_TYPES)} (map-based, haproxy's default, carried)")
        fe["hash_type"] = "map-based"


def _stick(sec: Section, fe: dict[str, Any], values: HostValues, note: Any) -> None:
    """A stick table keyed on the client address (``stick on src``): stick = "source"; else each line noted."""
    table, sticks = sec.last("stick-table"), sec.all("stick")
    if table is None and not sticks:
        return
    limits = _stick_table(table.args) if table is not None else None
    if (table is not None and limits is not None and [st.args for st in sticks] == [("on", "src")]
            and fe.get("balance") != "source"):
        fe.update(stick="source", stick_expire_s=limits[0], stick_size=limits[1])
        values.carried.extend([table.where, sticks[0].where])
        return
    for st in [*sec.all("stick-table"), *sticks]:
        note(st, "hakeep carries a stick table as `stick-table type ip size N expire T` with `stick on src` "
                 f"alone (stick = \"source\", expire at most {STICK_EXPIRE_MAX}s), not with balance source")


def _stick_table(args: tuple[str, ...]) -> tuple[int, int] | None:
    """(expire in whole seconds, size) of ``type ip size N expire T``, in any order; None for any other."""
    words = dict(zip(args[::2], args[1::2], strict=False)) if len(args) % 2 == 0 else {}
    size = re.fullmatch(r"(\d+)([kmg]?)", words.get("size", ""))
    expire = time_s(words.get("expire", ""))
    if set(words) != {"type", "size", "expire"} or words["type"] != "ip" or size is None or expire is None:
        return None
    entries = int(size.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[size.group(2)]
    whole = max(1, math.ceil(expire))
    return (whole, entries) if whole <= STICK_EXPIRE_MAX and 1 <= entries <= STICK_SIZE_MAX else None


def _check_port(sec: Section, n_servers: int, ports: dict[str, Statement], fe: dict[str, Any], note: Any) -> None:
    """One check port named by every server: the frontend's check_port; else each is named."""
    if len(ports) == 1 and n_servers == sum(1 for st in sec.all("server") if "port" in st.args[2:]):
        fe["check_port"] = int(next(iter(ports)))
        return
    for port, st in ports.items():
        note(st, f"{st.args[0]}: port {port}: hakeep checks every server of a frontend on one port (check_port), "
                 "and these differ")


def _check(sec: Section, defaults: Section | None, fe: dict[str, Any], tls: bool, *, warn: Any, replaced: Any) -> str:
    """``https`` when the live check is an HTTP check over TLS, else ``tcp``; what differs is said."""
    httpchk = _effective(sec, defaults, "option", "httpchk")
    checks = sec.all("http-check") or (defaults.all("http-check") if defaults is not None else [])
    tls = tls or any(st.args[:2] == ("connect", "ssl") for st in checks)
    if httpchk is None and not checks:
        return "tcp"
    method, path = "OPTIONS", "/"
    if httpchk is not None and httpchk.args[1:]:
        rest = httpchk.args[1:]
        method, path = (rest[0], rest[1]) if len(rest) >= 2 else ("OPTIONS", rest[0])
    for st in checks:
        if "meth" in st.args[:-1]:
            method = st.args[st.args.index("meth") + 1]
        if "uri" in st.args[:-1]:
            path = st.args[st.args.index("uri") + 1]
        if st.args[:1] == ("expect",) and st.args[1:] != ("status", "200"):
            warn(st, f"expect {' '.join(st.args[1:])}: hakeep's https check expects status 200")
    where = httpchk or checks[0]
    if not tls:
        warn(where, f"backend {sec.name} checks plain HTTP: hakeep checks TCP or HTTPS, so it is carried as tcp "
                    "(set check = \"https\" if the servers speak TLS)")
        return "tcp"
    if method != "GET":
        warn(where, f"backend {sec.name} checks with {method}: hakeep's https check sends GET")
    fe["check_path"] = path
    for st in [*([httpchk] if httpchk is not None else []), *checks]:
        replaced(st, "hakeep writes its own https check (GET check_path, expect status 200)")
    return "https"


def _prometheus(host: str, sec: Section, values: HostValues) -> None:
    """A proxy serving haproxy's exporter: [haproxy.prometheus] (hakeep serves it at /metrics, alone)."""
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    binds = sec.all("bind")
    if len(binds) != 1 or not binds[0].args or not binds[0].args[0].rpartition(":")[2].isdigit():
        note(sec, "the Prometheus exporter is carried with exactly one bind address:port")
        return
    address, _, port = binds[0].args[0].rpartition(":")
    values.haproxy["prometheus"] = {"bind": "*" if address in ANY else address, "port": int(port)}
    values.carried.append(binds[0].where)
    for st in sec.statements:
        if st is binds[0]:
            for word in st.args[1:]:
                note(st, f"{word}: hakeep's exporter binds without options")
        elif st.words[:3] == ("http-request", "use-service", "prometheus-exporter"):
            replaced(st, "hakeep serves the exporter at /metrics (any other path: 404)")
        elif st.keyword in ("mode", "option", "timeout", "no", "log", "http-request", "default_backend"):
            replaced(st, "hakeep writes its own exporter frontend (mode http, no log)")
        else:
            note(st, f"in {sec.kind} {sec.name}: no equivalent in hakeep's exporter frontend")


def _stats(host: str, sec: Section, values: HostValues) -> None:
    note, replaced = noter(host, values.unmapped), noter(host, values.replaced)
    binds, auths = sec.all("bind"), sec.all("stats", "auth")
    stats: dict[str, Any] = {"where": sec.where}
    if binds and binds[-1].args:
        address, _, port = binds[-1].args[0].rpartition(":")
        stats["bind"] = "*" if address in ANY else address
        stats["port"] = int(port) if port.isdigit() else None
        values.carried.append(binds[-1].where)
        for word in binds[-1].args[1:]:
            note(binds[-1], f"{word}: hakeep's stats page binds without options")
    for st in binds[:-1]:
        note(st, "another bind of the stats page: hakeep binds one")
    if auths and len(auths[-1].args) >= 2:
        user, _, password = auths[-1].args[1].partition(":")
        stats["user"] = user
        values.secrets["stats"] = password
        values.carried.append(auths[-1].where)
    for st in auths[:-1]:
        note(st, "another user of the stats page: hakeep has one")
    for st in sec.statements:
        if st.keyword == "bind" or st.words[:2] == ("stats", "auth"):
            continue
        if st.keyword in ("stats", "mode", "option", "timeout"):
            replaced(st, "hakeep writes its own stats page (mode http, uri /stats, refresh 10s)")
        else:
            note(st, f"in stats page {sec.name}: no equivalent in hakeep")
    values.haproxy["stats"] = stats
