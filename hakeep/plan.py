"""Whole plans: deploy and rollback, each a pure function of (inventory, facts[, release]).

``build_plan`` renders nothing itself: it takes the rendered files, compares them with every host's
facts through :mod:`hakeep.hostplan`, adds the host settings the inventory needs (sysctl,
firewalld, SELinux), finds preflight errors (nothing may change anywhere while there is one) and
drift (files edited on a host since its live release), and orders the rollout: hosts without the
VIP first, the VIP holder last. ``build_rollback_plan`` does the same with a release's backup as the
target. Dry-run prints these very objects; deploy and rollback execute them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hakeep import shell
from hakeep.facts import UNITS, HostFacts
from hakeep.hostplan import ENABLED, Meta, Target, host_plan
from hakeep.inventory import Inventory, LoadBalancer
from hakeep.releases import ReleaseError, drift, history, live, restored_files, rollback_target, units_target
from hakeep.render import HAPROXY_CFG, KEEPALIVED_CONF, STATS_SOCKET, VRRP_STATE_FILE, HostFiles, ManagedFile
from hakeep.steps import (
    CHECK_ROOT,
    LOCK_PATH,
    DriftNote,
    FileChange,
    HostPlan,
    Plan,
    Step,
    manifest_bytes,
    mask,
    unified_diff,
)

__all__ = ["CHECK_ROOT", "LOCK_PATH", "FileChange", "HostPlan", "Plan", "Step", "build_plan",
           "build_rollback_plan", "manifest_bytes", "mask", "preflight", "unified_diff"]


def rollout_order(lbs: Sequence[LoadBalancer], facts: Mapping[str, HostFacts]) -> list[LoadBalancer]:
    """Hosts without the VIP first (inventory order), then the holder(s)."""
    return sorted(lbs, key=lambda lb: facts[lb.name].holds_vip)


def preflight(inv: Inventory, facts: Mapping[str, HostFacts], names: Sequence[str],
              *, ports: bool = True) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    for i, lb in enumerate(inv.lbs):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        if f.uid != 0:
            errors.append(f"{lb.name}: privileged commands run as uid {f.uid}, not root: set sudo = true "
                          f"for this host (lb[{i}].ssh.sudo) or connect as root")
        if "systemctl" not in f.tools:
            errors.append(f"{lb.name}: systemctl not found; hakeep manages systemd hosts only")
        missing = [p for p in shell.PACKAGES if not f.installed(p)]
        if missing and f.pkgmgr is None:
            errors.append(f"{lb.name}: {', '.join(missing)} not installed and no dnf, yum or apt-get found")
        if not f.iface_present:
            errors.append(f"{lb.name}: interface {lb.interface} not found (lb[{i}].interface)")
        elif not any(a.split("/")[0] == str(lb.address) for a in f.iface_addresses):
            have = ", ".join(f.iface_addresses) or "no IPv4 address"
            errors.append(f"{lb.name}: {lb.address} is not on {lb.interface} (it has {have}); "
                          f"check lb[{i}].address and lb[{i}].interface")
        for fe in inv.frontends if ports else ():
            haproxy_runs = f.units.get("haproxy") is not None and f.units["haproxy"].running
            for li in f.listeners:
                if li.port == fe.port and li.process != "haproxy" and not (li.process == "" and haproxy_runs):
                    who = li.process or "another program"
                    errors.append(f"{lb.name}: port {fe.port} (frontend {fe.name}) is already held by {who} "
                                  f"on {li.address}")
                    break
    holders = [n for n, f in facts.items() if f.holds_vip]
    vip = str(inv.cluster.vip.ip)
    if not holders and any(f.vip_probe == "answers" for f in facts.values()):
        errors.append(f"the VIP {vip} answers but no LB holds it: another host uses this address")
    if len(holders) > 1:
        warnings.append(f"the VIP {vip} is on {len(holders)} LBs at once ({', '.join(holders)}): split brain, "
                        "usually VRRP (IP protocol 112) blocked between them")
    return errors, warnings


def build_plan(
    inv: Inventory,
    facts: Mapping[str, HostFacts],
    desired: Mapping[str, HostFiles],
    validation: Mapping[str, HostFiles],
    *,
    release_id: str,
    now: str,
    operator: str,
    limit: Sequence[str] | None = None,
) -> Plan:
    """The deploy plan. ``validation`` is ``render_all(..., root=CHECK_ROOT + release_id)``."""
    names = [lb.name for lb in inv.lbs if limit is None or lb.name in limit]
    errors, warnings = preflight(inv, facts, names)
    meta = Meta(release_id, now, operator, inv.source, inv.digest)
    hosts = []
    for lb in rollout_order(inv.lbs, facts):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        target = Target(
            files=desired[lb.name].files, ports=tuple(fe.port for fe in inv.frontends),
            extra=tuple(_host_settings(inv, f)), gate=_gate_script(inv, f),
            gate_wait=max(30.0, inv.cluster.advert_int * 10 + 15), check=validation[lb.name],
            check_root=CHECK_ROOT + release_id, keep_releases=inv.cluster.keep_releases,
        )
        packages = [p for p in shell.PACKAGES if not f.installed(p)]
        hp = host_plan(meta, lb.name, f, target, packages)
        notes = tuple(DriftNote(d.path, d.release) for d in drift(f))
        hosts.append(replace(hp, drift=notes) if notes else hp)
        changed_identity = _vrrp_identity_change(f, desired[lb.name])
        if changed_identity and f.units.get("keepalived") is not None and f.units["keepalived"].running:
            warnings.append(f"{lb.name}: this deploy changes the VRRP {', '.join(changed_identity)}: until every LB "
                            "has the new config, old and new LBs ignore each other's adverts and both may hold the "
                            "VIP for a few seconds")
        if hp.changed and f.firewalld == "running":
            warnings.append(f"{lb.name}: firewalld is running: frontend ports and VRRP are opened in it")
    return Plan(release_id=release_id, kind="deploy", vip=str(inv.cluster.vip.ip),
                ports=tuple(fe.port for fe in inv.frontends), expect_vip=True, hosts=tuple(hosts),
                errors=tuple(errors), warnings=tuple(warnings))


def build_rollback_plan(
    inv: Inventory,
    facts: Mapping[str, HostFacts],
    *,
    to: str | None,
    release_id: str,
    now: str,
    operator: str,
    limit: Sequence[str] | None = None,
) -> Plan:
    """Put back, on every (limited) host, the state saved before release ``to`` (default: the live one)."""
    names = [lb.name for lb in inv.lbs if limit is None or lb.name in limit]
    errors, warnings = preflight(inv, facts, names, ports=False)
    meta = Meta(release_id, now, operator, inv.source, inv.digest)
    lives = {n: live(history(facts[n])) for n in names}
    if to is None and len({r.id if r else None for r in lives.values()}) > 1:
        shown = ", ".join(f"{n}: {r.id if r else 'none'}" for n, r in lives.items())
        first = next((r.id for r in lives.values() if r), "ID")
        errors.append(f"the hosts' live releases differ ({shown}): a deploy stopped half-way; "
                      f"choose explicitly, e.g. `hakeep rollback {inv.source} --to {first} --limit HOST`, "
                      "after `hakeep releases`")
    hosts = []
    running_after: list[bool] = []
    all_ports: set[int] = set()
    for lb in rollout_order(inv.lbs, facts):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        try:
            target_release = rollback_target(lb.name, history(f), to)
            files, remove = restored_files(lb.name, target_release, f)
        except ReleaseError as exc:
            errors.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            continue
        running = units_target(target_release)
        enabled = {u: target_release.units_before.get(u, {}).get("enabled") in ENABLED for u in UNITS}
        running_after.append(running["keepalived"])
        ports = _ports(files) if running["haproxy"] else ()
        all_ports.update(ports)
        target = Target(
            files=tuple(files), remove=tuple(remove), running=running, enabled=enabled, ports=ports,
            gate=shell.host_gate(ports, {}, VRRP_STATE_FILE, STATS_SOCKET),
            gate_wait=max(30.0, inv.cluster.advert_int * 10 + 15), keep_releases=inv.cluster.keep_releases,
            manifest={"kind": "rollback", "rolls_back": target_release.id},
        )
        hosts.append(host_plan(meta, lb.name, f, target))
    return Plan(release_id=release_id, kind="rollback", vip=str(inv.cluster.vip.ip),
                ports=tuple(sorted(all_ports)),
                expect_vip=any(running_after), hosts=tuple(hosts), errors=tuple(errors), warnings=tuple(warnings))


_VRRP_KEYS = {"virtual_router_id": r"virtual_router_id\s+(\S+)", "password": r"auth_pass\s+(\S+)",
              "advert_int": r"advert_int\s+(\S+)", "VIP": r"virtual_ipaddress\s*\{\s*(\S+)"}


def _vrrp_identity_change(f: HostFacts, want: HostFiles) -> list[str]:
    """The VRRP settings that must match on all LBs and that this deploy changes on a host."""
    live = f.file(KEEPALIVED_CONF)
    if not live.exists or live.content is None:
        return []
    old = live.content.decode("utf-8", "replace")
    new = want.file(KEEPALIVED_CONF).content.decode("utf-8", "replace")
    out = []
    for name, pattern in _VRRP_KEYS.items():
        a, b = re.search(pattern, old), re.search(pattern, new)
        if a and b and a.group(1) != b.group(1):
            out.append(name)
    return out


_BIND = re.compile(r"^\s*bind\s+\S*?:(\d+)\b", re.MULTILINE)


def _ports(files: Sequence[ManagedFile]) -> tuple[int, ...]:
    """The frontend ports a restored haproxy.cfg binds (the stats page aside)."""
    for mf in files:
        if mf.path == HAPROXY_CFG:
            text = mf.content.decode("utf-8", "replace")
            text = text.split("frontend hakeep-stats", 1)[0]
            return tuple(sorted({int(p) for p in _BIND.findall(text)}))
    return ()


def _host_settings(inv: Inventory, f: HostFacts) -> list[Step]:
    steps = []
    if inv.needs_nonlocal_bind and f.sysctls.get("net.ipv4.ip_nonlocal_bind") != "1":
        steps.append(Step("sysctl", "set net.ipv4.ip_nonlocal_bind = 1 (haproxy binds the VIP)",
                          shell.sysctl_nonlocal_bind()))
    if f.firewalld == "running":
        ports = [fe.port for fe in inv.frontends if f"{fe.port}/tcp" not in f.firewalld_ports]
        vrrp = "vrrp" not in f.firewalld_protocols
        if ports or vrrp:
            what = ", ".join([f"{p}/tcp" for p in ports] + (["VRRP (protocol 112)"] if vrrp else []))
            zone = f.firewalld_zone or "the default zone"
            steps.append(Step("firewalld", f"open {what} in firewalld zone {zone} (runtime and permanent)",
                              shell.firewalld(f.firewalld_zone, ports, vrrp)))
    if f.selinux == "Enforcing" and f.selinux_connect_any is not True:
        steps.append(Step("selinux", "SELinux is enforcing: setsebool -P haproxy_connect_any 1",
                          shell.selinux_connect_any()))
    return steps


def _gate_script(inv: Inventory, f: HostFacts) -> str:
    """The deploy gate; a backend that had a server UP before must have one passing its check after."""
    backends = {fe.backend_name: [s.name for s in fe.servers] for fe in inv.frontends}
    was_up = [b for b in backends if any(st.startswith("UP") for st in f.backends.get(b, {}).values())]
    return shell.host_gate([fe.port for fe in inv.frontends], backends, VRRP_STATE_FILE, STATS_SOCKET,
                           require_up=was_up)
