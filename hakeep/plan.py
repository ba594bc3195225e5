"""The plan: a pure function of (inventory, rendered files, facts) -> ordered steps per host.

``build_plan`` compares what each host has (:mod:`hakeep.facts`) with what it should have
(:mod:`hakeep.render`) and yields only the steps that are needed, each a shell script (from
:mod:`hakeep.shell`) with a one-line description. Dry-run prints this very object; deploy executes
it. It also finds preflight errors (nothing may change anywhere when there is one), orders the
rollout (hosts without the VIP first, the VIP holder last), and pre-computes each host's restore
steps for when its health gate fails. No I/O happens here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hakeep import __version__, shell
from hakeep.facts import RELEASES_DIR, UNITS, HostFacts
from hakeep.inventory import Inventory, LoadBalancer
from hakeep.render import HAPROXY_CFG, KEEPALIVED_CONF, MASK, STATS_SOCKET, VRRP_STATE_FILE, HostFiles

CHECK_ROOT = "/run/hakeep/check-"
LOCK_PATH = "/run/hakeep.lock"


@dataclass(frozen=True)
class Step:
    action: str  # install backup stage commit validate mode sysctl firewalld selinux service wait gate record restore
    describe: str
    script: str = field(default="", repr=False)
    stdin: bytes = field(default=b"", repr=False)
    wait: float = 0.0  # > 0: poll the script until it succeeds, at most this many seconds


@dataclass(frozen=True)
class FileChange:
    path: str
    action: str  # "create", "update" or "mode"
    diff: str  # unified diff with secrets masked; "" for a mode-only change
    old_mode: int | None
    new_mode: int


@dataclass(frozen=True)
class HostPlan:
    host: str
    holds_vip: bool
    packages: tuple[str, ...]  # to install
    install: Step | None
    validate: tuple[Step, ...]  # check the new files with the host's binaries, in a private folder
    changes: tuple[FileChange, ...]
    steps: tuple[Step, ...]  # the rollout of this host, gate included
    restore: tuple[Step, ...]  # back to the files and unit states before this run
    release_dir: str
    manifest: Mapping[str, object] = field(repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.packages or self.steps)


@dataclass(frozen=True)
class Plan:
    release_id: str
    vip: str
    ports: tuple[int, ...]
    hosts: tuple[HostPlan, ...]  # rollout order
    errors: tuple[str, ...]  # preflight failures: nothing may change while there is one
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.host == name)


_SECRET_LINE = re.compile(r"(auth_pass\s+|stats auth [^:\s]+:)\S+")


def mask(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, MASK)
    return _SECRET_LINE.sub(lambda m: m.group(1) + MASK, text)


def unified_diff(path: str, old: bytes | None, new: bytes, secrets: Sequence[str]) -> str:
    a = mask(old.decode("utf-8", "replace"), secrets).splitlines(keepends=True) if old is not None else []
    b = mask(new.decode("utf-8", "replace"), secrets).splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"{path} (live)" if old is not None else "/dev/null",
                                 tofile=f"{path} (new)")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rollout_order(lbs: Sequence[LoadBalancer], facts: Mapping[str, HostFacts]) -> list[LoadBalancer]:
    """Hosts without the VIP first (inventory order), then the holder(s)."""
    return sorted(lbs, key=lambda lb: facts[lb.name].holds_vip)


def preflight(inv: Inventory, facts: Mapping[str, HostFacts], names: Sequence[str]) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    for i, lb in enumerate(inv.lbs):
        if lb.name not in names:
            continue
        f = facts[lb.name]
        where = f"{lb.name}"
        if f.uid != 0:
            errors.append(f"{where}: privileged commands run as uid {f.uid}, not root: set sudo = true "
                          f"for this host (lb[{i}].ssh.sudo) or connect as root")
        if "systemctl" not in f.tools:
            errors.append(f"{where}: systemctl not found; hakeep manages systemd hosts only")
        missing = [p for p in shell.PACKAGES if not f.installed(p)]
        if missing and f.pkgmgr is None:
            errors.append(f"{where}: {', '.join(missing)} not installed and no dnf, yum or apt-get found")
        if not f.iface_present:
            errors.append(f"{where}: interface {lb.interface} not found (lb[{i}].interface)")
        elif not any(a.split("/")[0] == str(lb.address) for a in f.iface_addresses):
            have = ", ".join(f.iface_addresses) or "no IPv4 address"
            errors.append(f"{where}: {lb.address} is not on {lb.interface} (it has {have}); "
                          f"check lb[{i}].address and lb[{i}].interface")
        for fe in inv.frontends:
            for li in f.listeners:
                if li.port == fe.port and li.process != "haproxy" and not (
                        li.process == "" and f.units.get("haproxy") and f.units["haproxy"].running):
                    who = li.process or "another program"
                    errors.append(f"{where}: port {fe.port} (frontend {fe.name}) is already held by {who} "
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
    """The whole deploy plan. ``validation`` is ``render_all(..., root=CHECK_ROOT + release_id)``."""
    names = [lb.name for lb in inv.lbs if limit is None or lb.name in limit]
    errors, warnings = preflight(inv, facts, names)
    ctx = _Context(inv, release_id, now, operator)
    hosts = tuple(
        _host_plan(ctx, lb, facts[lb.name], desired[lb.name], validation[lb.name])
        for lb in rollout_order(inv.lbs, facts) if lb.name in names
    )
    for h in hosts:
        f = facts[h.host]
        if h.changed and f.firewalld == "running":
            warnings.append(f"{h.host}: firewalld is running: frontend ports and VRRP are opened in it")
    return Plan(release_id=release_id, vip=str(inv.cluster.vip.ip), ports=tuple(fe.port for fe in inv.frontends),
                hosts=hosts, errors=tuple(errors), warnings=tuple(warnings))


@dataclass(frozen=True)
class _Context:
    inv: Inventory
    release_id: str
    now: str
    operator: str


def _host_plan(ctx: _Context, lb: LoadBalancer, f: HostFacts, want: HostFiles, check: HostFiles) -> HostPlan:
    inv = ctx.inv
    packages = tuple(p for p in shell.PACKAGES if not f.installed(p))
    install = None
    if packages and f.pkgmgr:
        install = Step("install", f"install {' '.join(packages)} with {f.pkgmgr}",
                       shell.install(f.pkgmgr, packages))
    root = CHECK_ROOT + ctx.release_id
    validate = _validate_steps(root, check)
    secrets = tuple(s for mf in want.files for s in mf.secrets)
    changes: list[FileChange] = []
    content_changed: list[str] = []
    for mf in want.files:
        live = f.file(mf.path)
        if not live.exists:
            changes.append(FileChange(mf.path, "create", unified_diff(mf.path, None, mf.content, secrets),
                                      None, mf.mode))
            content_changed.append(mf.path)
        elif live.sha256 != sha256(mf.content):
            changes.append(FileChange(mf.path, "update", unified_diff(mf.path, live.content, mf.content, secrets),
                                      live.mode, mf.mode))
            content_changed.append(mf.path)
        elif (live.mode, live.owner, live.group) != (mf.mode, mf.owner, mf.group):
            changes.append(FileChange(mf.path, "mode", "", live.mode, mf.mode))

    release_dir = f"{RELEASES_DIR}/{ctx.release_id}"
    manifest = _manifest(ctx, lb, f, want, packages)
    steps: list[Step] = []
    by_service = {s: [mf for mf in want.files if mf.service == s] for s in UNITS}
    changed_svc = {s: any(mf.path in content_changed for mf in by_service[s]) for s in UNITS}
    unit_actions = {s: _unit_actions(s, f, changed_svc[s] or s in packages) for s in UNITS}
    needs_sysctl = inv.needs_nonlocal_bind and f.sysctls.get("net.ipv4.ip_nonlocal_bind") != "1"
    fw = _firewalld_step(inv, f)
    sel = f.selinux == "Enforcing" and f.selinux_connect_any is not True
    if changes or any(unit_actions.values()) or needs_sysctl or fw or sel:
        paths = [mf.path for mf in want.files]
        steps.append(Step("backup", f"back up live files to {release_dir}",
                          shell.backup(release_dir, paths), manifest_bytes(manifest)))
        for mf in want.files:
            if mf.path in content_changed:
                steps.append(Step("stage", f"upload {mf.path} (mode {mf.mode:04o}) beside the live file",
                                  shell.stage_file(mf.path, mf.mode, mf.owner, mf.group), mf.content))
        for ch in changes:
            if ch.action == "mode":
                mf = want.file(ch.path)
                steps.append(Step("mode", f"set {ch.path} to {mf.owner}:{mf.group} {mf.mode:04o}",
                                  shell.set_mode(ch.path, mf.mode, mf.owner, mf.group)))
        if needs_sysctl:
            steps.append(Step("sysctl", "set net.ipv4.ip_nonlocal_bind = 1 (haproxy binds the VIP)",
                              shell.sysctl_nonlocal_bind()))
        if fw:
            steps.append(fw)
        if sel:
            steps.append(Step("selinux", "SELinux is enforcing: setsebool -P haproxy_connect_any 1",
                              shell.selinux_connect_any()))
        steps += _service_steps("haproxy", by_service["haproxy"], content_changed, unit_actions["haproxy"])
        if changed_svc["haproxy"] or unit_actions["haproxy"]:
            steps.append(Step("wait", "wait until haproxy listens on every frontend port",
                              _listen_script(inv), wait=30.0))
        steps += _service_steps("keepalived", by_service["keepalived"], content_changed,
                                unit_actions["keepalived"])
        steps.append(Step("gate", "health gate: units active, ports listening, backends known, VRRP "
                          "MASTER/BACKUP", _gate_script(inv), wait=max(30.0, inv.cluster.advert_int * 10 + 15)))
        steps.append(Step("record", f"mark release {ctx.release_id} complete",
                          shell.write_manifest(release_dir), manifest_bytes({**manifest, "status": "complete"})))
    restore = _restore_steps(release_dir, f, want, unit_actions)
    return HostPlan(host=lb.name, holds_vip=f.holds_vip, packages=packages, install=install,
                    validate=validate, changes=tuple(changes), steps=tuple(steps), restore=restore,
                    release_dir=release_dir, manifest=manifest)


def _validate_steps(root: str, check: HostFiles) -> tuple[Step, ...]:
    steps = [Step("validate", f"prepare private folder {root}", shell.make_private_dir(root))]
    for mf in check.files:
        steps.append(Step("validate", f"upload the new {mf.path} into it", shell.upload_into(root, mf.path, mf.mode),
                          mf.content))
    checks = [tuple(root + mf.path if a == "{}" else a for a in mf.validate) for mf in check.files if mf.validate]
    steps.append(Step("validate", "check the new files with the host's own haproxy -c and keepalived -t, "
                      "then remove the folder", shell.validate_copy(root, checks)))
    return tuple(steps)


def _unit_actions(unit: str, f: HostFacts, config_changed: bool) -> tuple[str, ...]:
    u = f.units.get(unit)
    fresh = not f.installed(unit)
    actions: list[str] = []
    if fresh or u is None or u.enabled not in ("enabled", "static", "alias", "indirect", "generated"):
        actions.append("enable")
    if config_changed or fresh:
        actions.append("reload-or-restart")
    elif u is None or not u.running:
        actions.append("start")
    return tuple(actions)


def _service_steps(unit: str, files: Sequence[object], changed: Sequence[str], actions: Sequence[str]) -> list[Step]:
    from hakeep.render import ManagedFile

    steps: list[Step] = []
    mfs = [mf for mf in files if isinstance(mf, ManagedFile) and mf.path in changed]
    main = HAPROXY_CFG if unit == "haproxy" else KEEPALIVED_CONF
    aux = [mf.path for mf in mfs if mf.path != main]
    if aux:
        steps.append(Step("commit", f"move the new {', '.join(aux)} into place", shell.commit_files(aux)))
    for mf in mfs:
        if mf.path == main:
            steps.append(Step("validate", f"validate the uploaded {main} with {' '.join(mf.validate[:2])}",
                              shell.validate_staged(mf.validate, main)))
            steps.append(Step("commit", f"atomically replace {main}", shell.commit_files([main])))
    for action in actions:
        verb = {"reload-or-restart": "reload (or start)", "enable": "enable", "start": "start"}[action]
        steps.append(Step("service", f"{verb} {unit}", shell.systemctl(action, unit)))
    return steps


def _firewalld_step(inv: Inventory, f: HostFacts) -> Step | None:
    if f.firewalld != "running":
        return None
    ports = [fe.port for fe in inv.frontends if f"{fe.port}/tcp" not in f.firewalld_ports]
    vrrp = "vrrp" not in f.firewalld_protocols
    if not ports and not vrrp:
        return None
    what = ", ".join([f"{p}/tcp" for p in ports] + (["VRRP (protocol 112)"] if vrrp else []))
    return Step("firewalld", f"open {what} in firewalld (permanent)", shell.firewalld(ports, vrrp))


def _listen_script(inv: Inventory) -> str:
    return shell.script(*(f'ss -Hltn "sport = :{fe.port}" | grep -q .' for fe in inv.frontends))


def _gate_script(inv: Inventory) -> str:
    backends = {fe.backend_name: [s.name for s in fe.servers] for fe in inv.frontends}
    return shell.host_gate([fe.port for fe in inv.frontends], backends, VRRP_STATE_FILE, STATS_SOCKET)


def _restore_steps(release_dir: str, f: HostFacts, want: HostFiles,
                   unit_actions: Mapping[str, Sequence[str]]) -> tuple[Step, ...]:
    paths = [mf.path for mf in want.files]
    present = [p for p in paths if f.file(p).exists]
    absent = [p for p in paths if not f.file(p).exists]
    steps = [Step("restore", "drop staged files", shell.drop_staged(paths)),
             Step("restore", f"put back the files saved in {release_dir}",
                  shell.restore(release_dir, present, absent))]
    for unit in UNITS:
        u = f.units.get(unit)
        if u is not None and u.running:
            steps.append(Step("restore", f"reload (or restart) {unit} with its previous config",
                              shell.systemctl("reload-or-restart", unit)))
        else:
            steps.append(Step("restore", f"stop {unit} (it was not running)", shell.systemctl("stop", unit)))
        if "enable" in unit_actions[unit] and (u is None or u.enabled in ("disabled", "")):
            steps.append(Step("restore", f"disable {unit} (it was not enabled)", shell.systemctl("disable", unit)))
    return tuple(steps)


def _manifest(ctx: _Context, lb: LoadBalancer, f: HostFacts, want: HostFiles,
              packages: Sequence[str]) -> dict[str, object]:
    before = []
    for mf in want.files:
        live = f.file(mf.path)
        before.append({"path": mf.path, "existed": live.exists, "sha256": live.sha256,
                       "mode": f"{live.mode:04o}" if live.mode is not None else None,
                       "owner": live.owner, "group": live.group})
    return {
        "id": ctx.release_id, "kind": "deploy", "status": "in-progress", "time": ctx.now,
        "hakeep_version": __version__, "inventory": ctx.inv.source, "inventory_digest": ctx.inv.digest,
        "operator": ctx.operator, "host": lb.name, "files": before,
        "deployed": [{"path": mf.path, "sha256": sha256(mf.content), "mode": f"{mf.mode:04o}"}
                     for mf in want.files],
        "packages_installed": list(packages),
        "units_before": {u: {"active": x.active, "enabled": x.enabled} for u, x in f.units.items()},
    }


def manifest_bytes(data: Mapping[str, object]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
