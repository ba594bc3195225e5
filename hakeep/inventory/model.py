"""The validated inventory as frozen dataclasses.

These types are what every other module sees of the user's TOML: parsed, checked and immutable.
Nothing here reads files or the environment; :mod:`hakeep.inventory.load` builds them and
guarantees their invariants (names and addresses restricted to safe character sets, ports and
priorities in range, at least two LBs and one frontend, the VIP inside every LB's subnet, no frontend
named like a proxy hakeep adds).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from hakeep.errors import printable

DEFAULT_CHECK_PATH = "/readyz"
# Proxy names hakeep gives haproxy.cfg's own sections (templates/haproxy.cfg.j2); a frontend of the
# inventory may not take one of them.
STATS_FRONTEND = "hakeep-stats"
PROMETHEUS_FRONTEND = "hakeep-prometheus"
RESERVED_PREFIX = "hakeep-"  # every name hakeep adds itself starts with it
BACKEND_PREFIX = "be_"  # each frontend's backend: be_<frontend name>


def loopback_bind(bind: str) -> bool:
    """Whether haproxy binds this address for the host itself only (no firewall port, no VIP)."""
    return bind.startswith("127.") or bind == "::1"


@dataclass(frozen=True)
class SSHSettings:
    """How to reach one host; ``None`` means "as OpenSSH would decide" (ssh_config, agent)."""

    user: str | None
    port: int | None
    identity_file: Path | None
    config: Path | None
    sudo: bool
    connect_timeout: float


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    address: ipaddress.IPv4Address  # how hakeep reaches it (SSH) and its VRRP address for IPv4 VIPs
    interface: str
    priority: int
    ssh: SSHSettings
    address6: ipaddress.IPv6Address | None = None  # its VRRP address for IPv6 VIPs (on the same interface)

    def vrrp_address(self, vip: Vip) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address this LB speaks VRRP from for ``vip`` (of the VIP's family; None: it has none)."""
        return self.address if vip.address.version == 4 else self.address6


@dataclass(frozen=True)
class Server:
    name: str
    address: str  # an IPv4 or IPv6 address (canonical form) or a DNS name, already checked
    port: int


@dataclass(frozen=True)
class StickTable:
    """Each client sticks to the server it first reached, by source address (haproxy's stick table,
    one per LB: after a VIP move the new holder balances a client afresh, once)."""

    expire_s: int = 1800  # an entry is forgotten after this long without a new connection
    size: int = 100_000  # client addresses remembered at most (the oldest go first)


@dataclass(frozen=True)
class Frontend:
    name: str
    port: int
    bind: str  # "*", or an IPv4 or IPv6 address, canonical (the VIP when the user wrote "vip")
    check: str  # "tcp" or "https"
    check_path: str
    balance: str
    ca_file: Path | None
    servers: tuple[Server, ...]
    check_port: int | None = None  # health checks go to this port instead of each server's own
    hash_type: str | None = None  # balance = "source" only: "consistent" or "map-based"
    stick: StickTable | None = None  # stick = "source": a stick table keyed on the client address

    @property
    def backend_name(self) -> str:
        """Backends are named apart from frontends (haproxy shares one name space for proxies)."""
        return BACKEND_PREFIX + self.name


@dataclass(frozen=True)
class Stats:
    bind: str
    port: int
    user: str
    password: str | None
    password_env: str | None


@dataclass(frozen=True)
class Prometheus:
    """haproxy's built-in Prometheus exporter, served at ``/metrics`` on bind:port of every LB."""

    bind: str = "*"
    port: int = 8405


@dataclass(frozen=True)
class KeepalivedMetrics:
    """keepalived's VRRP state for node-exporter's textfile collector: the notify script keeps one
    ``hakeep_vrrp_<instance>.prom`` file per VRRP instance in ``textfile_dir``."""

    textfile_dir: str = "/var/lib/prometheus/node-exporter"  # Debian's prometheus-node-exporter default


@dataclass(frozen=True)
class DefaultServer:
    """haproxy's ``default-server``: how each backend server is health-checked and ramped up."""

    inter_ms: int = 1000  # between checks while it is up and passing
    fastinter_ms: int = 500  # between checks once a check failed (and while coming back)
    downinter_ms: int = 2000  # between checks while it is down
    rise: int = 3  # good checks in a row that put it back
    fall: int = 2  # failed checks in a row that take it out
    slowstart_s: int = 60  # its weight ramps up over this long once back (0: at once)
    maxconn: int = 250  # connections per server at most (the rest queue)


@dataclass(frozen=True)
class HAProxySettings:
    maxconn: int
    timeout_connect: int  # seconds
    timeout_client: int
    timeout_server: int
    timeout_tunnel: int
    stats: Stats | None
    default_server: DefaultServer = DefaultServer()
    prometheus: Prometheus | None = None


