"""The plan's vocabulary: steps, file changes, host plans and plans (frozen data, no logic).

A :class:`Step` is a remote ``sh`` script with a one-line description (and, for uploads, the
bytes it reads on stdin). A :class:`HostPlan` is everything one host goes through, each part
named: install, on-host validation, the rollout steps, the restore steps that undo them and the
marks that record a failed release. A :class:`Plan` is every host's, in rollout order, with
preflight errors, warnings and the final proof. The same objects feed the dry-run view, ``--json``
and the executor: nothing the executor runs is built outside the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hakeep.plan.platform import HostVersion
from hakeep.plan.releases import ReleaseKind


class Action(StrEnum):
    """What a step does (the executor treats RECORD and PRUNE after a passed gate as best effort)."""

    INSTALL = "install"
    VALIDATE = "validate"
    BACKUP = "backup"
    STAGE = "stage"
    MODE = "mode"
    SYSCTL = "sysctl"
    FIREWALLD = "firewalld"
    SELINUX = "selinux"
    COMMIT = "commit"
    REMOVE = "remove"
    SERVICE = "service"
    WAIT = "wait"
    GATE = "gate"
    RECORD = "record"
    PRUNE = "prune"
    RESTORE = "restore"


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    MODE = "mode"  # owner, group or mode only
    DELETE = "delete"


@dataclass(frozen=True)
class Step:
    action: Action
    describe: str
    script: str = field(default="", repr=False)
    stdin: bytes = field(default=b"", repr=False)
    wait: float = 0.0  # > 0: poll the script until it succeeds, at most this many seconds


@dataclass(frozen=True)
class FileChange:
    path: str
    action: ChangeKind
    diff: str  # unified diff with secrets masked; "" for a mode-only change
    old_mode: int | None
    new_mode: int | None


@dataclass(frozen=True)
class DriftNote:
    path: str
    release: str


@dataclass(frozen=True)
class Validation:
    """The new files checked by the host's own binaries in a private folder, before anything changes."""

    prepare: tuple[Step, ...]  # make the folder, upload the files into it
    check: Step  # run every validator, then remove the folder: exit 0 ok, 1 rejected, 3 not installed


@dataclass(frozen=True)
class FailureMarks:
    """How a failed host's release is recorded once its restore has run."""

    restored: Step  # status failed-restored
    not_restored: Step  # status failed
    interrupted: Step  # status interrupted (a signal stopped the run; the host was restored)


@dataclass(frozen=True)
class HostPlan:
    host: str
    holds_vip: bool
    packages: tuple[str, ...]  # to install
    install: Step | None
    validation: Validation | None
    changes: tuple[FileChange, ...]
    steps: tuple[Step, ...]  # the rollout of this host, gate included
    restore: tuple[Step, ...]  # back to the files and unit states before this run, gate re-checked
    on_failure: FailureMarks
    release_dir: str
    drift: tuple[DriftNote, ...] = ()
    leaving: bool = False  # an LB leaving the set (deploy --decommission): stopped first
    versions: tuple[HostVersion, ...] = ()  # haproxy's and keepalived's: installed, to be installed, or unknown

    @property
    def changed(self) -> bool:
        return bool(self.packages or self.steps)

    @property
    def ordered(self) -> tuple[Step, ...]:
        """Install first, then the rollout: what a person reads as this host's steps."""
        return ((self.install,) if self.install else ()) + self.steps


@dataclass(frozen=True)
class Proof:
    """The final check after a rollout (and after a no-op): where the VIP is, do its frontends answer."""

    vip: str
    ports: tuple[int, ...]
    expect_vip: bool  # keepalived runs somewhere after this plan: exactly one LB must hold the VIP
    script: str = field(repr=False)  # run on every LB: prints holder=IFACE and port=N:open|closed


@dataclass(frozen=True)
class Plan:
    release_id: str
    kind: ReleaseKind
    hosts: tuple[HostPlan, ...]  # rollout order
    proof: Proof
    errors: tuple[str, ...]  # preflight failures: nothing may change while there is one
    warnings: tuple[str, ...]
    #: no LB serves traffic yet (none holds the VIP, haproxy and keepalived run nowhere, every LB of
    #: the inventory reached and in this run): there is nothing to protect, so the hosts are rolled
    #: out side by side, each behind its own gates, not one after the other
    side_by_side: bool = False
    #: the other VIPs' proofs ([[vip]] after the first): each must be on exactly one LB and answer too
    extra_proofs: tuple[tuple[str, Proof], ...] = ()

    @property
    def vip(self) -> str:
        return self.proof.vip

    @property
    def ports(self) -> tuple[int, ...]:
        return self.proof.ports

    @property
    def expect_vip(self) -> bool:
        return self.proof.expect_vip

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    @property
    def drift(self) -> list[tuple[str, DriftNote]]:
        return [(h.host, d) for h in self.hosts for d in h.drift]

    def host(self, name: str) -> HostPlan:
        return next(h for h in self.hosts if h.host == name)
