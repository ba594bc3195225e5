"""Release history on the LB hosts: manifests parsed, the live release, drift, rollback targets.

Every deploy (or rollback) that changes a host records ``/var/lib/hakeep/releases/<id>/`` there:
``manifest.json`` (id, kind, status, time, operator, hakeep version, inventory digest, the files as
they were before — path, existed, sha256, mode, owner — and as deployed, the unit states before,
packages installed) and ``files/`` holding the live files it replaced. Ids start with a UTC
timestamp, so they sort by time. This module reads that history from facts (pure) and answers:
which release is live, which files drifted since (edited on the host), and what a rollback puts
back. It never talks to a host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from hakeep.errors import HakeepError
from hakeep.hosts.facts import HostFacts
from hakeep.layout import MANAGED_MARK, UNIT_NAMES, UNITS, owner_of
from hakeep.render.files import ManagedFile


class ReleaseKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    UNKNOWN = "unknown"  # a corrupt manifest


class ReleaseStatus(StrEnum):
    IN_PROGRESS = "in-progress"  # running now (another run holds the lock)
    COMPLETE = "complete"
    FAILED_RESTORED = "failed-restored"
    INTERRUPTED = "interrupted"  # a signal stopped the run (this host was restored), or it was cut off
    FAILED = "failed"  # failed, and the restore failed too
    CORRUPT = "corrupt"  # the manifest cannot be read: listed, never used
    UNKNOWN = "unknown"


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: object, default: E) -> E:
    try:
        return kind(str(value))
    except ValueError:
        return default


def manifest_bytes(data: Mapping[str, object]) -> bytes:
    """A manifest as stored on the host (stable key order)."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class FileState:
    path: str
    existed: bool
    sha256: str | None
    mode: int | None
    owner: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Release:
    id: str
    seq: int  # the host's own release counter (0 when unknown): the order of the history
    kind: ReleaseKind
    status: ReleaseStatus
    time: str
    operator: str
    hakeep_version: str
    inventory: str
    inventory_digest: str
    before: tuple[FileState, ...]
    deployed: tuple[FileState, ...]
    units_before: Mapping[str, Mapping[str, str]]
    packages_installed: tuple[str, ...]
    rolls_back: str | None = None
    members: Mapping[str, str] = field(default_factory=dict)  # the LB set it was deployed for: name -> address
    forgotten: tuple[str, ...] = ()  # members this release dropped without reaching them (deploy --forget)
    members6: Mapping[str, str] = field(default_factory=dict)  # their IPv6 addresses (address6): name -> address

    @property
    def complete(self) -> bool:
        return self.status is ReleaseStatus.COMPLETE

    def changed_paths(self) -> list[str]:
        old = {f.path: f.sha256 if f.existed else None for f in self.before}
        new = {f.path: f.sha256 if f.existed else None for f in self.deployed}
        return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))

    def summary(self) -> str:
        what = ", ".join(p.rsplit("/", 1)[-1] for p in self.changed_paths()) or "units only"
        if self.kind is ReleaseKind.ROLLBACK:
            return f"rollback to before {self.rolls_back}: {what}"
        if self.packages_installed:
            what = f"installed {' '.join(self.packages_installed)}; {what}"
        return what


class ReleaseError(HakeepError):
    pass


def _mode(value: object) -> int | None:
    return int(str(value), 8) if value not in (None, "") else None


def _states(items: object) -> tuple[FileState, ...]:
    out = []
    for raw in items if isinstance(items, list) else []:
        if isinstance(raw, dict):
            out.append(FileState(path=str(raw.get("path")), existed=bool(raw.get("existed", True)),
                                 sha256=raw.get("sha256"), mode=_mode(raw.get("mode")),
                                 owner=raw.get("owner"), group=raw.get("group")))
    return tuple(out)


def parse_manifest(rid: str, data: bytes) -> Release:
    """A manifest; a corrupt one becomes a release with status ``corrupt`` (listed, never used)."""
    try:
        m = json.loads(data)
        if not isinstance(m, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError):
        return Release(rid, 0, ReleaseKind.UNKNOWN, ReleaseStatus.CORRUPT, "", "", "", "", "", (), (), {}, ())
    units = m.get("units_before") if isinstance(m.get("units_before"), dict) else {}
    seq = m.get("seq")
    return Release(
        id=rid, seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
        kind=_enum(ReleaseKind, m.get("kind", "deploy"), ReleaseKind.UNKNOWN),
        status=_enum(ReleaseStatus, m.get("status"), ReleaseStatus.UNKNOWN),
        time=str(m.get("time", "")), operator=str(m.get("operator", "")),
        hakeep_version=str(m.get("hakeep_version", "")), inventory=str(m.get("inventory", "")),
        inventory_digest=str(m.get("inventory_digest", "")), before=_states(m.get("files")),
        deployed=_states(m.get("deployed")), units_before=units or {},
        packages_installed=tuple(str(p) for p in m.get("packages_installed") or () if isinstance(p, str)),
        rolls_back=m["rolls_back"] if isinstance(m.get("rolls_back"), str) else None,
        members={str(k): str(v) for k, v in m["members"].items()} if isinstance(m.get("members"), dict) else {},
        forgotten=tuple(str(x) for x in m.get("forgotten") or () if isinstance(x, str)),
        members6={str(k): str(v) for k, v in m["members6"].items()} if isinstance(m.get("members6"), dict) else {},
    )


