"""Lint a valid inventory for known footguns: legal settings that bite in production.

Warnings never stop a command (``validate`` exits 0 with them); they name the key and the risk.
Each rule comes from a failure users of keepalived/haproxy in front of Kubernetes report
(see shared/anchors.md): a health check that cannot move the VIP, timeouts that cut
``kubectl logs -f``, a password in the file, a frontend with no redundancy.
"""

from __future__ import annotations

from hakeep.errors import Problem
from hakeep.inventory.model import Inventory

KUBECTL_TIMEOUT_FLOOR = 35


def lint(inv: Inventory) -> list[Problem]:
    out: list[Problem] = []
    prios = sorted(max(inv.priority_sets(), key=lambda p: max(p) - min(p)))  # the VIP with the widest spread
    spread = prios[-1] - prios[0]
    weight = inv.check_weight
    if weight <= spread:
        out.append(Problem("cluster.check_weight", f"{weight} is not more than the priority spread {spread} "
                           f"({prios[0]}..{prios[-1]}): when haproxy fails on the highest-priority LB it "
                           "keeps the VIP; use a weight of at least "
                           f"{spread + 1} or leave check_weight out"))
    low = [lb for lb in inv.lbs if min(v.priority(lb) for v in inv.vips) - weight < 1]
    if inv.cluster.check_weight is not None and low:
        names = ", ".join(lb.name for lb in low)
        out.append(Problem("cluster.check_weight", f"priority minus weight drops below 1 on {names}; "
                           "keepalived clamps it, so failed hosts may tie"))
    for i, v in enumerate(inv.vips):
        by_prio: dict[int, list[str]] = {}
        for lb in inv.lbs:
            by_prio.setdefault(v.priority(lb), []).append(lb.name)
        where = f"vip[{i}].priorities" if v.priorities or inv.extra_vips else "lb"
        out += [Problem(where, f"{', '.join(equal)} share priority {prio}: between equals VRRP elects the "
                               "one with the highest IP address, and one that comes back never takes the VIP "
                               "back (no preemption among equals); give the preferred VIP holder the highest "
                               "priority if it matters which LB serves") for prio, equal in by_prio.items()
                if len(equal) > 1]
    if not float(inv.cluster.advert_int).is_integer():
        out.append(Problem("cluster.advert_int", f"{inv.cluster.advert_int:g} is not a whole number of "
                           "seconds; VRRPv2 rounds it"))
    for key in ("timeout_client", "timeout_server"):
        value = getattr(inv.haproxy, key)
        if value < KUBECTL_TIMEOUT_FLOOR:
            out.append(Problem(f"haproxy.{key}", f"{value}s is below {KUBECTL_TIMEOUT_FLOOR}s; idle "
                               "streams such as `kubectl logs -f` and watches get cut"))
    ds = inv.haproxy.default_server
    if ds.fastinter_ms > ds.inter_ms:
        out.append(Problem("haproxy.default_server.fastinter_ms", f"{ds.fastinter_ms}ms is slower than inter_ms "
                           f"({ds.inter_ms}ms): checks slow down just when one has failed"))
    c = inv.cluster
    if all(v.address.version == 6 for v in inv.vips) and (c.auth_pass is not None or c.auth_pass_env is not None):
        out.append(Problem("cluster.auth_pass" if c.auth_pass is not None else "cluster.auth_pass_env",
                           "unused: every VIP is IPv6, and VRRPv3 has no password"))
    elif inv.cluster.auth_pass is not None:
        out.append(Problem("cluster.auth_pass", "the VRRP password is in the inventory in plain text; "
                           "prefer auth_pass_env"))
    stats = inv.haproxy.stats
    if stats is not None and stats.password is not None:
        out.append(Problem("haproxy.stats.password", "the stats password is in the inventory in plain "
                           "text; prefer password_env"))
    if stats is not None and stats.bind == "*":
        out.append(Problem("haproxy.stats.bind", "the stats page listens on every address; "
                           "bind it to 127.0.0.1 or a management address"))
    for i, fe in enumerate(inv.frontends):
        if len(fe.servers) == 1:
            out.append(Problem(f"frontend[{i}].servers", f"only one server behind {fe.name}: "
                               "no redundancy"))
        if fe.check == "tcp" and fe.port == 6443:
            out.append(Problem(f"frontend[{i}].check", '"tcp" keeps a hung kube-apiserver in rotation; '
                               'check = "https" probes /readyz'))
        if fe.hash_type == "map-based" and inv.haproxy.default_server.slowstart_s:
            out.append(Problem(f"frontend[{i}].hash_type", '"map-based" is static: haproxy ignores slowstart '
                               "with it, so a master that comes back gets its full share at once"))
        if fe.check == "https" and fe.ca_file is None:
            out.append(Problem(f"frontend[{i}].ca_file", "not set: the https check does not verify "
                               "the servers' certificates (verify none)"))
    missing: dict[tuple[str, str], list[int]] = {}
    for i, lb in enumerate(inv.lbs):
        for key, path in (("identity_file", lb.ssh.identity_file), ("config", lb.ssh.config)):
            if path is not None and not path.exists():
                missing.setdefault((key, str(path)), []).append(i)
    for (key, path_str), idx in missing.items():
        where = f"ssh.{key}" if len(idx) == len(inv.lbs) else f"lb[{idx[0]}].ssh.{key}"
        out.append(Problem(where, f"{path_str}: no such file (yet); connecting will fail without it"))
    return out