@dataclass(frozen=True)
class Cluster:
    name: str
    vip: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    virtual_router_id: int
    advert_int: float
    auth_pass: str | None
    auth_pass_env: str | None
    check_weight: int | None  # None: derived from the priorities
    keep_releases: int
    vrrp_instance: str | None = None  # keepalived's instance name; None: <name>-vip
    preempt: bool = True  # an LB that comes back with the highest priority takes the VIP back
    preempt_delay: int = 0  # ... this many seconds after it first hears a lower-priority master
    vip_name: str = "vip"  # the first (or only) VIP's name: "vip", or its [[vip]] name
    vip_priorities: tuple[tuple[str, int], ...] = ()  # its [[vip]] priorities (LB name -> priority)

    @property
    def vrrp_advert_s(self) -> int:
        """advert_int as keepalived's VRRPv2 runs it: whole seconds, rounded half up, at least 1."""
        return max(1, int(self.advert_int + 0.5))

    @property
    def instance_name(self) -> str:
        """The vrrp_instance's name (a pair taken over keeps its own: a renamed instance is a new one
        to keepalived, and the VIP would move)."""
        return self.vrrp_instance or f"{self.name}-vip"


@dataclass(frozen=True)
class Vip:
    """One virtual IP: its own VRRP instance (own VRID), held by one LB at a time. Its priorities on
    the LBs may differ from theirs (two VIPs, each preferring another LB: active/active)."""

    name: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    virtual_router_id: int
    instance: str  # keepalived's vrrp_instance name
    priorities: tuple[tuple[str, int], ...] = ()  # LB name -> priority for this VIP; others: the LB's own

    def priority(self, lb: LoadBalancer) -> int:
        return dict(self.priorities).get(lb.name, lb.priority)


@dataclass(frozen=True)
class Inventory:
    path: Path
    digest: str  # sha256 of the file's bytes
    cluster: Cluster
    lbs: tuple[LoadBalancer, ...]
    frontends: tuple[Frontend, ...]
    haproxy: HAProxySettings
    keepalived_metrics: KeepalivedMetrics | None = None
    extra_vips: tuple[Vip, ...] = ()  # the [[vip]] tables after the first (cluster.vip is the first)

    @property
    def vips(self) -> tuple[Vip, ...]:
        """Every VIP, the first (cluster.vip: the one status, deploy order and drill go by) first."""
        c = self.cluster
        return (Vip(c.vip_name, c.vip, c.virtual_router_id, c.instance_name, c.vip_priorities), *self.extra_vips)

    def vip(self, name: str) -> Vip:
        for v in self.vips:
            if v.name == name:
                return v
        raise KeyError(name)

    def serves(self, vip: Vip, fe: Frontend) -> bool:
        """Whether clients reach ``fe`` through ``vip``: it binds every address, or that one."""
        return fe.bind in ("*", str(vip.address.ip))

    def for_vip(self, name: str) -> Inventory:
        """This inventory as seen from one VIP: it is cluster.vip, each LB has its priority for it, and
        only the frontends it serves are left (what status and drill check through it)."""
        v = self.vip(name)
        cluster = dataclasses.replace(self.cluster, vip=v.address, virtual_router_id=v.virtual_router_id,
                                      vrrp_instance=v.instance, vip_name=v.name, vip_priorities=v.priorities)
        lbs = tuple(dataclasses.replace(lb, priority=v.priority(lb)) for lb in self.lbs)
        frontends = tuple(fe for fe in self.frontends if self.serves(v, fe))
        return dataclasses.replace(self, cluster=cluster, lbs=lbs, frontends=frontends, extra_vips=())

    @property
    def source(self) -> str:
        """The file's name as messages show it (one printable line)."""
        return printable(self.path.name)

    def lb(self, name: str) -> LoadBalancer:
        for lb in self.lbs:
            if lb.name == name:
                return lb
        raise KeyError(name)

    @property
    def check_weight(self) -> int:
        """The vrrp_script weight (subtracted on failure) that always hands the VIP over.

        A failing LB must drop below every healthy peer: weight > max(priority) - min(priority).
        """
        if self.cluster.check_weight is not None:
            return self.cluster.check_weight
        return max(max(p) - min(p) for p in self.priority_sets()) + 2

    def priority_sets(self) -> list[list[int]]:
        """Each VIP's priorities on the LBs (in inventory order)."""
        return [[v.priority(lb) for lb in self.lbs] for v in self.vips]

    @property
    def service_ports(self) -> tuple[tuple[str, str, int], ...]:
        """haproxy's own pages besides the frontends: (what, bind, port) of the stats page and the
        Prometheus exporter, where the inventory turns them on."""
        out = []
        if self.haproxy.stats is not None:
            out.append(("the stats page", self.haproxy.stats.bind, self.haproxy.stats.port))
        if self.haproxy.prometheus is not None:
            out.append(("the Prometheus exporter", self.haproxy.prometheus.bind, self.haproxy.prometheus.port))
        return tuple(out)

    def needs_nonlocal_bind(self, version: int = 4) -> bool:
        """Whether haproxy binds a VIP of this IP version (on the LBs that do not hold it too)."""
        addresses = {str(v.address.ip) for v in self.vips if v.address.version == version}
        return any(fe.bind in addresses for fe in self.frontends)

    @property
    def has_ipv6(self) -> bool:
        """Whether a VIP is IPv6 (frontends that bind "*" then listen on both families)."""
        return any(v.address.version == 6 for v in self.vips)

    def ipv6_clients(self, fe: Frontend) -> bool:
        """Whether ``fe`` may see IPv6 clients (its stick table then keys on IPv6 addresses)."""
        return ":" in fe.bind or (fe.bind == "*" and self.has_ipv6)
