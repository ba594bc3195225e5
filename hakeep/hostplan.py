"""One host's steps: compare its facts with a target state and emit only what is needed.

A :class:`Target` says what a host should end up with: files (with content, mode, owner), files
to remove, and for each unit whether it runs and is enabled. A deploy's target comes from the
rendered inventory; a rollback's from a release's backup. :func:`host_plan` turns (target, facts)
into the ordered steps — back up, stage beside the live files, validate there, commit atomically,
reload or restart only what changed, wait, health gate, record the release, prune — and into the
restore steps that put the host back, gate re-check included. Pure: scripts are built, not run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hakeep import __version__, shell
from hakeep.facts import RELEASES_DIR, UNITS, HostFacts
from hakeep.releases import history
from hakeep.render import HAPROXY_CFG, KEEPALIVED_CONF, VRRP_STATE_FILE, HostFiles, ManagedFile
from hakeep.steps import FileChange, HostPlan, Step, manifest_bytes, sha256, unified_diff

ENABLED = ("enabled", "static", "alias", "indirect", "generated")
MAIN = {"haproxy": HAPROXY_CFG, "keepalived": KEEPALIVED_CONF}


@dataclass(frozen=True)
class Target:
    files: tuple[ManagedFile, ...]
    remove: tuple[str, ...] = ()
    running: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(UNITS, True))
    enabled: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(UNITS, True))
    extra: tuple[Step, ...] = ()  # host settings before the services start (sysctl, firewalld, SELinux)
    ports: tuple[int, ...] = ()  # frontend ports haproxy must listen on
    gate: str = ""  # the health-gate script when every unit runs
    gate_wait: float = 30.0
    check: HostFiles | None = None  # the validation copy (deploy only)
    check_root: str = ""
    manifest: Mapping[str, object] = field(default_factory=dict)  # kind-specific manifest fields
    keep_releases: int = 10


@dataclass(frozen=True)
class Meta:
    release_id: str
    now: str
    operator: str
    inventory: str
    inventory_digest: str


def host_plan(meta: Meta, host: str, f: HostFacts, target: Target, packages: Sequence[str] = ()) -> HostPlan:
    install = None
    if packages and f.pkgmgr:
        install = Step("install", f"install {' '.join(packages)} with {f.pkgmgr}", shell.install(f.pkgmgr, packages))
    secrets = tuple(s for mf in target.files for s in mf.secrets)
    changes, content_changed = _changes(f, target, secrets)
    removed = [p for p in target.remove if f.file(p).exists]
    release_dir = f"{RELEASES_DIR}/{meta.release_id}"
    manifest = _manifest(meta, host, f, target, packages)
    actions = {u: _unit_actions(u, f, target, changed=_touches(u, target, content_changed, removed),
                                fresh=u in packages) for u in UNITS}
    steps: list[Step] = []
    if changes or any(actions.values()) or target.extra:
        paths = sorted({*(mf.path for mf in target.files), *target.remove})
        steps.append(Step("backup", f"back up live files to {release_dir}", shell.backup(release_dir, paths),
                          manifest_bytes(manifest)))
        for mf in target.files:
            if mf.path in content_changed:
                steps.append(Step("stage", f"upload {mf.path} (mode {mf.mode:04o}) beside the live file",
                                  shell.stage_file(mf.path, mf.mode, mf.owner, mf.group), mf.content))
        for ch in changes:
            if ch.action == "mode":
                mf = next(m for m in target.files if m.path == ch.path)
                steps.append(Step("mode", f"set {ch.path} to {mf.owner}:{mf.group} {mf.mode:04o}",
                                  shell.set_mode(ch.path, mf.mode, mf.owner, mf.group)))
        steps += target.extra
        for unit in UNITS:
            steps += _unit_steps(unit, target, content_changed, removed, actions[unit])
            if unit == "haproxy" and target.running["haproxy"] and actions["haproxy"]:
                steps.append(Step("wait", "wait until haproxy listens on every frontend port",
                                  _listen_script(target), wait=30.0))
        steps.append(_gate(target.running, target.gate, target.gate_wait))
        done = {**manifest, "status": "complete"}
        steps.append(Step("record", f"mark release {meta.release_id} complete", shell.write_manifest(release_dir),
                          manifest_bytes(done)))
        old = _prunable(f, target.keep_releases)
        if old:
            steps.append(Step("prune", f"keep the newest {target.keep_releases} releases: remove {', '.join(old)}",
                              shell.prune_releases(RELEASES_DIR, old)))
    validate = _validate_steps(target.check_root, target.check) if target.check is not None else ()
    return HostPlan(host=host, holds_vip=f.holds_vip, packages=tuple(packages), install=install, validate=validate,
                    changes=tuple(changes), steps=tuple(steps), restore=_restore_steps(release_dir, f, target, actions),
                    release_dir=release_dir, manifest=manifest)


def _prunable(f: HostFacts, keep: int) -> list[str]:
    """Release ids beyond the newest ``keep`` once this run's release is added (oldest first)."""
    existing = [r.id for r in history(f)]
    excess = len(existing) + 1 - keep
    return existing[:excess] if excess > 0 else []


