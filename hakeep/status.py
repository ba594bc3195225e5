"""The status of one LB, derived (purely) from its facts: what ``hakeep status`` shows per host."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hakeep.facts import HostFacts
from hakeep.inventory import LoadBalancer
from hakeep.releases import drift, history, live


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

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "drift": list(self.drift), "healthy": self.healthy}


def host_status(lb: LoadBalancer, f: HostFacts) -> HostStatus:
    def unit(name: str) -> tuple[str, int]:
        u = f.units.get(name)
        if u is None or not u.loaded:
            return "absent", 0
        return u.active, u.main_pid

    servers = [state for backend in f.backends.values() for state in backend.values()]
    rels = history(f)
    current = live(rels)
    (ha, ha_pid), (ka, ka_pid) = unit("haproxy"), unit("keepalived")
    return HostStatus(
        host=lb.name, address=str(lb.address), holds_vip=f.holds_vip, vrrp_state=f.vrrp_state or "-",
        haproxy=ha, haproxy_pid=ha_pid, keepalived=ka, keepalived_pid=ka_pid,
        servers_up=sum(1 for s in servers if s.startswith("UP")), servers_total=len(servers),
        live_release=current.id if current else "-", drift=tuple(d.path for d in drift(f, rels)),
    )
