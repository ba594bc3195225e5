"""The status of one LB, derived (purely) from its facts: what ``hakeep status`` shows per host."""

from __future__ import annotations

from dataclasses import dataclass

from hakeep.hosts.facts import HostFacts
from hakeep.inventory.model import LoadBalancer
from hakeep.layout import HAPROXY, KEEPALIVED
from hakeep.plan.releases import History


@dataclass(frozen=True)
class HostStatus:
    host: str
    address: str
    holds_vip: bool
    vrrp_state: str
    haproxy: str  # ActiveState, "absent" when not installed
    haproxy_pid: int
    keepalived: str
    keepalived_pid: int
    servers_up: int
    servers_total: int
    live_release: str
    drift: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return self.haproxy == "active" and self.keepalived == "active"


def host_status(lb: LoadBalancer, f: HostFacts) -> HostStatus:
    def unit(name: str) -> tuple[str, int]:
        u = f.units.get(name)
        if u is None or not u.loaded:
            return "absent", 0
        return u.active, u.main_pid

    servers = [state for backend in f.backends.values() for state in backend.values()]
    hist = History.of(f)
    current = hist.live
    (ha, ha_pid), (ka, ka_pid) = unit(HAPROXY.name), unit(KEEPALIVED.name)
    return HostStatus(
        host=lb.name, address=str(lb.address), holds_vip=f.holds_vip, vrrp_state=f.vrrp_state or "-",
        haproxy=ha, haproxy_pid=ha_pid, keepalived=ka, keepalived_pid=ka_pid,
        servers_up=sum(1 for s in servers if s.startswith("UP")), servers_total=len(servers),
        live_release=current.id if current else "-", drift=tuple(d.path for d in hist.drift),
    )