def next_seq(f: HostFacts) -> int:
    """This host's next release number: order comes from the host's history, not from any clock."""
    return max((r.seq for r in history(f)), default=0) + 1


def _changes(f: HostFacts, target: Target, secrets: Sequence[str]) -> tuple[list[FileChange], list[str]]:
    changes: list[FileChange] = []
    content_changed: list[str] = []
    for mf in target.files:
        live = f.file(mf.path)
        if not live.exists:
            diff = unified_diff(mf.path, None, mf.content, secrets)
            changes.append(FileChange(mf.path, "create", diff, None, mf.mode))
            content_changed.append(mf.path)
        elif live.sha256 != sha256(mf.content):
            changes.append(FileChange(mf.path, "update", unified_diff(mf.path, live.content, mf.content, secrets),
                                      live.mode, mf.mode))
            content_changed.append(mf.path)
        elif (live.mode, live.owner, live.group) != (mf.mode, mf.owner, mf.group):
            changes.append(FileChange(mf.path, "mode", "", live.mode, mf.mode))
    for path in target.remove:
        live = f.file(path)
        if live.exists:
            changes.append(FileChange(path, "delete", unified_diff(path, live.content, None, secrets), live.mode, None))
    return changes, content_changed


def _touches(unit: str, target: Target, content_changed: Sequence[str], removed: Sequence[str]) -> bool:
    mine = {mf.path for mf in target.files if mf.service == unit}
    mine |= {p for p in target.remove if p.startswith("/etc/keepalived/") == (unit == "keepalived")}
    return any(p in mine for p in (*content_changed, *removed))


def _unit_actions(unit: str, f: HostFacts, target: Target, *, changed: bool, fresh: bool) -> tuple[str, ...]:
    u = f.units.get(unit)
    is_enabled = u is not None and not fresh and u.enabled in ENABLED
    is_running = u is not None and not fresh and u.running
    actions: list[str] = []
    if target.enabled[unit] and not is_enabled:
        actions.append("enable")
    if not target.enabled[unit] and (is_enabled or fresh):
        actions.append("disable")
    if target.running[unit]:
        if changed or fresh:
            actions.append("reload-or-restart")
        elif not is_running:
            actions.append("start")
    elif is_running or fresh:
        actions.append("stop")
    return tuple(actions)


def _unit_steps(unit: str, target: Target, changed: Sequence[str], removed: Sequence[str],
                actions: Sequence[str]) -> list[Step]:
    steps: list[Step] = []
    if "stop" in actions:  # a unit that is to stop stops before its files change under it
        steps.append(Step("service", f"stop {unit}", shell.systemctl("stop", unit)))
    mfs = [mf for mf in target.files if mf.service == unit and mf.path in changed]
    main = MAIN[unit]
    aux = [mf.path for mf in mfs if mf.path != main]
    if aux:
        steps.append(Step("commit", f"move the new {', '.join(aux)} into place", shell.commit_files(aux)))
    for mf in mfs:
        if mf.path == main:
            if mf.validate:
                steps.append(Step("validate", f"validate the uploaded {main} with {' '.join(mf.validate[:2])}",
                                  shell.validate_staged(mf.validate, main)))
            steps.append(Step("commit", f"atomically replace {main}", shell.commit_files([main])))
    gone = [p for p in removed if p.startswith("/etc/keepalived/") == (unit == "keepalived")]
    if gone:
        steps.append(Step("remove", f"remove {', '.join(gone)} (absent before)", shell.remove_files(gone)))
    verbs = {"reload-or-restart": "reload (or start)", "enable": "enable", "start": "start", "disable": "disable"}
    steps += [Step("service", f"{verbs[a]} {unit}", shell.systemctl(a, unit)) for a in actions if a != "stop"]
    return steps


