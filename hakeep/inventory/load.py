"""Read an inventory file and turn it into a validated :class:`Inventory`, or say all that is wrong.

This module owns the inventory *format*: which tables and keys exist, their types, defaults and
ranges. It reads the file (the only I/O of the inventory package), parses it with
:mod:`hakeep.inventory.parse`, walks every table with :mod:`hakeep.inventory.fields`, then hands
the typed pieces to :mod:`hakeep.inventory.rules` for the checks that span several keys. Any
problem raises one :class:`InventoryError` listing them all, each with its key path.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from hakeep.errors import InventoryError, Problem, UsageError, printable
from hakeep.inventory import rules
from hakeep.inventory.fields import (
    ENV_RE,
    IFACE_RE,
    NAME_RE,
    SECRET_RE,
    USER_RE,
    Table,
    local_path,
    parse_ip,
    parse_ipv6,
)
from hakeep.inventory.frontends import frontend
from hakeep.inventory.model import (
    Cluster,
    DefaultServer,
    HAProxySettings,
    Inventory,
    KeepalivedMetrics,
    LoadBalancer,
    Prometheus,
    SSHSettings,
    Stats,
    Vip,
)
from hakeep.inventory.parse import parse_toml
from hakeep.inventory.vips import cluster_vip, vip_address, vip_tables

TOP_KEYS = ("cluster", "vip", "ssh", "haproxy", "keepalived", "lb", "frontend")
CLUSTER_KEYS = (
    "name", "vip", "virtual_router_id", "advert_int", "auth_pass", "auth_pass_env",
    "check_weight", "keep_releases", "vrrp_instance", "preempt", "preempt_delay",
)
SSH_KEYS = ("user", "port", "identity_file", "config", "sudo", "connect_timeout")
LB_KEYS = ("name", "address", "address6", "interface", "priority", "ssh")
HAPROXY_KEYS = (
    "maxconn", "timeout_connect", "timeout_client", "timeout_server", "timeout_tunnel", "stats", "default_server",
    "prometheus",
)
# haproxy's default-server: key -> (lowest, highest) it takes from hakeep
DEFAULT_SERVER_LIMITS = {"inter_ms": (100, 3_600_000), "fastinter_ms": (100, 3_600_000),
                         "downinter_ms": (100, 3_600_000), "rise": (1, 100), "fall": (1, 100),
                         "slowstart_s": (0, 3600), "maxconn": (1, 1_000_000)}
STATS_KEYS = ("bind", "port", "user", "password", "password_env")
PROMETHEUS_KEYS = ("bind", "port")
TEXTFILE_DIR_RE = re.compile(r"/[A-Za-z0-9_.+/-]*")  # an absolute path of safe characters (in a shell script)

DEFAULT_SSH = SSHSettings(None, None, None, None, sudo=False, connect_timeout=10.0)


def load_inventory(path: Path) -> Inventory:
    """Read, parse and validate ``path``; raise :class:`InventoryError` listing every problem."""
    source, shown = printable(path.name), printable(str(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{shown}: no such file",
                         hint="give the path of an inventory TOML file") from None
    except IsADirectoryError:
        raise UsageError(f"{shown}: is a directory, not an inventory file") from None
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read: {exc.strerror}") from None
    data = parse_toml(raw, source)
    return build_inventory(data, path=path, digest=hashlib.sha256(raw).hexdigest())


def build_inventory(data: dict[str, object], *, path: Path, digest: str) -> Inventory:
    """Validate parsed TOML ``data`` (pure: no I/O besides checking that local files exist)."""
    problems: list[Problem] = []
    top = Table(data, "", problems)
    top.check_keys(TOP_KEYS)
    base_dir = path.parent

    cluster_t = top.get_table("cluster")
    if cluster_t is None and "cluster" not in data:
        problems.append(Problem("cluster", "the [cluster] table is required"))
    vip_items = vip_tables(top, (cluster_t.data.get("name") if cluster_t else None))
    first = vip_items[0][1] if vip_items else None
    ipv6_only = bool(vip_items) and all(v is not None and v.address.version == 6 for _, v in vip_items)
    cluster = _cluster(cluster_t or Table({}, "cluster", problems), first, bool(vip_items), ipv6_only)
    ssh_t = top.get_table("ssh")
    default_ssh = _ssh(ssh_t, DEFAULT_SSH, base_dir) if ssh_t else DEFAULT_SSH
    lb_tables = top.get_tables("lb")
    lb_items = [(t.path, _lb(t, default_ssh, base_dir)) for t in lb_tables]
    lbs = [lb for _, lb in lb_items if lb is not None]
    fe_tables = top.get_tables("frontend")
    addresses = {v.name: v.address for _, v in vip_items if v is not None}
    if cluster is not None and not vip_items:
        addresses[cluster.vip_name] = cluster.vip
    fe_items = [(t.path, frontend(t, addresses, cluster.vip_name if cluster else "vip", base_dir)) for t in fe_tables]
    frontends = [fe for _, fe in fe_items if fe is not None]
    haproxy_t = top.get_table("haproxy")
    haproxy = _haproxy(haproxy_t or Table({}, "haproxy", problems))
    keepalived_t = top.get_table("keepalived")
    keepalived_metrics = _keepalived(keepalived_t) if keepalived_t is not None else None

    for key, need in (("lb", "at least two [[lb]] tables are required"),
                      ("frontend", "at least one [[frontend]] table is required")):
        if key not in data:
            problems.append(Problem(key, need))
        elif data[key] == []:
            problems.append(Problem(key, f"is an empty array; {need}"))
    if "vip" in data and data["vip"] == []:
        problems.append(Problem("vip", "is an empty array; give [[vip]] tables, or the VIP as [cluster] vip"))
    extra = tuple(v for _, v in vip_items[1:] if v is not None)
    if cluster is not None:
        primary = [("cluster", cluster_vip(cluster))] if not vip_items else []
        rules.check(cluster, lb_items, fe_items, haproxy, problems, vips=primary + vip_items)
    if (problems or cluster is None or haproxy is None or len(lbs) != len(lb_tables) or len(lbs) < 2
            or len(frontends) != len(fe_tables) or not frontends or len(extra) != len(vip_items[1:])):
        if not problems:  # pragma: no cover - every None or short list above comes with a problem
            problems.append(Problem("", "invalid inventory"))
        raise InventoryError(printable(path.name), problems)
    return Inventory(
        path=path, digest=digest, cluster=cluster, lbs=tuple(lbs), frontends=tuple(frontends),
        haproxy=haproxy, keepalived_metrics=keepalived_metrics, extra_vips=extra,
    )


def _cluster(t: Table, first: Vip | None, vip_tables_given: bool, ipv6_only: bool) -> Cluster | None:
    """``first``: the first [[vip]] table's VIP, which takes the place of [cluster] vip; ``ipv6_only``:
    every [[vip]] is IPv6 (VRRPv3 has no password: none is needed)."""
    t.check_keys(CLUSTER_KEYS)
    name = t.get_str("name", required=True, pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
    if vip_tables_given:
        for key in ("vip", "virtual_router_id", "vrrp_instance"):
            if key in t.data:
                t.error(key, "is set in each [[vip]] table when there are any: give the VIP as [cluster] vip or "
                        "as [[vip]] tables, not both")
        vip = first.address if first else None
        vrid = first.virtual_router_id if first else None
    else:
        vip = vip_address(t, "vip")
        vrid = t.get_int("virtual_router_id", required=True, lo=1, hi=255)
    ipv6_only = ipv6_only or (vip is not None and vip.version == 6)
    advert = t.get_number("advert_int", hi=255.0)
    auth_pass = t.get_str("auth_pass", pattern=SECRET_RE, what="letters, digits and _.,:+=@%^*?/-")
    auth_env = t.get_str("auth_pass_env", pattern=ENV_RE, what="an environment variable name")
    if auth_pass is not None and len(auth_pass) > 8:
        t.error("auth_pass", f"is {len(auth_pass)} characters long; keepalived silently truncates "
                "VRRP passwords to 8")
        auth_pass = None
    if "auth_pass" in t.data and "auth_pass_env" in t.data:
        t.error("auth_pass", "give either auth_pass or auth_pass_env, not both")
    elif "auth_pass" not in t.data and "auth_pass_env" not in t.data and not ipv6_only:
        t.error("auth_pass_env", "is required (or auth_pass): the VRRP password")
    weight = t.get_int("check_weight", lo=1, hi=253)
    keep = t.get_int("keep_releases", lo=1, hi=1000)
    instance = (first.instance if first else None) if vip_tables_given else t.get_str(
        "vrrp_instance", pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
    preempt = t.get_bool("preempt", default=True)
    delay = t.get_int("preempt_delay", lo=0, hi=1000)
    if delay and not preempt:
        t.error("preempt_delay", "needs preempt = true: with preempt = false (keepalived's nopreempt) an LB "
                "that comes back never takes the VIP back, so there is nothing to delay")
    if name is None or vip is None or vrid is None or (auth_pass is None and auth_env is None and not ipv6_only):
        return None
    return Cluster(
        name=name, vip=vip, virtual_router_id=vrid,
        advert_int=advert if advert is not None else 1.0,
        auth_pass=auth_pass, auth_pass_env=auth_env, check_weight=weight,
        keep_releases=keep if keep is not None else 10, vrrp_instance=instance,
        preempt=preempt, preempt_delay=delay or 0,
        vip_name=first.name if first else "vip", vip_priorities=first.priorities if first else (),
    )


def _ssh(t: Table, base: SSHSettings, base_dir: Path) -> SSHSettings:
    t.check_keys(SSH_KEYS)
    user = t.get_str("user", pattern=USER_RE, what="a login name")
    port = t.get_int("port", lo=1, hi=65535)
    identity = local_path(t, "identity_file", base_dir)
    config = local_path(t, "config", base_dir)
    timeout = t.get_number("connect_timeout", hi=600.0)
    return SSHSettings(
        user=user if user is not None else base.user,
        port=port if port is not None else base.port,
        identity_file=identity if identity is not None else base.identity_file,
        config=config if config is not None else base.config,
        sudo=t.get_bool("sudo", default=base.sudo),
        connect_timeout=timeout if timeout is not None else base.connect_timeout,
    )


def _lb(t: Table, default_ssh: SSHSettings, base_dir: Path) -> LoadBalancer | None:
    t.check_keys(LB_KEYS)
    name = t.get_str("name", required=True, pattern=NAME_RE, what="letters, digits, '_', '.', '-'")
    address = t.get_ipv4("address", required=True)
    raw6 = t.get_str("address6")
    address6 = parse_ipv6(raw6, lambda msg: t.error("address6", msg)) if raw6 is not None else None
    iface = t.get_str("interface", required=True, pattern=IFACE_RE,
                      what="a network interface name, at most 15 characters")
    prio = t.get_int("priority", required=True, lo=1, hi=254)
    ssh_t = t.get_table("ssh")
    ssh = _ssh(ssh_t, default_ssh, base_dir) if ssh_t else default_ssh
    if name is None or address is None or iface is None or prio is None or (raw6 is not None and address6 is None):
        return None
    return LoadBalancer(name=name, address=address, interface=iface, priority=prio, ssh=ssh, address6=address6)


def _haproxy(t: Table) -> HAProxySettings | None:
    t.check_keys(HAPROXY_KEYS)
    maxconn = t.get_int("maxconn", lo=1, hi=1_000_000)
    connect = t.get_int("timeout_connect", lo=1, hi=3600)
    client = t.get_int("timeout_client", lo=1, hi=86400)
    server = t.get_int("timeout_server", lo=1, hi=86400)
    tunnel = t.get_int("timeout_tunnel", lo=1, hi=86400 * 7)
    stats_t = t.get_table("stats")
    stats = _stats(stats_t) if stats_t is not None else None
    ds_t = t.get_table("default_server")
    default_server = DefaultServer()
    if ds_t is not None:
        ds_t.check_keys(tuple(DEFAULT_SERVER_LIMITS))
        given = {k: ds_t.get_int(k, lo=lo, hi=hi) for k, (lo, hi) in DEFAULT_SERVER_LIMITS.items()}
        default_server = DefaultServer(**{k: v for k, v in given.items() if v is not None})
    prometheus_t = t.get_table("prometheus")
    prometheus = _prometheus(prometheus_t) if prometheus_t is not None else None
    return HAProxySettings(
        maxconn=maxconn or 4000,
        timeout_connect=connect or 5,
        timeout_client=client or 50,
        timeout_server=server or 50,
        timeout_tunnel=tunnel or 3600,
        stats=stats, default_server=default_server, prometheus=prometheus,
    )


def _prometheus(t: Table) -> Prometheus | None:
    t.check_keys(PROMETHEUS_KEYS)
    bind = _service_bind(t, Prometheus.bind)
    if bind is None:
        return None
    port = t.get_int("port", lo=1, hi=65535)
    return Prometheus(bind=bind, port=port or Prometheus.port)


def _service_bind(t: Table, default: str) -> str | None:
    """A page's ``bind``: "*" (every IPv4 address; every address of both families once a VIP is
    IPv6) or one address of either family, loopback allowed; canonical."""
    bind = t.get_str("bind") or default
    if bind == "*":
        return bind
    addr = parse_ip(bind, lambda msg: t.error("bind", msg + ' (use "*" or an IP address)'), loopback=True)
    return str(addr) if addr is not None else None


def _keepalived(t: Table) -> KeepalivedMetrics | None:
    """``[keepalived]``: only ``[keepalived.prometheus]`` so far (the VRRP state for node-exporter)."""
    t.check_keys(("prometheus",))
    metrics_t = t.get_table("prometheus")
    if metrics_t is None:
        return None
    metrics_t.check_keys(("textfile_dir",))
    directory = metrics_t.get_str("textfile_dir", pattern=TEXTFILE_DIR_RE,
                                  what="an absolute path of letters, digits and _.+/-")
    if directory is not None and (directory.rstrip("/") in ("", "/run/hakeep") or "/../" in directory + "/"
                                  or "/./" in directory + "/"):
        metrics_t.error("textfile_dir", f"{directory!r} is not a folder for node-exporter's text files")
        return None
    return KeepalivedMetrics(textfile_dir=(directory or KeepalivedMetrics.textfile_dir).rstrip("/"))


def _stats(t: Table) -> Stats | None:
    t.check_keys(STATS_KEYS)
    bind = _service_bind(t, "127.0.0.1")
    if bind is None:
        return None
    port = t.get_int("port", lo=1, hi=65535) or 8404
    user = t.get_str("user", pattern=USER_RE, what="a login name") or "admin"
    password = t.get_str("password", pattern=SECRET_RE, what="letters, digits and _.,:+=@%^*?/-")
    password_env = t.get_str("password_env", pattern=ENV_RE, what="an environment variable name")
    if ("password" in t.data) == ("password_env" in t.data):
        t.error("password_env", "give exactly one of password or password_env for the stats page")
        return None
    if password is None and password_env is None:
        return None
    return Stats(bind=bind, port=port, user=user, password=password, password_env=password_env)