def history(facts: HostFacts) -> list[Release]:
    """The host's releases, oldest first: by the host's own counter, then by id (a UTC timestamp).
    A release still in progress while no run holds the host's lock was cut off (a network cut,
    SIGKILL): it is called interrupted."""
    rels = [parse_manifest(rid, facts.releases[rid]) for rid in facts.releases]
    if facts.lock_free:
        rels = [replace(r, status=ReleaseStatus.INTERRUPTED) if r.status is ReleaseStatus.IN_PROGRESS else r
                for r in rels]
    return sorted(rels, key=lambda r: (r.seq, r.id))


def live(releases: Sequence[Release]) -> Release | None:
    """The newest complete release: what the host runs, as far as hakeep knows."""
    done = [r for r in releases if r.complete]
    return done[-1] if done else None


@dataclass(frozen=True)
class Drift:
    path: str
    release: str
    expected: str | None  # sha256 the release deployed (None: it removed the file)
    found: str | None  # sha256 on the host now (None: absent)


def drift(facts: HostFacts, releases: Sequence[Release] | None = None) -> list[Drift]:
    """Managed files edited on the host since hakeep last wrote them.

    The reference is the newest release. After a complete one, a file must match what it deployed;
    after an unfinished one (interrupted, or failed and restored), either its deployed or its saved
    state is hakeep's own doing, so neither counts as drift.
    """
    rels = [r for r in (history(facts) if releases is None else releases) if r.status is not ReleaseStatus.CORRUPT]
    if not rels:
        return []
    ref = rels[-1]
    before = {f.path: (f.sha256 if f.existed else None) for f in ref.before}
    out = []
    for f in ref.deployed:
        allowed = {f.sha256 if f.existed else None}
        if not ref.complete and f.path in before:
            allowed.add(before[f.path])
        live_file = facts.file(f.path)
        found = live_file.sha256 if live_file.exists else None
        if found not in allowed and f.path in facts.files:
            out.append(Drift(f.path, ref.id, f.sha256 if f.existed else None, found))
    return out


def rollback_target(host: str, releases: Sequence[Release], to: str | None) -> Release:
    """The release whose saved "before" state a rollback restores: ``to``, or the live one."""
    if to is not None:
        match = [r for r in releases if r.id == to]
        if not match:
            known = ", ".join(r.id for r in releases) or "none"
            raise ReleaseError(f"{host}: no release {to} (releases here: {known})",
                               hint="`hakeep releases INVENTORY` lists them per host")
        target = match[0]
        if target.status is ReleaseStatus.CORRUPT:
            raise ReleaseError(f"{host}: release {to} has a corrupt manifest; pick another with --to")
        return target
    current = live(releases)
    if current is None:
        raise ReleaseError(f"{host}: no release to go back to (hakeep never completed a deploy here)",
                           hint="nothing to roll back on this host; use --limit to leave it out")
    return current


def restored_files(host: str, target: Release, facts: HostFacts) -> tuple[list[ManagedFile], list[str]]:
    """The files a rollback to before ``target`` writes and removes.

    The host's backup folder is the truth: a file saved there is put back (content, mode and owner as
    saved); a managed file with no saved copy did not exist and is removed. (The manifest's own
    "existed" may predate a package install made in the same run.)
    """
    write: list[ManagedFile] = []
    remove: list[str] = []
    for f in target.before:
        try:
            owner_of(f.path)
        except ValueError:
            raise ReleaseError(f"{host}: release {target.id} lists {f.path}, a file hakeep does not manage",
                               hint="the manifest was edited; pick another release with --to") from None
        saved = facts.release_files.get((target.id, f.path))
        if saved is None:
            if f.existed:
                raise ReleaseError(f"{host}: the backup of {f.path} is missing from release {target.id}",
                                   hint="pick another release with --to")
            remove.append(f.path)
            continue
        mode = saved.mode if saved.mode is not None else (f.mode if f.mode is not None else 0o644)
        write.append(ManagedFile(f.path, saved.content or b"", mode, saved.owner or "root", saved.group or "root",
                                 ran_before=True))
    # a release made before hakeep managed drop-ins does not list them: none of hakeep's was there then
    listed = {f.path for f in target.before}
    for u in UNITS:
        live = facts.file(u.dropin)
        if u.dropin not in listed and live.exists and MANAGED_MARK in (live.content or b"")[:200]:
            remove.append(u.dropin)
    return write, remove


def units_target(target: Release) -> dict[str, bool]:
    """Whether each unit ran before ``target`` (a unit that did not exist then: not running)."""
    return {unit: target.units_before.get(unit, {}).get("active") in ("active", "reloading")
            for unit in UNIT_NAMES}


@dataclass(frozen=True)
class History:
    """One host's release history, parsed once: what the planner and status read about it."""

    releases: tuple[Release, ...]  # oldest first
    drift: tuple[Drift, ...]

    @classmethod
    def of(cls, facts: HostFacts) -> History:
        rels = history(facts)
        return cls(tuple(rels), tuple(drift(facts, rels)))

    @property
    def live(self) -> Release | None:
        return live(self.releases)

    def next_seq(self) -> int:
        """This host's next release number: order comes from the host's history, not from any clock."""
        return max((r.seq for r in self.releases), default=0) + 1

    def prunable(self, keep: int) -> list[str]:
        """Release ids beyond the newest ``keep`` once one more release is added (oldest first)."""
        excess = len(self.releases) + 1 - keep
        return [r.id for r in self.releases[:excess]] if excess > 0 else []
