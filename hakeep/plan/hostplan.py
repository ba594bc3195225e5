"""One host's plan: compare its facts with a target state and emit only the steps that are needed.

A :class:`Target` (built by :mod:`.targets`) says what a host should end up with. :func:`host_plan`
turns (target, facts, history) into a :class:`~hakeep.plan.steps.HostPlan`, every part of it: the
package install, the on-host validation, the rollout — back up, stage beside the live files,
validate there, commit atomically, reload or restart only what changed, wait, health gate, record
the release, prune — the restore steps that put the host back (gate re-check included), the marks
that record a failure, and the drift found. Pure: scripts are built, not run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hakeep import __version__
from hakeep.hosts import commands, keepalived
from hakeep.hosts.facts import HostFacts
from hakeep.layout import (
    ENABLED_STATES,
    HAPROXY,
    KEEPALIVED,
    KEEPALIVED_CONF,
    RELEASES_DIR,
    UNIT_NAMES,
    is_dropin,
    owner_of,
    unit,
)
from hakeep.plan.releases import History, ReleaseKind, ReleaseStatus, manifest_bytes
from hakeep.plan.steps import (
    Action,
    ChangeKind,
    DriftNote,
    FailureMarks,
    FileChange,
    HostPlan,
    Step,
    Validation,
)
from hakeep.render.files import HostFiles, ManagedFile
from hakeep.render.masking import unified_diff


class UnitAction(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    RELOAD = "reload-or-restart"
    START = "start"
    STOP = "stop"


_VERBS = {UnitAction.RELOAD: "reload (or start)", UnitAction.ENABLE: "enable", UnitAction.START: "start",
          UnitAction.DISABLE: "disable", UnitAction.STOP: "stop"}


@dataclass(frozen=True)
class Target:
    files: tuple[ManagedFile, ...]
    remove: tuple[str, ...] = ()
    running: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(UNIT_NAMES, True))
    enabled: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(UNIT_NAMES, True))
    extra: tuple[Step, ...] = ()  # host settings before the services start (sysctl, firewalld, SELinux)
    ports: tuple[int, ...] = ()  # frontend ports haproxy must listen on
    gate: str = ""  # the health-gate script when every unit runs
    gate_wait: float = 30.0
    check: HostFiles | None = None  # the validation copy (deploy only)
    check_root: str = ""
    kind: ReleaseKind = ReleaseKind.DEPLOY
    rolls_back: str | None = None
    keep_releases: int = 10


@dataclass(frozen=True)
class Meta:
    release_id: str
    now: str
    operator: str
    inventory: str
    inventory_digest: str
    members: Mapping[str, str] = field(default_factory=dict)  # the inventory's LBs: name -> address
    forgotten: tuple[str, ...] = ()  # members dropped without being reached (deploy --forget)
    members6: Mapping[str, str] = field(default_factory=dict)  # the LBs' IPv6 addresses (address6), by name


def host_plan(meta: Meta, host: str, f: HostFacts, hist: History, target: Target, *,
              packages: Sequence[str] = (), report_drift: bool = True) -> HostPlan:
    """``report_drift``: note files edited on the host since its live release (a deploy overwrites
    them and asks first; a rollback puts a saved state back whatever the files hold now)."""
    install = None
    if packages and f.pkgmgr:
        install = Step(Action.INSTALL, f"install {' '.join(packages)} with {f.pkgmgr}",
                       commands.install(f.pkgmgr, packages))
    changes, content_changed = _changes(f, target)
    removed = [p for p in target.remove if f.file(p).exists]
    release_dir = f"{RELEASES_DIR}/{meta.release_id}"
    manifest = _manifest(meta, host, f, hist, target, packages=packages)
    # a unit that runs an older config than its file (a reload failed or was never done) is reloaded
    # even when the file is already right, and its gate proves the file runs
    actions = {u: _unit_actions(u, f, target, changed=_touches(u, target, content_changed, removed) or u in f.stale,
                                fresh=u in packages) for u in UNIT_NAMES}
    steps: list[Step] = []
    if changes or any(actions.values()) or target.extra:
        paths = sorted({*(mf.path for mf in target.files), *target.remove})
        steps.append(Step(Action.BACKUP, f"back up live files to {release_dir}", commands.backup(release_dir, paths),
                          manifest_bytes(manifest)))
        for mf in target.files:
            if mf.path in content_changed:
                steps.append(Step(Action.STAGE, f"upload {mf.path} (mode {mf.mode:04o}) beside the live file",
                                  commands.stage_file(mf.path, mf.mode, mf.owner, mf.group), mf.content))
        for ch in changes:
            if ch.action is ChangeKind.MODE:
                mf = next(m for m in target.files if m.path == ch.path)
                steps.append(Step(Action.MODE, f"set {ch.path} to {mf.owner}:{mf.group} {mf.mode:04o}",
                                  commands.set_mode(ch.path, mf.mode, mf.owner, mf.group)))
        steps += target.extra
        for name in UNIT_NAMES:
            steps += _unit_steps(name, target, content_changed, removed, actions[name])
            if name == HAPROXY.name and target.running[name] and actions[name]:
                steps.append(Step(Action.WAIT, "wait until haproxy listens on every frontend port",
                                  commands.listening(target.ports), wait=30.0))
        steps.append(_gate(target.running, target.gate, target.gate_wait, target.files))
        steps.append(_mark(meta.release_id, release_dir, manifest, ReleaseStatus.COMPLETE))
        old = hist.prunable(target.keep_releases)
        if old:
            steps.append(Step(Action.PRUNE, f"keep the newest {target.keep_releases} releases: remove {', '.join(old)}",
                              commands.prune_releases(old)))
    return HostPlan(
        host=host, holds_vip=f.holds_vip, packages=tuple(packages), install=install,
        validation=_validation(target.check_root, target.check) if target.check is not None else None,
        changes=tuple(changes), steps=tuple(steps), restore=_restore_steps(release_dir, f, target, actions),
        on_failure=_failure_marks(meta.release_id, release_dir, manifest),
        release_dir=release_dir,
        drift=tuple(DriftNote(d.path, d.release) for d in hist.drift) if report_drift else (),
    )


def decommission_plan(meta: Meta, host: str, f: HostFacts, hist: History, *,
                      vips: Sequence[tuple[str, Sequence[int]]], wait: float) -> HostPlan:
    """An LB leaving the set while reachable: keepalived stopped and disabled first (its VIP moves to
    the others, which still count it as a peer), a gate that proves the VIP now answers from another
    host, then haproxy stopped and disabled, a release recorded. Its files stay (rollback can bring
    it back); a failure restarts what ran."""
    target = Target(files=(), running=dict.fromkeys(UNIT_NAMES, False), enabled=dict.fromkeys(UNIT_NAMES, False))
    release_dir = f"{RELEASES_DIR}/{meta.release_id}"
    manifest = {**_manifest(meta, host, f, hist, target, packages=()), "decommissioned": True}
    actions = {u: _unit_actions(u, f, target, changed=False, fresh=False) for u in UNIT_NAMES}
    steps = [Step(Action.BACKUP, f"record the decommission in {release_dir}", commands.backup(release_dir, []),
                  manifest_bytes(manifest))]
    for name in (KEEPALIVED.name, HAPROXY.name):  # keepalived first: haproxy serves until the VIP has moved
        if UnitAction.STOP in actions[name]:
            steps.append(Step(Action.SERVICE, f"stop {name}", commands.systemctl("stop", name)))
        if UnitAction.DISABLE in actions[name]:
            steps.append(Step(Action.SERVICE, f"disable {name}", commands.systemctl("disable", name)))
        if name == KEEPALIVED.name:  # every VIP (each with the frontend ports it serves)
            steps += [Step(Action.GATE, "the VIP has left this LB and answers from another" if len(vips) == 1 else
                           f"the VIP {vip} has left this LB and answers from another",
                           commands.vip_moved(vip, ports), wait=wait) for vip, ports in vips]
    steps.append(Step(Action.GATE, "health gate: both units stopped", commands.units_gate(target.running), wait=wait))
    steps.append(_mark(meta.release_id, release_dir, manifest, ReleaseStatus.COMPLETE))
    return HostPlan(
        host=host, holds_vip=f.holds_vip, packages=(), install=None, validation=None, changes=(),
        steps=tuple(steps), restore=_restore_steps(release_dir, f, target, actions),
        on_failure=_failure_marks(meta.release_id, release_dir, manifest),
        release_dir=release_dir, leaving=True,
    )


def _failure_marks(release_id: str, release_dir: str, manifest: Mapping[str, object]) -> FailureMarks:
    return FailureMarks(*(_mark(release_id, release_dir, manifest, status) for status in (
        ReleaseStatus.FAILED_RESTORED, ReleaseStatus.FAILED, ReleaseStatus.INTERRUPTED)))


def _mark(release_id: str, release_dir: str, manifest: Mapping[str, object], status: ReleaseStatus) -> Step:
    describe = {ReleaseStatus.COMPLETE: f"mark release {release_id} complete",
                ReleaseStatus.FAILED_RESTORED: "mark the release failed and restored"}
    return Step(Action.RECORD, describe.get(status, f"mark the release {status.value}"),
                commands.write_manifest(release_dir), manifest_bytes({**manifest, "status": status.value}))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _changes(f: HostFacts, target: Target) -> tuple[list[FileChange], list[str]]:
    changes: list[FileChange] = []
    known = tuple({s for mf in target.files for s in mf.secrets})
    content_changed: list[str] = []
    for mf in target.files:
        live = f.file(mf.path)
        if not live.exists:
            diff = unified_diff(mf.path, None, mf.content, mf.shown, mf.secrets)
            changes.append(FileChange(mf.path, ChangeKind.CREATE, diff, None, mf.mode))
            content_changed.append(mf.path)
        elif live.sha256 != sha256(mf.content):
            changes.append(FileChange(mf.path, ChangeKind.UPDATE,
                                      unified_diff(mf.path, live.content, mf.content, mf.shown, mf.secrets), live.mode,
                                      mf.mode))
            content_changed.append(mf.path)
        elif (live.mode, live.owner, live.group) != (mf.mode, mf.owner, mf.group):
            changes.append(FileChange(mf.path, ChangeKind.MODE, "", live.mode, mf.mode))
    for path in target.remove:
        live = f.file(path)
        if live.exists:
            changes.append(FileChange(path, ChangeKind.DELETE, unified_diff(path, live.content, None, secrets=known),
                                      live.mode, None))
    return changes, content_changed


def _touches(name: str, target: Target, content_changed: Sequence[str], removed: Sequence[str]) -> bool:
    mine = {mf.path for mf in target.files if mf.service == name} | {p for p in target.remove
                                                                     if owner_of(p).name == name}
    return any(p in mine for p in (*content_changed, *removed))


def _unit_actions(name: str, f: HostFacts, target: Target, *, changed: bool, fresh: bool) -> tuple[UnitAction, ...]:
    u = f.units.get(name)
    is_enabled = u is not None and not fresh and u.enabled in ENABLED_STATES
    is_running = u is not None and not fresh and u.running
    actions: list[UnitAction] = []
    if target.enabled[name] and not is_enabled:
        actions.append(UnitAction.ENABLE)
    if not target.enabled[name] and (is_enabled or fresh):
        actions.append(UnitAction.DISABLE)
    if target.running[name]:
        if changed or fresh:
            actions.append(UnitAction.RELOAD)
        elif not is_running:
            actions.append(UnitAction.START)
    elif is_running or fresh:
        actions.append(UnitAction.STOP)
    return tuple(actions)


def _unit_steps(name: str, target: Target, changed: Sequence[str], removed: Sequence[str],
                actions: Sequence[UnitAction]) -> list[Step]:
    steps: list[Step] = []
    if UnitAction.STOP in actions:  # a unit that is to stop stops before its files change under it
        steps.append(Step(Action.SERVICE, f"stop {name}", commands.systemctl("stop", name)))
    mfs = [mf for mf in target.files if mf.service == name and mf.path in changed]
    main = unit(name).main_config
    # scripts and CA files first (the main config refers to them); a drop-in last, once the main
    # config passed, just before systemd reads it
    aux = [mf.path for mf in mfs if mf.path != main and not is_dropin(mf.path)]
    dropins = [mf.path for mf in mfs if is_dropin(mf.path)]
    if aux:
        steps.append(Step(Action.COMMIT, f"move the new {', '.join(aux)} into place", commands.commit_files(aux)))
    for mf in mfs:
        if mf.path == main:
            if mf.validate:
                what = f"validate the uploaded {main} with {' '.join(mf.validate[:2])}"
                steps.append(Step(Action.VALIDATE, what + (" (it ran here before: a refusal is reported, the gate "
                                                           "decides)" if mf.ran_before else ""),
                                  commands.validate_staged(mf.validate, main, tolerate=mf.ran_before)))
            steps.append(Step(Action.COMMIT, f"atomically replace {main}", commands.commit_files([main])))
    if dropins:
        steps.append(Step(Action.COMMIT, f"move the new {', '.join(dropins)} into place",
                          commands.commit_files(dropins)))
    gone = [p for p in removed if owner_of(p).name == name]
    if gone:
        steps.append(Step(Action.REMOVE, f"remove {', '.join(gone)} (absent before)", commands.remove_files(gone)))
    if any(is_dropin(p) for p in (*dropins, *gone)):  # before the unit is reloaded, started or stopped
        steps.append(Step(Action.SERVICE, f"systemctl daemon-reload (the drop-in of {name} changed)",
                          commands.daemon_reload()))
    steps += [Step(Action.SERVICE, f"{_VERBS[a]} {name}", commands.systemctl(a.value, name))
              for a in actions if a is not UnitAction.STOP]
    return steps


def keepalived_expect(content: bytes | None) -> tuple[str, ...]:
    """What keepalived must report running once it has loaded ``content`` (its keepalived.conf)."""
    return keepalived.expected(content.decode("utf-8", "replace")) if content is not None else ()


def files_expect(files: Sequence[ManagedFile]) -> tuple[str, ...]:
    """:func:`keepalived_expect` of the keepalived.conf among ``files`` (none there: nothing to compare)."""
    return next((keepalived_expect(mf.content) for mf in files if mf.path == KEEPALIVED_CONF), ())


def _gate(running: Mapping[str, bool], full_gate: str, wait: float, files: Sequence[ManagedFile]) -> Step:
    if all(running.values()) and full_gate:
        return Step(Action.GATE, "health gate: units active and running the new files, ports listening, "
                    "backends known, VRRP MASTER/BACKUP", full_gate, wait=wait)
    return Step(Action.GATE, "health gate: units in their target states",
                commands.units_gate(running, files_expect(files)), wait=wait)


def _validation(root: str, check: HostFiles) -> Validation:
    prepare = [Step(Action.VALIDATE, f"prepare private folder {root}", commands.make_private_dir(root))]
    for mf in check.files:
        prepare.append(Step(Action.VALIDATE, f"upload the new {mf.path} into it",
                            commands.upload_into(root, mf.path, mf.mode), mf.content))
    checks = [unit(mf.service).validate_argv(root + mf.path) for mf in check.files if mf.validate]
    return Validation(tuple(prepare), Step(
        Action.VALIDATE, "check the new files with the host's own haproxy -c and keepalived -t, then remove the folder",
        commands.validate_copy(root, checks)))


def _restore_steps(release_dir: str, f: HostFacts, target: Target,
                   actions: Mapping[str, Sequence[UnitAction]]) -> tuple[Step, ...]:
    paths = sorted({*(mf.path for mf in target.files), *target.remove})
    steps = [Step(Action.RESTORE, "drop staged files", commands.drop_staged(paths)),
             Step(Action.RESTORE, f"put back the files saved in {release_dir}", commands.restore(release_dir, paths))]
    if any(is_dropin(p) for p in paths):
        steps.append(Step(Action.RESTORE, "systemctl daemon-reload (the drop-ins put back)", commands.daemon_reload()))
    was_running: dict[str, bool] = {}
    for name in UNIT_NAMES:
        u = f.units.get(name)
        was_running[name] = u is not None and u.running
        if was_running[name]:
            steps.append(Step(Action.RESTORE, f"reload (or restart) {name} with its previous config",
                              commands.systemctl("reload-or-restart", name)))
        else:
            steps.append(Step(Action.RESTORE, f"stop {name} (it was not running)", commands.systemctl("stop", name)))
        was_enabled = u is not None and u.enabled in ENABLED_STATES
        if UnitAction.ENABLE in actions[name] and not was_enabled:
            steps.append(Step(Action.RESTORE, f"disable {name} (it was not enabled)",
                              commands.systemctl("disable", name)))
        if UnitAction.DISABLE in actions[name] and was_enabled:
            steps.append(Step(Action.RESTORE, f"enable {name} again", commands.systemctl("enable", name)))
    before = f.file(KEEPALIVED_CONF)
    expect = keepalived_expect(before.content) if before.exists and was_running[KEEPALIVED.name] else ()
    gate = Step(Action.RESTORE, "re-check: units back in their previous states, running the restored files",
                commands.units_gate(was_running, expect), wait=30.0)
    return (*steps, gate)


def _manifest(meta: Meta, host: str, f: HostFacts, hist: History, target: Target, *,
              packages: Sequence[str]) -> dict[str, object]:
    before = []
    for path in sorted({*(mf.path for mf in target.files), *target.remove}):
        live = f.file(path)
        before.append({"path": path, "existed": live.exists, "sha256": live.sha256,
                       "mode": f"{live.mode:04o}" if live.mode is not None else None,
                       "owner": live.owner, "group": live.group})
    deployed = [{"path": mf.path, "existed": True, "sha256": sha256(mf.content), "mode": f"{mf.mode:04o}",
                 "owner": mf.owner, "group": mf.group} for mf in target.files]
    deployed += [{"path": p, "existed": False, "sha256": None, "mode": None} for p in target.remove]
    extra = {"rolls_back": target.rolls_back} if target.rolls_back else {}
    return {
        "id": meta.release_id, "seq": hist.next_seq(), "kind": target.kind.value,
        "status": ReleaseStatus.IN_PROGRESS.value, "time": meta.now,
        "hakeep_version": __version__, "inventory": meta.inventory, "inventory_digest": meta.inventory_digest,
        "operator": meta.operator, "host": host, "files": before, "deployed": deployed,
        "packages_installed": list(packages),
        "members": dict(meta.members),
        **({"members6": dict(meta.members6)} if meta.members6 else {}),
        **({"forgotten": list(meta.forgotten)} if meta.forgotten else {}),
        "units_before": {u: {"active": x.active, "enabled": x.enabled} for u, x in f.units.items()},
        **extra,
    }
