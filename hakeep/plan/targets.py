"""What each host should end up with: a deploy's target from the rendered inventory, a rollback's
from a release's backup, with the host settings (sysctl, firewalld, SELinux) and the health gate
that go with it. Pure functions of (inventory, facts[, release]); :mod:`.hostplan` turns a target
into steps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hakeep.hosts import commands
from hakeep.hosts.facts import HostFacts
from hakeep.inventory.model import Inventory, loopback_bind
from hakeep.layout import CHECK_ROOT, ENABLED_STATES, HAPROXY, HAPROXY_CFG, NOTIFY_SCRIPT, UNIT_NAMES
from hakeep.plan.hostplan import Target, files_expect
from hakeep.plan.releases import Release, ReleaseKind, units_target
from hakeep.plan.steps import Action, Step
from hakeep.render.files import HostFiles, ManagedFile


def gate_wait(inv: Inventory) -> float:
    """How long a gate may wait: long enough for keepalived to settle after a reload."""
    return max(30.0, inv.cluster.advert_int * 10 + 15)


def deploy_target(inv: Inventory, f: HostFacts, desired: HostFiles, check: HostFiles, release_id: str, *,
                  keep_vip: bool = False) -> Target:
    """``keep_vip``: the host holds the VIP and no peer can take it over: its gate requires that it
    still holds it after the change."""
    return Target(
        files=desired.files, ports=tuple(fe.port for fe in inv.frontends), extra=tuple(host_settings(inv, f)),
        gate=_deploy_gate(inv, f, keep_vip, desired), gate_wait=gate_wait(inv), check=check,
        check_root=CHECK_ROOT + release_id, keep_releases=inv.cluster.keep_releases,
    )


def restore_target(inv: Inventory, release: Release, files: Sequence[ManagedFile], remove: Sequence[str], *,
                   keep_vip: bool = False) -> Target:
    """``keep_vip``: as for a deploy, when the rollback keeps both units running (a rollback that
    stops keepalived on the only holder drops the VIP by design: its plan says so)."""
    running = units_target(release)
    hold = str(inv.cluster.vip.ip) if keep_vip and all(running.values()) else ""
    enabled = {u: release.units_before.get(u, {}).get("enabled") in ENABLED_STATES for u in UNIT_NAMES}
    ports = restored_ports(files) if running[HAPROXY.name] else ()
    return Target(
        files=tuple(files), remove=tuple(remove), running=running, enabled=enabled, ports=ports,
        gate=commands.host_gate(ports, {}, hold_vip=hold, keepalived_expect=files_expect(files)),
        gate_wait=gate_wait(inv),
        keep_releases=inv.cluster.keep_releases,
        kind=ReleaseKind.ROLLBACK, rolls_back=release.id,
    )


def host_settings(inv: Inventory, f: HostFacts) -> list[Step]:
    """The host settings haproxy and VRRP need before the services start, where they are missing."""
    steps = []
    needed = [v for v in (4, 6) if inv.needs_nonlocal_bind(v)]
    if any(f.sysctls.get(f"net.ipv{v}.ip_nonlocal_bind") != "1" for v in needed):
        keys = " and ".join(f"net.ipv{v}.ip_nonlocal_bind = 1" for v in needed)
        steps.append(Step(Action.SYSCTL, f"set {keys} (haproxy binds the VIP)",
                          commands.sysctl_nonlocal_bind(needed)))
    if f.firewalld == "running":
        # the frontends, and hakeep's own pages where they listen beyond loopback (a scraper elsewhere)
        wanted = [fe.port for fe in inv.frontends] + [port for _, bind, port in inv.service_ports
                                                      if not loopback_bind(bind)]
        ports = [p for p in dict.fromkeys(wanted) if f"{p}/tcp" not in f.firewalld_ports]
        vrrp = "vrrp" not in f.firewalld_protocols
        if ports or vrrp:
            what = ", ".join([f"{p}/tcp" for p in ports] + (["VRRP (protocol 112)"] if vrrp else []))
            zone = f.firewalld_zone or "the default zone"
            steps.append(Step(Action.FIREWALLD, f"open {what} in firewalld zone {zone} (runtime and permanent)",
                              commands.firewalld(f.firewalld_zone, ports, vrrp)))
    if f.selinux == "Enforcing" and f.selinux_connect_any is not True:
        steps.append(Step(Action.SELINUX, "SELinux is enforcing: setsebool -P haproxy_connect_any 1",
                          commands.selinux_connect_any()))
    old = live_textfile_dir(f)
    if old is not None and old != (inv.keepalived_metrics.textfile_dir if inv.keepalived_metrics else None):
        # else node-exporter would go on reporting the last state written there as current
        steps.append(Step(Action.REMOVE, f"remove the VRRP metrics files from {old} (no longer written there)",
                          commands.remove_vrrp_metrics(old)))
    return steps


_TEXTFILE = re.compile(rb'^prom="(/[A-Za-z0-9_.+/-]*)/hakeep_vrrp_\$2\.prom"$', re.MULTILINE)


def live_textfile_dir(f: HostFacts) -> str | None:
    """The folder the live notify script writes its VRRP metrics into, if it writes any."""
    live = f.files.get(NOTIFY_SCRIPT)
    m = _TEXTFILE.search(live.content) if live is not None and live.content is not None else None
    return m.group(1).decode() if m else None


def _deploy_gate(inv: Inventory, f: HostFacts, keep_vip: bool, desired: HostFiles) -> str:
    """The deploy gate; a backend that had a server UP before must have one passing its check after;
    keepalived runs the new file."""
    backends = {fe.backend_name: [s.name for s in fe.servers] for fe in inv.frontends}
    was_up = [b for b in backends if any(st.startswith("UP") for st in f.backends.get(b, {}).values())]
    return commands.host_gate([fe.port for fe in inv.frontends], backends, require_up=was_up,
                              hold_vip=str(inv.cluster.vip.ip) if keep_vip else "",
                              binds=[f"{fe.bind}:{fe.port}" for fe in inv.frontends if fe.bind != "*"],
                              keepalived_expect=files_expect(desired.files))


# "bind ADDRESS:PORT": an IPv6 ADDRESS in brackets ("[::]" and "*" and "" are every address)
_BIND_ADDRESS = re.compile(r"^\s*bind\s+(\[[^\]\s]*\]|[^\s\[]*):(\d+)\b", re.MULTILINE)
_EVERY = ("", "*", "0.0.0.0", "::")  # noqa: S104 (binds read back, not made)


def restored_binds(files: Sequence[ManagedFile]) -> set[tuple[str, int]]:
    """(address, port) of each frontend bind in a restored haproxy.cfg ("*" for every address)."""
    for mf in files:
        if mf.path == HAPROXY_CFG:
            text = mf.content.decode("utf-8", "replace").split("\nfrontend hakeep-", 1)[0]
            found = ((a.strip("[]"), int(p)) for a, p in _BIND_ADDRESS.findall(text))
            return {(a if a not in _EVERY else "*", p) for a, p in found}
    return set()


def restored_ports(files: Sequence[ManagedFile]) -> tuple[int, ...]:
    """The frontend ports a restored haproxy.cfg binds (hakeep's own pages aside)."""
    for mf in files:
        if mf.path == HAPROXY_CFG:
            text = mf.content.decode("utf-8", "replace")
            text = text.split("\nfrontend hakeep-", 1)[0]  # the stats page, the exporter: hakeep's own
            return tuple(sorted({int(p) for _, p in _BIND_ADDRESS.findall(text)}))
    return ()
