"""Whole plans: deploy and rollback, each a pure function of (inventory, facts[, release]).

``build_plan`` renders nothing itself: it takes the rendered files, parses each host's release
history once, builds each host's target (:mod:`.targets`) and plan (:mod:`.hostplan`), finds
preflight errors (nothing may change anywhere while there is one), and orders the rollout: hosts
without the VIP first, the VIP holder last; the final proof is part of the plan.
``build_rollback_plan`` does the same with a release's backup as the target. Dry-run prints these
very objects; deploy and rollback execute them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hakeep.hosts import arp, commands
from hakeep.hosts.facts import HostFacts
from hakeep.inventory.model import Inventory, LoadBalancer, loopback_bind
from hakeep.layout import HAPROXY, KEEPALIVED, KEEPALIVED_CONF, PACKAGES
from hakeep.plan import platform
from hakeep.plan.hostplan import Meta, decommission_plan, host_plan
from hakeep.plan.members import Member, dropped, joining, matches
from hakeep.plan.releases import History, ReleaseError, ReleaseKind, restored_files, rollback_target
from hakeep.plan.steps import Plan, Proof
from hakeep.plan.targets import deploy_target, gate_wait, restore_target, restored_binds
from hakeep.render.files import HostFiles


def rollout_order(lbs: Sequence[LoadBalancer], facts: Mapping[str, HostFacts]) -> list[LoadBalancer]:
    """The LBs with facts (those reached): without the VIP first (inventory order), then the holder(s)."""
    return sorted((lb for lb in lbs if lb.name in facts), key=lambda lb: facts[lb.name].holds_vip)


def must_keep_vip(name: str, facts: Mapping[str, HostFacts], planned: Sequence[str]) -> bool:
    """Whether LB ``name`` holds the VIP with no other LB able to take it over: every other LB is
    unreachable, or left out of this run with keepalived not running. An LB in this run stands by
    (it is changed first, and its gate proves it healthy), and so does one left out that runs
    keepalived (in BACKUP, or holding the VIP itself)."""
    f = facts.get(name)
    if f is None or not f.holds_vip:
        return False
    return not any(n != name and (n in planned or o.unit_running(KEEPALIVED.name)) for n, o in facts.items())


PROOF_TRY = 0.5  # seconds: one try of a frontend port through the VIP in the final proof


def proof(inv: Inventory, ports: Sequence[int], *, expect_vip: bool = True) -> Proof:
    vip = str(inv.cluster.vip.ip)
    # each port try short (the VIP is on this segment; the proof tries again until its own deadline):
    # a try that began just before the VIP came up can hang in ARP resolution for seconds
    return Proof(vip, tuple(ports), expect_vip, commands.vip_check(vip, ports if expect_vip else (), iface="auto",
                                                                  probe_timeout=PROOF_TRY))


def preflight(inv: Inventory, facts: Mapping[str, HostFacts], names: Sequence[str],
              *, ports: bool = True, unreachable: Mapping[str, str] | None = None,
              versions: bool = True) -> tuple[list[str], list[str]]:
    """Errors that forbid any change, and warnings. ``unreachable``: the LBs left out because they
    could not be reached (name -> why), when the run is limited to the others. ``versions``: check
    each host's haproxy/keepalived against what the inventory asks (a rollback restores files the
    host ran before: it does not)."""
    errors: list[str] = []
    warnings: list[str] = []
    gone = dict(unreachable or {})
    if gone:
        shown = ", ".join(f"{n} ({why})" for n, why in gone.items())
        warnings.append(f"the pair is degraded: {shown} cannot be reached; only {', '.join(names)} "
                        "will be checked and changed")
    carried = ({a.split("/")[0] for o in facts.values() for a in o.iface_addresses} | {str(x.address) for x in inv.lbs}
               | {str(x.address6) for x in inv.lbs if x.address6} | {str(v.address.ip) for v in inv.vips})
    for i, lb in enumerate(inv.lbs):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        if f.uid != 0:
            errors.append(f"{lb.name}: privileged commands run as uid {f.uid}, not root: set sudo = true "
                          f"for this host (lb[{i}].ssh.sudo) or connect as root")
        if "systemctl" not in f.tools:
            errors.append(f"{lb.name}: systemctl not found; hakeep manages systemd hosts only")
        missing = [p for p in PACKAGES if not f.installed(p)]
        if missing and f.pkgmgr is None:
            errors.append(f"{lb.name}: {', '.join(missing)} not installed and no dnf, yum or apt-get found")
        if versions:
            version_errors, version_warnings = platform.check(inv, lb.name, f)
            errors += version_errors
            warnings += version_warnings
        if not f.iface_present:
            errors.append(f"{lb.name}: interface {lb.interface} not found (lb[{i}].interface)")
        else:
            for key, own in (("address", lb.address), ("address6", lb.address6)):
                if own is not None and not any(a.split("/")[0] == str(own) for a in f.iface_addresses):
                    have = ", ".join(f.iface_addresses) or "no global address"
                    errors.append(f"{lb.name}: {own} is not on {lb.interface} (it has {have}); "
                                  f"check lb[{i}].{key} and lb[{i}].interface")
        haproxy_runs = f.unit_running(HAPROXY.name)
        bound = [(f"frontend {fe.name}", fe.bind, fe.port) for fe in inv.frontends] + list(inv.service_ports)
        for what, bind, port in bound if ports else ():
            family = 6 if ":" in bind else 4
            nonlocal_bind = inv.needs_nonlocal_bind(family) or f.sysctls.get(f"net.ipv{family}.ip_nonlocal_bind") == "1"
            if bind != "*" and not loopback_bind(bind) and bind not in carried and not nonlocal_bind:
                errors.append(f"{lb.name}: {what} binds {bind}, an address no LB carries, and "
                              f"net.ipv{family}.ip_nonlocal_bind is 0: haproxy could not start with it")
            for li in f.listeners:
                if li.port == port and li.process != HAPROXY.name and not (li.process == "" and haproxy_runs):
                    who = li.process or "another program"
                    errors.append(f"{lb.name}: port {port} ({what}) is already held by {who} on {li.address}")
                    break
    _vip_checks(inv, facts, gone, errors, warnings)
    return errors, warnings


def _vip_checks(inv: Inventory, facts: Mapping[str, HostFacts], gone: Mapping[str, str], errors: list[str],
                warnings: list[str]) -> None:
    """Each VIP: a host outside the set answering ARP for it, an address some other host uses, a
    VIP on two LBs."""
    absent = [lb for lb in inv.lbs if lb.name not in facts]  # unreachable: any answer may be theirs
    excused = {str(a) for lb in absent for a in (lb.address, lb.address6) if a}
    for v in inv.vips:  # each VIP as its facts say (the first's: as gathered; the others': for_vip)
        seen = {n: f.for_vip(str(v.address.ip), v.instance) for n, f in facts.items()}
        vip = str(v.address.ip)
        holders = [n for n, f in seen.items() if f.holds_vip]
        claims = arp.outside((a for f in seen.values() for a in f.vip_arp), members=set(seen),
                             excused=excused, anonymous_excused=bool(absent))
        if claims:
            errors.append(f"split brain outside the inventory: a host that is no LB of this inventory answers ARP "
                          f"for the VIP {vip} too: {arp.describe(claims)}; take the VIP off that host (ip addr del, "
                          "or stop its keepalived) or, if it is an LB of this set, name it in the inventory")
        elif not holders and any(f.vip_probe == "answers" for f in seen.values()):
            if gone:
                warnings.append(f"the VIP {vip} answers but no reachable LB holds it: maybe {', '.join(gone)} does")
            else:
                errors.append(f"the VIP {vip} answers but no LB holds it: another host uses this address")
        if len(holders) > 1:
            warnings.append(f"the VIP {vip} is on {len(holders)} LBs at once ({', '.join(holders)}): split brain, "
                            "usually VRRP (IP protocol 112) blocked between them")


def _selected(inv: Inventory, limit: Sequence[str] | None) -> list[str]:
    return [lb.name for lb in inv.lbs if limit is None or lb.name in limit]


def build_plan(inv: Inventory, facts: Mapping[str, HostFacts], desired: Mapping[str, HostFiles],
               validation: Mapping[str, HostFiles], *, release_id: str, now: str, operator: str,
               limit: Sequence[str] | None = None, unreachable: Mapping[str, str] | None = None,
               forget: Sequence[str] = (), decommission: Mapping[str, HostFacts] | None = None) -> Plan:
    """The deploy plan. ``validation`` is ``render_all(..., root=CHECK_ROOT + release_id)``.

    ``facts`` holds the LBs reached; with ``limit``, an LB left out may be in ``unreachable``. A
    limited LB that holds the VIP while no peer stands by must keep it: its gate checks that.
    """
    names = _selected(inv, limit)
    leaving = dict(decommission or {})
    # a leaving LB may hold the VIP: the VIP checks see it too
    errors, warnings = preflight(inv, {**facts, **leaving}, names, unreachable=unreachable)
    gone, member_errors, member_warnings = member_changes(inv, facts, forget, leaving)
    errors += member_errors
    warnings += member_warnings
    meta = Meta(release_id, now, operator, inv.source, inv.digest, members={lb.name: str(lb.address) for lb in inv.lbs},
                members6={lb.name: str(lb.address6) for lb in inv.lbs if lb.address6},
                forgotten=tuple(a for m in gone for a in (m.address, *m.also)))
    views = [inv.for_vip(v.name) for v in inv.vips] if inv.extra_vips else [inv]
    each = [(str(w.cluster.vip.ip), [fe.port for fe in w.frontends]) for w in views]
    hosts = [decommission_plan(meta, name, f, History.of(f), vips=each, wait=gate_wait(inv))
             for name, f in leaving.items()]  # first: the others still count them as peers meanwhile
    for lb in rollout_order(inv.lbs, facts):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        keep_vip = must_keep_vip(lb.name, facts, names)
        target = deploy_target(inv, f, desired[lb.name], validation[lb.name], release_id, keep_vip=keep_vip)
        if keep_vip and f.unit_running(KEEPALIVED.name):
            warnings.append(f"{lb.name} holds the VIP and no other LB stands by: its health gate requires that it "
                            "still holds the VIP after the change")
        packages = [p for p in PACKAGES if not f.installed(p)]
        hp = replace(host_plan(meta, lb.name, f, History.of(f), target, packages=packages),
                     versions=tuple(platform.host_versions(f).values()))
        hosts.append(hp)
        changed_identity = _vrrp_identity_change(f, desired[lb.name])
        if changed_identity and f.unit_running(KEEPALIVED.name):
            warnings.append(f"{lb.name}: this deploy changes the VRRP {', '.join(changed_identity)}: until every LB "
                            "has the new config, old and new LBs ignore each other's adverts and both may hold the "
                            "VIP for a few seconds")
        if hp.changed and f.firewalld == "running":
            warnings.append(f"{lb.name}: firewalld is running: frontend ports and VRRP are opened in it")
    every = {lb.name for lb in inv.lbs}
    idle = (not leaving and not unreachable and set(names) == every and every <= set(facts)
            and not any(f.holds_vip or f.unit_running(HAPROXY.name) or f.unit_running(KEEPALIVED.name)
                        for f in facts.values()))
    views = [inv.for_vip(v.name) for v in inv.vips] if inv.extra_vips else [inv]
    return Plan(release_id=release_id, kind=ReleaseKind.DEPLOY, hosts=tuple(hosts),
                proof=proof(views[0], [fe.port for fe in views[0].frontends]), errors=tuple(errors),
                warnings=tuple(warnings), side_by_side=idle and len(hosts) > 1,
                extra_proofs=tuple((w.cluster.vip_name, proof(w, [fe.port for fe in w.frontends])) for w in views[1:]))


def build_rollback_plan(inv: Inventory, facts: Mapping[str, HostFacts], *, to: str | None, release_id: str,
                        now: str, operator: str, limit: Sequence[str] | None = None,
                        unreachable: Mapping[str, str] | None = None) -> Plan:
    """Put back, on every (limited) host, the state saved before release ``to`` (default: the live one)."""
    names = _selected(inv, limit)
    errors, warnings = preflight(inv, facts, names, ports=False, unreachable=unreachable, versions=False)
    meta = Meta(release_id, now, operator, inv.source, inv.digest)
    histories = {n: History.of(facts[n]) for n in names}
    lives = {n: h.live for n, h in histories.items()}
    if to is None and len({r.id if r else None for r in lives.values()}) > 1:
        shown = ", ".join(f"{n}: {r.id if r else 'none'}" for n, r in lives.items())
        first = next((r.id for r in lives.values() if r), "ID")
        errors.append(f"the hosts' live releases differ ({shown}): a deploy stopped half-way; "
                      f"choose explicitly, e.g. `hakeep rollback {inv.source} --to {first} --limit HOST`, "
                      "after `hakeep releases`")
    hosts = []
    running_after: list[bool] = []
    all_ports: set[int] = set()
    restored_vrrp: list[bytes] = []
    binds: set[tuple[str, int]] = set()  # (address or "*", port) the restored haproxy.cfg files bind
    for lb in rollout_order(inv.lbs, facts):
        if lb.name not in names:
            continue
        f, hist = facts[lb.name], histories[lb.name]
        try:
            release = rollback_target(lb.name, hist.releases, to)
            files, remove = restored_files(lb.name, release, f)
        except ReleaseError as exc:
            errors.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            continue
        target = restore_target(inv, release, files, remove, keep_vip=must_keep_vip(lb.name, facts, names))
        running_after.append(target.running[KEEPALIVED.name])
        all_ports.update(target.ports)
        restored_vrrp += [mf.content for mf in files if mf.path == KEEPALIVED_CONF]
        binds.update(restored_binds(files))
        hosts.append(host_plan(meta, lb.name, f, hist, target, report_drift=False))
    # each VIP with the restored ports it serves (as the restored files bind them: "*" or its address)
    views = [inv.for_vip(v.name) for v in inv.vips if v.address == inv.cluster.vip  # the others: where restored
             or any(f" {v.address.ip}/".encode() in conf for conf in restored_vrrp)] if inv.extra_vips else [inv]
    proofs = [(w.cluster.vip_name, proof(w, sorted({p for a, p in binds if a in ("*", str(w.cluster.vip.ip))})
                                         if inv.extra_vips else sorted(all_ports), expect_vip=any(running_after)))
              for w in views]
    return Plan(release_id=release_id, kind=ReleaseKind.ROLLBACK, hosts=tuple(hosts), proof=proofs[0][1],
                errors=tuple(errors), warnings=tuple(warnings), extra_proofs=tuple(proofs[1:]))


def member_changes(inv: Inventory, facts: Mapping[str, HostFacts], forget: Sequence[str],
                   leaving: Mapping[str, HostFacts]) -> tuple[list[Member], list[str], list[str]]:
    """The members this deploy forgets, and the errors (a member dropped without a word on what
    happened to it) and warnings (members forgotten, LBs joining) of the change of the LB set."""
    errors: list[str] = []
    warnings: list[str] = []
    gone = dropped(inv, facts)
    forgotten = [m for m in gone if any(matches(m, w) for w in forget)]
    for word in forget:
        if not any(matches(m, word) for m in gone):
            errors.append(f"--forget {word}: no LB the hosts remember is called that, or it is still in the inventory")
    for m in gone:
        if any(matches(m, w) for w in leaving):
            warnings.append(f"{m.label} leaves the set (--decommission): keepalived stops there first, the VIP "
                            "moves to the others, then haproxy stops; its files stay")
        elif m in forgotten:
            warnings.append(f"{m.label} leaves the set without being reached (--forget): if it comes back with "
                            "keepalived running, it takes the VIP too; `hakeep status` reports that as a split brain")
        else:
            errors.append(f"{m.label} is no longer in the inventory, but is still a member for "
                          f"{', '.join(m.seen_by)}: left running, it would take the VIP (split brain). Say what "
                          f"happened to it: --decommission {m.name or m.address} to stop it first (it must be "
                          f"reachable), or --forget {m.name or m.address} if it is gone for good")
    for name in joining(inv, facts):
        warnings.append(f"{name} joins the set of LBs: the others get it as a VRRP peer")
    return forgotten, errors, warnings


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
    before, after = _instances(old), _instances(new)
    for name, pattern in _VRRP_KEYS.items():  # each instance's, by name (one added or removed changes none)
        for inst in before.keys() & after.keys():
            a, b = re.search(pattern, before[inst]), re.search(pattern, after[inst])
            if a and b and a.group(1) != b.group(1) and name not in out:
                out.append(name)
    return out


def _instances(conf: str) -> dict[str, str]:
    """keepalived.conf's vrrp_instance blocks by name (each to the next top-level block)."""
    parts = re.split(r"^vrrp_instance\s+(\S+)\s*\{", conf, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