def _gate(running: Mapping[str, bool], full_gate: str, wait: float) -> Step:
    if all(running.values()) and full_gate:
        return Step("gate", "health gate: units active, ports listening, backends known, VRRP MASTER/BACKUP",
                    full_gate, wait=wait)
    return Step("gate", "health gate: units in their target states", shell.units_gate(running, VRRP_STATE_FILE),
                wait=wait)


def _listen_script(target: Target) -> str:
    return shell.script(*(f'ss -ltn "sport = :{port}" | grep -q LISTEN' for port in target.ports))


def _validate_steps(root: str, check: HostFiles) -> tuple[Step, ...]:
    steps = [Step("validate", f"prepare private folder {root}", shell.make_private_dir(root))]
    for mf in check.files:
        steps.append(Step("validate", f"upload the new {mf.path} into it", shell.upload_into(root, mf.path, mf.mode),
                          mf.content))
    checks = [tuple(root + mf.path if a == "{}" else a for a in mf.validate) for mf in check.files if mf.validate]
    steps.append(Step("validate", "check the new files with the host's own haproxy -c and keepalived -t, "
                      "then remove the folder", shell.validate_copy(root, checks)))
    return tuple(steps)


def _restore_steps(release_dir: str, f: HostFacts, target: Target,
                   actions: Mapping[str, Sequence[str]]) -> tuple[Step, ...]:
    paths = sorted({*(mf.path for mf in target.files), *target.remove})
    steps = [Step("restore", "drop staged files", shell.drop_staged(paths)),
             Step("restore", f"put back the files saved in {release_dir}", shell.restore(release_dir, paths))]
    was_running: dict[str, bool] = {}
    for unit in UNITS:
        u = f.units.get(unit)
        was_running[unit] = u is not None and u.running
        if was_running[unit]:
            steps.append(Step("restore", f"reload (or restart) {unit} with its previous config",
                              shell.systemctl("reload-or-restart", unit)))
        else:
            steps.append(Step("restore", f"stop {unit} (it was not running)", shell.systemctl("stop", unit)))
        if "enable" in actions[unit] and (u is None or u.enabled not in ENABLED):
            steps.append(Step("restore", f"disable {unit} (it was not enabled)", shell.systemctl("disable", unit)))
        if "disable" in actions[unit] and u is not None and u.enabled in ENABLED:
            steps.append(Step("restore", f"enable {unit} again", shell.systemctl("enable", unit)))
    gate = Step("restore", "re-check: units back in their previous states",
                shell.units_gate(was_running, VRRP_STATE_FILE), wait=30.0)
    return (*steps, gate)


def _manifest(meta: Meta, host: str, f: HostFacts, target: Target, packages: Sequence[str]) -> dict[str, object]:
    before = []
    for path in sorted({*(mf.path for mf in target.files), *target.remove}):
        live = f.file(path)
        before.append({"path": path, "existed": live.exists, "sha256": live.sha256,
                       "mode": f"{live.mode:04o}" if live.mode is not None else None,
                       "owner": live.owner, "group": live.group})
    deployed = [{"path": mf.path, "existed": True, "sha256": sha256(mf.content), "mode": f"{mf.mode:04o}",
                 "owner": mf.owner, "group": mf.group} for mf in target.files]
    deployed += [{"path": p, "existed": False, "sha256": None, "mode": None} for p in target.remove]
    return {
        "id": meta.release_id, "seq": next_seq(f), "kind": "deploy", "status": "in-progress", "time": meta.now,
        "hakeep_version": __version__, "inventory": meta.inventory, "inventory_digest": meta.inventory_digest,
        "operator": meta.operator, "host": host, "files": before, "deployed": deployed,
        "packages_installed": list(packages),
        "units_before": {u: {"active": x.active, "enabled": x.enabled} for u, x in f.units.items()},
        **target.manifest,
    }
